"""The CornerNet network: layers, presets, parameter count, serialisation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import run_layer_test, run_model_saving_test

from cornernet_tf.layers.conv_bn import BatchNorm, ConvBN, batch_norm
from cornernet_tf.layers.corner_pooling import CornerPool, CornerPoolModule
from cornernet_tf.layers.fire import FireModule
from cornernet_tf.layers.heads import CornerHead
from cornernet_tf.layers.hourglass import HourglassModule
from cornernet_tf.layers.residual import Residual
from cornernet_tf.models import CornerNet

HEADS = ("heatmap", "embedding", "offset")


def _tiny(**overrides):
    return CornerNet.from_preset("tiny", **overrides)


def _random_images(batch, size, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, size, size, 3)).astype("float32")


# ------------------------------------------------------------------- layers


def test_stride2_conv_pads_like_pytorch_on_even_inputs():
    layer = ConvBN(4, 3, strides=2, use_bn=False, use_relu=False)
    x = tf.random.stateless_normal([1, 8, 8, 2], seed=[1, 2])
    y = layer(x)
    kernel, bias = layer.conv.kernel, layer.conv.bias
    expected = tf.nn.conv2d(x, kernel, 2, padding=[[0, 0], [1, 1], [1, 1], [0, 0]]) + bias
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert y.shape == (1, 4, 4, 4)


@pytest.mark.parametrize("side", [32, 33])
def test_strided_1x1_conv_subsamples_then_convolves(side):
    # The same outputs as a strided 1x1 convolution, without its filter-gradient
    # kernel (TF 2.21's oneDNN one corrupts the heap at batch 1 on AVX-512
    # CPUs); the gradient at batch 1, in a graph as `fit` runs it, is a plain
    # sum over the sampled pixels.
    layer = ConvBN(16, 1, strides=2, use_bn=False, use_relu=False)
    x = tf.random.stateless_normal([1, side, side, 8], seed=[3, 4])
    y = layer(x)
    kernel, bias = layer.conv.kernel, layer.conv.bias
    np.testing.assert_allclose(y, tf.nn.conv2d(x, kernel, 2, "VALID") + bias, atol=1e-6)
    n = (side - 1) // 2 + 1
    assert y.shape == tuple(layer.compute_output_shape(x.shape)) == (1, n, n, 16)
    assert layer.conv.strides == (1, 1)
    assert FireModule(16, strides=2).conv_1x1.strides == (1, 1)  # its 1x1 branch too

    @tf.function(jit_compile=False)
    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x))
        return tape.gradient(loss, kernel)

    sampled = tf.reduce_sum(x[:, ::2, ::2, :], axis=[0, 1, 2])  # d loss / d kernel[0, 0, i, o]
    expected = tf.tile(sampled[:, None], [1, 16])[None, None]
    np.testing.assert_allclose(kernel_gradient(x), expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_batch_norm_trains_as_pytorch_batchnorm2d(mode):
    """Outputs, gradients and running statistics of `nn.BatchNorm2d` (eps 1e-5, momentum
    0.1) step after step: the moving variance takes the Bessel-corrected batch variance,
    where Keras' own layer takes the biased one. Inference uses the moving statistics.
    The fused kernel of the training path, run eagerly, as a graph and under XLA."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    ours = batch_norm()
    assert isinstance(ConvBN(4).bn, BatchNorm)
    ours.build((None, 5, 7, 4))
    gamma, beta = rng.normal(1, 0.3, 4).astype("float32"), rng.normal(0, 0.3, 4).astype("float32")
    ours.gamma.assign(gamma)
    ours.beta.assign(beta)
    ref = torch.nn.BatchNorm2d(4)
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(gamma))
        ref.bias.copy_(torch.from_numpy(beta))

    def nchw(a):
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))

    def train_pass(x, upstream):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = ours(x, training=True)
            loss = tf.reduce_sum(y * upstream)
        return (y, *tape.gradient(loss, [x, ours.gamma, ours.beta]))

    if mode != "eager":
        train_pass = tf.function(train_pass, jit_compile=mode == "xla")
    for _ in range(3):
        x = rng.normal(2, 3, (3, 5, 7, 4)).astype("float32")
        upstream = rng.normal(size=x.shape).astype("float32")
        ref.zero_grad()
        x_ref = nchw(x).requires_grad_()
        y_ref = ref(x_ref)
        (y_ref * nchw(upstream)).sum().backward()
        y, dx, dgamma, dbeta = train_pass(tf.constant(x), tf.constant(upstream))
        np.testing.assert_allclose(y, y_ref.detach().numpy().transpose(0, 2, 3, 1), atol=2e-6)
        np.testing.assert_allclose(dx, x_ref.grad.numpy().transpose(0, 2, 3, 1), atol=2e-5)
        np.testing.assert_allclose(dgamma, ref.weight.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(dbeta, ref.bias.grad.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.moving_mean, ref.running_mean.numpy(), rtol=1e-6)
        np.testing.assert_allclose(ours.moving_variance, ref.running_var.numpy(), rtol=1e-6)
    if mode == "graph":  # one fused kernel, not Keras' moments and arithmetic
        graph = train_pass.get_concrete_function(tf.constant(x), tf.constant(upstream)).graph
        types = {op.type for op in graph.get_operations()}
        assert "FusedBatchNormV3" in types and "Mean" not in types
    ref.eval()
    y_ref = ref(nchw(x)).detach().numpy().transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ours(x, training=False), y_ref, atol=2e-6)


@pytest.mark.parametrize("jit", [False, True], ids=["eager", "xla"])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_batch_norm_training_in_mixed_precision(dtype, jit):
    """Under a mixed policy the fused kernel takes the half-precision activations with
    float32 parameters and statistics: outputs in the compute dtype, close to float32's,
    and the running statistics PyTorch's (Bessel-corrected) update of those activations
    (eagerly, and under XLA as `train.jit_compile` runs it on GPUs)."""
    rng = np.random.default_rng(1)
    x = rng.normal(2, 3, (2, 6, 5, 4)).astype("float32")
    full = batch_norm()
    mixed = BatchNorm(epsilon=full.epsilon, momentum=full.momentum, dtype=f"mixed_{dtype}")
    mixed.build(x.shape)
    y_full = full(x, training=True)
    train = tf.function(mixed, jit_compile=True) if jit else mixed
    x_half = tf.cast(x, dtype)
    y_mixed = train(x_half, training=True)
    assert y_mixed.dtype == dtype
    assert mixed.moving_variance.dtype == "float32"
    np.testing.assert_allclose(tf.cast(y_mixed, "float32"), y_full, atol=0.05)
    seen = tf.cast(x_half, "float32").numpy()  # the values the kernel read
    momentum = full.momentum
    np.testing.assert_allclose(
        mixed.moving_mean, (1 - momentum) * seen.mean(axis=(0, 1, 2)), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(  # the biased variance would be 60/59 smaller: 0.8% off
        mixed.moving_variance,
        momentum + (1 - momentum) * seen.var(axis=(0, 1, 2), ddof=1),
        rtol=1e-5,
    )


def test_residual_skip_only_when_shape_changes():
    same = Residual(8)
    same.build((None, 8, 8, 8))
    assert same.skip is None
    strided = Residual(8, strides=2)
    strided.build((None, 8, 8, 8))
    assert strided.skip is not None
    wider = Residual(16)
    wider.build((None, 8, 8, 8))
    assert wider.skip is not None


def test_hourglass_module_structure():
    hg = HourglassModule([8, 12, 16], [1, 1, 3])
    y = hg(tf.zeros([1, 16, 16, 8]))
    assert y.shape == (1, 16, 16, 8)
    assert [r.strides for r in hg.low1] == [2]
    inner = hg.low2
    assert isinstance(inner, HourglassModule)
    assert len(inner.low2) == 3  # `modules[-1]` residuals at the bottom
    assert inner.low3[-1].filters == 12 and hg.low3[-1].filters == 8


def test_hourglass_rejects_mismatched_dims():
    with pytest.raises(ValueError, match="dims"):
        HourglassModule([8, 12], [1])


def test_corner_head_bias():
    head = CornerHead(8, 3, bias_value=-2.19)
    y = head(tf.zeros([1, 4, 4, 5]))
    np.testing.assert_allclose(y, np.full((1, 4, 4, 3), -2.19), atol=1e-6)


def test_corner_pool_module_rejects_unknown_corner():
    with pytest.raises(ValueError, match="corner"):
        CornerPoolModule("tr", 8)


@pytest.mark.parametrize(
    "layer, shape",
    [
        (ConvBN(6, 7, strides=2, use_bn=True, use_relu=False), (2, 9, 9, 3)),
        (ConvBN(5, 1, strides=2, use_bn=False), (2, 9, 9, 3)),
        (batch_norm(), (2, 5, 5, 4)),
        (Residual(6, strides=2), (2, 8, 8, 4)),
        (FireModule(6, strides=2), (2, 8, 8, 4)),
        (HourglassModule([6, 8, 10], [2, 1, 2]), (2, 8, 8, 6)),
        (CornerPool("left"), (2, 6, 7, 3)),
        (CornerPoolModule("br", 6, pool_dim=5), (2, 7, 9, 6)),
        (CornerHead(7, 3, bias_value=-1.5), (2, 5, 5, 4)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, keras.layers.Layer) else "",
)
def test_layer(layer, shape, tmp_path):
    run_layer_test(layer, shape, tmp_path)


# -------------------------------------------------------------------- model


def test_public_api():
    assert set(CornerNet.presets()) >= {"hourglass104", "tiny"}


def test_tiny_outputs_every_stack_in_training_and_last_at_inference():
    model = _tiny()
    x = _random_images(2, 127)
    train_out = model(x, training=True)
    expected = {f"{c}_{h}_{s}" for c in ("tl", "br") for h in HEADS for s in range(2)}
    assert set(train_out) == expected
    assert train_out["tl_heatmap_0"].shape == (2, 32, 32, 3)
    assert train_out["br_embedding_1"].shape == (2, 32, 32, 1)
    assert train_out["tl_offset_1"].shape == (2, 32, 32, 2)
    infer_out = model(x, training=False)
    assert set(infer_out) == {f"{c}_{h}" for c in ("tl", "br") for h in HEADS}
    # Inference is the last stack of the full network, with BN in inference mode.
    full = model(x, training=False, all_stacks=True)
    np.testing.assert_allclose(infer_out["tl_heatmap"], full["tl_heatmap_1"], atol=1e-5)
    assert all(v.dtype == tf.float32 for v in infer_out.values())


def _assert_head_biases(model):
    """Every heatmap head of every stack starts at the focal prior, the others at 0."""
    expected = {"heatmap": -2.19, "embedding": 0.0, "offset": 0.0}
    widths = {"heatmap": model.num_classes, "embedding": 1, "offset": 2}
    for corner in ("tl", "br"):
        for head in HEADS:
            layers = model.heads[f"{corner}_{head}"]
            assert len(layers) == model.num_stacks
            for stack, layer in enumerate(layers):
                # Official `tl_heats[-1].bias.fill_(-2.19)`: sigmoid(-2.19) ~= 0.1.
                np.testing.assert_array_equal(
                    layer.out.bias.numpy(),
                    np.full(widths[head], expected[head], np.float32),
                    err_msg=f"{corner}_{head}_{stack}",
                )


def test_fresh_heads_start_at_the_focal_prior():
    model = _tiny()
    model(_random_images(1, 127), training=True)  # builds the heads of both stacks
    _assert_head_biases(model)


def test_normalisation_and_channel_order():
    model = _tiny(channel_order="bgr")
    rgb = _random_images(1, 127)
    bgr_model_input = model._normalize(rgb)
    mean = np.array(model.image_mean, "float32")
    std = np.array(model.image_std, "float32")
    expected = ((rgb / 255.0 - mean) / std)[..., ::-1]
    np.testing.assert_allclose(bgr_model_input, expected, atol=1e-5)


@pytest.mark.parametrize("preset, size", [("tiny", 127), ("tiny_squeeze", 127)])
def test_preset_saves_and_loads(preset, size, tmp_path):
    model = CornerNet.from_preset(
        preset,
        num_classes=4,
        class_names=["a", "b", "c", "d"],
        test_config={"top_k": 20, "num_dets": 400},
    )
    loaded = run_model_saving_test(model, size, tmp_path)
    assert loaded.class_names == ["a", "b", "c", "d"]
    assert loaded.test_config.top_k == 20


def test_jit_compiled_forward_matches_eager():
    model = _tiny()
    x = _random_images(1, 127, seed=2)
    eager = model(x, training=False)
    compiled = tf.function(lambda t: model(t, training=False), jit_compile=True)(x)
    for key in eager:
        np.testing.assert_allclose(compiled[key], eager[key], atol=1e-4)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="unknown preset"):
        CornerNet.from_preset("resnet50")
    with pytest.raises(ValueError, match="channel_order"):
        _tiny(channel_order="rgba")
    with pytest.raises(ValueError, match="class_names"):
        _tiny(class_names=["only-one"])
    with pytest.raises(ValueError, match="num_classes"):
        _tiny(num_classes=0)
    with pytest.raises(ValueError, match="test_config"):
        _tiny(test_config={"topk": 3})


def test_input_size_rule_is_the_network_s_own():
    """The check refuses exactly the sides the hourglasses cannot take, naming valid ones."""
    from cornernet_tf.spec.presets import input_size_problem

    model = CornerNet.from_preset(
        "tiny", num_stacks=1, dims=[8, 8, 8, 8], pre_dim=8, cnv_dim=8, pool_dim=8, head_dim=8
    )
    unchecked = CornerNet.from_config(model.get_config())
    unchecked._check_input_sides = lambda shape: None
    for side in (61, 64, 65, 124, 125):
        problem = input_size_problem(side, model.output_stride, len(model.dims) - 1)
        try:
            unchecked(np.zeros((1, side, side, 3), "float32"))
            runs = True
        except (ValueError, tf.errors.InvalidArgumentError):
            runs = False
        assert runs == (problem is None), side
        if problem is not None:
            with pytest.raises(ValueError, match=f"input height {side} .*nearest sizes"):
                model(np.zeros((1, side, 32, 3), "float32"))
    assert "nearest sizes of the official form 128k-1: 127;" in input_size_problem(100, 4, 5) + ";"
    assert input_size_problem(508, 4, 5).endswith("383 or 511")


@pytest.fixture(scope="module")
def hourglass104():
    """The official network, built by `from_preset` (shared: building takes seconds)."""
    return CornerNet.from_preset("hourglass104")


def test_from_preset_returns_a_built_model(hourglass104):
    # Weights exist before any call, as with keras-hub's `from_preset`.
    assert hourglass104.built
    assert hourglass104.count_params() == 201_035_212 + 125_696
    assert sum(int(np.prod(w.shape)) for w in hourglass104.trainable_weights) == 201_035_212
    lines = []
    hourglass104.summary(print_fn=lambda line, **kwargs: lines.append(line))
    assert "201,035,212" in "\n".join(lines)  # "Trainable params: 201,035,212"


def test_hourglass104_parameters_and_shapes(hourglass104):
    model = hourglass104
    forward = tf.function(lambda t: model(t, training=True))
    # Tracing at 511x511 gives the static output shapes without running the
    # 201M-parameter network at full size.
    spec = forward.get_concrete_function(tf.TensorSpec([1, 511, 511, 3], tf.float32))
    shapes = {k: tuple(v.shape) for k, v in spec.structured_outputs.items()}
    assert shapes["tl_heatmap_0"] == (1, 128, 128, 80)
    assert shapes["br_heatmap_1"] == (1, 128, 128, 80)
    assert shapes["tl_embedding_1"] == (1, 128, 128, 1)
    assert shapes["br_offset_1"] == (1, 128, 128, 2)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    running = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert trainable == 201_035_212
    assert running == 125_696
    _assert_head_biases(model)


@pytest.mark.slow
def test_hourglass104_forward_pass(hourglass104):
    model = hourglass104
    # (h + 1) divisible by 128: the smallest valid size keeps the suite fast.
    out = model(_random_images(1, 127), training=False)
    assert out["tl_heatmap"].shape == (1, 32, 32, 80)
    assert all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in out.values())
