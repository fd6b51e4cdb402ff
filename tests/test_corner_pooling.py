"""Corner pooling: values, the gradient's tie rule, XLA, dtypes, TFLite, layer."""

import importlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.layers.corner_pooling import CornerPool
from cornernet_tf.ops import corner_pool

DIRECTIONS = ("top", "left", "bottom", "right")
# (axis in NHWC, True when the window runs toward larger indices)
AXES = {"top": (1, True), "left": (2, True), "bottom": (1, False), "right": (2, False)}
# The op module (the package re-exports the function under the same name).
corner_pool_module = importlib.import_module("cornernet_tf.ops.corner_pool")
SMALL_CHUNK, SMALL_MAX_CHAIN = 4, 6
# With the small sizes: H, W = 1; one chain (3, 4, 5); chunks, padded (7, 9, 13)
# or not (8, 12).
SHAPES = [(2, 1, 5, 3), (1, 7, 1, 2), (2, 3, 4, 2), (1, 9, 8, 2), (2, 12, 13, 2)]


@pytest.fixture
def small_chunk(monkeypatch):
    """Chains of at most 6 rows, then chunks of 4: every path on small tensors.

    These sizes are performance constants; the algorithm is the same for any
    of them. `test_production_chunk_size` covers the real ones.
    """
    monkeypatch.setattr(corner_pool_module, "_CHUNK", SMALL_CHUNK)
    monkeypatch.setattr(corner_pool_module, "_MAX_CHAIN", SMALL_MAX_CHAIN)


def reference_pool(x, direction):
    """The official `_cpools` formulas: reversed (top/left) or forward cumulative max."""
    axis, toward_end = AXES[direction]
    if toward_end:
        return np.flip(np.maximum.accumulate(np.flip(x, axis), axis), axis)
    return np.maximum.accumulate(x, axis)


def reference_grad(x, dy, direction):
    """Scatter each output's gradient onto the argmax of its window.

    Ties: the tied maximum farthest from the output along the pooling direction
    (the official C++ backward moves its argmax only on strictly greater values
    while scanning from the far end).
    """
    axis, toward_end = AXES[direction]
    x = np.moveaxis(x, axis, 0).astype(np.float64)  # [N, ...]
    dy = np.moveaxis(dy, axis, 0).astype(np.float64)
    n = x.shape[0]
    dx = np.zeros_like(x)
    rest = tuple(np.indices(x.shape[1:]))
    for i in range(n):
        window = x[i:] if toward_end else x[: i + 1]  # [L, ...]
        is_max = window == window.max(axis=0)
        if toward_end:  # farthest = largest index
            arg = i + (len(window) - 1 - np.argmax(is_max[::-1], axis=0))
        else:  # farthest = smallest index
            arg = np.argmax(is_max, axis=0)
        np.add.at(dx, (arg,) + rest, dy[i])
    return np.moveaxis(dx, 0, axis)


def tied_input(rng, shape):
    """ReLU of small integers: many ties, as after the branch conv-BN-ReLU."""
    return np.maximum(rng.integers(-2, 4, size=shape), 0).astype(np.float32)


def distinct_input(rng, shape, dtype=np.float32):
    """All values distinct and 0.1 apart (tie-free even for finite differences)."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1).astype(dtype)


def pool_and_grad(jit=False, signature=None):
    """Forward and gradient of all four directions in one traced function."""

    @tf.function(jit_compile=jit, input_signature=signature)
    def fn(x, dy):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            ys = [corner_pool(x, d) for d in DIRECTIONS]
        return ys, [tape.gradient(y, x, output_gradients=dy) for y in ys]

    return fn


def check_against_numpy(fn, x, dy):
    ys, dxs = fn(x, dy)
    x, dy = np.asarray(x, np.float32), np.asarray(dy, np.float32)
    for direction, y, dx in zip(DIRECTIONS, ys, dxs, strict=True):
        np.testing.assert_array_equal(np.float32(y), reference_pool(x, direction), direction)
        np.testing.assert_array_equal(np.float32(dx), reference_grad(x, dy, direction), direction)


@pytest.mark.usefixtures("small_chunk")
@pytest.mark.parametrize("shape", SHAPES)
def test_values_and_gradient_match_numpy(shape):
    rng = np.random.default_rng(0)
    dy = rng.integers(-3, 4, size=shape).astype(np.float32)  # exact sums in float32
    fn = pool_and_grad()
    for x in (distinct_input(rng, shape), tied_input(rng, shape)):
        check_against_numpy(fn, x, dy)


def test_production_chunk_size():
    # 160 rows: five chunks of 32; 136 columns: four chunks and a padded one.
    # Batch unknown, as in a Keras model with a fixed input size.
    rng = np.random.default_rng(7)
    shape = (1, 160, 136, 2)
    dy = rng.integers(-3, 4, size=shape).astype(np.float32)
    fn = pool_and_grad(signature=[tf.TensorSpec((None,) + shape[1:], tf.float32)] * 2)
    for x in (distinct_input(rng, shape), tied_input(rng, shape)):
        check_against_numpy(fn, x, dy)


def test_tie_rule_closed_form():
    # One column [1, 3, 2, 3, 0] with the two 3s tied; upstream gradient ones.
    column = np.array([1, 3, 2, 3, 0], np.float32)
    expected = {
        "top": [0, 0, 0, 4, 1],  # outputs 0..3 see both 3s: the farther one, index 3
        "bottom": [1, 4, 0, 0, 0],  # outputs 1..4: the farther 3 from below, index 1
        "left": [0, 0, 0, 4, 1],  # the same along W
        "right": [1, 4, 0, 0, 0],
    }
    fn = pool_and_grad()
    for shape in [(1, 5, 1, 1), (1, 1, 5, 1)]:
        _, dxs = fn(column.reshape(shape), np.ones(shape, np.float32))
        for direction, dx in zip(DIRECTIONS, dxs, strict=True):
            axis = AXES[direction][0]
            if shape[axis] == 5:
                np.testing.assert_array_equal(dx.numpy().ravel(), expected[direction], direction)


@pytest.mark.usefixtures("small_chunk")
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_gradient_matches_finite_differences(direction):
    # 11 rows: three chunks, the last one padded; float64, values 0.1 apart.
    shape = (1, 11, 2, 1) if AXES[direction][0] == 1 else (1, 2, 11, 1)
    x = tf.constant(distinct_input(np.random.default_rng(1), shape, np.float64))
    pool = tf.function(lambda t: corner_pool(t, direction))
    theoretical, numerical = tf.test.compute_gradient(pool, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-6)
    assert set(np.unique(theoretical[0])) == {0.0, 1.0}  # one argmax per output


@pytest.mark.parametrize("small", [True, False], ids=["small_chunk", "production_chunk"])
def test_unknown_height_and_width(small, monkeypatch):
    if small:
        monkeypatch.setattr(corner_pool_module, "_CHUNK", SMALL_CHUNK)
    rng = np.random.default_rng(2)
    fn = pool_and_grad(signature=[tf.TensorSpec([None, None, None, 2], tf.float32)] * 2)
    shapes = [(1, 1, 1, 2), (2, 3, 9, 2), (2, 33, 5, 2), (1, 5, 70, 2), (1, 96, 64, 2)]
    for shape in shapes:
        dy = rng.integers(-3, 4, size=shape).astype(np.float32)
        check_against_numpy(fn, tied_input(rng, shape), dy)


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "unknown_hw"])
def test_xla(dynamic):
    rng = np.random.default_rng(3)
    shape = (2, 10, 13, 2)
    dy = rng.integers(-3, 4, size=shape).astype(np.float32)
    dims = [None, None, None, 2] if dynamic else shape
    fn = pool_and_grad(jit=True, signature=[tf.TensorSpec(dims, tf.float32)] * 2)
    for x in (distinct_input(rng, shape), tied_input(rng, shape)):
        check_against_numpy(fn, x, dy)
    # Under XLA the op takes its while-loop path (much faster to compile).
    graph = fn.get_concrete_function().graph
    assert {"While", "StatelessWhile"} & {op.type for op in graph.get_operations()}


@pytest.mark.usefixtures("small_chunk")
@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_half_precision(dtype):
    rng = np.random.default_rng(4)
    shape = (1, 9, 6, 2)
    x, dy = tied_input(rng, shape), rng.integers(-3, 4, size=shape).astype(np.float32)
    for fn in (pool_and_grad(), pool_and_grad(jit=True)):
        ys, dxs = fn(tf.cast(x, dtype), tf.cast(dy, dtype))
        assert {t.dtype for t in ys + dxs} == {dtype}
        check_against_numpy(fn, tf.cast(x, dtype), tf.cast(dy, dtype))


@pytest.mark.parametrize("dynamic", [False, True], ids=["static", "unknown_hw"])
def test_tflite_builtins_only(dynamic):
    from ai_edge_litert.interpreter import Interpreter

    shape = (1, 40, 36, 3)
    x = distinct_input(np.random.default_rng(5), shape)
    spec_shape = (1, None, None, 3) if dynamic else shape

    @tf.function(input_signature=[tf.TensorSpec(spec_shape, tf.float32)])
    def fn(x):
        return tf.stack([corner_pool(x, d) for d in DIRECTIONS])

    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()], fn)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]  # no Flex
    interpreter = Interpreter(model_content=converter.convert())
    (input_detail,) = interpreter.get_input_details()
    if dynamic:
        interpreter.resize_tensor_input(input_detail["index"], shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_array_equal(got, fn(x).numpy())
    for direction, pooled in zip(DIRECTIONS, got, strict=True):
        np.testing.assert_array_equal(pooled, reference_pool(x, direction), direction)


def test_layer_config_round_trip(tmp_path):
    x = distinct_input(np.random.default_rng(6), (2, 9, 7, 3))
    layer = CornerPool("right", name="pool_right")
    restored = CornerPool.from_config(layer.get_config())
    assert restored.direction == "right" and restored.name == "pool_right"
    np.testing.assert_array_equal(restored(x).numpy(), reference_pool(x, "right"))
    np.testing.assert_array_equal(restored(x).numpy(), layer(x).numpy())

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, CornerPool("bottom")(inputs))
    path = str(tmp_path / "pool.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded(x).numpy(), reference_pool(x, "bottom"))


@pytest.mark.usefixtures("small_chunk")
def test_empty_tensors():
    for shape in [(0, 9, 5, 2), (1, 0, 9, 2), (1, 9, 0, 2)]:
        x = tf.zeros(shape)
        fn = tf.function(
            lambda x: [corner_pool(x, d) for d in DIRECTIONS],
            input_signature=[tf.TensorSpec([None, None, None, 2], tf.float32)],
        )
        for pooled in [corner_pool(x, d) for d in DIRECTIONS] + fn(x):
            assert pooled.shape == shape


def test_bad_input():
    x = tf.zeros([1, 4, 4, 2])
    for bad in ("up", "Top", None, 1):
        with pytest.raises(ValueError, match="`direction`"):
            corner_pool(x, bad)
        with pytest.raises(ValueError, match="`direction`"):
            CornerPool(bad)
    with pytest.raises(ValueError, match="`x` must be a 4-D NHWC"):
        corner_pool(tf.zeros([4, 4, 2]), "top")
    with pytest.raises(TypeError, match="`x` must be a floating-point"):
        corner_pool(tf.zeros([1, 4, 4, 2], tf.int32), "top")
