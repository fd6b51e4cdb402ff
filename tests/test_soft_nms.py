"""Soft-NMS (`cornernet_tf.inference.soft_nms`) by hand and against the official algorithm."""

import math

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.inference.soft_nms import soft_nms


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
