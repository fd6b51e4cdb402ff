"""Geometry and colour of the training augmentation against the official formulas.

The numpy references below restate princeton-vl/CornerNet `sample/utils.py`
(`_get_border`, `random_crop`), `sample/coco.py` (`_resize_image`,
`_clip_detections`, the flip in `kp_detection`) and `utils/image.py`
(`color_jittering_`, `lighting_`, `normalize_`), with the random draws passed in.
They work on BGR images as the official code does; our functions take RGB.
"""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.data import augment

OFFICIAL_SCALES = np.arange(0.6, 1.4, 0.1)


# --- numpy references ---------------------------------------------------------


def ref_get_border(border, size):
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def ref_random_crop(image, detections, scale, ctx, cty, view_size):
    view_h, view_w = view_size
    img_h, img_w = image.shape[:2]
    height, width = int(view_h * scale), int(view_w * scale)
    canvas = np.zeros((height, width, 3), image.dtype)
    x0, x1 = max(ctx - width // 2, 0), min(ctx + width // 2, img_w)
    y0, y1 = max(cty - height // 2, 0), min(cty + height // 2, img_h)
    left, right = ctx - x0, x1 - ctx
    top, bottom = cty - y0, y1 - cty
    cx, cy = width // 2, height // 2
    canvas[cy - top : cy + bottom, cx - left : cx + right] = image[y0:y1, x0:x1]
    dets = detections.astype(np.float64).copy()
    dets[:, 0:4:2] += cx - left - x0
    dets[:, 1:4:2] += cy - top - y0
    return canvas, dets


def ref_resize(image, dets, size):
    new_h, new_w = size
    h, w = image.shape[:2]
    out = cv2.resize(image, (new_w, new_h))
    dets = dets.copy()
    dets[:, 0:4:2] *= new_w / w
    dets[:, 1:4:2] *= new_h / h
    return out, dets


def ref_clip(dets, size):
    h, w = size
    dets = dets.copy()
    dets[:, 0:4:2] = np.clip(dets[:, 0:4:2], 0, w - 1)
    dets[:, 1:4:2] = np.clip(dets[:, 1:4:2], 0, h - 1)
    keep = ((dets[:, 2] - dets[:, 0]) > 0) & ((dets[:, 3] - dets[:, 1]) > 0)
    return dets[keep]


def ref_flip(image, dets):
    width = image.shape[1]
    dets = dets.copy()
    dets[:, [0, 2]] = width - dets[:, [2, 0]] - 1
    return image[:, ::-1], dets


def ref_color_jitter_bgr(image, alphas, order):
    """Official colour jitter with given factors (brightness, contrast, saturation) and order."""
    image = image.copy()
    gs = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gs_mean = gs.mean()
    for op in order:
        alpha = alphas[op]
        if op == 0:  # brightness
            image *= alpha
        elif op == 1:  # contrast
            image = image * alpha + gs_mean * (1 - alpha)
        else:  # saturation
            image = image * alpha + gs[:, :, None] * (1 - alpha)
    return image


def ref_lighting_bgr(image, alpha):
    eig_val = np.array(augment.EIG_VAL, np.float32)
    eig_vec = np.array(augment.EIG_VEC_BGR, np.float32)
    return image + np.dot(eig_vec, eig_val * alpha)


def ref_normalize_bgr(image):
    return (image - np.array(augment.MEAN_BGR, np.float32)) / np.array(augment.STD_BGR, np.float32)


# --- tests --------------------------------------------------------------------


def test_default_scales_are_the_official_ones():
    np.testing.assert_array_equal(augment.DEFAULT_SCALES, OFFICIAL_SCALES)
    assert len(augment.DEFAULT_SCALES) == 8
    assert augment.DEFAULT_SCALES[-1] == pytest.approx(1.3)


@pytest.mark.parametrize("border", [128, 64, 100, 1, 0])
def test_get_border_matches_official_loop(border):
    sizes = list(range(1, 700))
    got = augment.get_border(border, tf.constant(sizes)).numpy()
    assert list(got) == [ref_get_border(border, s) for s in sizes]


def _random_case(rng, height, width, num_boxes=6):
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    x1 = rng.uniform(-20, width, num_boxes)
    y1 = rng.uniform(-20, height, num_boxes)
    boxes = np.stack(
        [
            x1,
            y1,
            x1 + rng.uniform(0, width / 2, num_boxes),
            y1 + rng.uniform(0, height / 2, num_boxes),
        ],
        axis=1,
    ).astype(np.float32)
    return image, boxes


@pytest.mark.parametrize(
    "image_hw,scale_index,ctx,cty",
    [
        ((80, 96), 0, 10, 70),  # small image: the crop covers it, zero margins
        ((300, 640), 7, 128, 171),  # scale 1.3, wide image
        ((300, 640), 3, 511, 128),
        ((77, 33), 5, 0, 76),  # centre on the last row
        ((200, 200), 2, 199, 0),
    ],
)
def test_random_crop_matches_official(image_hw, scale_index, ctx, cty):
    rng = np.random.default_rng(0)
    image, boxes = _random_case(rng, *image_hw)
    scale = OFFICIAL_SCALES[scale_index]
    want_image, want_boxes = ref_random_crop(image, boxes, scale, ctx, cty, (127, 255))
    crop_size = (int(127 * scale), int(255 * scale))
    got_image, got_boxes = augment.random_crop(image, boxes, crop_size, (cty, ctx))
    np.testing.assert_array_equal(got_image.numpy(), want_image)
    np.testing.assert_allclose(got_boxes.numpy(), want_boxes, atol=1e-4)


draw = tf.function(augment.draw_train_params)


def test_crop_sizes_are_official_int_of_scaled_input():
    draws = [draw(tf.constant([s, 1]), (300, 400), input_size=511)["crop_size"] for s in range(40)]
    official = {int(511 * s) for s in OFFICIAL_SCALES}
    assert {int(d[0]) for d in draws} <= official
    assert len({int(d[0]) for d in draws}) >= 6  # the draws cover the table
    assert all(int(d[0]) == int(d[1]) for d in draws)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize(
    "image_hw,scale_index,center", [((300, 400), 4, (150, 200)), ((90, 60), 1, (50, 20))]
)
def test_train_geometry_matches_official_chain(image_hw, scale_index, center, flip):
    rng = np.random.default_rng(1)
    image, boxes = _random_case(rng, *image_hw, num_boxes=10)
    labels = np.arange(10, dtype=np.int32)
    input_size = (127, 255)
    scale = OFFICIAL_SCALES[scale_index]
    canvas, dets = ref_random_crop(image, boxes, scale, center[1], center[0], input_size)
    dets = np.concatenate([dets, labels[:, None]], axis=1)
    resized, dets = ref_resize(canvas.astype(np.float32), dets, input_size)
    dets = ref_clip(dets, input_size)
    if flip:
        resized, dets = ref_flip(resized, dets)

    draws = {
        "crop_size": tf.constant([int(input_size[0] * scale), int(input_size[1] * scale)]),
        "center": tf.constant(center),
        "flip": tf.constant(flip),
    }
    got_image, got_boxes, got_labels = augment.train_geometry(
        tf.constant(image), tf.constant(boxes), tf.constant(labels), draws, input_size=input_size
    )
    assert got_image.shape == (*input_size, 3)
    # cv2 INTER_LINEAR on float input == tf bilinear with half-pixel centres.
    np.testing.assert_allclose(got_image.numpy(), resized, atol=5e-3)
    np.testing.assert_allclose(got_boxes.numpy(), dets[:, :4], atol=1e-3)
    np.testing.assert_array_equal(got_labels.numpy(), dets[:, 4].astype(np.int32))
    assert 0 < len(dets) < 10 or image_hw == (90, 60)  # some boxes are dropped in the big case


def test_clip_drops_degenerate_and_outside_boxes():
    boxes = np.array(
        [
            [-10, -10, -1, 5],  # left of the image: clipped to zero width
            [10, 10, 20, 10],  # zero height
            [5, 5, 600, 600],  # clipped to the image
            [126, 3, 140, 9],  # x1 at W-1: zero width after clipping
            [3, 4, 8, 9],
        ],
        np.float32,
    )
    labels = np.arange(5, dtype=np.int32)
    got_boxes, got_labels = augment.clip_boxes(tf.constant(boxes), tf.constant(labels), (127, 127))
    want = ref_clip(np.concatenate([boxes, labels[:, None]], 1).astype(np.float64), (127, 127))
    np.testing.assert_allclose(got_boxes.numpy(), want[:, :4])
    np.testing.assert_array_equal(got_labels.numpy(), [2, 4])


def test_clip_handles_no_boxes():
    got_boxes, got_labels = augment.clip_boxes(tf.zeros([0, 4]), tf.zeros([0], tf.int32), (5, 5))
    assert got_boxes.shape == (0, 4) and got_labels.shape == (0,)


def test_flip_boxes_formula():
    boxes = tf.constant([[0.0, 1.0, 10.0, 5.0], [100.5, 2.0, 126.0, 3.0]])
    got = augment.flip_boxes(boxes, 127).numpy()
    np.testing.assert_allclose(got, [[116.0, 1.0, 126.0, 5.0], [0.0, 2.0, 25.5, 3.0]])


def test_flipping_the_canvas_before_resizing_equals_flipping_after():
    rng = np.random.default_rng(2)
    canvas = rng.integers(0, 256, (83, 97, 3), dtype=np.uint8)
    before = augment.resize_image(tf.reverse(canvas, [1]), (127, 127)).numpy()
    after = augment.resize_image(canvas, (127, 127)).numpy()[:, ::-1]
    np.testing.assert_allclose(before, after, atol=1e-3)


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_color_jitter_matches_official(order):
    rng = np.random.default_rng(3)
    image_rgb = rng.uniform(0, 1, (20, 30, 3)).astype(np.float32)
    alphas = np.array([1.3, 0.7, 1.1], np.float32)
    want_bgr = ref_color_jitter_bgr(image_rgb[..., ::-1].copy(), alphas, order)
    got = augment.color_jitter(tf.constant(image_rgb), tf.constant(alphas), tf.constant(order))
    np.testing.assert_allclose(got.numpy()[..., ::-1], want_bgr, atol=1e-5)


def test_lighting_and_normalize_match_official_with_reversed_channels():
    rng = np.random.default_rng(4)
    image_rgb = rng.uniform(0, 1, (8, 9, 3)).astype(np.float32)
    alpha = np.array([0.05, -0.1, 0.2], np.float32)
    want_bgr = ref_normalize_bgr(ref_lighting_bgr(image_rgb[..., ::-1], alpha))
    got = augment.normalize(image_rgb + augment.lighting_shift(tf.constant(alpha)))
    np.testing.assert_allclose(got.numpy()[..., ::-1], want_bgr, atol=1e-5)


@pytest.mark.parametrize("normalize_output", [True, False])
def test_fused_photometric_equals_official_sequence(normalize_output):
    rng = np.random.default_rng(5)
    image_rgb = rng.uniform(0, 255, (16, 24, 3)).astype(np.float32)
    draws = {
        "color_alphas": tf.constant([0.8, 1.25, 0.65]),
        "color_order": tf.constant([1, 2, 0]),
        "lighting_alpha": tf.constant([0.1, 0.02, -0.15]),
    }
    bgr = image_rgb[..., ::-1] / 255.0
    bgr = ref_color_jitter_bgr(bgr.astype(np.float32), [0.8, 1.25, 0.65], [1, 2, 0])
    bgr = ref_lighting_bgr(bgr, np.array([0.1, 0.02, -0.15], np.float32))
    want = ref_normalize_bgr(bgr) if normalize_output else bgr * 255.0
    got = augment.photometric(tf.constant(image_rgb), draws, normalize_output=normalize_output)
    np.testing.assert_allclose(
        got.numpy()[..., ::-1], want, atol=1e-4 * (1 if normalize_output else 255)
    )


def test_photometric_without_color_is_plain_scaling():
    image = tf.fill([2, 3, 3], 51.0)
    got = augment.photometric(image, {}, color=False, normalize_output=True).numpy()
    want = (0.2 - np.array(augment.MEAN_RGB)) / np.array(augment.STD_RGB)
    np.testing.assert_allclose(got[0, 0], want, rtol=1e-6)
    np.testing.assert_allclose(augment.photometric(image, {}, color=False).numpy(), 51.0)


def test_draws_are_in_the_official_ranges_and_seeded():
    image_size = (90, 300)
    draws = [draw(tf.constant([7, s]), image_size) for s in range(60)]
    h_border, w_border = ref_get_border(128, 90), ref_get_border(128, 300)
    for d in draws:
        cty, ctx = d["center"].numpy()
        assert h_border <= cty < 90 - h_border and w_border <= ctx < 300 - w_border
        assert np.all(np.abs(d["color_alphas"].numpy() - 1) <= 0.4)
        assert sorted(d["color_order"].numpy()) == [0, 1, 2]
    flips = np.mean([bool(d["flip"]) for d in draws])
    assert 0.25 < flips < 0.75
    light = np.stack([d["lighting_alpha"].numpy() for d in draws])
    assert 0.05 < light.std() < 0.2
    again = draw(tf.constant([7, 3]), image_size)
    other = draw(tf.constant([8, 3]), image_size)
    for key in again:
        np.testing.assert_array_equal(again[key].numpy(), draws[3][key].numpy())
    assert not np.array_equal(other["lighting_alpha"], again["lighting_alpha"])


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="input_size"):
        augment.draw_train_params(tf.constant([1, 2]), (10, 10), input_size=0)
    with pytest.raises(ValueError, match="scales"):
        augment.draw_train_params(tf.constant([1, 2]), (10, 10), scales=())
