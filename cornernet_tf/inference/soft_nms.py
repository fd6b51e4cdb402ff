"""Per-class Gaussian soft-NMS with the official scores (`external/nms.pyx`).

princeton-vl/CornerNet `external/nms.pyx` (`soft_nms`, `soft_nms_merge`) as a
TensorFlow loop with fixed output shapes, so that it runs in `predict_step`, in a
SavedModel and as the builtin WHILE op of a TFLite file.
"""

import math
import numbers

import tensorflow as tf

from cornernet_tf.inference.decode import REJECTED_SCORE


def soft_nms(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    classes: tf.Tensor,
    *,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    max_detections: int = 100,
    merge: bool = False,
    weight_exp: float = 8.0,
    tl_scores: tf.Tensor | None = None,
    br_scores: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """Per-class Gaussian soft-NMS and the best `max_detections` per image.

    Official `external/nms.pyx` `soft_nms` with `method=2` (the CornerNet
    `exp_soft_nms`), run per class, then `max_per_image`: repeatedly take the
    highest-scoring remaining box; multiply the score of every remaining
    same-class box that overlaps it by `exp(-iou**2 / sigma)`, with the
    official "+1" pixel convention (`area = (x2-x1+1)(y2-y1+1)`, overlap when
    `min(x2)-max(x1)+1 > 0` in x and y); drop a box when a decay takes its
    score below `score_threshold` (as official, a box that is never decayed is
    kept whatever its score). Pairs with score -1 (rejected by the decoder)
    are not candidates.

    Selected scores never increase, so the first `max_detections` selections
    of one greedy pass over all classes at once (classes never decay each
    other) are exactly the best `max_detections` boxes of the official
    per-class runs: the loop runs `max_detections` steps over [B, N] tensors,
    with no per-class or per-image Python loop.

    Differences from the official Cython (both bugs there): (1) it writes a
    dropped box over with the last remaining one but leaves that last row in
    place, and the test script keeps every row, so stale duplicates with
    out-of-date scores reach the results; here only live boxes count. (2) Its
    swaps move columns 0-4 but not the tl/br scores (columns 5-6) that
    `soft_nms_merge` weights with; here each box keeps its own corner scores.
    `max_per_image` keeps every box tied with the 100th score; here exactly
    `max_detections`. `tf.image.non_max_suppression_with_scores` is not used:
    its Gaussian is `exp(-iou**2 / (2 sigma))` (pass sigma/2 to match), but its
    IoU has no "+1" and it drops boxes whose initial score is below the
    threshold, so it cannot reproduce the official scores.

    With `merge` (official `soft_nms_merge`, used for multi-scale testing), a
    selected box's coordinates become the weighted mean of itself and the
    boxes it decays at that step, x1/y1 weighted by tl score and x2/y2 by br
    score, times `(1 - decay)**weight_exp` for the decayed boxes.

    Args:
        boxes: [B, N, 4] (x1, y1, x2, y2) in image pixels.
        scores: [B, N] pair scores (-1 = rejected).
        classes: [B, N] integer class ids.
        sigma: Gaussian decay parameter (official 0.5).
        score_threshold: decayed boxes below it are dropped (official 0.001).
        max_detections: boxes returned per image (official `max_per_image`).
        merge: merge boxes as `soft_nms_merge`.
        weight_exp: exponent of the merge weights (official 8; 10 in the
            multi-scale config).
        tl_scores: [B, N] tl corner scores, needed with `merge`.
        br_scores: [B, N] br corner scores, needed with `merge`.

    Returns:
        A dict, detections sorted by score and padded with -1:
        `boxes` [B, M, 4] float32, `scores` [B, M] float32, `classes`
        [B, M] int32, `num_detections` [B] int32, with M = max_detections.
    """
    _check_positive_float("sigma", sigma)
    if not _is_real(score_threshold):
        raise ValueError(
            f"soft_nms: `score_threshold` must be a finite number, got {score_threshold!r}."
        )
    if isinstance(max_detections, bool) or not isinstance(max_detections, numbers.Integral):
        raise TypeError(f"soft_nms: `max_detections` must be an int, got {max_detections!r}.")
    if max_detections < 1:
        raise ValueError(f"soft_nms: `max_detections` must be >= 1, got {max_detections}.")
    if merge:
        if tl_scores is None or br_scores is None:
            raise ValueError("soft_nms: `merge=True` needs `tl_scores` and `br_scores`.")
        _check_positive_float("weight_exp", weight_exp, allow_zero=True)
    boxes = tf.cast(boxes, tf.float32)
    scores = tf.cast(scores, tf.float32)
    classes = tf.cast(classes, tf.int32)
    if boxes.shape.rank != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"soft_nms: `boxes` must be [B, N, 4], got shape {boxes.shape}.")
    if scores.shape.rank != 2 or classes.shape.rank != 2:
        raise ValueError(
            f"soft_nms: `scores` and `classes` must be [B, N], got {scores.shape} and "
            f"{classes.shape}."
        )
    if merge:
        tl_scores = tf.cast(tl_scores, tf.float32)
        br_scores = tf.cast(br_scores, tf.float32)
    else:
        tl_scores = br_scores = scores  # unused

    return _soft_nms_loop(
        boxes,
        scores,
        classes,
        tl_scores,
        br_scores,
        sigma=float(sigma),
        score_threshold=float(score_threshold),
        max_detections=int(max_detections),
        merge=bool(merge),
        weight_exp=float(weight_exp),
    )


# A graph even when called eagerly: the loop would otherwise run op by op.
@tf.function(reduce_retracing=True)
def _soft_nms_loop(
    boxes: tf.Tensor,
    scores: tf.Tensor,
    classes: tf.Tensor,
    tl_scores: tf.Tensor,
    br_scores: tf.Tensor,
    *,
    sigma: float,
    score_threshold: float,
    max_detections: int,
    merge: bool,
    weight_exp: float,
) -> dict[str, tf.Tensor]:
    """The greedy loop of `soft_nms` on validated float32/int32 tensors."""
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)  # [B, N] each
    areas = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    batch = tf.shape(scores)[0]
    num = tf.shape(scores)[1]
    neg_inf = tf.constant(-math.inf, tf.float32)

    def take(values, index):
        return tf.gather(values, index, batch_dims=1)

    def step(i, scores, alive, out_boxes, out_scores, out_classes, count):
        found = tf.reduce_any(alive, axis=-1)  # [B]
        best = tf.argmax(tf.where(alive, scores, neg_inf), axis=-1, output_type=tf.int32)  # [B]
        alive = alive & ~tf.one_hot(best, num, on_value=True, off_value=False, dtype=tf.bool)
        bx1, by1, bx2, by2 = (take(v, best)[:, None] for v in (x1, y1, x2, y2))  # [B, 1]
        best_class = take(classes, best)  # [B]
        iw = tf.minimum(bx2, x2) - tf.maximum(bx1, x1) + 1.0  # [B, N]
        ih = tf.minimum(by2, y2) - tf.maximum(by1, y1) + 1.0
        overlap = alive & (iw > 0.0) & (ih > 0.0) & (classes == best_class[:, None])
        inter = iw * ih
        iou = inter / ((bx2 - bx1 + 1.0) * (by2 - by1 + 1.0) + areas - inter)
        decay = tf.where(overlap, tf.exp(-tf.square(iou) / sigma), 1.0)  # [B, N]
        new_scores = scores * decay
        best_box = tf.concat([bx1, by1, bx2, by2], axis=-1)  # [B, 4]
        if merge:
            weight = tf.where(overlap, tf.pow(1.0 - decay, weight_exp), 0.0)  # [B, N]
            best_tl, best_br = take(tl_scores, best)[:, None], take(br_scores, best)[:, None]
            w_tl, w_br = tl_scores * weight, br_scores * weight
            sum_tl = best_tl + tf.reduce_sum(w_tl, -1, keepdims=True)  # [B, 1]
            sum_br = best_br + tf.reduce_sum(w_br, -1, keepdims=True)
            merged = tf.concat(
                [
                    (bx1 * best_tl + tf.reduce_sum(x1 * w_tl, -1, keepdims=True)) / sum_tl,
                    (by1 * best_tl + tf.reduce_sum(y1 * w_tl, -1, keepdims=True)) / sum_tl,
                    (bx2 * best_br + tf.reduce_sum(x2 * w_br, -1, keepdims=True)) / sum_br,
                    (by2 * best_br + tf.reduce_sum(y2 * w_br, -1, keepdims=True)) / sum_br,
                ],
                axis=-1,
            )
            valid = tf.concat([sum_tl > 0, sum_tl > 0, sum_br > 0, sum_br > 0], axis=-1)
            best_box = tf.where(valid, merged, best_box)
        alive = alive & ~(overlap & (new_scores < score_threshold))

        # Write detection i where one was found; padding (-1) elsewhere.
        slot = tf.one_hot(i, max_detections, on_value=True, off_value=False, dtype=tf.bool)
        write = slot[None, :] & found[:, None]  # [B, M]
        out_boxes = tf.where(write[..., None], best_box[:, None, :], out_boxes)
        out_scores = tf.where(write, take(scores, best)[:, None], out_scores)
        out_classes = tf.where(write, best_class[:, None], out_classes)
        count = count + tf.cast(found, tf.int32)
        return i + 1, new_scores, alive, out_boxes, out_scores, out_classes, count

    def cond(i, scores, alive, *unused):
        return (i < max_detections) & tf.reduce_any(alive)

    state = (
        tf.constant(0, tf.int32),
        scores,
        scores > REJECTED_SCORE,  # official `keep_inds = detections[:, 4] > -1`; drops NaN too
        tf.fill([batch, max_detections, 4], -1.0),
        tf.fill([batch, max_detections], -1.0),
        tf.fill([batch, max_detections], -1),
        tf.zeros([batch], tf.int32),
    )
    _, _, _, out_boxes, out_scores, out_classes, count = tf.while_loop(cond, step, state)
    return {
        "boxes": out_boxes,
        "scores": out_scores,
        "classes": out_classes,
        "num_detections": count,
    }


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _check_positive_float(name: str, value, allow_zero: bool = False) -> None:
    if not _is_real(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"soft_nms: `{name}` must be a finite number {bound}, got {value!r}.")
