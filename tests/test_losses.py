"""CornerNet losses against closed forms and literal transcriptions of the official code.

The references below transcribe the official loss (`kp_utils.py`: `_neg_loss`,
`_ae_loss`, `_regr_loss`) line by line, boolean indexing, diagonal and 1e-4
terms included: numpy for values, TensorFlow where gradients are compared.
"""

import math

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.losses import (
    cornernet_loss,
    embedding_loss,
    focal_loss,
    gather_at_indices,
    offset_loss,
)
from cornernet_tf.targets import encode_targets

LN2 = math.log(2.0)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.asarray(x, np.float64)))


# --------------------------------------------------------------- references


def _ref_neg_loss(logits_per_stack, gt):
    """Official `_neg_loss` over a list of predictions (one per stack)."""
    gt = np.asarray(gt, np.float64)
    pos_inds, neg_inds = gt == 1, gt < 1
    neg_weights = np.power(1 - gt[neg_inds], 4)
    loss = 0.0
    for logits in logits_per_stack:
        pred = np.clip(_sigmoid(logits), 1e-4, 1 - 1e-4)
        pos_pred, neg_pred = pred[pos_inds], pred[neg_inds]
        pos_loss = (np.log(pos_pred) * np.power(1 - pos_pred, 2)).sum()
        neg_loss = (np.log(1 - neg_pred) * np.power(neg_pred, 2) * neg_weights).sum()
        num_pos = pos_inds.sum()
        loss = loss - neg_loss if pos_pred.size == 0 else loss - (pos_loss + neg_loss) / num_pos
    return loss


def _official_ae_loss(tag0, tag1, mask):
    """Official `_ae_loss` in TF ops, for gradients: [B, M] tags, [B, M] bool mask."""
    num = tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
    tag_mean = (tag0 + tag1) / 2
    pull0 = tf.reduce_sum(tf.boolean_mask(tf.pow(tag0 - tag_mean, 2) / (num + 1e-4), mask))
    pull1 = tf.reduce_sum(tf.boolean_mask(tf.pow(tag1 - tag_mean, 2) / (num + 1e-4), mask))
    pull = pull0 + pull1
    pair_mask = tf.logical_and(mask[:, None, :], mask[:, :, None])
    num = num[:, :, None]
    num2 = (num - 1) * num
    dist = tag_mean[:, None, :] - tag_mean[:, :, None]
    dist = tf.nn.relu(1 - tf.abs(dist))
    dist = dist - 1 / (num + 1e-4)
    dist = dist / (num2 + 1e-4)
    push = tf.reduce_sum(tf.boolean_mask(dist, pair_mask))
    return pull, push


def _ref_regr_loss(regr, gt_regr, mask):
    """Official `_regr_loss` (smooth L1, beta 1, summed) in numpy."""
    mask = np.asarray(mask, bool)
    num = mask.sum()
    diff = np.abs(np.asarray(regr, np.float64)[mask] - np.asarray(gt_regr, np.float64)[mask])
    loss = np.where(diff < 1, 0.5 * diff**2, diff - 0.5).sum()
    return loss / (num + 1e-4)


def _masked_example(rng, counts, slots=6, spread=1.5):
    """Random [B, M] embeddings, with `counts[b]` objects in image b."""
    mask = np.zeros((len(counts), slots), bool)
    for b, n in enumerate(counts):
        mask[b, :n] = True
    tl = rng.uniform(-spread, spread, mask.shape).astype(np.float32)
    br = (tl + rng.normal(0, 0.3, mask.shape)).astype(np.float32)
    return tl, br, mask


# --------------------------------------------------------------- focal_loss


def _map(values):
    return tf.constant(np.asarray(values, np.float32).reshape(1, 1, -1, 1))


def test_focal_one_positive():
    # p = sigmoid(0) = 1/2: -log(1/2) (1/2)^2 / 1.
    got = focal_loss(_map([0.0]), _map([1.0]))
    assert float(got) == pytest.approx(LN2 / 4, rel=1e-6)


def test_focal_one_negative_without_positives():
    # No positive: the negated negative sum, -log(1/2) (1/2)^2 (1 - 1/2)^4.
    got = focal_loss(_map([0.0]), _map([0.5]))
    assert float(got) == pytest.approx(LN2 / 64, rel=1e-6)


def test_focal_mixed_and_normalised_by_positives():
    p1, p2, p3 = _sigmoid(2.0), _sigmoid(-1.0), _sigmoid(0.5)
    pos = math.log(p1) * (1 - p1) ** 2 + math.log(p3) * (1 - p3) ** 2
    neg = math.log(1 - p2) * p2**2 * 0.75**4
    got = focal_loss(_map([2.0, -1.0, 0.5]), _map([1.0, 0.25, 1.0]))
    assert float(got) == pytest.approx(-(pos + neg) / 2, rel=1e-6)


def test_focal_clamps_probabilities():
    # A confident negative: p = 1 - 1e-4 after the clamp, and no gradient.
    logits = tf.Variable(_map([30.0]))
    with tf.GradientTape() as tape:
        got = focal_loss(logits, _map([0.0]))
    want = -math.log(1e-4) * (1 - 1e-4) ** 2
    assert float(got) == pytest.approx(want, rel=1e-3)  # 1 - p is rounded in float32
    assert float(tape.gradient(got, logits)[0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize("with_positives", [True, False])
def test_focal_matches_official_on_random_maps(with_positives):
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 1, (2, 8, 8, 3)) ** 3
    gt[gt > 0.9] = 1.0 if with_positives else 0.9
    logits = rng.normal(0, 3, gt.shape)
    got = focal_loss(tf.constant(logits, tf.float32), tf.constant(gt, tf.float32))
    assert float(got) == pytest.approx(_ref_neg_loss([logits], gt), rel=1e-5)


@pytest.mark.parametrize("dtype", [tf.float16, tf.bfloat16])
def test_focal_low_precision_logits_give_float32(dtype):
    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(0, 2, (1, 4, 4, 2)), dtype)
    target = tf.constant(np.eye(4)[None, :, :, None].repeat(2, axis=3), tf.float32)
    got = focal_loss(logits, target)
    assert got.dtype == tf.float32
    assert float(got) == pytest.approx(float(focal_loss(tf.cast(logits, tf.float32), target)))


def test_focal_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        focal_loss(tf.zeros([1, 4, 4, 2]), tf.zeros([1, 4, 4, 3]))


# ----------------------------------------------------------- embedding_loss


def test_embedding_two_objects_far_apart():
    # e = (0.1, 2.2); |e1 - e2| = 2.1 so relu(1 - 2.1) = 0 off the diagonal.
    n = 2 + 1e-4
    pull, push = embedding_loss([[0.0, 2.0]], [[0.2, 2.4]], [[1.0, 1.0]])
    assert float(pull) == pytest.approx((0.01 + 0.01 + 0.04 + 0.04) / n, rel=1e-6)
    # Two diagonal terms (1 - 1/n), two off-diagonal (0 - 1/n), over (N-1)N + 1e-4.
    assert float(push) == pytest.approx((2 * (1 - 1 / n) - 2 / n) / (2 + 1e-4), abs=1e-7)


def test_embedding_two_objects_close_and_padding_ignored():
    # e = (0.1, 0.5): relu(1 - 0.4) = 0.6 off the diagonal; slot 3 is padding.
    n = 2 + 1e-4
    pull, push = embedding_loss([[0.0, 0.4, 9.0]], [[0.2, 0.6, -7.0]], [[1.0, 1.0, 0.0]])
    assert float(pull) == pytest.approx(4 * 0.01 / n, rel=1e-5)
    assert float(push) == pytest.approx((2 * 0.6 + 2 * (1 - 1 / n) - 2 / n) / n, rel=1e-5)
    assert float(push) == pytest.approx(0.6, rel=1e-3)  # the off-diagonal mean


def test_embedding_sums_over_images():
    # Image 0 as above; image 1: three objects at e = (0, 0.25, 3) with
    # tl = e - 0.1, br = e + 0.1. Off-diagonal relu terms: 0.75 twice.
    n2, n3 = 2 + 1e-4, 3 + 1e-4
    tl = [[0.0, 0.4, 0.0], [-0.1, 0.15, 2.9]]
    br = [[0.2, 0.6, 0.0], [0.1, 0.35, 3.1]]
    mask = [[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    pull, push = embedding_loss(tl, br, mask)
    pull_want = 4 * 0.01 / n2 + 6 * 0.01 / n3
    push_0 = (2 * 0.6 + 2 - 4 / n2) / (2 + 1e-4)
    push_1 = (2 * 0.75 + 3 - 9 / n3) / (6 + 1e-4)
    assert float(pull) == pytest.approx(pull_want, rel=1e-5)
    assert float(push) == pytest.approx(push_0 + push_1, rel=1e-5)


def test_embedding_empty_ground_truth():
    tl = tf.Variable(np.ones((2, 4), np.float32))
    br = tf.Variable(np.zeros((2, 4), np.float32))
    with tf.GradientTape() as tape:
        pull, push = embedding_loss(tl, br, tf.zeros([2, 4]))
        total = pull + push
    assert float(pull) == 0.0 and float(push) == 0.0
    grads = tape.gradient(total, [tl, br])
    assert all(np.all(g.numpy() == 0) for g in grads)


def test_embedding_one_object_drops_the_constant_push():
    tl, br, mask = [[0.3, 5.0]], [[0.9, 5.0]], [[1.0, 0.0]]
    pull, push = embedding_loss(tl, br, mask)
    assert float(pull) == pytest.approx(2 * 0.09 / (1 + 1e-4), rel=1e-6)
    assert float(push) == 0.0
    _, official_push = _official_ae_loss(
        tf.constant(tl), tf.constant(br), tf.constant(np.array(mask) > 0)
    )
    assert float(official_push) == pytest.approx((1 - 1 / (1 + 1e-4)) / 1e-4, rel=1e-3)


def test_embedding_accepts_gathered_shape():
    tl = np.array([[[0.0], [0.4]]], np.float32)
    br = np.array([[[0.2], [0.6]]], np.float32)
    flat = embedding_loss(tl[..., 0], br[..., 0], [[1.0, 1.0]])
    assert np.allclose(embedding_loss(tl, br, [[1.0, 1.0]]), flat)


@pytest.mark.parametrize(
    "counts", [(3, 2, 4), (1,), (2, 1, 0, 5)], ids=["many", "single-one", "mixed"]
)
def test_embedding_gradients_match_official(counts):
    rng = np.random.default_rng(sum(counts))
    tl_np, br_np, mask_np = _masked_example(rng, counts, spread=0.8)
    tl, br = tf.Variable(tl_np), tf.Variable(br_np)
    with tf.GradientTape(persistent=True) as tape:
        pull, push = embedding_loss(tl, br, mask_np.astype(np.float32))
        ref_pull, ref_push = _official_ae_loss(tl, br, tf.constant(mask_np))
    for ours, ref in ((pull, ref_pull), (push, ref_push)):
        for got, want in zip(
            tape.gradient(ours, [tl, br]), tape.gradient(ref, [tl, br]), strict=True
        ):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)
    # Values: equal, except that each one-object image loses the ~0.9999 constant.
    singles = sum(n == 1 for n in counts)
    assert float(pull) == pytest.approx(float(ref_pull), rel=1e-5)
    one_object_push = (1 - 1 / (1 + 1e-4)) / 1e-4
    assert float(push) + singles * one_object_push == pytest.approx(float(ref_push), abs=1e-3)
    if singles == 0:
        assert float(push) == pytest.approx(float(ref_push), rel=1e-5, abs=1e-7)


def test_embedding_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, M\]"):
        embedding_loss(tf.zeros([2, 4]), tf.zeros([2, 5]), tf.zeros([2, 4]))
    with pytest.raises(ValueError, match="`tl`"):
        embedding_loss(tf.zeros([2, 4, 2]), tf.zeros([2, 4]), tf.zeros([2, 4]))


# -------------------------------------------------------------- offset_loss


def test_offset_closed_form():
    pred = [[[0.5, -1.0], [50.0, 50.0]]]
    target = [[[0.0, 1.0], [0.0, 0.0]]]
    # |d| = 0.5 -> 0.125; |d| = 2 -> 1.5; the second slot is padding.
    got = offset_loss(pred, target, [[1.0, 0.0]])
    assert float(got) == pytest.approx((0.125 + 1.5) / (1 + 1e-4), rel=1e-6)


def test_offset_empty_is_zero():
    assert float(offset_loss(tf.ones([2, 3, 2]), tf.zeros([2, 3, 2]), tf.zeros([2, 3]))) == 0.0


def test_offset_matches_official_on_random_values():
    rng = np.random.default_rng(2)
    pred, target = rng.normal(0, 1.5, (3, 7, 2)), rng.uniform(0, 1, (3, 7, 2))
    mask = rng.uniform(size=(3, 7)) > 0.4
    got = offset_loss(
        tf.constant(pred, tf.float16), tf.constant(target, tf.float32), mask.astype(np.float32)
    )
    assert got.dtype == tf.float32
    want = _ref_regr_loss(pred.astype(np.float16), target.astype(np.float32), mask)
    assert float(got) == pytest.approx(want, rel=1e-5)


def test_offset_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"\[B, M, 2\]"):
        offset_loss(tf.zeros([2, 3, 2]), tf.zeros([2, 3]), tf.zeros([2, 3]))
    with pytest.raises(ValueError, match="mask"):
        offset_loss(tf.zeros([2, 3, 2]), tf.zeros([2, 3, 2]), tf.zeros([2, 4]))


# -------------------------------------------------------- gather_at_indices


def test_gather_at_indices_matches_numpy():
    rng = np.random.default_rng(3)
    fmap = rng.normal(size=(2, 5, 7, 3)).astype(np.float32)
    index = rng.integers(0, 35, (2, 4))
    got = gather_at_indices(tf.constant(fmap), tf.constant(index, tf.int64)).numpy()
    ys, xs = index // 7, index % 7
    want = fmap[np.arange(2)[:, None], ys, xs]  # [B, M, D]
    np.testing.assert_array_equal(got, want)


def test_gather_at_indices_rejects_bad_rank():
    with pytest.raises(ValueError, match=r"\[B, H, W, D\]"):
        gather_at_indices(tf.zeros([2, 5, 7]), tf.zeros([2, 4], tf.int32))


# ----------------------------------------------------------- cornernet_loss

NUM_CLASSES, IN_SIZE, OUT_SIZE = 3, 63, 16


def _batch_targets(box_sets):
    encoded = []
    for boxes in box_sets:
        boxes = np.asarray(boxes, np.float32).reshape(-1, 5)
        encoded.append(
            encode_targets(
                boxes[:, :4],
                boxes[:, 4].astype(np.int32),
                input_size=IN_SIZE,
                output_size=OUT_SIZE,
                num_classes=NUM_CLASSES,
                max_objects=8,
            )
        )
    return {key: tf.stack([e[key] for e in encoded]) for key in encoded[0]}


def _random_outputs(rng, batch, num_stacks, dtype=tf.float32):
    shapes = {"heatmap": NUM_CLASSES, "embedding": 1, "offset": 2}
    return {
        f"{corner}_{head}_{s}": tf.constant(
            rng.normal(0, 1, (batch, OUT_SIZE, OUT_SIZE, depth)), dtype
        )
        for s in range(num_stacks)
        for corner in ("tl", "br")
        for head, depth in shapes.items()
    }


BOXES = [
    [[3, 4, 30, 40, 0], [20, 10, 60, 33, 2], [5.5, 40, 18, 60, 0]],
    [[0, 0, 62, 62, 1], [31, 31, 47, 50, 1]],
]


def test_cornernet_loss_matches_official_aeloss():
    rng = np.random.default_rng(4)
    outputs = _random_outputs(rng, batch=2, num_stacks=2)
    targets = _batch_targets(BOXES)
    got = cornernet_loss(outputs, targets, num_stacks=2)

    np_t = {k: v.numpy() for k, v in targets.items()}
    mask = np_t["mask"] > 0
    focal = 0.0
    for corner in ("tl", "br"):
        stacks = [outputs[f"{corner}_heatmap_{s}"].numpy() for s in range(2)]
        focal += _ref_neg_loss(stacks, np_t[f"{corner}_heatmap"])
    pull = push = offset = 0.0
    batch = np.arange(2)[:, None]
    for s in range(2):
        gathered = {}
        for corner in ("tl", "br"):
            for head in ("embedding", "offset"):
                fmap = outputs[f"{corner}_{head}_{s}"].numpy()
                index = np_t[f"{corner}_index"]
                gathered[corner, head] = fmap[batch, index // OUT_SIZE, index % OUT_SIZE]
            offset += _ref_regr_loss(gathered[corner, "offset"], np_t[f"{corner}_offset"], mask)
        p, q = _official_ae_loss(
            tf.constant(gathered["tl", "embedding"][..., 0]),
            tf.constant(gathered["br", "embedding"][..., 0]),
            tf.constant(mask),
        )
        pull, push = pull + float(p), push + float(q)
    total = (focal + 0.1 * pull + 0.1 * push + offset) / 2

    assert float(got["loss"]) == pytest.approx(total, rel=1e-5)
    assert float(got["focal"]) == pytest.approx(focal / 2, rel=1e-5)
    assert float(got["pull"]) == pytest.approx(pull / 2, rel=1e-5)
    assert float(got["push"]) == pytest.approx(push / 2, rel=1e-5)
    assert float(got["offset"]) == pytest.approx(offset / 2, rel=1e-5)
    assert all(v.dtype == tf.float32 and v.shape == () for v in got.values())

    weighted = cornernet_loss(
        outputs, targets, num_stacks=2, pull_weight=1.0, push_weight=0.0, offset_weight=2.0
    )
    want = got["focal"] + got["pull"] + 2 * got["offset"]
    assert float(weighted["loss"]) == pytest.approx(float(want), rel=1e-6)


def test_cornernet_loss_empty_ground_truth():
    rng = np.random.default_rng(5)
    outputs = _random_outputs(rng, batch=2, num_stacks=1)
    targets = _batch_targets([[], []])
    got = cornernet_loss(outputs, targets, num_stacks=1)
    assert float(got["pull"]) == float(got["push"]) == float(got["offset"]) == 0.0
    assert np.isfinite(float(got["focal"])) and float(got["focal"]) > 0
    assert float(got["loss"]) == pytest.approx(float(got["focal"]))


def test_cornernet_loss_half_precision_outputs_under_xla():
    rng = np.random.default_rng(6)
    outputs = _random_outputs(rng, batch=2, num_stacks=2, dtype=tf.float16)
    targets = _batch_targets(BOXES)
    eager = cornernet_loss(outputs, targets, num_stacks=2)
    compiled = tf.function(lambda o, t: cornernet_loss(o, t, num_stacks=2), jit_compile=True)
    got = compiled(outputs, targets)
    assert eager["loss"].dtype == got["loss"].dtype == tf.float32
    for key in eager:
        assert float(got[key]) == pytest.approx(float(eager[key]), rel=1e-4, abs=1e-6), key


def test_cornernet_loss_rejects_bad_input():
    rng = np.random.default_rng(7)
    outputs = _random_outputs(rng, batch=2, num_stacks=1)
    targets = _batch_targets(BOXES)
    with pytest.raises(ValueError, match="tl_heatmap_1"):
        cornernet_loss(outputs, targets, num_stacks=2)
    with pytest.raises(ValueError, match="mask"):
        cornernet_loss(outputs, {k: v for k, v in targets.items() if k != "mask"}, num_stacks=1)
    with pytest.raises(ValueError, match="num_stacks"):
        cornernet_loss(outputs, targets, num_stacks=0)
