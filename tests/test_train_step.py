"""CornerNet's training step: loss wiring, replicas, mixed precision, recomputation, XLA,
overfitting."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from seeding import seed_weights

from cornernet_tf.losses import cornernet_loss
from cornernet_tf.models import CornerNet
from cornernet_tf.models import cornernet as cornernet_module
from cornernet_tf.targets import encode_targets

# A very small hourglass (two levels) so that steps take milliseconds. Steps run
# as graphs (`jit_compile=False`, what Keras' "auto" picks without a GPU; with
# one it would compile each test's step with XLA);
# test_jit_compiled_step_gives_the_same_update checks XLA against them.
SMALL = dict(
    num_classes=3,
    dims=[16, 16],
    modules=[1, 1],
    pre_dim=8,
    cnv_dim=16,
    pool_dim=8,
    head_dim=16,
)
INPUT, OUTPUT = 63, 16
BOXES = [
    [[6.0, 8.0, 40.0, 30.0], [20.0, 24.0, 58.0, 60.0]],
    [[3.0, 35.0, 25.0, 61.0], [30.0, 4.0, 60.0, 28.0], [10.0, 10.0, 33.0, 33.0]],
]
LABELS = [[0, 2], [1, 0, 2]]


def _batch(num_images=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (num_images, INPUT, INPUT, 3)).astype("float32")
    targets = [
        encode_targets(
            np.array(BOXES[i % 2], "float32"),
            np.array(LABELS[i % 2], "int32"),
            input_size=INPUT,
            output_size=OUTPUT,
            num_classes=3,
            max_objects=8,
        )
        for i in range(num_images)
    ]
    keys = ("tl_heatmap", "br_heatmap", "tl_index", "br_index", "tl_offset", "br_offset", "mask")
    return images, {k: tf.stack([t[k] for t in targets]) for k in keys}


def _repeated(images, targets):
    """The batch of two, repeated: `fit(_repeated(...), steps_per_epoch=N)` runs N
    steps per epoch without a new input iterator per step, and every `fit` of
    the shared model sees the same input signature (one traced step)."""
    return tf.data.Dataset.from_tensor_slices((images, targets)).batch(2).repeat()


def _small_model(seed=0):
    seed_weights(seed)
    model = CornerNet(**SMALL)
    model.build((None, INPUT, INPUT, 3))
    return model


def _shared_model(optimizer):
    """A compiled small model that tests reuse, so that its step functions are
    traced once per module: tracing is most of a test's time (a new model, or
    `fit` after `train_on_batch`, traces again).

    Returns `start(seed, learning_rate)`, which gives the model the initial
    weights of `_small_model(seed)` (BatchNorm statistics included) and the
    optimizer its freshly built state (step 0, empty slots) at `learning_rate`,
    and returns it: what a new model compiled with that optimizer would be.
    Graph mode (`jit_compile=False`), float32.
    """
    model = _small_model()
    model.compile(optimizer, jit_compile=False)
    fresh = [v.numpy() for v in model.optimizer.variables]

    def start(seed, learning_rate):
        model.set_weights(_small_model(seed).get_weights())
        for variable, value in zip(model.optimizer.variables, fresh, strict=True):
            variable.assign(value)
        model.optimizer.learning_rate = learning_rate
        return model

    return start


@pytest.fixture(scope="module")
def adam_model():
    """`_shared_model` with Adam: its `fit` and `evaluate` functions are shared."""
    return _shared_model(keras.optimizers.Adam())


@pytest.fixture(scope="module")
def sgd_model():
    """`_shared_model` with plain SGD: its `train_on_batch` function is shared."""
    return _shared_model(keras.optimizers.SGD())


def test_fit_reports_the_loss_parts(adam_model):
    images, targets = _batch()
    model = adam_model(seed=0, learning_rate=1e-3)
    history = model.fit(
        _repeated(images, targets), steps_per_epoch=1, epochs=2, shuffle=False, verbose=0
    )
    assert set(history.history) >= {"loss", "focal", "pull", "push", "offset"}
    logs = {k: v[0] for k, v in history.history.items()}
    # The reported loss is the weighted sum of the reported parts.
    expected = logs["focal"] + 0.1 * logs["pull"] + 0.1 * logs["push"] + logs["offset"]
    assert logs["loss"] == pytest.approx(expected, rel=1e-5)
    evaluated = model.evaluate(images, targets, batch_size=2, verbose=0, return_dict=True)
    assert set(evaluated) >= {"loss", "focal", "pull", "push", "offset"}


def test_train_step_equals_the_official_loss_gradient(sgd_model):
    images, targets = _batch()
    lr = 0.05
    model = sgd_model(seed=0, learning_rate=lr)
    start = [w.numpy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = cornernet_loss(outputs, targets, num_stacks=2)["loss"]
    grads = tape.gradient(loss, model.trainable_weights)
    expected = [w - lr * g.numpy() for w, g in zip(start, grads, strict=True)]
    for w, value in zip(model.trainable_weights, start, strict=True):
        w.assign(value)
    model.train_on_batch(images, targets)
    for w, e in zip(model.trainable_weights, expected, strict=True):
        np.testing.assert_allclose(w.numpy(), e, atol=1e-5)


def test_validation_loss_uses_every_stack(adam_model):
    images, targets = _batch()
    model = adam_model(seed=0, learning_rate=0.0)  # evaluate only: no update
    evaluated = model.evaluate(images, targets, batch_size=2, verbose=0, return_dict=True)
    outputs = model(images, training=False, all_stacks=True)
    expected = cornernet_loss(outputs, targets, num_stacks=2)
    assert evaluated["loss"] == pytest.approx(float(expected["loss"]), rel=1e-5)
    assert evaluated["pull"] == pytest.approx(float(expected["pull"]), rel=1e-4, abs=1e-7)


def test_jit_compiled_step_gives_the_same_update(sgd_model):
    images, targets = _batch()
    weights = {}
    for jit in (False, True):
        if jit:
            model = _small_model(seed=1)
            model.compile(keras.optimizers.SGD(0.05), jit_compile=True)
        else:
            model = sgd_model(seed=1, learning_rate=0.05)
        model.train_on_batch(images, targets)
        weights[jit] = [w.numpy() for w in model.trainable_weights]
    for a, b in zip(weights[False], weights[True], strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)


def test_mixed_float16_scales_the_loss_and_stays_finite():
    images, targets = _batch()
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _small_model()
        # Plain SGD inside the loss-scale optimizer: Adam's update is half of the
        # step's graph, and its update hides the gradients' scale (SGD's does not).
        model.compile(keras.optimizers.SGD(1e-3), jit_compile=False)
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(images, targets, batch_size=2, epochs=3, verbose=0)
        outputs = model(images, training=True)
    finally:
        keras.config.set_dtype_policy(previous)
    assert outputs["tl_heatmap_0"].dtype == tf.float32
    assert all(np.isfinite(v).all() for v in history.history.values())
    assert all(np.isfinite(w.numpy()).all() for w in model.trainable_weights)


def _loss_and_gradients(model, images, targets):
    """Loss, gradients and BatchNorm statistics after one training-mode pass (eager)."""
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = cornernet_loss(outputs, targets, num_stacks=2)["loss"]
    grads = tape.gradient(loss, model.trainable_weights)
    statistics = [w.numpy() for w in model.non_trainable_weights]
    return float(loss), [g.numpy() for g in grads], statistics


def test_compile_of_a_built_model_creates_the_optimizer_slots():
    """Slots made by `compile`, not by the first step (which tf.function would
    then trace twice, keeping the first trace's memory); an unbuilt model waits
    for its build."""
    model = _small_model(seed=0)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
    assert model.optimizer.built
    # Adam's m and v for every trainable variable (and its step counter).
    assert len(model.optimizer.variables) >= 2 * len(model.trainable_variables)
    unbuilt = CornerNet(**SMALL)
    unbuilt.compile(keras.optimizers.Adam(1e-3))
    assert not unbuilt.optimizer.built


def test_recomputed_stacks_give_the_same_loss_gradients_and_statistics(monkeypatch):
    images, targets = _batch()
    model = _small_model(seed=2)
    start = [w.numpy() for w in model.non_trainable_weights]
    loss, grads, stats = _loss_and_gradients(model, images, targets)
    model = _small_model(seed=2)
    model.recompute_stacks = True
    recomputed = []  # the stacks wrapped: all but the last, whose recomputation saves nothing
    wrap = cornernet_module._recomputed

    def recorded(stack):
        recomputed.append(stack.args[0])
        return wrap(stack)

    monkeypatch.setattr(cornernet_module, "_recomputed", recorded)
    loss_r, grads_r, stats_r = _loss_and_gradients(model, images, targets)
    assert recomputed == [0]
    assert loss_r == pytest.approx(loss, rel=1e-6)
    for g, g_r in zip(grads, grads_r, strict=True):
        np.testing.assert_allclose(g_r, g, rtol=1e-4, atol=1e-5)
    # The moving statistics moved, once: the recomputation leaves them alone.
    assert any(not np.allclose(a, b) for a, b in zip(stats, start, strict=True))
    for a, b in zip(stats_r, stats, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_recompute_stacks_is_a_train_setting(tmp_path):
    from cornernet_tf import training
    from cornernet_tf.spec.config import config_from_dict

    small = {k: v for k, v in SMALL.items() if k != "num_classes"}
    config = config_from_dict(
        {
            "model": {"preset": "tiny", "overrides": small},
            "data": {"input_size": INPUT, "output_size": OUTPUT},
            "train": {"recompute_stacks": True, "jit_compile": False},
        }
    )
    state = training.build_training_state(
        config,
        ["a", "b", "c"],
        str(tmp_path / "checkpoints"),
        learning_rate=training.LearningRate.from_config(config.train),
    )
    assert state.model.recompute_stacks is True
    assert state.model.get_compile_config()["recompute_stacks"] is True
    with pytest.raises(ValueError, match="recompute_stacks"):
        state.model.compile(recompute_stacks="yes")


def test_mixed_float16_loss_and_gradients_match_float32():
    images, targets = _batch()
    reference = _loss_and_gradients(_small_model(seed=4), images, targets)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = _small_model(seed=4)  # the same initial weights, kept in float32
        mixed = _loss_and_gradients(model, images, targets)
    finally:
        keras.config.set_dtype_policy(previous)
    assert model.pre[0].conv.compute_dtype == "float16"
    assert mixed[0] == pytest.approx(reference[0], rel=1e-3)
    # Corner pooling sends each gradient to the argmax of its window, and
    # float16 rounding moves some argmaxes: the backbone's gradients differ by
    # more than rounding (a 1e-3 relative noise on the float32 input moves
    # them as much: cosine 0.92). Measured here: cosine 0.96, norms within 4%.
    flat = [np.concatenate([g.ravel() for g in grads]) for grads in (reference[1], mixed[1])]
    cosine = flat[0] @ flat[1] / (np.linalg.norm(flat[0]) * np.linalg.norm(flat[1]))
    assert cosine > 0.9
    assert np.linalg.norm(flat[1]) == pytest.approx(np.linalg.norm(flat[0]), rel=0.1)
    # The heads (after the last corner pooling): within 5% of their scale.
    heads = [i for i, w in enumerate(model.trainable_weights) if "heatmaps_1/out" in w.path]
    assert heads
    for i in heads:
        g, g16 = reference[1][i], mixed[1][i]
        np.testing.assert_allclose(g16, g, atol=0.05 * np.abs(g).max(), rtol=0)


def test_batch_of_one_and_empty_ground_truth():
    images, targets = _batch(num_images=1)
    empty = encode_targets(
        np.zeros((0, 4), "float32"),
        np.zeros((0,), "int32"),
        input_size=INPUT,
        output_size=OUTPUT,
        num_classes=3,
        max_objects=8,
    )
    empty = {k: v[None] for k, v in empty.items() if k in targets}
    model = _small_model()
    # Plain SGD: these checks do not depend on the optimizer, and Adam's update
    # makes half of the step's graph (its trace and first run take twice as long).
    model.compile(keras.optimizers.SGD(1e-3), jit_compile=False)
    logs = model.train_on_batch(images, targets, return_dict=True)
    assert np.isfinite(logs["loss"])
    logs = model.train_on_batch(images, empty, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert logs["pull"] == 0 and logs["push"] == 0 and logs["offset"] == 0


REPLICA_SCRIPT = textwrap.dedent(
    """
    import sys
    import keras
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.path.insert(0, {tests_dir!r})
    from test_train_step import _batch, _small_model
    from cornernet_tf.losses import cornernet_loss

    images, targets = _batch(num_images=4)
    lr = 0.05

    # Reference on one device: the official trainer's semantics, each replica's
    # loss on its own half of the batch (BatchNorm statistics per replica),
    # gradients of the mean over replicas.
    model = _small_model(seed=3)
    start = [w.numpy() for w in model.trainable_weights]
    with tf.GradientTape() as tape:
        losses = []
        for half in (slice(0, 2), slice(2, 4)):
            out = model(images[half], training=True)
            part = {{k: v[half] for k, v in targets.items()}}
            losses.append(cornernet_loss(out, part, num_stacks=2)["loss"])
        mean_loss = (losses[0] + losses[1]) / 2
    grads = tape.gradient(mean_loss, model.trainable_weights)
    expected = [w - lr * g.numpy() for w, g in zip(start, grads)]

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        replicated = _small_model(seed=3)
        for w, value in zip(replicated.trainable_weights, start):
            w.assign(value)
        replicated.compile(keras.optimizers.SGD(lr), jit_compile=False)

    # Inference: the replicas' heads on their halves are one device's on the batch.
    single = replicated(images, training=False)["tl_heatmap"]
    halves = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(images))
    forward = tf.function(lambda batch: replicated(batch, training=False)["tl_heatmap"])
    per_replica = strategy.run(forward, args=(next(iter(halves)),))
    joined = tf.concat(strategy.experimental_local_results(per_replica), 0)
    print("FORWARD_DIFF", float(np.max(np.abs(joined - single))))

    dataset = tf.data.Dataset.from_tensors((images, targets))
    replicated.fit(dataset, epochs=1, verbose=0)
    worst = max(
        float(np.max(np.abs(w.numpy() - e)))
        for w, e in zip(replicated.trainable_weights, expected)
    )
    print("MAX_DIFF", worst)
    """
)


def test_two_replicas_predict_as_one_device_and_apply_the_mean_of_the_replica_losses():
    # Both in one child process: two logical CPUs must be set before TensorFlow starts.
    # `_small_model` has two stacks: with one, a few stem BatchNorm gradients nearly
    # cancel, and float32 rounding alone moves them by ~0.2% (against float64), past
    # MAX_DIFF's bound.
    script = REPLICA_SCRIPT.format(tests_dir=os.path.dirname(__file__))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=600
    )
    printed = {}
    for line in result.stdout.splitlines():
        name, _, value = line.partition(" ")
        if name in ("FORWARD_DIFF", "MAX_DIFF"):
            printed[name] = float(value)
    assert len(printed) == 2, result.stderr[-3000:]
    assert printed["FORWARD_DIFF"] < 1e-4
    assert printed["MAX_DIFF"] < 1e-5


@pytest.mark.slow
def test_overfits_two_images_and_finds_their_corners(adam_model):
    images, targets = _batch()
    # Graph mode: compiling this step with XLA takes longer than its 120 steps.
    model = adam_model(seed=5, learning_rate=2e-3)
    history = model.fit(
        _repeated(images, targets), steps_per_epoch=10, epochs=12, shuffle=False, verbose=0
    )
    losses = history.history["loss"]  # the mean of each 10 steps
    print("overfit loss, means of 10 steps:", [round(v, 4) for v in losses])
    assert losses[-1] < losses[0] / 10
    outputs = model(images, training=False)
    width = OUTPUT
    for corner in ("tl", "br"):
        heat = tf.sigmoid(outputs[f"{corner}_heatmap"]).numpy()  # [B, H, W, C]
        for i in range(2):
            n = len(BOXES[i])
            index = targets[f"{corner}_index"][i, :n].numpy()
            labels = LABELS[i]
            for j in range(n):
                y, x = divmod(int(index[j]), width)
                window = heat[i, max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2, labels[j]]
                # The ground-truth corner is the local maximum of its class map.
                assert heat[i, y, x, labels[j]] == pytest.approx(window.max())
                assert heat[i, y, x, labels[j]] > 0.5
