"""The CornerNet-Saccade training sampler against a transcription of the official one.

The numpy reference below restates princeton-vl/CornerNet-Lite
`core/sample/cornernet_saccade.py` (`clip_detections`, `ref_scale`,
`scale_image_detections`, `crop_image_dets`, `bbox_overlaps`, the per-object
loop of `cornernet_saccade`) and `core/sample/utils.py` (`crop_image`) with the
settings of `configs/CornerNet_Saccade.json` (`rand_crop` false, `rand_center`
true, `min_scale` 16). Its `np.random` calls take their values from `Draws`,
which maps the same uniforms as `saccade_augment` to each official range, so
that both make the same choices and everything after them is compared
exactly.
"""

import math

import cv2
import numpy as np
import pytest
import tensorflow as tf
from test_saccade_targets import official_attention_masks
from test_targets import _ref_draw, _ref_radius

from cornernet_tf.data import augment, pipeline, saccade_augment
from cornernet_tf.saccade_targets import attention_targets
from cornernet_tf.spec.config import DataConfig

SCALES = tuple(float(s) for s in np.arange(0.5, 1.1, 0.1))  # rand_scales of the config
INPUT, OUTPUT = 255, 64
MIN_SCALE = 16


# --- numpy reference ------------------------------------------------------------


class Draws:
    """The official sampler's random calls, answered from fixed uniforms."""

    def __init__(self, draws):
        self.d = {k: np.asarray(v) for k, v in draws.items()}

    @staticmethod
    def randint(u, low, high):
        count = max(int(high) - int(low), 1)
        return int(low) + min(int(np.floor(np.float32(u) * np.float32(count))), count - 1)

    def ref(self, n):  # np.random.randint(detections.shape[0])
        return self.randint(self.d["ref"], 0, n)

    def ref_size(self, low, high):  # np.random.randint(low=..., high=...)
        return self.randint(self.d["ref_size"], low, high)

    def center(self, axis, slot, low, high):  # np.random.randint in crop_image_dets
        return self.randint(self.d["center_u"][axis][slot], low, high)


def ref_clip_detections(border, detections):
    detections = detections.copy()
    y0, y1, x0, x1 = border
    det_xs = detections[:, 0:4:2]
    det_ys = detections[:, 1:4:2]
    np.clip(det_xs, x0, x1 - 1, out=det_xs)
    np.clip(det_ys, y0, y1 - 1, out=det_ys)
    detections[:, 0:4:2], detections[:, 1:4:2] = det_xs, det_ys
    keep = ((det_xs[:, 1] - det_xs[:, 0]) > 0) & ((det_ys[:, 1] - det_ys[:, 0]) > 0)
    keep = np.where(keep)[0]
    return detections[keep], keep


def ref_scale(detections, rng):
    if detections.shape[0] == 0:
        return None, None
    ref_ind = rng.ref(detections.shape[0])
    ref_det = detections[ref_ind].copy()
    ref_hw = max(ref_det[3] - ref_det[1], ref_det[2] - ref_det[0])
    # The official code ran on NumPy 1, where `int / np.float32` is a float64.
    ref_hw = np.float64(ref_hw)
    if ref_hw > 96:
        return rng.ref_size(96, 255) / ref_hw, ref_ind
    elif ref_hw > 32:
        return rng.ref_size(32, 97) / ref_hw, ref_ind
    return rng.ref_size(16, 33) / ref_hw, ref_ind


def ref_crop_image(image, center, size):
    cty, ctx = center
    height, width = size
    im_height, im_width = image.shape[0:2]
    cropped = np.zeros((height, width, 3), dtype=image.dtype)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_width)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_height)
    left, right = ctx - x0, x1 - ctx
    top, bottom = cty - y0, y1 - cty
    cropped_cty, cropped_ctx = height // 2, width // 2
    y_slice = slice(cropped_cty - top, cropped_cty + bottom)
    x_slice = slice(cropped_ctx - left, cropped_ctx + right)
    cropped[y_slice, x_slice, :] = image[y0:y1, x0:x1, :]
    border = np.array(
        [cropped_cty - top, cropped_cty + bottom, cropped_ctx - left, cropped_ctx + right],
        dtype=np.float32,
    )
    offset = np.array([cty - height // 2, ctx - width // 2])
    return cropped, border, offset


def ref_crop_image_dets(image, dets, ind, input_size, rng, centered):
    """`crop_image_dets` with random_crop and rand_center true (the call in the sampler)."""
    if ind is not None:
        det_x0, det_y0, det_x1, det_y1 = dets[ind, 0:4]
    input_height, input_width = input_size
    image_height, image_width = image.shape[0:2]
    if image_width <= input_width:
        xc = image_width // 2
    elif ind is None or not centered:
        xmin = max(det_x1 - input_width, 0) if ind is not None else 0
        xmax = (
            min(image_width - input_width, det_x0) if ind is not None else image_width - input_width
        )
        xc = rng.center(1, 2, int(xmin), int(xmax) + 1) + input_width // 2
    else:
        xmin = max((det_x0 + det_x1) // 2 - rng.center(1, 0, 0, 15), 0)
        xmax = min((det_x0 + det_x1) // 2 + rng.center(1, 1, 0, 15), image_width - 1)
        xc = rng.center(1, 2, int(xmin), int(xmax) + 1)
    if image_height <= input_height:
        yc = image_height // 2
    elif ind is None or not centered:
        ymin = max(det_y1 - input_height, 0) if ind is not None else 0
        ymax = (
            min(image_height - input_height, det_y0)
            if ind is not None
            else image_height - input_height
        )
        yc = rng.center(0, 2, int(ymin), int(ymax) + 1) + input_height // 2
    else:
        ymin = max((det_y0 + det_y1) // 2 - rng.center(0, 0, 0, 15), 0)
        ymax = min((det_y0 + det_y1) // 2 + rng.center(0, 1, 0, 15), image_height - 1)
        yc = rng.center(0, 2, int(ymin), int(ymax) + 1)
    image, border, offset = ref_crop_image(image, [yc, xc], input_size)
    dets[:, 0:4:2] -= offset[1]
    dets[:, 1:4:2] -= offset[0]
    return image, dets, border, (yc, xc)


def official_sample(image, orig_detections, draws, num_classes, gaussian_iou=0.5):
    """The per-image body of official `cornernet_saccade` (no colour), numpy float32."""
    rng = Draws(draws)
    orig_detections = orig_detections.copy()
    keep_inds = np.arange(orig_detections.shape[0])
    border = [0, image.shape[0], 0, image.shape[1]]
    detections, clip_inds = ref_clip_detections(border, orig_detections.copy())
    keep_inds = keep_inds[clip_inds]
    scale, ref_ind = ref_scale(detections, rng)
    scale = np.float64(SCALES[int(draws["scale_index"])] if scale is None else scale)
    # NumPy 1 multiplied float32 arrays by a float64 scalar in float32.
    orig_detections[:, 0:4:2] *= np.float32(scale)
    orig_detections[:, 1:4:2] *= np.float32(scale)
    new_size = (int(image.shape[0] * scale), int(image.shape[1] * scale))
    resized = cv2.resize(image, new_size[::-1])
    detections = detections.copy()
    detections[:, 0:4] *= np.float32(scale)
    image, detections, border, center = ref_crop_image_dets(
        resized, detections, ref_ind, (INPUT, INPUT), rng, bool(draws["centered"])
    )
    detections, clip_inds = ref_clip_detections(border, detections)
    keep_inds = keep_inds[clip_inds]
    if bool(draws["flip"]):
        image[:] = image[:, ::-1, :]
        width = image.shape[1]
        detections[:, [0, 2]] = width - detections[:, [2, 0]] - 1
    atts = official_attention_masks(detections)
    orig = orig_detections[keep_inds]
    area = lambda d: (d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1])  # noqa: E731
    overlaps = area(detections) / area(orig) > 0.5

    ratio = OUTPUT / INPUT
    tl_heats, br_heats, tl_valids, br_valids = (
        np.zeros((num_classes, OUTPUT, OUTPUT), np.float32) for _ in range(4)
    )
    tl_tags, br_tags, tl_regrs, br_regrs = [], [], [], []
    for detection, overlap in zip(detections, overlaps, strict=True):
        category = int(detection[-1])
        xtl, ytl, xbr, ybr = detection[:4]
        det_max = max(int(ybr) - int(ytl), int(xbr) - int(xtl))
        valid = det_max >= MIN_SCALE
        # NumPy 1: a float32 scalar times a Python float is a float64.
        fxtl, fytl = float(xtl) * ratio, float(ytl) * ratio
        fxbr, fybr = float(xbr) * ratio, float(ybr) * ratio
        xtl, ytl, xbr, ybr = int(fxtl), int(fytl), int(fxbr), int(fybr)
        width = math.ceil(float(detection[2] - detection[0]) * ratio)
        height = math.ceil(float(detection[3] - detection[1]) * ratio)
        radius = max(0, int(_ref_radius(height, width, gaussian_iou)))
        if overlap and valid:
            _ref_draw(tl_heats[category], xtl, ytl, radius)
            _ref_draw(br_heats[category], xbr, ybr, radius)
            tl_regrs.append([fxtl - xtl, fytl - ytl])
            br_regrs.append([fxbr - xbr, fybr - ybr])
            tl_tags.append(ytl * OUTPUT + xtl)
            br_tags.append(ybr * OUTPUT + xbr)
        else:
            _ref_draw(tl_valids[category], xtl, ytl, radius)
            _ref_draw(br_valids[category], xbr, ybr, radius)
    return {
        "scale": scale,
        "resized_size": new_size,
        "center": center,
        "border": border,
        "image": image,
        "boxes": detections[:, :4],
        "labels": detections[:, 4].astype(np.int32),
        "kept_area": overlaps,
        "tl_heatmap": tl_heats.transpose(1, 2, 0),
        "br_heatmap": br_heats.transpose(1, 2, 0),
        "tl_valid": (tl_valids == 0).astype(np.float32).transpose(1, 2, 0),
        "br_valid": (br_valids == 0).astype(np.float32).transpose(1, 2, 0),
        "tl_index": np.array(tl_tags, np.int64),
        "br_index": np.array(br_tags, np.int64),
        "tl_offset": np.array(tl_regrs, np.float32).reshape(-1, 2),
        "br_offset": np.array(br_regrs, np.float32).reshape(-1, 2),
        "attention": atts,
    }


# --- cases ------------------------------------------------------------------------


def _case(seed, height, width, num_boxes, num_classes=3):
    """An image, boxes as COCO gives them (some past the image edges) and random draws."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    sizes = rng.choice([4.0, 12.0, 40.0, 150.0, 400.0], num_boxes) * rng.uniform(
        0.5, 1.5, num_boxes
    )
    w = np.minimum(sizes * rng.uniform(0.5, 1.0, num_boxes), width * 1.1)
    h = np.minimum(sizes * rng.uniform(0.5, 1.0, num_boxes), height * 1.1)
    x1 = rng.uniform(-0.1 * width, width - 0.5 * w)
    y1 = rng.uniform(-0.1 * height, height - 0.5 * h)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1).astype(np.float32)
    labels = rng.integers(0, num_classes, num_boxes).astype(np.int32)
    draws = {
        "ref": np.float32(rng.uniform()),
        "ref_size": np.float32(rng.uniform()),
        "scale_index": np.int32(rng.integers(len(SCALES))),
        "centered": bool(rng.uniform() > 0.5),
        "center_u": rng.uniform(size=(2, 3)).astype(np.float32),
        "flip": bool(rng.uniform() > 0.5),
    }
    return image, boxes, labels, draws


CASES = [
    (0, 480, 640, 6),
    (1, 427, 640, 12),
    (2, 300, 200, 3),
    (3, 80, 96, 4),
    (4, 600, 500, 1),
    (5, 480, 640, 0),
    (6, 200, 700, 8),
    (7, 640, 480, 20),
]


@pytest.mark.parametrize(("seed", "height", "width", "num_boxes"), CASES)
def test_saccade_sample_matches_official(seed, height, width, num_boxes):
    image, boxes, labels, draws = _case(seed, height, width, num_boxes)
    for centered in (False, True):
        draws = {**draws, "centered": centered}
        dets = np.concatenate([boxes, labels[:, None].astype(np.float32)], axis=1)
        want = official_sample(image, dets, draws, num_classes=3)
        got = saccade_augment.saccade_geometry(
            image, boxes, labels, draws, input_size=INPUT, scales=SCALES
        )
        assert got["scale"].numpy() == want["scale"]
        assert tuple(got["resized_size"].numpy()) == want["resized_size"]
        assert tuple(got["center"].numpy()) == want["center"]
        np.testing.assert_array_equal(got["border"].numpy(), want["border"])
        np.testing.assert_array_equal(got["boxes"].numpy(), want["boxes"])
        np.testing.assert_array_equal(got["labels"].numpy(), want["labels"])
        np.testing.assert_array_equal(got["kept_area"].numpy(), want["kept_area"])
        # cv2 interpolates uint8 in fixed point and rounds; ours stays float.
        diff = np.abs(got["image"].numpy() - want["image"].astype(np.float32))
        assert diff.max() <= 1.0 and diff.mean() < 0.3

        target = saccade_augment.encode_saccade_targets(
            got["boxes"],
            got["labels"],
            got["kept_area"],
            input_size=INPUT,
            output_size=OUTPUT,
            num_classes=3,
            max_objects=32,
            gaussian_iou=0.5,
        )
        for key in ("tl_heatmap", "br_heatmap"):
            np.testing.assert_allclose(target[key].numpy(), want[key], rtol=0, atol=1e-6)
        for key in ("tl_valid", "br_valid"):
            np.testing.assert_array_equal(target[key].numpy(), want[key], err_msg=key)
        num = len(want["tl_index"])
        np.testing.assert_array_equal(target["mask"].numpy(), np.arange(32) < num)
        for key in ("tl_index", "br_index", "tl_offset", "br_offset"):
            np.testing.assert_array_equal(target[key].numpy()[:num], want[key], err_msg=key)
        for name, att in zip(("large", "medium", "small"), want["attention"], strict=True):
            np.testing.assert_array_equal(target[f"attention_{name}"].numpy()[..., 0], att)


def test_cases_cover_every_branch():
    """The cases above reach each size class, both crop branches and ignored objects."""
    seen = set()
    for seed, height, width, num_boxes in CASES:
        image, boxes, labels, draws = _case(seed, height, width, num_boxes)
        dets = np.concatenate([boxes, labels[:, None].astype(np.float32)], axis=1)
        want = official_sample(image, dets, {**draws, "centered": True}, num_classes=3)
        n = len(want["boxes"])
        seen.add("targets" if len(want["tl_index"]) else "no targets")
        seen.add("ignored" if len(want["tl_index"]) < n else "all targets")
        seen.add("upscaled" if want["scale"] > 1.5 else "downscaled")
        seen.add("narrow" if min(want["resized_size"]) <= INPUT else "wide")
    want = {"targets", "no targets", "ignored", "all targets", "upscaled", "downscaled"}
    assert want | {"narrow", "wide"} <= seen


def test_window_resize_equals_resizing_the_whole_image():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    for size, center in [((400, 517), (200, 300)), ((50, 70), (25, 35)), ((1500, 2000), (9, 1990))]:
        window = augment.crop_window(size, (INPUT, INPUT), center)
        got = saccade_augment.resized_window(image, size, window).numpy()
        whole = augment.resize_image(image, size).numpy()
        want = whole[window["y0"] : window["y1"], window["x0"] : window["x1"]]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-3)


def test_reference_size_is_in_the_official_range():
    """Official `ref_scale`: longer side L → randint(96, 255), (32, 97) or (16, 33) pixels."""
    for side, (low, high) in [
        (200.0, (96, 254)),
        (96.0, (32, 96)),
        (33.0, (32, 96)),
        (32.0, (16, 32)),
    ]:
        boxes = tf.constant([[10.0, 10.0, 10.0 + side, 20.0]])
        for u, size in [(0.0, low), (0.999999, high)]:
            draws = {"ref": 0.0, "ref_size": u, "scale_index": 0}
            scale, ref, has_ref = saccade_augment.reference_scale(boxes, draws, SCALES)
            assert bool(has_ref) and int(ref) == 0
            assert scale.numpy() == size / np.float64(np.float32(side))


def test_draws_are_seeded_and_in_range():
    a = saccade_augment.draw_saccade_params(tf.constant([1, 2]), num_scales=7)
    b = saccade_augment.draw_saccade_params(tf.constant([1, 2]), num_scales=7)
    c = saccade_augment.draw_saccade_params(tf.constant([1, 3]), num_scales=7)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["center_u"], c["center_u"])
    assert 0 <= int(a["scale_index"]) < 7
    assert np.all((a["center_u"].numpy() >= 0) & (a["center_u"].numpy() < 1))
    with pytest.raises(ValueError, match="num_scales"):
        saccade_augment.draw_saccade_params(tf.constant([1, 2]), num_scales=0)


def test_pipeline_with_the_saccade_sampler(shapes_root):
    config = DataConfig(
        input_size=127, output_size=32, gaussian_iou=0.5, rand_scales=SCALES, sampler="saccade"
    )
    data = pipeline.make_train_dataset(
        shapes_root, config, batch_size=4, seed=5, include_boxes=True
    )
    images, targets = next(iter(data.dataset))
    assert images.shape == (4, 127, 127, 3)
    assert targets["tl_valid"].shape == targets["tl_heatmap"].shape == (4, 32, 32, 3)
    sizes = {"large": 8, "medium": 16, "small": 32}
    for name, side in sizes.items():
        assert targets[f"attention_{name}"].shape == (4, side, side, 1)
    # The attention maps mark the objects left in the crops.
    assert np.sum(targets["labels"].numpy() >= 0) > 0
    for i in range(4):
        boxes = targets["boxes"][i][targets["labels"][i] >= 0]
        want = attention_targets(boxes, 32)
        for name in sizes:
            key = f"attention_{name}"
            np.testing.assert_array_equal(targets[key][i].numpy(), want[key].numpy())
    again = next(
        iter(pipeline.make_train_dataset(shapes_root, config, batch_size=4, seed=5).dataset)
    )
    np.testing.assert_array_equal(again[0].numpy(), images.numpy())


def test_pipeline_rejects_an_unknown_sampler(shapes_root):
    config = DataConfig(input_size=127, output_size=32, sampler="yolo")
    with pytest.raises(ValueError, match="`data.sampler` must be one of cornernet, saccade"):
        pipeline.make_train_dataset(shapes_root, config, batch_size=2)
