"""Test-time geometry (`cornernet_tf.inference.geometry`) against the official `crop_image`."""

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.inference.geometry import (
    mirror_boxes,
    pad_for_test,
    prepare_test_image,
    rescale_detections,
)
from cornernet_tf.inference.geometry import test_geometry as geometry_of


def official_crop(image, center, size):
    """numpy version of the official `crop_image` (utils/image.py)."""
    cty, ctx = center
    height, width = size
    im_height, im_width = image.shape[:2]
    canvas = np.zeros((height, width, image.shape[2]), image.dtype)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_width)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_height)
    left, right, top, bottom = ctx - x0, x1 - ctx, cty - y0, y1 - cty
    ccty, cctx = height // 2, width // 2
    canvas[ccty - top : ccty + bottom, cctx - left : cctx + right] = image[y0:y1, x0:x1]
    border = np.array([ccty - top, ccty + bottom, cctx - left, cctx + right], np.float32)
    return canvas, border


def test_geometry_of_a_480x640_image_by_hand():
    geometry = {key: value.numpy() for key, value in geometry_of((480, 640)).items()}
    np.testing.assert_array_equal(geometry["resized_size"], [480, 640])
    np.testing.assert_array_equal(geometry["input_size"], [511, 767])
    np.testing.assert_array_equal(geometry["output_size"], [128, 192])
    np.testing.assert_allclose(geometry["ratios"], [128 / 511, 192 / 767], rtol=1e-7)
    # centre (240, 320), half input (255, 383): image at rows 15..495, columns 63..703
    np.testing.assert_array_equal(geometry["borders"], [15, 495, 63, 703])
    np.testing.assert_array_equal(geometry["offset"], [240 - 255, 320 - 383])


def test_geometry_with_scale_by_hand():
    # 300x500 at 0.75 -> 225x375; 225|127 = 255, 375|127 = 383; outputs 64, 96
    geometry = {key: value.numpy() for key, value in geometry_of((300, 500), 0.75).items()}
    np.testing.assert_array_equal(geometry["resized_size"], [225, 375])
    np.testing.assert_array_equal(geometry["input_size"], [255, 383])
    np.testing.assert_array_equal(geometry["output_size"], [64, 96])
    # centre (112, 187), half (127, 191): top 15, bottom 15+225, left 4, right 4+375
    np.testing.assert_array_equal(geometry["borders"], [15, 240, 4, 379])


@pytest.mark.parametrize("hw", [(480, 640), (127, 255), (100, 128), (383, 256), (1, 1), (64, 33)])
def test_padding_matches_official_crop_image(hw):
    rng = np.random.default_rng(hw[0] * 1000 + hw[1])
    image = rng.integers(1, 256, (*hw, 3)).astype(np.uint8)
    size = (hw[0] | 127, hw[1] | 127)
    expected, border = official_crop(image, (hw[0] // 2, hw[1] // 2), size)
    np.testing.assert_array_equal(pad_for_test(image).numpy(), expected)
    np.testing.assert_array_equal(geometry_of(hw)["borders"].numpy(), border)
    batched = pad_for_test(np.stack([image, image]))
    np.testing.assert_array_equal(batched.numpy()[1], expected)


@pytest.mark.parametrize("granule", [32, 64])
@pytest.mark.parametrize("hw", [(128, 128), (100, 200), (31, 33)])
def test_another_granule_pads_to_its_own_official_form(hw, granule):
    # The official rule `size | 127` for networks whose sides step by 128;
    # a network stepping by 32 gets `size | 31` (128 -> 159, not 255).
    rng = np.random.default_rng(hw[0] + granule)
    image = rng.integers(1, 256, (*hw, 3)).astype(np.uint8)
    size = (hw[0] | (granule - 1), hw[1] | (granule - 1))
    expected, border = official_crop(image, (hw[0] // 2, hw[1] // 2), size)
    np.testing.assert_array_equal(pad_for_test(image, granule).numpy(), expected)
    geometry = geometry_of(hw, granule=granule)
    np.testing.assert_array_equal(geometry["input_size"].numpy(), size)
    np.testing.assert_array_equal(geometry["output_size"].numpy(), [(n + 1) // 4 for n in size])
    np.testing.assert_array_equal(geometry["borders"].numpy(), border)
    canvas, placed = prepare_test_image(image[None], output_stride=4, granule=granule)
    np.testing.assert_array_equal(canvas.numpy()[0], expected)
    np.testing.assert_array_equal(placed["borders"].numpy(), border)


def test_pad_for_test_runs_in_tf_data():
    images = [np.ones((40, 60, 3), np.uint8), np.ones((130, 20, 3), np.uint8)]
    dataset = tf.data.Dataset.from_generator(
        lambda: iter(images), output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
    ).map(pad_for_test)
    shapes = [tuple(x.shape) for x in dataset]
    assert shapes == [(127, 127, 3), (255, 127, 3)]


def test_prepare_test_image_resizes_then_pads():
    image = np.full((300, 500, 3), 200, np.uint8)
    canvas, geometry = prepare_test_image(image, 0.75)
    assert canvas.shape == (255, 383, 3) and canvas.dtype == tf.uint8
    top, bottom, left, right = geometry["borders"].numpy().astype(int)
    assert np.all(canvas.numpy()[top:bottom, left:right] == 200)
    assert canvas.numpy().sum() == 200 * 225 * 375 * 3


@pytest.mark.parametrize("scale", [1.0, 0.75, 1.5])
def test_a_static_image_size_gives_a_static_canvas(scale):
    # Traced with a known image size (as `predict` traces), the canvas size is
    # known too: the network then runs its static-shape paths.
    traced = tf.function(lambda image: prepare_test_image(image, scale)[0])
    spec = tf.TensorSpec([None, 300, 500, 3], tf.float32)
    canvas = traced.get_concrete_function(spec).structured_outputs
    eager = prepare_test_image(np.zeros((1, 300, 500, 3), np.float32), scale)[0]
    assert canvas.shape[1:] == eager.shape[1:]
    assert canvas.shape[0] is None
    unknown = traced.get_concrete_function(tf.TensorSpec([1, None, None, 3], tf.float32))
    assert unknown.structured_outputs.shape.as_list() == [1, None, None, 3]


def test_rescale_detections_inverts_the_geometry():
    geometry = geometry_of((480, 640))
    ratio_h, ratio_w = geometry["ratios"].numpy()
    top, _, left, _ = geometry["borders"].numpy()
    image_boxes = np.array([[[100.0, 50.0, 300.0, 200.0], [0.0, 0.0, 640.0, 480.0]]], np.float32)
    output_boxes = np.stack(
        [
            (image_boxes[..., 0] + left) * ratio_w,
            (image_boxes[..., 1] + top) * ratio_h,
            (image_boxes[..., 2] + left) * ratio_w,
            (image_boxes[..., 3] + top) * ratio_h,
        ],
        -1,
    )
    rescaled = rescale_detections(output_boxes, geometry["ratios"], geometry["borders"], (480, 640))
    np.testing.assert_allclose(rescaled.numpy(), image_boxes, atol=1e-3)


def test_rescale_detections_clips_before_dividing_by_the_scale():
    # 301x501 at 0.5: resized int(150.5) x int(250.5) = 150 x 250; the official
    # code clips there, then divides by 0.5: 300 and 500, not 301 and 501.
    geometry = geometry_of((301, 501), 0.5)
    np.testing.assert_array_equal(geometry["resized_size"].numpy(), [150, 250])
    ratio_h, ratio_w = (geometry["ratios"].numpy()).tolist()
    top, _, left, _ = geometry["borders"].numpy().tolist()
    boxes = np.array([[[-5.0, -5.0, 1000.0, 1000.0], [10.0, 20.0, 30.0, 40.0]]], np.float32)
    rescaled = rescale_detections(
        boxes, geometry["ratios"], geometry["borders"], (301, 501), 0.5
    ).numpy()
    np.testing.assert_allclose(rescaled[0, 0], [0.0, 0.0, 500.0, 300.0])
    expected = [
        (10 / ratio_w - left) / 0.5,
        (20 / ratio_h - top) / 0.5,
        (30 / ratio_w - left) / 0.5,
        (40 / ratio_h - top) / 0.5,
    ]
    np.testing.assert_allclose(rescaled[0, 1], expected, rtol=1e-5)


def test_rescale_detections_with_per_image_geometry():
    geometries = [geometry_of((301, 501), 0.5), geometry_of((480, 640), 1.0)]
    boxes = np.array([[[10.0, 20.0, 30.0, 40.0]], [[10.0, 20.0, 30.0, 40.0]]], np.float32)
    batched = rescale_detections(
        boxes,
        tf.stack([g["ratios"] for g in geometries]),
        tf.stack([g["borders"] for g in geometries]),
        [[301, 501], [480, 640]],
        tf.constant([0.5, 1.0]),
    )
    for b, (hw, scale) in enumerate((((301, 501), 0.5), ((480, 640), 1.0))):
        single = rescale_detections(
            boxes[b : b + 1], geometries[b]["ratios"], geometries[b]["borders"], hw, scale
        )
        np.testing.assert_allclose(batched.numpy()[b], single.numpy()[0], rtol=1e-6)


# ----------------------------------------------------------------- flip test


def test_mirror_boxes():
    np.testing.assert_allclose(
        mirror_boxes(np.array([[2.0, 3.0, 10.5, 7.0]], np.float32), 32).numpy(),
        [[21.5, 3.0, 30.0, 7.0]],
    )


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: geometry_of((480.0, 640.0)), TypeError, "image_hw"),
        (lambda: geometry_of((480, 640, 3)), ValueError, "image_hw"),
        (lambda: geometry_of((480, 640), 0.0), ValueError, "scale"),
        (lambda: geometry_of((480, 640), float("inf")), ValueError, "scale"),
        (lambda: pad_for_test(np.zeros((4, 4))), ValueError, "image"),
        (lambda: geometry_of((480, 640), granule=48), ValueError, "power of two"),
        (lambda: pad_for_test(np.zeros((4, 4, 3)), granule=0), ValueError, "granule"),
        (lambda: prepare_test_image(np.zeros((4, 4, 3)), granule=True), ValueError, "granule"),
        (
            lambda: rescale_detections(np.zeros((2, 3)), [1, 1], [0, 0, 0, 0], (4, 4)),
            ValueError,
            "boxes",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
