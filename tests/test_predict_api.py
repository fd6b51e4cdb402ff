"""`CornerNet.predict` and `CornerNet.predict_images`, the Keras-facing inference API.

An untrained tiny CornerNet; `top_k=10` and a wide `ae_threshold` leave a
few valid corner pairs per image, so the -1 padding after `num_detections`
is exercised (with the defaults an untrained model fills all 100 slots).
"""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from seeding import seed_weights

from cornernet_tf.models import CornerNet
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE

MAX_DETECTIONS = 100


@pytest.fixture(scope="module")
def model():
    # An untrained network: with this seed its corners pair into a partial
    # list of detections (some seeds give none), so the padding is exercised.
    seed_weights(1)
    net = CornerNet.from_preset(
        "tiny", test_config={"top_k": 10, "num_dets": 100, "ae_threshold": 1000.0}
    )
    net.build()
    return net


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (2, 100, 140, 3)).astype("uint8")


@pytest.fixture(scope="module")
def predictions(model, images):
    return model.predict(images, verbose=0)


def _check_layout(result, batch):
    assert set(result) == {"boxes", "confidence", "classes", "num_detections"}
    assert result["boxes"].shape == (batch, MAX_DETECTIONS, 4)
    assert result["confidence"].shape == result["classes"].shape == (batch, MAX_DETECTIONS)
    assert result["num_detections"].shape == (batch,)
    assert result["boxes"].dtype == result["confidence"].dtype == np.float32
    assert result["classes"].dtype == result["num_detections"].dtype == np.int32


def test_predict_returns_padded_fixed_size_detections(model, predictions):
    _check_layout(predictions, 2)
    counts = predictions["num_detections"]
    assert np.all((counts >= 0) & (counts <= MAX_DETECTIONS))
    assert np.any((counts > 0) & (counts < MAX_DETECTIONS)), counts  # padding is exercised
    for i, n in enumerate(counts):
        assert np.all(predictions["boxes"][i, n:] == -1)
        assert np.all(predictions["confidence"][i, n:] == -1)
        assert np.all(predictions["classes"][i, n:] == -1)
        assert np.all((predictions["classes"][i, :n] >= 0) & (predictions["classes"][i, :n] < 3))
        assert np.all(predictions["confidence"][i, :n] > 0)


def test_predict_converts_the_box_format(model, images, predictions):
    xywh = model.predict(images, verbose=0, bounding_box_format="xywh")
    _check_layout(xywh, 2)
    np.testing.assert_array_equal(xywh["num_detections"], predictions["num_detections"])
    np.testing.assert_array_equal(xywh["classes"], predictions["classes"])
    for i, n in enumerate(predictions["num_detections"]):
        x1, y1, x2, y2 = np.moveaxis(predictions["boxes"][i, :n], -1, 0)
        expected = np.stack([x1, y1, x2 - x1, y2 - y1], axis=-1)
        np.testing.assert_allclose(xywh["boxes"][i, :n], expected, rtol=1e-5, atol=1e-4)
        assert np.all(xywh["boxes"][i, n:] == -1)
    assert model.bounding_box_format == "xyxy"  # the argument does not stick


def test_predict_images_runs_each_image_at_its_own_size(model, images, predictions):
    rng = np.random.default_rng(1)
    batch = [images[0], rng.integers(0, 256, (80, 60, 3)), rng.integers(0, 256, (127, 127, 3))]
    result = model.predict_images(batch)
    _check_layout(result, 3)
    for i, image in enumerate(batch):
        height, width = image.shape[:2]
        n = result["num_detections"][i]
        x1, y1, x2, y2 = np.moveaxis(result["boxes"][i, :n], -1, 0)
        assert np.all((0 <= x1) & (x1 <= x2) & (x2 <= width)), i
        assert np.all((0 <= y1) & (y1 <= y2) & (y2 <= height)), i
        assert np.all(result["boxes"][i, n:] == -1)
    # One image alone gives what `predict` gives for it in a batch of its size.
    assert result["num_detections"][0] == predictions["num_detections"][0]
    np.testing.assert_allclose(result["boxes"][0], predictions["boxes"][0], atol=1e-3)
    np.testing.assert_allclose(result["confidence"][0], predictions["confidence"][0], atol=1e-5)


def test_bad_images_raise_clear_errors(model, images):
    with pytest.raises(ValueError, match="empty"):
        model.predict_images([])
    with pytest.raises(ValueError, match="grayscale"):
        model.predict_images([images[0, :, :, :1]])
    with pytest.raises(ValueError, match="image 1 .*RGBA"):
        model.predict_images([images[0], np.zeros((20, 30, 4), np.uint8)])
    with pytest.raises(ValueError, match="grayscale"):
        model.predict(images[..., :1], verbose=0)


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        (None, TypeError, "image 0 is NoneType, not an image array"),
        ("photo.jpg", TypeError, "image 0 is str, not an image array; read files"),
        (np.array([["a"]]), TypeError, "dtype <U1"),
        (np.zeros((0, 0, 3), np.uint8), ValueError, "at least 1x1 pixels"),
        (np.full((8, 8, 3), 300, np.uint16), ValueError, r"uint16 values in \[300, 300\].*// 257"),
    ],
)
def test_unsupported_images_are_refused_with_the_fix(model, image, error, match):
    with pytest.raises(error, match=match):
        model.predict_images([image])


def _float_with(value):
    image = np.full((40, 48, 3), 100.0, np.float32)
    image[3, 4, 0] = value
    return image


LIMIT = DEFAULT_MAX_IMAGE_SIDE
OUTSIDE_THE_CONTRACT = [
    # (id, call on the model, error type, message)
    ("nan-pixel", lambda m: m.predict(_float_with(np.nan)[None], verbose=0), ValueError, "NaN"),
    (
        "inf-in-a-tensor",
        lambda m: m.predict(tf.constant(_float_with(np.inf)[None]), verbose=0),
        ValueError,
        "non-finite",
    ),
    ("1e30-pixel", lambda m: m.predict_images([_float_with(1e30)]), ValueError, r"\[0, 255\]"),
    ("negative-float", lambda m: m.predict_images([_float_with(-3.0)]), ValueError, "np.clip"),
    (
        "batch-of-0",
        lambda m: m.predict(np.zeros((0, 32, 32, 3), np.uint8), verbose=0),
        ValueError,
        "holds no images",
    ),
    (
        "ragged-list",
        lambda m: m.predict([np.zeros((8, 8, 3)), np.zeros((9, 8, 3))], verbose=0),
        TypeError,
        "different sizes; pass them to predict_images",
    ),
    ("none-to-predict", lambda m: m.predict(None, verbose=0), TypeError, "NoneType"),
    ("path-string", lambda m: m.predict("photo.jpg", verbose=0), TypeError, "read files"),
    (
        "side-above-limit",
        lambda m: m.predict_images([np.zeros((1, LIMIT + 1, 3), np.uint8)]),
        ValueError,
        f"sides above {LIMIT} pixels are refused",
    ),
    (
        "side-above-given-limit",
        lambda m: m.predict(np.zeros((1, 40, 50, 3), np.uint8), verbose=0, max_image_side=49),
        ValueError,
        "sides above 49 pixels",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [pytest.param(*case[1:], id=case[0]) for case in OUTSIDE_THE_CONTRACT],
)
def test_arrays_outside_the_contract_are_refused(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


def test_a_larger_side_limit_is_the_callers_choice(model):
    image = np.full((20, 70, 3), 90, np.uint8)
    with pytest.raises(ValueError, match="sides above 64"):
        model.predict_images([image], max_image_side=64)
    result = model.predict_images([image], max_image_side=70)
    assert result["boxes"].shape[0] == 1


def test_non_finite_pixels_are_refused_instead_of_removing_every_detection(model, images):
    # Before: one inf pixel made every heatmap NaN and predict returned 0 detections.
    image = images[0].astype(np.float32)
    image[3, 4, 0] = np.inf
    with pytest.raises(ValueError, match="non-finite pixel values"):
        model.predict_images([image])
    with pytest.raises(ValueError, match="non-finite pixel values"):
        model.predict(image[None], verbose=0)


def test_accepted_inputs_give_the_same_detections(model, images):
    # uint8, float and int64 arrays of the same 0-255 values are the same image; a
    # 16-bit array within 0-255 is accepted as such.
    expected = model.predict_images([images[0]])
    for array in (images[0].astype(np.float32), images[0].astype(np.int64)):
        np.testing.assert_allclose(model.predict_images([array])["boxes"], expected["boxes"])
    with pytest.raises(TypeError, match=r"one image: \[image\]"):
        model.predict_images(images[0])


def test_a_new_test_config_takes_effect_on_the_next_predict(images):
    # `predict` and `predict_images` cache compiled functions; a test procedure
    # assigned after a first call must not be ignored by them.
    seed_weights(1)
    config = {"top_k": 10, "num_dets": 100, "ae_threshold": 1000.0}
    net = CornerNet.from_preset("tiny", test_config=config)
    net.build()
    net.predict(images, verbose=0)
    net.predict_images([images[0]])
    net.test_config = net.test_config.replace(max_detections=7, flip_test=False)
    again = net.predict(images, verbose=0)
    assert again["boxes"].shape == (2, 7, 4)
    assert net.predict_images([images[0]])["boxes"].shape == (1, 7, 4)
    compiled = net.predict_function
    net.test_config = net.test_config.to_dict()  # the same procedure: nothing to retrace
    assert net.predict_function is compiled
    expected = net.detect(images)
    np.testing.assert_array_equal(again["num_detections"], expected["num_detections"])
    np.testing.assert_allclose(again["confidence"], expected["confidence"], atol=1e-6)


def test_predict_batches_arrays_itself_and_feeds_keras_without_autotuning(
    model, images, predictions, monkeypatch
):
    # A tf.data pipeline with autotuning made the compiled predict function run on
    # one core in about one call of four (cornernet_tf.inference.feeding); the
    # arrays are batched here and reach Keras with autotuning off.
    seen = []
    keras_predict = keras.Model.predict

    def spy(self, x, **kwargs):
        seen.append(x)
        return keras_predict(self, x, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", spy)
    one_by_one = model.predict(images, batch_size=1, verbose=0)
    assert seen[-1].options().autotune.enabled is False
    assert [batch.shape[0] for batch in seen[-1]] == [1, 1]
    for key in predictions:
        np.testing.assert_allclose(one_by_one[key], predictions[key], rtol=1e-5, atol=1e-4)

    chosen = tf.data.Options()
    chosen.autotune.enabled = True
    model.predict(tf.data.Dataset.from_tensors(images).with_options(chosen), verbose=0)
    assert seen[-1].options().autotune.enabled is True  # the caller's choice is kept
    model.predict(tf.data.Dataset.from_tensors(images), verbose=0)
    assert seen[-1].options().autotune.enabled is False


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_predict_refuses_a_bad_batch_size(model, images, batch_size):
    with pytest.raises(ValueError, match=r"`batch_size` must be a positive integer or None"):
        model.predict(images, batch_size=batch_size, verbose=0)


def test_an_empty_image_is_refused_instead_of_giving_detections(model):
    # Before: the zero canvas around an empty image gave detections.
    with pytest.raises(ValueError, match=r"shape \(1, 0, 0, 3\); a batch needs at least one"):
        model.detect(np.zeros((1, 0, 0, 3), np.uint8))


def test_every_predict_path_checks_its_images(model, images):
    nan = images.astype(np.float32)
    nan[1, 5, 5, 0] = np.nan
    wide = np.zeros((1, 8, 3000, 3), np.uint8)  # above the 2048-pixel side limit
    with pytest.raises(ValueError, match="predict_on_batch: `x` has non-finite pixel values"):
        model.predict_on_batch(nan)
    with pytest.raises(ValueError, match=r"predict_on_batch: `x` has shape \(1, 8, 3000, 3\)"):
        model.predict_on_batch(wide)
    dataset = tf.data.Dataset.from_tensor_slices(nan).batch(2)
    with pytest.raises(ValueError, match="a batch of the dataset must hold RGB pixel values"):
        model.predict(dataset, verbose=0)
    with pytest.raises(
        ValueError, match=r"sides above 2048 pixels are refused.*got shape 1 8 3000 3\.$"
    ):
        model.predict(tf.data.Dataset.from_tensors(wide), verbose=0)
    # Valid datasets, of images alone or of (images,) tuples, still predict.
    expected = model.predict(images, verbose=0)
    for dataset in (
        tf.data.Dataset.from_tensor_slices(images).batch(2),
        tf.data.Dataset.from_tensor_slices((images,)).batch(1),
    ):
        result = model.predict(dataset, verbose=0)
        np.testing.assert_array_equal(result["num_detections"], expected["num_detections"])


class _Batches(keras.utils.PyDataset):
    def __init__(self, images):
        super().__init__()
        self.images = images

    def __len__(self):
        return 1

    def __getitem__(self, index):
        return self.images


def test_generators_and_py_datasets(model, images):
    for stream in ((image for image in images), _Batches(images), iter([images])):
        with pytest.raises(TypeError, match=r"`x` is a \w+; .*Dataset.from_generator"):
            model.predict(stream, verbose=0)
    with pytest.raises(TypeError, match=r"`images` is a _Batches"):
        model.predict_images(_Batches(images))
    # predict_images reads a generator's images one at a time.
    result = model.predict_images(image for image in images)
    expected = model.predict_images(list(images))
    for key in expected:
        np.testing.assert_array_equal(result[key], expected[key])
    with pytest.raises(ValueError, match="`images` is empty"):
        model.predict_images(image for image in [])


def test_images_scaled_to_one_warn_that_0_255_is_expected(model, images):
    with pytest.warns(UserWarning, match=r"values in \[0, 1\]: pixel values in \[0, 255\]"):
        model.predict(images.astype(np.float32) / 255, verbose=0)
    with pytest.warns(UserWarning, match="multiply images scaled to"):
        model.predict_images([images[0] / 255.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.predict_images([images[0].astype(np.float32)])  # 0-255 floats: no warning
