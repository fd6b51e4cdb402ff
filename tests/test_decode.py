"""Corner decoding (`cornernet_tf.inference.decode`): round trip, official parity, rejection
rules, the flip test."""

import numpy as np
import pytest
import tensorflow as tf
from ideal_heads import KEYS, as_outputs, ideal_outputs
from numpy.lib.stride_tricks import sliding_window_view

from cornernet_tf.inference.decode import decode_corners, decode_outputs


def box_iou(a, b):
    """Continuous IoU of two (x1, y1, x2, y2) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# Overlapping objects: same class (0, 1 / 3, 4), different classes (0 vs 2),
# nested (4 inside 3), a tl of one object left/above the br of another.
IMAGES = [
    [(2.3, 3.7, 20.5, 18.2, 0), (8.1, 6.6, 28.9, 25.4, 0), (5.5, 10.25, 15.75, 30.5, 2)],
    [(1.0, 1.0, 30.0, 30.0, 1), (4.2, 4.9, 12.3, 13.1, 1), (16.6, 2.2, 17.4, 9.9, 1)],
    [],
]


def test_round_trip_ideal_outputs_decode_to_the_boxes():
    outputs = ideal_outputs(IMAGES, 32, 32, 3)
    decoded = decode_corners(*outputs, k=20, num_dets=50)
    assert decoded["boxes"].shape == (3, 50, 4)
    assert decoded["classes"].dtype == tf.int32
    for b, objects in enumerate(IMAGES):
        scores = decoded["scores"][b].numpy()
        n = len(objects)
        np.testing.assert_array_equal(scores[:n], np.ones(n, np.float32))
        # everything else pairs a corner with background (score ~0.5 at most,
        # rejected by embeddings) or background with background (~1e-13)
        assert np.all(scores[n:] < 1e-6)
        found = {
            tuple(np.round(box, 4)) + (int(cls),)
            for box, cls in zip(
                decoded["boxes"][b, :n].numpy(), decoded["classes"][b, :n].numpy(), strict=True
            )
        }
        expected = {tuple(np.round(np.float32(obj[:4]), 4)) + (obj[4],) for obj in objects}
        assert found == expected
        for box in decoded["boxes"][b, :n].numpy():
            assert max(box_iou(box, obj[:4]) for obj in objects) == pytest.approx(1.0, abs=1e-5)


def official_decode_nchw(
    tl_heat, br_heat, tl_tag, br_tag, tl_regr, br_regr, k, kernel, ae_threshold, num_dets
):
    """numpy version of the official `_decode` (kp_utils.py), NCHW as official.

    Ties in top-k are broken towards the lower flat index (stable sort), as
    `tf.math.top_k` does; random inputs have no ties among corners.
    """
    batch, cat, height, width = tl_heat.shape

    def sigmoid(x):
        return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)

    def nms(heat):
        pad = (kernel - 1) // 2
        padded = np.pad(heat, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=-np.inf)
        hmax = sliding_window_view(padded, (kernel, kernel), axis=(2, 3)).max(axis=(-2, -1))
        return heat * (hmax == heat)

    def topk(scores):
        flat = scores.reshape(batch, -1)
        inds = np.argsort(-flat, axis=1, kind="stable")[:, :k]
        values = np.take_along_axis(flat, inds, axis=1)
        clses = inds // (height * width)
        inds = inds % (height * width)
        return (
            values,
            inds,
            clses,
            (inds // width).astype(np.float32),
            (inds % width).astype(np.float32),
        )

    def transpose_and_gather(feat, ind):
        feat = feat.transpose(0, 2, 3, 1).reshape(batch, -1, feat.shape[1])
        return np.take_along_axis(feat, ind[:, :, None], axis=1)

    tl_scores, tl_inds, tl_clses, tl_ys, tl_xs = topk(nms(sigmoid(tl_heat)))
    br_scores, br_inds, br_clses, br_ys, br_xs = topk(nms(sigmoid(br_heat)))
    tl_off = transpose_and_gather(tl_regr, tl_inds)  # [B, K, 2]
    br_off = transpose_and_gather(br_regr, br_inds)
    tl_xs = (tl_xs + tl_off[..., 0])[:, :, None] + np.zeros((1, 1, k), np.float32)
    tl_ys = (tl_ys + tl_off[..., 1])[:, :, None] + np.zeros((1, 1, k), np.float32)
    br_xs = (br_xs + br_off[..., 0])[:, None, :] + np.zeros((1, k, 1), np.float32)
    br_ys = (br_ys + br_off[..., 1])[:, None, :] + np.zeros((1, k, 1), np.float32)
    bboxes = np.stack((tl_xs, tl_ys, br_xs, br_ys), axis=3)
    dists = np.abs(
        transpose_and_gather(tl_tag, tl_inds)[:, :, 0][:, :, None]
        - transpose_and_gather(br_tag, br_inds)[:, :, 0][:, None, :]
    )
    tl_s = np.broadcast_to(tl_scores[:, :, None], (batch, k, k))
    br_s = np.broadcast_to(br_scores[:, None, :], (batch, k, k))
    scores = (tl_s + br_s) / 2
    tl_c = np.broadcast_to(tl_clses[:, :, None], (batch, k, k))
    br_c = np.broadcast_to(br_clses[:, None, :], (batch, k, k))
    scores[tl_c != br_c] = -1
    scores[dists > ae_threshold] = -1
    scores[br_xs < tl_xs] = -1
    scores[br_ys < tl_ys] = -1
    scores = scores.reshape(batch, -1)
    inds = np.argsort(-scores, axis=1, kind="stable")[:, :num_dets]

    def take(values):
        return np.take_along_axis(values.reshape(batch, k * k, -1), inds[:, :, None], axis=1)

    return {
        "boxes": take(bboxes),
        "scores": take(scores)[..., 0],
        "tl_scores": take(tl_s)[..., 0],
        "br_scores": take(br_s)[..., 0],
        "classes": take(tl_c)[..., 0],
    }


def random_outputs(seed, batch=2, height=16, width=16, num_classes=5):
    rng = np.random.default_rng(seed)
    heat = rng.normal(0.0, 2.0, (2, batch, height, width, num_classes)).astype(np.float32)
    emb = rng.normal(0.0, 0.5, (2, batch, height, width, 1)).astype(np.float32)
    off = rng.uniform(0.0, 1.0, (2, batch, height, width, 2)).astype(np.float32)
    return heat[0], heat[1], emb[0], emb[1], off[0], off[1]


def to_nchw(x):
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("kernel", [3, 1])
def test_parity_with_official_decode(kernel):
    outputs = random_outputs(seed=kernel)
    reference = official_decode_nchw(
        *(to_nchw(x) for x in outputs), k=100, kernel=kernel, ae_threshold=0.5, num_dets=1000
    )
    decoded = decode_corners(*outputs, k=100, kernel=kernel, ae_threshold=0.5, num_dets=1000)
    # enough valid pairs that the top 100 are all real detections
    assert np.all(reference["scores"][:, :100] > 0)
    for key in ("boxes", "scores", "tl_scores", "br_scores"):
        np.testing.assert_allclose(decoded[key].numpy(), reference[key], rtol=0, atol=1e-5)
    np.testing.assert_array_equal(decoded["classes"].numpy(), reference["classes"])


def single_pair(tl, br, height=16, width=16, num_classes=3):
    """One tl and one br corner (x, y, class, embedding), logit 2, zero offsets."""
    heat = np.full((2, 1, height, width, num_classes), -10.0, np.float32)
    emb = np.zeros((2, 1, height, width, 1), np.float32)
    off = np.zeros((2, 1, height, width, 2), np.float32)
    for corner, (x, y, cls, tag) in enumerate((tl, br)):
        heat[corner, 0, y, x, cls] = 2.0
        emb[corner, 0, y, x, 0] = tag
    return heat[0], heat[1], emb[0], emb[1], off[0], off[1]


PAIR_SCORE = 1.0 / (1.0 + np.exp(-2.0))  # (sigmoid(2) + sigmoid(2)) / 2


@pytest.mark.parametrize(
    ("tl", "br", "kept"),
    [
        ((2, 3, 1, 0.2), (10, 12, 1, 0.6), True),  # valid pair
        ((2, 3, 1, 0.25), (10, 12, 1, 0.75), True),  # |Δemb| == threshold is kept
        ((2, 3, 0, 0.2), (10, 12, 1, 0.2), False),  # classes differ
        ((2, 3, 1, 0.0), (10, 12, 1, 0.6), False),  # |Δemb| = 0.6 > 0.5
        ((10, 3, 1, 0.0), (2, 12, 1, 0.0), False),  # br left of tl
        ((2, 12, 1, 0.0), (10, 3, 1, 0.0), False),  # br above tl
        ((5, 3, 1, 0.0), (5, 3, 1, 0.0), True),  # zero width and height are kept
        ((2, 3, 1, np.nan), (10, 12, 1, 0.0), False),  # NaN embedding
    ],
)
def test_rejection_rules(tl, br, kept):
    decoded = decode_corners(*single_pair(tl, br), k=1, num_dets=1)
    score = decoded["scores"].numpy()[0, 0]
    if kept:
        assert score == pytest.approx(PAIR_SCORE, abs=1e-6)
        np.testing.assert_allclose(decoded["boxes"].numpy()[0, 0], [tl[0], tl[1], br[0], br[1]])
        assert decoded["classes"].numpy()[0, 0] == tl[2]
        assert decoded["tl_scores"].numpy()[0, 0] == pytest.approx(PAIR_SCORE, abs=1e-6)
    else:
        assert score == -1.0


def test_heatmap_nms_suppresses_non_maxima_in_the_window():
    tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off = single_pair((1, 1, 0, 0.0), (14, 14, 0, 0.0))
    tl_heat[0, 1, 2, 0] = 1.0  # neighbour of the (1, 1) peak: suppressed by 3x3 NMS
    tl_heat[0, 1, 4, 0] = 1.0  # three pixels away: its own peak
    sig = lambda x: 1.0 / (1.0 + np.exp(-x))
    for kernel, expected in ((3, [sig(2.0), sig(1.0)]), (1, [sig(2.0), sig(1.0), sig(1.0)])):
        decoded = decode_corners(
            tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off, k=3, num_dets=3, kernel=kernel
        )
        tl_scores = sorted(decoded["tl_scores"].numpy()[0][decoded["scores"].numpy()[0] > 0.1])
        np.testing.assert_allclose(sorted(expected), tl_scores, rtol=1e-6)


def test_offsets_are_added_to_the_corner_pixels():
    outputs = list(single_pair((2, 3, 1, 0.0), (10, 12, 1, 0.0)))
    outputs[4][0, 3, 2] = (0.25, 0.5)
    outputs[5][0, 12, 10] = (0.75, 0.125)
    decoded = decode_corners(*outputs, k=1, num_dets=1)
    np.testing.assert_allclose(decoded["boxes"].numpy()[0, 0], [2.25, 3.5, 10.75, 12.125])


def test_nan_heatmap_yields_no_kept_pair():
    outputs = list(single_pair((2, 3, 1, 0.0), (10, 12, 1, 0.0)))
    outputs[0][:] = np.nan
    decoded = decode_corners(*outputs, k=4, num_dets=16)
    assert not np.any(np.isnan(decoded["scores"].numpy()))
    assert np.all(decoded["scores"].numpy() < 0.5)


def test_xla_compiles_and_matches_graph_mode_batch_one():
    outputs = random_outputs(seed=7, batch=1)
    fn = lambda *x: decode_corners(*x, k=50, num_dets=200)
    graph = tf.function(fn)(*outputs)
    xla = tf.function(fn, jit_compile=True)(*outputs)
    assert xla["boxes"].shape == (1, 200, 4)
    for key in graph:
        np.testing.assert_allclose(xla[key].numpy(), graph[key].numpy(), rtol=0, atol=1e-5)


def test_dynamic_shapes_in_a_graph():
    spec = [tf.TensorSpec([None, None, None, c], tf.float32) for c in (3, 3, 1, 1, 2, 2)]
    fn = tf.function(lambda *x: decode_corners(*x, k=8, num_dets=20), input_signature=spec)
    decoded = fn(*random_outputs(seed=3, batch=3, height=8, width=12, num_classes=3))
    assert decoded["boxes"].shape == (3, 20, 4)
    assert fn.get_concrete_function().structured_outputs["scores"].shape.as_list() == [None, 20]


def test_a_map_of_fewer_values_than_k_decodes_what_it_has():
    # A small image's canvas can hold fewer than k corner candidates; a graph
    # of unknown map size cannot refuse that up front.
    spec = [tf.TensorSpec([None, None, None, c], tf.float32) for c in (1, 1, 1, 1, 2, 2)]
    fn = tf.function(lambda *x: decode_corners(*x, k=40, num_dets=50), input_signature=spec)
    outputs = random_outputs(seed=4, batch=2, height=4, width=5, num_classes=1)  # 20 < 40
    padded = fn(*outputs)
    exact = decode_corners(*outputs, k=20, num_dets=50)  # static shapes: every value
    for key in exact:
        np.testing.assert_array_equal(padded[key].numpy(), exact[key].numpy())
    assert (padded["scores"].numpy() > -1).any()


def test_mixed_precision_inputs_are_decoded_in_float32():
    outputs = [tf.cast(x, tf.float16) for x in random_outputs(seed=4, batch=1)]
    decoded = decode_corners(*outputs, k=10, num_dets=20)
    assert decoded["scores"].dtype == tf.float32


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kernel": 2}, ValueError, "kernel"),
        ({"kernel": 0}, ValueError, "kernel"),
        ({"k": 3, "num_dets": 10}, ValueError, "num_dets"),
        ({"k": 2000}, ValueError, "exceeds the C\\*H\\*W"),
        ({"k": 2.5}, TypeError, "`k`"),
        ({"ae_threshold": -1.0}, ValueError, "ae_threshold"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        decode_corners(*random_outputs(seed=0, batch=1, height=8, width=8, num_classes=3), **kwargs)


def test_bad_inputs():
    outputs = list(random_outputs(seed=0, batch=1, height=8, width=8, num_classes=3))
    with pytest.raises(ValueError, match="`tl_off` must have 2 channels"):
        decode_corners(*outputs[:4], outputs[2], outputs[5])
    with pytest.raises(ValueError, match="`br_heat` must have 3 channels"):
        decode_corners(outputs[0], outputs[0][..., :2], *outputs[2:])
    with pytest.raises(ValueError, match="rank 4"):
        decode_corners(outputs[0][0], *outputs[1:])
    with pytest.raises(ValueError, match="batch/height/width"):
        decode_corners(outputs[0], outputs[1][:, :4], *outputs[2:])
    with pytest.raises(TypeError, match="floating"):
        decode_corners(outputs[0].astype(np.int32), *outputs[1:])


# ------------------------------------------------------------------ flip test


def test_flip_test_maps_flipped_detections_back():
    width = 32
    images = IMAGES[:2]
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
