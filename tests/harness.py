"""Shared checks every layer and every preset must pass (as keras-hub's `TestCase`).

`run_layer_test` builds a layer, calls it, round-trips its config and a
`.keras` file and checks the gradients; `run_model_saving_test` does the same
for a whole CornerNet: `.keras` file, loaded in this process and by
`cornernet_tf.models.load_model`, with equal heads and equal detections. A new
layer or preset gets all of them with one parametrized line.
"""

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf.models import CornerNet, load_model


def _random(shape, seed):
    return tf.random.stateless_normal(shape, seed=[seed, 7])


def _copy_weights(source, target):
    for a, b in zip(source.weights, target.weights, strict=True):
        b.assign(a)


def run_layer_test(layer, input_shape, tmp_path, expected_output_shape=None, atol=1e-6):
    """Build, call, config and `.keras` round trips with equal outputs, gradients.

    Args:
        layer: a fresh, unbuilt layer constructed with non-default arguments
            (a default that the config forgets goes unnoticed otherwise).
        input_shape: the static input shape, batch included.
        tmp_path: a folder for the `.keras` file.
        expected_output_shape: when given, the output shape it must have.
        atol: tolerance of the output comparisons.
    """
    x = _random(input_shape, seed=1)
    y = layer(x, training=False)
    assert tuple(y.shape) == tuple(layer.compute_output_shape(input_shape))
    if expected_output_shape is not None:
        assert tuple(y.shape) == tuple(expected_output_shape)

    clone = layer.__class__.from_config(layer.get_config())
    clone(x, training=False)
    _copy_weights(layer, clone)
    assert clone.get_config() == layer.get_config()
    np.testing.assert_allclose(clone(x, training=False), y, atol=atol)

    # A `.keras` file of a model around the layer: the registered name and the
    # saved weights bring the same layer back.
    inputs = keras.Input(input_shape[1:], batch_size=input_shape[0])
    model = keras.Model(inputs, layer(inputs, training=False))
    path = tmp_path / f"{type(layer).__name__}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.layers[-1]) is type(layer)
    np.testing.assert_allclose(loaded(x, training=False), y, atol=atol)

    # Training mode runs, and every trainable weight gets a gradient.
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True))
    gradients = tape.gradient(loss, layer.trainable_weights)
    missing = [w.path for w, g in zip(layer.trainable_weights, gradients, strict=True) if g is None]
    assert missing == []


def run_model_saving_test(model, image_size, tmp_path, atol=1e-5):
    """A CornerNet's `.keras` round trip: the same heads, the same detections.

    Args:
        model: a built `CornerNet` (any preset, any test config).
        image_size: a square input side the preset takes.
        tmp_path: a folder for the `.keras` file.
        atol: tolerance of the head comparison.

    Returns:
        The loaded model.
    """
    images = np.random.default_rng(5).uniform(0, 255, (2, image_size, image_size, 3))
    images = images.astype("float32")
    heads = model(images, training=False)
    detections = model.predict_on_batch(images)
    path = tmp_path / "model.keras"
    model.save(path)
    for loaded in (keras.saving.load_model(path), load_model(path)):
        assert isinstance(loaded, CornerNet)
        assert loaded.get_config() == model.get_config()
        for key, value in loaded(images, training=False).items():
            np.testing.assert_allclose(value, heads[key], atol=atol, err_msg=key)
        again = loaded.predict_on_batch(images)
        assert set(again) == set(detections)
        np.testing.assert_array_equal(again["num_detections"], detections["num_detections"])
        np.testing.assert_allclose(again["boxes"], detections["boxes"], atol=1e-3)
    return loaded


# A one-stack network of the tiny presets' topology, narrowed: models whose
# graphs trace and run in seconds (`CornerNet.from_preset(name, **SMALL_NETWORK)`).
SMALL_NETWORK = {
    "num_stacks": 1,
    "dims": [16, 16, 16, 16],
    "modules": [1, 1, 1, 1],
    "pre_dim": 8,
    "cnv_dim": 16,
    "pool_dim": 8,
}


def save_small_model(folder, seed, class_names=("rectangle", "ellipse", "triangle")):
    """An untrained one-stack CornerNet small enough that a command runs in seconds.

    Args:
        folder: where to write `model.keras`.
        seed: its weights' seed (`seeding.seed_weights`).
        class_names: its classes.

    Returns:
        The `.keras` file's path, as a string.
    """
    from seeding import seed_weights

    seed_weights(seed)
    model = CornerNet.from_preset("tiny", **SMALL_NETWORK, class_names=list(class_names))
    model.build()
    path = folder / "model.keras"
    model.save(path)
    return str(path)
