"""Test-time geometry, flip test, rescaling and soft-NMS (`cornernet_tf.postprocess`)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.postprocess import (
    decode_outputs,
    mirror_boxes,
    pad_for_test,
    postprocess,
    postprocess_multiscale,
    prepare_test_image,
    rescale_detections,
    soft_nms,
)
from cornernet_tf.postprocess import test_geometry as geometry_of

# Overlapping objects (x1, y1, x2, y2, class) in output-map pixels.
IMAGES = [
    [(2.3, 3.7, 20.5, 18.2, 0), (8.1, 6.6, 28.9, 25.4, 0), (5.5, 10.25, 15.75, 30.5, 2)],
    [(1.0, 1.0, 30.0, 30.0, 1), (4.2, 4.9, 12.3, 13.1, 1), (16.6, 2.2, 17.4, 9.9, 1)],
]
KEYS = ("tl_heatmap", "br_heatmap", "tl_embedding", "br_embedding", "tl_offset", "br_offset")


def ideal_outputs(objects_per_image, height, width, num_classes):
    """Perfect NHWC head outputs for boxes in output-map pixels (as in test_decode.py).

    +30 logits at the corners' integer pixels, -30 elsewhere; embedding
    3·(n+1) on both corners of object n, 1000 on background; offsets
    `corner - floor(corner)`.
    """
    batch = len(objects_per_image)
    heat = np.full((2, batch, height, width, num_classes), -30.0, np.float32)
    emb = np.full((2, batch, height, width, 1), 1000.0, np.float32)
    off = np.zeros((2, batch, height, width, 2), np.float32)
    for b, objects in enumerate(objects_per_image):
        for n, (x1, y1, x2, y2, cls) in enumerate(objects):
            for corner, (x, y) in enumerate(((x1, y1), (x2, y2))):
                ix, iy = int(x), int(y)
                heat[corner, b, iy, ix, cls] = 30.0
                emb[corner, b, iy, ix, 0] = 3.0 * (n + 1)
                off[corner, b, iy, ix] = (x - ix, y - iy)
    return heat[0], heat[1], emb[0], emb[1], off[0], off[1]


def as_outputs(arrays):
    return dict(zip(KEYS, arrays, strict=True))


# ------------------------------------------------------------------ geometry


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


def test_flip_test_maps_flipped_detections_back():
    width = 32
    images = IMAGES
    # The flipped image's boxes under the official convention x' = W - x.
    flipped = [
        [(width - x2, y1, width - x1, y2, cls) for x1, y1, x2, y2, cls in objects]
        for objects in images
    ]
    batch = [
        np.concatenate([a, b])
        for a, b in zip(
            ideal_outputs(images, 32, width, 3), ideal_outputs(flipped, 32, width, 3), strict=True
        )
    ]
    decoded = decode_outputs(as_outputs(batch), flip_test=True, k=20, num_dets=50)
    assert decoded["boxes"].shape == (2, 100, 4)
    for b, objects in enumerate(images):
        n = len(objects)
        expected = sorted(tuple(np.round(np.float32(o[:4]), 3)) for o in objects)
        for half in (slice(0, n), slice(50, 50 + n)):
            np.testing.assert_array_equal(decoded["scores"][b, half].numpy(), 1.0)
            found = sorted(tuple(np.round(box, 3)) for box in decoded["boxes"][b, half].numpy())
            assert found == expected


def test_flip_test_needs_an_even_batch():
    with pytest.raises(ValueError, match="odd batch"):
        decode_outputs(as_outputs(ideal_outputs([[]], 8, 8, 2)), flip_test=True, k=4, num_dets=8)


def test_decode_outputs_names_missing_keys():
    with pytest.raises(ValueError, match="br_offset"):
        decode_outputs({key: None for key in KEYS[:5]})
    with pytest.raises(TypeError, match="dict"):
        decode_outputs([1, 2, 3])


# ------------------------------------------------------------------ soft-NMS


def test_soft_nms_by_hand():
    boxes = [
        [0, 0, 9, 9],  # A 0.9
        [0, 0, 9, 4],  # B 0.8: IoU(A) = 50/100, IoU(G) = 25/125
        [20, 20, 29, 29],  # C 0.7: overlaps nothing
        [0, 0, 9, 9],  # E 0.0015: IoU(A) = 1, decays to 0.0015 e^-2 < 0.001, dropped
        [100, 100, 104, 104],  # F 0.0005: never decayed, so kept (official)
        [5, 0, 14, 9],  # G 0.85: IoU(A) = 50/150
        [0, 0, 9, 9],  # D 0.6, class 1: untouched by class 0
        [0, 0, 9, 9],  # rejected pair (-1): never a candidate
    ]
    scores = [0.9, 0.8, 0.7, 0.0015, 0.0005, 0.85, 0.6, -1.0]
    classes = [0, 0, 0, 0, 0, 0, 1, 0]
    result = soft_nms(
        np.array([boxes], np.float32),
        np.array([scores], np.float32),
        np.array([classes]),
        max_detections=8,
    )
    g = 0.85 * math.exp(-((1 / 3) ** 2) / 0.5)
    b = 0.8 * math.exp(-(0.5**2) / 0.5) * math.exp(-(0.2**2) / 0.5)
    np.testing.assert_allclose(
        result["scores"].numpy()[0], [0.9, 0.7, g, 0.6, b, 0.0005, -1, -1], rtol=1e-6
    )
    np.testing.assert_array_equal(result["classes"].numpy()[0], [0, 0, 0, 1, 0, 0, -1, -1])
    order = [0, 2, 5, 6, 1, 4]
    np.testing.assert_array_equal(result["boxes"].numpy()[0, :6], np.array(boxes)[order])
    np.testing.assert_array_equal(result["boxes"].numpy()[0, 6:], -1)
    assert result["num_detections"].numpy().tolist() == [6]


def test_soft_nms_merge_by_hand():
    # A (0.9; tl 0.8, br 0.6) absorbs B (IoU 0.5, decay e^-0.5), merge weight (1 - e^-0.5)^8.
    boxes = np.array([[[0, 0, 9, 9], [0, 0, 9, 4]]], np.float32)
    tl = np.array([[0.8, 0.7]], np.float32)
    br = np.array([[0.6, 0.9]], np.float32)
    result = soft_nms(
        boxes,
        np.array([[0.9, 0.8]], np.float32),
        np.zeros((1, 2), np.int32),
        merge=True,
        weight_exp=8.0,
        tl_scores=tl,
        br_scores=br,
    )
    w = (1 - math.exp(-0.5)) ** 8
    y2 = (9 * 0.6 + 4 * 0.9 * w) / (0.6 + 0.9 * w)
    np.testing.assert_allclose(result["boxes"].numpy()[0, 0], [0, 0, 9, y2], rtol=1e-6)
    np.testing.assert_allclose(result["boxes"].numpy()[0, 1], [0, 0, 9, 4])


def official_soft_nms(dets, sigma=0.5, threshold=0.001, merge=False, weight_exp=8.0):
    """numpy port of the official Cython `soft_nms` / `soft_nms_merge`, method 2.

    Rows are [x1, y1, x2, y2, score, tl, br]; whole rows are swapped (the
    Cython moves only columns 0-4), and only the first N (live) rows are
    returned, as its `keep` list says.
    """
    boxes = dets.astype(np.float64).copy()
    n = len(boxes)
    i = 0
    while i < n:
        maxpos = i + int(np.argmax(boxes[i:n, 4]))
        boxes[[i, maxpos]] = boxes[[maxpos, i]]
        tx1, ty1, tx2, ty2 = boxes[i, :4]
        merged = boxes[i, :4] * boxes[i, [5, 5, 6, 6]]
        sums = boxes[i, [5, 5, 6, 6]].copy()
        pos = i + 1
        while pos < n:
            x1, y1, x2, y2 = boxes[pos, :4]
            iw = min(tx2, x2) - max(tx1, x1) + 1
            ih = min(ty2, y2) - max(ty1, y1) + 1
            if iw > 0 and ih > 0:
                area = (x2 - x1 + 1) * (y2 - y1 + 1)
                ov = iw * ih / ((tx2 - tx1 + 1) * (ty2 - ty1 + 1) + area - iw * ih)
                weight = np.exp(-(ov * ov) / sigma)
                mw = (1 - weight) ** weight_exp
                merged += boxes[pos, :4] * boxes[pos, [5, 5, 6, 6]] * mw
                sums += boxes[pos, [5, 5, 6, 6]] * mw
                boxes[pos, 4] *= weight
                if boxes[pos, 4] < threshold:
                    boxes[pos] = boxes[n - 1]
                    n -= 1
                    pos -= 1
            pos += 1
        if merge:
            boxes[i, :4] = merged / sums
        i += 1
    return boxes[:n]


def official_select(boxes, scores, classes, tl, br, max_per_image, merge):
    """Official `kp_detection` after rescaling: drop -1, per-class soft-NMS, top scores."""
    keep = scores > -1
    dets = np.concatenate([boxes, scores[:, None], tl[:, None], br[:, None]], 1)[keep]
    classes = classes[keep]
    kept, kept_classes = [], []
    for cls in np.unique(classes):
        out = official_soft_nms(dets[classes == cls], merge=merge)
        kept.append(out)
        kept_classes.append(np.full(len(out), cls))
    kept, kept_classes = np.concatenate(kept), np.concatenate(kept_classes)
    order = np.argsort(-kept[:, 4], kind="stable")[:max_per_image]
    return kept[order, :4], kept[order, 4], kept_classes[order]


def random_detections(seed, batch, num, num_classes):
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 60, (batch, num, 2))
    wh = rng.uniform(2, 30, (batch, num, 2))
    boxes = np.concatenate([xy, xy + wh], -1).astype(np.float32)
    scores = rng.uniform(0, 1, (batch, num)).astype(np.float32)
    scores[rng.uniform(size=(batch, num)) < 0.2] = -1.0
    classes = rng.integers(0, num_classes, (batch, num)).astype(np.int32)
    tl = rng.uniform(0.1, 1, (batch, num)).astype(np.float32)
    br = rng.uniform(0.1, 1, (batch, num)).astype(np.float32)
    return boxes, scores, classes, tl, br


@pytest.mark.parametrize("merge", [False, True])
def test_soft_nms_matches_official_algorithm_on_random_boxes(merge):
    boxes, scores, classes, tl, br = random_detections(
        seed=int(merge), batch=2, num=300, num_classes=4
    )
    result = soft_nms(
        boxes, scores, classes, max_detections=100, merge=merge, tl_scores=tl, br_scores=br
    )
    for b in range(2):
        ref_boxes, ref_scores, ref_classes = official_select(
            boxes[b], scores[b], classes[b], tl[b], br[b], 100, merge
        )
        count = len(ref_scores)
        assert result["num_detections"].numpy()[b] == count
        np.testing.assert_allclose(result["scores"].numpy()[b, :count], ref_scores, atol=1e-5)
        np.testing.assert_allclose(result["boxes"].numpy()[b, :count], ref_boxes, atol=1e-4)
        np.testing.assert_array_equal(result["classes"].numpy()[b, :count], ref_classes)


def test_soft_nms_compiles_with_xla():
    boxes, scores, classes, _, _ = random_detections(seed=5, batch=2, num=200, num_classes=3)
    fn = lambda *x: soft_nms(*x, max_detections=50)
    graph = tf.function(fn)(boxes, scores, classes)
    xla = tf.function(fn, jit_compile=True)(boxes, scores, classes)
    for key in graph:
        np.testing.assert_allclose(xla[key].numpy(), graph[key].numpy(), atol=1e-5)


def test_soft_nms_with_no_candidates_pads():
    result = soft_nms(
        np.zeros((1, 3, 4), np.float32),
        np.full((1, 3), -1.0, np.float32),
        np.zeros((1, 3), np.int32),
        max_detections=4,
    )
    assert result["num_detections"].numpy().tolist() == [0]
    np.testing.assert_array_equal(result["scores"].numpy(), -1)
    np.testing.assert_array_equal(result["classes"].numpy(), -1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"sigma": 0.0}, "sigma"),
        ({"max_detections": 0}, "max_detections"),
        ({"score_threshold": float("nan")}, "score_threshold"),
        ({"merge": True}, "tl_scores"),
    ],
)
def test_soft_nms_bad_arguments(kwargs, match):
    boxes, scores, classes, _, _ = random_detections(seed=0, batch=1, num=4, num_classes=2)
    with pytest.raises(ValueError, match=match):
        soft_nms(boxes, scores, classes, **kwargs)


# ------------------------------------------------------------- end to end


def test_postprocess_end_to_end_with_flip_test():
    """Image boxes → ideal outputs of the image and its flip → the same image boxes."""
    image_hw = (480, 640)
    geometry = geometry_of(image_hw)
    ratio_h, ratio_w = geometry["ratios"].numpy()
    top, _, left, _ = geometry["borders"].numpy()
    out_h, out_w = geometry["output_size"].numpy()
    objects = [(100.0, 50.0, 300.0, 200.0, 1), (400.0, 250.0, 620.0, 470.0, 0)]
    in_map = [
        (
            (x1 + left) * ratio_w,
            (y1 + top) * ratio_h,
            (x2 + left) * ratio_w,
            (y2 + top) * ratio_h,
            c,
        )
        for x1, y1, x2, y2, c in objects
    ]
    mirrored = [(out_w - x2, y1, out_w - x1, y2, c) for x1, y1, x2, y2, c in in_map]
    batch = [
        np.concatenate([a, b])
        for a, b in zip(
            ideal_outputs([in_map], out_h, out_w, 2),
            ideal_outputs([mirrored], out_h, out_w, 2),
            strict=True,
        )
    ]

    @tf.function(input_signature=[{key: tf.TensorSpec(None, tf.float32) for key in KEYS}])
    def run(outputs):
        decoded = decode_outputs(outputs, flip_test=True, k=10, num_dets=40)
        return postprocess(decoded, geometry["ratios"], geometry["borders"], image_hw)

    result = run(as_outputs(batch))
    assert result["boxes"].shape == (1, 100, 4)
    # Each object is found twice (image and flip); the copy decays by exp(-1 / 0.5).
    np.testing.assert_allclose(
        result["scores"].numpy()[0, :4], [1.0, 1.0, math.exp(-2.0), math.exp(-2.0)], rtol=1e-5
    )
    found = sorted(
        tuple(np.round(box, 2)) + (int(c),)
        for box, c in zip(
            result["boxes"].numpy()[0, :4], result["classes"].numpy()[0, :4], strict=True
        )
    )
    expected = sorted(2 * [tuple(np.float32(o[:4])) + (o[4],) for o in objects])
    assert found == expected


def test_multiscale_merges_scales():
    image_hw = (120, 160)
    objects = [(20.0, 30.0, 100.0, 90.0, 0)]
    decoded, ratios, borders = [], [], []
    for scale in (0.5, 1.0):
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
        decoded.append(
            decode_outputs(as_outputs(ideal_outputs([in_map], out_h, out_w, 1)), k=4, num_dets=16)
        )
        ratios.append(geometry["ratios"])
        borders.append(geometry["borders"])
    result = postprocess_multiscale(
        decoded, ratios, borders, image_hw, (0.5, 1.0), max_detections=5
    )
    np.testing.assert_allclose(result["boxes"].numpy()[0, 0], objects[0][:4], atol=0.05)
    assert result["scores"].numpy()[0, 0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="per test scale"):
        postprocess_multiscale(decoded, ratios[:1], borders, image_hw, (0.5, 1.0))


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: geometry_of((480.0, 640.0)), TypeError, "image_hw"),
        (lambda: geometry_of((480, 640, 3)), ValueError, "image_hw"),
        (lambda: geometry_of((480, 640), 0.0), ValueError, "scale"),
        (lambda: geometry_of((480, 640), float("inf")), ValueError, "scale"),
        (lambda: pad_for_test(np.zeros((4, 4))), ValueError, "image"),
        (
            lambda: rescale_detections(np.zeros((2, 3)), [1, 1], [0, 0, 0, 0], (4, 4)),
            ValueError,
            "boxes",
        ),
        (lambda: postprocess({"boxes": None}, [1, 1], [0] * 4, (4, 4)), ValueError, "decoded"),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
