"""The test procedure's owner: `TestConfig` and `cornernet_tf.inference.CornerNetDecoder`."""

import math

import numpy as np
import pytest
import tensorflow as tf
from ideal_heads import as_outputs, ideal_outputs

from cornernet_tf.inference import CornerNetDecoder
from cornernet_tf.inference.geometry import test_geometry as geometry_of
from cornernet_tf.models import CornerNet
from cornernet_tf.spec.config import ConfigError, TestConfig
from cornernet_tf.spec.presets import PRESETS, input_size_granule, preset_output_stride


def ideal_network(objects, image_hw, scales=(1.0,), flip=True, num_classes=2):
    """A stand-in network: perfect heads of `objects` (image pixels) on each test canvas.

    The canvas size tells the scale (distinct sizes per scale); with the flip
    test the second half of the batch is the mirrored canvas and gets the
    mirrored boxes.
    """
    heads_by_size = {}
    for scale in scales:
        geometry = geometry_of(image_hw, scale)
        ratio_h, ratio_w = geometry["ratios"].numpy()
        top, _, left, _ = geometry["borders"].numpy()
        out_h, out_w = geometry["output_size"].numpy()
        in_map = [
            (
                (x1 * scale + left) * ratio_w,
                (y1 * scale + top) * ratio_h,
                (x2 * scale + left) * ratio_w,
                (y2 * scale + top) * ratio_h,
                c,
            )
            for x1, y1, x2, y2, c in objects
        ]
        heads = ideal_outputs([in_map], out_h, out_w, num_classes)
        if flip:
            mirrored = [(out_w - x2, y1, out_w - x1, y2, c) for x1, y1, x2, y2, c in in_map]
            flipped = ideal_outputs([mirrored], out_h, out_w, num_classes)
            heads = [np.concatenate(pair) for pair in zip(heads, flipped, strict=True)]
        heads_by_size[tuple(geometry["input_size"].numpy())] = as_outputs(heads)

    def network(canvas):
        return heads_by_size[tuple(canvas.shape[1:3])]

    return network


def test_decoder_end_to_end_with_flip_test():
    """Image boxes → ideal heads of the image and its flip → the same image boxes."""
    image_hw = (480, 640)
    objects = [(100.0, 50.0, 300.0, 200.0, 1), (400.0, 250.0, 620.0, 470.0, 0)]
    decoder = CornerNetDecoder({"top_k": 10, "num_dets": 100})
    result = decoder(ideal_network(objects, image_hw), tf.zeros((1, *image_hw, 3)))
    assert result["boxes"].shape == (1, 100, 4)
    # Each object is found twice (image and flip); the copy decays by exp(-1 / 0.5).
    np.testing.assert_allclose(
        result["confidence"].numpy()[0, :4],
        [1.0, 1.0, math.exp(-2.0), math.exp(-2.0)],
        rtol=1e-5,
    )
    found = sorted(
        tuple(np.round(box, 2)) + (int(c),)
        for box, c in zip(
            result["boxes"].numpy()[0, :4], result["classes"].numpy()[0, :4], strict=True
        )
    )
    expected = sorted(2 * [tuple(np.float32(o[:4])) + (o[4],) for o in objects])
    assert found == expected


def test_decoder_multiscale_merges_scales():
    image_hw = (120, 160)
    objects = [(20.0, 30.0, 100.0, 90.0, 0)]
    config = TestConfig(
        top_k=4, num_dets=16, max_detections=5, flip_test=False, scales=(0.5, 1.0), merge_bbox=True
    )
    network = ideal_network(objects, image_hw, config.scales, flip=False, num_classes=1)
    candidates = CornerNetDecoder(config).candidates(network, tf.zeros((1, *image_hw, 3)))
    assert candidates["boxes"].shape == (1, 2 * 16, 4)  # num_dets per scale
    result = CornerNetDecoder(config).suppress(candidates)
    np.testing.assert_allclose(result["boxes"].numpy()[0, 0], objects[0][:4], atol=0.05)
    assert result["confidence"].numpy()[0, 0] == pytest.approx(1.0)
    assert result["boxes"].shape == (1, 5, 4)


def test_candidates_keep_the_first_canvas_heads():
    network = ideal_network([(10.0, 10.0, 50.0, 40.0, 0)], (64, 96))
    candidates = CornerNetDecoder().candidates(network, tf.zeros((1, 64, 96, 3)))
    heads = network(tf.zeros((2, 127, 127, 3)))
    for key, value in candidates["heads"].items():
        np.testing.assert_array_equal(np.asarray(value), heads[key][:1])


# ------------------------------------------------------------------ TestConfig


def test_test_config_defaults_are_the_official_procedure():
    config = TestConfig()
    assert (config.top_k, config.ae_threshold, config.num_dets, config.nms_kernel) == (
        100,
        0.5,
        1000,
        3,
    )
    assert (config.max_detections, config.soft_nms_sigma, config.score_threshold) == (
        100,
        0.5,
        0.001,
    )
    assert config.flip_test and config.scales == (1.0,) and not config.merge_bbox
    assert config.weight_exp == 8.0


def test_test_config_round_trips_through_plain_data():
    config = TestConfig(top_k=20, num_dets=400, scales=(0.5, 1.0), merge_bbox=True, weight_exp=10.0)
    data = config.to_dict()
    assert data["scales"] == [0.5, 1.0]
    assert TestConfig.from_dict(data) == config
    assert config.replace(top_k=30).top_k == 30 and config.top_k == 20
    assert TestConfig.coerce(config) is config
    assert TestConfig.coerce(None) == TestConfig()
    assert TestConfig.from_dict({"scales": [1]}).scales == (1.0,)
    assert isinstance(
        TestConfig.from_dict({"top_k": np.int64(7), "num_dets": 49, "max_detections": 40}).top_k,
        int,
    )


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"top_k": -5}, r"test\.top_k must be > 0, got -5"),
        ({"top_k": 2.5}, r"test\.top_k must be an integer"),
        ({"nms_kernel": 4}, r"test\.nms_kernel must be odd"),
        ({"num_dets": 101, "top_k": 10}, r"test\.num_dets \(101\) exceeds"),
        ({"max_detections": 2000}, r"test\.max_detections must be <= test\.num_dets"),
        ({"scales": []}, r"test\.scales must be a non-empty list"),
        ({"scales": [0.5, -1.0]}, r"test\.scales must be"),
        ({"soft_nms_sigma": 0}, r"test\.soft_nms_sigma must be > 0"),
        ({"score_threshold": float("nan")}, r"test\.score_threshold must be a finite number"),
        ({"flip_test": "yes"}, r"test\.flip_test must be true or false"),
        ({"bogus": 1}, r"unknown test setting 'bogus'"),
    ],
)
def test_test_config_refuses_invalid_settings(values, match):
    with pytest.raises(ConfigError, match=match) as error:
        TestConfig.from_dict(values)
    assert error.value.key.startswith("test.")


# ------------------------------------------------------------ the model's use


@pytest.fixture(scope="module")
def tiny():
    return CornerNet.from_preset("tiny", test_config={"top_k": 10, "num_dets": 100})


def test_model_validates_its_test_config_when_built():
    with pytest.raises(ValueError, match=r"test\.top_k must be > 0, got -5.*Fix it"):
        CornerNet.from_preset("tiny", test_config={"top_k": -5})


def test_detect_with_a_test_config_leaves_the_model_alone(tiny):
    images = np.random.default_rng(0).integers(0, 255, (1, 60, 80, 3)).astype(np.uint8)
    before = tiny.test_config
    override = tiny.detect(images, test_config={"flip_test": False, "max_detections": 7})
    assert tiny.test_config is before
    assert override["boxes"].shape == (1, 7, 4)
    # The same as a model whose own settings are those.
    same = CornerNet.from_config(
        {**tiny.get_config(), "test_config": before.replace(flip_test=False, max_detections=7)}
    )
    same.build((None, None, None, 3))
    same.set_weights(tiny.get_weights())
    expected = same.detect(images)
    for key in ("boxes", "confidence", "classes", "num_detections"):
        np.testing.assert_allclose(override[key].numpy(), expected[key].numpy(), atol=1e-5)


def test_a_top_k_above_a_small_image_s_corners_takes_them_all():
    # A 5x7 image's canvas gives 8x8 maps: 64 corners of one class, < top_k 100.
    model = CornerNet.from_preset("tiny", num_classes=1, test_config={"num_dets": 1000})
    image = np.random.default_rng(1).integers(0, 255, (1, 5, 7, 3)).astype(np.uint8)
    every = model.detect(image, test_config={"top_k": 100})
    exact = model.detect(image, test_config={"top_k": 64})
    for key in ("boxes", "confidence", "classes", "num_detections"):
        np.testing.assert_array_equal(every[key].numpy(), exact[key].numpy())
    # Unknown image sizes: the map's size is known only when the graph runs.
    model.test_config = model.test_config.replace(top_k=100)
    dynamic = tf.function(model.detect, input_signature=[tf.TensorSpec([1, None, None, 3])])
    # A graph's kernels may round differently from eager ones.
    np.testing.assert_allclose(dynamic(image)["boxes"].numpy(), exact["boxes"].numpy(), atol=1e-3)


def test_model_config_stores_the_test_config_as_plain_data(tiny):
    config = tiny.get_config()["test_config"]
    assert config == {**TestConfig().to_dict(), "top_k": 10, "num_dets": 100}
    assert CornerNet.from_config(tiny.get_config()).test_config == tiny.test_config


def test_the_test_canvas_follows_the_network_s_input_step(tiny):
    # `tiny` takes sides of 32k - 1: a 128-pixel image goes on a 159-pixel
    # canvas (40x40 maps), where the official `| 127` of the 128-step networks
    # would make it 255 (64x64).
    assert tiny.input_size_granule == 32
    assert tiny.decoder().granule == 32
    # a dict replaces fields of the model's own settings, as `detect` takes it
    assert tiny.decoder({"flip_test": False}).granule == 32
    assert tiny.decoder({"flip_test": False}).config == tiny.test_config.replace(flip_test=False)
    assert tiny.decoder().config == tiny.test_config
    heads = tiny.decoder().candidates(
        lambda canvas: tiny(canvas, training=False), tf.zeros((1, 128, 128, 3))
    )["heads"]
    assert heads["tl_heatmap"].shape[1:3] == (40, 40)
    for name in ("hourglass104", "squeeze"):
        levels = len(PRESETS[name]["dims"]) - 1
        assert input_size_granule(preset_output_stride(name), levels) == 128, name


def test_output_stride_is_the_architecture_s(tiny):
    heads = tiny(tf.zeros((1, 127, 255, 3)), training=False)
    assert tiny.output_stride == 4
    assert heads["tl_heatmap"].shape[1:3] == (128 // tiny.output_stride, 256 // tiny.output_stride)
