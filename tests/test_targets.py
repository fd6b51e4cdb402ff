"""Ground truth: `gaussian_radius` and `encode_targets` against the official formulas.

The reference below is a plain numpy transcription of the official ground truth
(`sample/coco.py::kp_detection` target loop and `sample/utils.py`), written with
Python loops and float64 like the original.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.targets import encode_targets, gaussian_radius

IN_SIZE = 511
OUT_SIZE = 128


# --------------------------------------------------------------- reference


def _ref_radius(height, width, o):
    """The three official quadratic roots, min of them (`sample/utils.py::gaussian_radius`)."""
    b1 = height + width
    c1 = width * height * (1 - o) / (1 + o)
    r1 = (b1 - math.sqrt(b1**2 - 4 * c1)) / 2
    b2 = 2 * (height + width)
    c2 = (1 - o) * width * height
    r2 = (b2 - math.sqrt(b2**2 - 4 * 4 * c2)) / (2 * 4)
    a3 = 4 * o
    b3 = -2 * o * (height + width)
    c3 = (o - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def _ref_draw(heatmap, cx, cy, radius):
    diameter = 2 * radius + 1
    sigma = diameter / 6
    ys, xs = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    gaussian = np.exp(-(xs * xs + ys * ys) / (2 * sigma * sigma))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    height, width = heatmap.shape
    left, right = min(cx, radius), min(width - cx, radius + 1)
    top, bottom = min(cy, radius), min(height - cy, radius + 1)
    window = heatmap[cy - top : cy + bottom, cx - left : cx + right]
    patch = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(window, patch, out=window)


def _ref_encode(boxes, labels, in_size, out_size, num_classes, max_objects=128, iou=0.3):
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    tl_heat = np.zeros((num_classes, out_h, out_w), np.float32)
    br_heat = np.zeros((num_classes, out_h, out_w), np.float32)
    tl_regr = np.zeros((max_objects, 2), np.float32)
    br_regr = np.zeros((max_objects, 2), np.float32)
    tl_tag = np.zeros((max_objects,), np.int64)
    br_tag = np.zeros((max_objects,), np.int64)
    mask = np.zeros((max_objects,), np.float32)
    width_ratio, height_ratio = out_w / in_w, out_h / in_h
    boxes = np.asarray(boxes, np.float64)
    for ind, (box, category) in enumerate(zip(boxes[:max_objects], labels, strict=False)):
        fxtl, fytl = box[0] * width_ratio, box[1] * height_ratio
        fxbr, fybr = box[2] * width_ratio, box[3] * height_ratio
        xtl, ytl, xbr, ybr = int(fxtl), int(fytl), int(fxbr), int(fybr)
        width = math.ceil((box[2] - box[0]) * width_ratio)
        height = math.ceil((box[3] - box[1]) * height_ratio)
        radius = max(0, int(_ref_radius(height, width, iou)))
        _ref_draw(tl_heat[category], xtl, ytl, radius)
        _ref_draw(br_heat[category], xbr, ybr, radius)
        tl_regr[ind] = [fxtl - xtl, fytl - ytl]
        br_regr[ind] = [fxbr - xbr, fybr - ybr]
        tl_tag[ind] = ytl * out_w + xtl
        br_tag[ind] = ybr * out_w + xbr
        mask[ind] = 1
    return {
        "tl_heatmap": tl_heat.transpose(1, 2, 0),
        "br_heatmap": br_heat.transpose(1, 2, 0),
        "tl_index": tl_tag,
        "br_index": br_tag,
        "tl_offset": tl_regr,
        "br_offset": br_regr,
        "mask": mask,
    }


def _random_boxes(rng, n, num_classes, in_size=(IN_SIZE, IN_SIZE)):
    """Boxes as the official sampler leaves them: clipped to [0, size - 1]."""
    in_h, in_w = in_size
    x = np.sort(rng.uniform(-20, in_w + 20, (n, 2)), axis=1)
    y = np.sort(rng.uniform(-20, in_h + 20, (n, 2)), axis=1)
    boxes = np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, in_w - 1)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, in_h - 1)
    return boxes.astype(np.float32), rng.integers(0, num_classes, n).astype(np.int32)


def _encode(boxes, labels, num_classes, in_size=IN_SIZE, out_size=OUT_SIZE, **kwargs):
    return encode_targets(
        boxes,
        labels,
        input_size=in_size,
        output_size=out_size,
        num_classes=num_classes,
        **kwargs,
    )


def _assert_matches_reference(got, boxes, labels, num_classes, in_size, out_size, **kwargs):
    pair = lambda s: (s, s) if isinstance(s, int) else s
    want = _ref_encode(boxes, labels, pair(in_size), pair(out_size), num_classes, **kwargs)
    for key in ("tl_heatmap", "br_heatmap"):
        np.testing.assert_allclose(np.asarray(got[key]), want[key], rtol=0, atol=1e-6, err_msg=key)
    for key in ("tl_index", "br_index", "tl_offset", "br_offset", "mask"):
        np.testing.assert_array_equal(np.asarray(got[key]), want[key], err_msg=key)


# ---------------------------------------------------------- gaussian_radius


def test_gaussian_radius_square_closed_form():
    # For h = w = s the three roots reduce to s(1 - sqrt(2o/(1+o))),
    # s(1 - sqrt(o))/2 and s(1/sqrt(o) - 1)/2.
    s = np.array([1.0, 7.0, 40.0, 128.0])
    for o in (0.3, 0.5, 0.7):
        roots = [s * (1 - np.sqrt(2 * o / (1 + o))), s * (1 - np.sqrt(o)) / 2]
        roots.append(s * (1 / np.sqrt(o) - 1) / 2)
        np.testing.assert_allclose(
            gaussian_radius(s, s, o).numpy(), np.min(roots, axis=0), rtol=1e-12
        )


def test_gaussian_radius_matches_polynomial_roots():
    rng = np.random.default_rng(1)
    heights, widths = rng.uniform(0.5, 130, 50), rng.uniform(0.5, 130, 50)
    o = 0.3
    got = gaussian_radius(heights, widths, o).numpy()
    for h, w, r in zip(heights, widths, got, strict=True):
        # r1, r2: the smaller roots of r^2 - (h+w) r + wh(1-o)/(1+o) and of
        # 4r^2 - 2(h+w) r + (1-o)wh; r3: the positive root of
        # 4o r^2 + 2o(h+w) r + (o-1)wh.
        r1 = min(np.roots([1, -(h + w), w * h * (1 - o) / (1 + o)]).real)
        r2 = min(np.roots([4, -2 * (h + w), (1 - o) * w * h]).real)
        r3 = max(np.roots([4 * o, 2 * o * (h + w), (o - 1) * w * h]).real)
        assert r == pytest.approx(min(r1, r2, r3), rel=1e-9)
        assert r == pytest.approx(_ref_radius(h, w, o), rel=1e-12)


def test_gaussian_radius_is_bit_exact_where_truncation_matters():
    # ceil-sizes 23 x 60 give exactly 7.0 in the official float64 arithmetic;
    # a reassociated product gives 6.999999999999998, i.e. radius 6.
    assert _ref_radius(23, 60, 0.3) == 7.0
    args = (tf.constant([23.0], tf.float64), tf.constant([60.0], tf.float64), 0.3)
    assert float(gaussian_radius(*args)[0]) == 7.0
    # Every integer size pair of a 128x128 map, eagerly and in the graph
    # optimisers' hands (Grappler, XLA): bit-identical to the float64 reference.
    heights, widths = (g.ravel() for g in np.meshgrid(np.arange(130.0), np.arange(130.0)))
    want = np.array([_ref_radius(h, w, 0.3) for h, w in zip(heights, widths, strict=True)])
    for fn in (
        gaussian_radius,
        tf.function(gaussian_radius),
        tf.function(gaussian_radius, jit_compile=True),
    ):
        np.testing.assert_array_equal(fn(heights, widths, 0.3).numpy(), want)


def test_gaussian_radius_dtype_and_broadcast():
    assert gaussian_radius(10, 20, 0.3).dtype == tf.float64
    got = gaussian_radius(tf.constant([[10.0], [20.0]]), tf.constant([5.0, 6.0, 7.0]), 0.3)
    assert got.dtype == tf.float32 and got.shape == (2, 3)
    assert float(gaussian_radius(0.0, 0.0, 0.3)) == 0.0


@pytest.mark.parametrize("overlap", [0.0, 1.0, -0.2, 1.5])
def test_gaussian_radius_rejects_bad_overlap(overlap):
    with pytest.raises(ValueError, match="min_overlap"):
        gaussian_radius(10.0, 10.0, overlap)


@pytest.mark.parametrize("height", [-1.0, float("nan")])
def test_gaussian_radius_rejects_bad_sizes(height):
    with pytest.raises(ValueError, match="height"):
        gaussian_radius(height, 10.0, 0.3)


# ----------------------------------------------------------- encode_targets


@pytest.mark.parametrize("seed", [0, 1])
def test_encode_matches_official_on_random_boxes(seed):
    rng = np.random.default_rng(seed)
    boxes, labels = _random_boxes(rng, 25, num_classes=4)
    got = _encode(boxes, labels, 4)
    _assert_matches_reference(got, boxes, labels, 4, IN_SIZE, OUT_SIZE)
    assert int(got["num_dropped"]) == 0 and int(got["num_invalid"]) == 0


def test_encode_non_square_sizes():
    rng = np.random.default_rng(2)
    in_size, out_size = (300, 451), (75, 113)
    boxes, labels = _random_boxes(rng, 12, num_classes=3, in_size=in_size)
    got = _encode(boxes, labels, 3, in_size=in_size, out_size=out_size)
    assert got["tl_heatmap"].shape == (75, 113, 3)
    _assert_matches_reference(got, boxes, labels, 3, in_size, out_size)


def test_encode_boxes_at_the_image_borders():
    boxes = np.array(
        [[0, 0, 510, 510], [0, 300, 40, 510], [470, 0, 510, 35], [0, 0, 0.5, 0.5]], np.float32
    )
    labels = np.array([0, 1, 1, 2], np.int32)
    got = _encode(boxes, labels, 3)
    _assert_matches_reference(got, boxes, labels, 3, IN_SIZE, OUT_SIZE)
    # The whole-image box: tl at (0, 0), br in the last cell, windows clipped.
    assert float(got["tl_heatmap"][0, 0, 0]) == 1.0
    assert float(got["br_heatmap"][127, 127, 0]) == 1.0
    assert int(got["br_index"][0]) == 127 * 128 + 127


def test_encode_tiny_box_has_radius_zero():
    boxes = np.array([[100.0, 200.0, 102.0, 203.0]], np.float32)
    assert int(_ref_radius(1, 1, 0.3)) == 0  # ceil of the scaled sizes is 1 x 1
    got = _encode(boxes, np.array([1]), 2)
    _assert_matches_reference(got, boxes, np.array([1]), 2, IN_SIZE, OUT_SIZE)
    tl = got["tl_heatmap"].numpy()
    assert tl.sum() == 1.0 and tl[int(200 * 128 / 511), int(100 * 128 / 511), 1] == 1.0


def test_encode_overlapping_boxes_of_one_class_take_the_max():
    boxes = np.array([[40, 40, 300, 300], [48, 44, 200, 320], [44, 52, 310, 250]], np.float32)
    labels = np.zeros(3, np.int32)
    got = _encode(boxes, labels, 1)
    _assert_matches_reference(got, boxes, labels, 1, IN_SIZE, OUT_SIZE)
    heat = got["tl_heatmap"].numpy()[..., 0]
    singles = [_encode(b[None], labels[:1], 1)["tl_heatmap"].numpy()[..., 0] for b in boxes]
    np.testing.assert_array_equal(heat, np.maximum.reduce(singles))
    assert heat.sum() < sum(s.sum() for s in singles)  # overlaps are not summed


def test_encode_corner_on_the_right_edge_is_clamped():
    # x2 == W_in maps to fx == W_out: the official code (which never sees it,
    # its sampler clips to W_in - 1) would index one past the row.
    boxes = np.array([[400.0, 100.0, 512.0, 512.0]], np.float32)
    got = _encode(boxes, np.array([0]), 1, in_size=512)  # fx = 512 * 128 / 512 = 128
    assert int(got["br_index"][0]) == 127 * 128 + 127
    np.testing.assert_allclose(got["br_offset"].numpy()[0], [1.0, 1.0])
    assert float(got["br_heatmap"][127, 127, 0]) == 1.0


def test_encode_no_boxes():
    got = _encode(np.zeros((0, 4), np.float32), np.zeros((0,), np.int32), 5)
    assert got["tl_heatmap"].shape == (128, 128, 5)
    for key in ("tl_heatmap", "br_heatmap", "tl_index", "br_offset", "mask"):
        assert not np.any(got[key].numpy()), key
    assert int(got["num_dropped"]) == 0 and int(got["num_invalid"]) == 0


def test_encode_keeps_the_first_max_objects():
    rng = np.random.default_rng(3)
    boxes, labels = _random_boxes(rng, 130, num_classes=3)
    got = _encode(boxes, labels, 3)
    assert int(got["num_dropped"]) == 2
    assert float(got["mask"].numpy().sum()) == 128
    _assert_matches_reference(got, boxes, labels, 3, IN_SIZE, OUT_SIZE)  # first 128 only


def test_encode_output_shapes_and_dtypes():
    got = _encode(np.array([[1, 2, 30, 40]], np.float32), np.array([0], np.int64), 2, max_objects=7)
    expected = {
        "tl_heatmap": ((128, 128, 2), tf.float32),
        "br_heatmap": ((128, 128, 2), tf.float32),
        "tl_index": ((7,), tf.int32),
        "br_index": ((7,), tf.int32),
        "tl_offset": ((7, 2), tf.float32),
        "br_offset": ((7, 2), tf.float32),
        "mask": ((7,), tf.float32),
        "num_dropped": ((), tf.int32),
        "num_invalid": ((), tf.int32),
    }
    assert {k: (tuple(v.shape), v.dtype) for k, v in got.items()} == expected


def test_encode_inside_dataset_map():
    rng = np.random.default_rng(4)
    samples = [_random_boxes(rng, n, num_classes=3, in_size=(255, 255)) for n in (0, 1, 6, 130)]
    ds = tf.data.Dataset.from_generator(
        lambda: iter(samples),
        output_signature=(tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32)),
    ).map(lambda b, c: _encode(b, c, 3, in_size=255, out_size=64))
    assert ds.element_spec["tl_heatmap"].shape == (64, 64, 3)
    assert ds.element_spec["tl_index"].shape == (128,)
    dropped = []
    for got, (boxes, labels) in zip(ds, samples, strict=True):
        _assert_matches_reference(got, boxes, labels, 3, 255, 64)
        dropped.append(int(got["num_dropped"]))
    assert dropped == [0, 0, 0, 2]


@pytest.mark.parametrize("num_boxes", [0, 130])
def test_encode_under_xla(num_boxes):
    rng = np.random.default_rng(5)
    boxes, labels = _random_boxes(rng, num_boxes, num_classes=3, in_size=(255, 255))
    fn = tf.function(lambda b, c: _encode(b, c, 3, in_size=255, out_size=64), jit_compile=True)
    got = fn(tf.constant(boxes), tf.constant(labels))
    _assert_matches_reference(got, boxes, labels, 3, 255, 64)
    assert int(got["num_dropped"]) == max(num_boxes - 128, 0)


def test_encode_graph_mode_drops_and_counts_invalid_boxes():
    boxes = np.array(
        [
            [10, 10, 100, 100],
            [np.nan, 5, 50, 50],  # NaN
            [50, 50, 40, 90],  # negative width
            [20, 30, 200, 220],
            [60, 60, 90, 90],  # label out of range
            [0, 0, np.inf, 10],
        ],
        np.float32,
    )
    labels = np.array([0, 1, 1, 2, 7, 0], np.int32)
    fn = tf.function(lambda b, c: _encode(b, c, 3))
    got = fn(tf.constant(boxes), tf.constant(labels))
    assert int(got["num_invalid"]) == 4 and int(got["num_dropped"]) == 0
    keep = [0, 3]
    _assert_matches_reference(got, boxes[keep], labels[keep], 3, IN_SIZE, OUT_SIZE)
    assert np.all(np.isfinite(got["tl_heatmap"].numpy()))


def _whole_map_heatmaps(boxes, labels, num_classes, in_size, out_size, iou=0.3):
    """Heatmaps as each box's Gaussian over the whole map, maxed per class.

    The formulation `encode_targets` used before it drew only the windows: the
    same float32 values (the 1-D Gaussians evaluated in float64 by TF, cast,
    multiplied in float32), so the two must agree bit for bit.
    """
    (in_h, in_w), (out_h, out_w) = in_size, out_size
    boxes = np.asarray(boxes, np.float64)
    rw, rh = out_w / in_w, out_h / in_h
    heat = np.zeros((2, out_h, out_w, num_classes), np.float32)
    for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
        height, width = math.ceil((y2 - y1) * rh), math.ceil((x2 - x1) * rw)
        radius = max(0.0, math.floor(float(gaussian_radius(height, width, iou))))
        sigma = (2 * radius + 1) / 6
        for corner, (x, y) in enumerate(((x1, y1), (x2, y2))):
            axes = []
            for size, center in ((out_h, min(int(y * rh), out_h - 1)), (out_w, int(x * rw))):
                dist = tf.range(size, dtype=tf.float64) - center
                value = tf.exp(-(dist * dist) / (2.0 * sigma * sigma))
                axes.append(tf.cast(tf.where(tf.abs(dist) <= radius, value, 0.0), tf.float32))
            window = axes[0].numpy()[:, None] * axes[1].numpy()[None, :]
            heat[corner, :, :, label] = np.maximum(heat[corner, :, :, label], window)
    return heat


def test_window_drawing_equals_whole_map_gaussians_bit_for_bit():
    rng = np.random.default_rng(7)
    boxes, labels = _random_boxes(rng, 9, num_classes=3)
    # Overlapping windows of one class, a radius-0 box, windows cut by the map corners.
    special = np.array([[0, 0, 510, 510], [8, 4, 200, 320], [100, 200, 102, 203]], np.float32)
    boxes, labels = np.concatenate([boxes, special]), np.concatenate([labels, [0, 0, 1]])
    spec = (tf.TensorSpec([None, 4], tf.float32), tf.TensorSpec([None], tf.int32))
    graph = tf.function(lambda b, c: _encode(b, c, 3), input_signature=spec)  # N dynamic
    small = _random_boxes(rng, 5, num_classes=3, in_size=(300, 451))
    cases = [
        (
            boxes,
            labels,
            (IN_SIZE, IN_SIZE),
            (OUT_SIZE, OUT_SIZE),
            (lambda b, c: _encode(b, c, 3), graph),
        ),
        (
            *small,
            (300, 451),
            (75, 113),
            (lambda b, c: _encode(b, c, 3, in_size=(300, 451), out_size=(75, 113)),),
        ),
    ]
    for boxes, labels, in_size, out_size, fns in cases:
        want = _whole_map_heatmaps(boxes, labels, 3, in_size, out_size)
        for fn in fns:
            got = fn(tf.constant(boxes), tf.constant(labels, tf.int32))
            np.testing.assert_array_equal(got["tl_heatmap"].numpy(), want[0])
            np.testing.assert_array_equal(got["br_heatmap"].numpy(), want[1])


@pytest.mark.parametrize(
    ("boxes", "labels", "match"),
    [
        ([[0, 0, np.nan, 10]], [0], "NaN"),
        ([[0, 0, 10, 10], [20, 20, 10, 30]], [0, 0], "negative width"),
        ([[0, 0, 10, 10]], [3], "num_classes"),
        ([[0, 0, 10, 10]], [-1], "num_classes"),
        ([[0, 0, 10]], [0], r"\[N, 4\]"),
        ([[0, 0, 10, 10]], [[0]], r"shape \[N\]"),
        ([[0, 0, 10, 10]], [0, 1], "same number of rows"),
    ],
)
def test_encode_rejects_bad_boxes_eagerly(boxes, labels, match):
    with pytest.raises(ValueError, match=match):
        _encode(np.array(boxes, np.float32), np.array(labels, np.int32), 3)


def test_encode_rejects_float_labels():
    with pytest.raises(TypeError, match="labels"):
        _encode(np.zeros((1, 4), np.float32), np.zeros((1,), np.float32), 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"input_size": 0}, "input_size"),
        ({"input_size": (511,)}, "input_size"),
        ({"output_size": (128, 12.5)}, "output_size"),
        ({"num_classes": 0}, "num_classes"),
        ({"max_objects": -1}, "max_objects"),
        ({"gaussian_iou": 1.0}, "gaussian_iou"),
    ],
)
def test_encode_rejects_bad_arguments(kwargs, match):
    args = {"input_size": 511, "output_size": 128, "num_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        encode_targets(np.zeros((1, 4), np.float32), np.zeros((1,), np.int32), **args)
