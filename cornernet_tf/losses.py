"""CornerNet losses: focal, pull/push embedding and offset.

Follows the official `AELoss` of princeton-vl/CornerNet
(`models/py_utils/kp.py`) and its helpers `_neg_loss`, `_ae_loss`,
`_regr_loss`, `_sigmoid` and `_tranpose_and_gather_feat`
(`models/py_utils/kp_utils.py`), in NHWC. Every loss is computed in float32,
whatever the dtype of the network outputs (mixed precision).
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = [
    "cornernet_loss",
    "embedding_loss",
    "focal_loss",
    "gather_at_indices",
    "offset_loss",
]

# Official `_sigmoid` clamps the heatmap probabilities to [1e-4, 1 - 1e-4].
_PROB_EPS = 1e-4
# Official `+ 1e-4` guards on every object count.
_NUM_EPS = 1e-4

_HEADS = ("heatmap", "embedding", "offset")
_TARGET_KEYS = (
    "tl_heatmap",
    "br_heatmap",
    "tl_index",
    "br_index",
    "tl_offset",
    "br_offset",
    "mask",
)


def focal_loss(logits: tf.Tensor, target: tf.Tensor, mask: tf.Tensor | None = None) -> tf.Tensor:
    """Penalty-reduced pixel-wise focal loss on corner heatmaps (official `_neg_loss`).

    With `p = clip(sigmoid(logits), 1e-4, 1 - 1e-4)`: positives (`target == 1`)
    contribute `log(p) (1 - p)^2`, negatives (`target < 1`) contribute
    `log(1 - p) p^2 (1 - target)^4`. The negated sum over the whole batch is
    divided by the number of positives; with no positive at all, only the
    negative sum is returned.

    With a `mask` (CornerNet-Saccade's `_focal_loss_mask` of
    princeton-vl/CornerNet-Lite), every pixel's contribution is multiplied
    by it; the number of positives is still counted unmasked, as officially.

    Args:
        logits: `[B, H, W, C]` raw heatmap logits, any float dtype.
        target: `[B, H, W, C]` ground-truth heatmaps in [0, 1] (from
            `encode_targets`, batched).
        mask: optional `[B, H, W, C]` weights, 0 at the pixels to ignore.

    Returns:
        A float32 scalar.
    """
    logits = tf.cast(logits, tf.float32)
    target = tf.cast(target, tf.float32)
    if not logits.shape.is_compatible_with(target.shape):
        raise ValueError(
            f"focal_loss: `logits` {logits.shape} and `target` {target.shape} must have the "
            "same shape [B, H, W, C]."
        )
    weight = 1.0
    if mask is not None:
        weight = tf.cast(mask, tf.float32)
        if not weight.shape.is_compatible_with(target.shape):
            raise ValueError(
                f"focal_loss: `mask` {weight.shape} must have the shape of `target` {target.shape}."
            )
    prob = tf.clip_by_value(tf.sigmoid(logits), _PROB_EPS, 1.0 - _PROB_EPS)
    positive = tf.equal(target, 1.0)
    negative = target < 1.0
    pos_loss = tf.reduce_sum(
        tf.where(positive, tf.math.log(prob) * tf.square(1.0 - prob) * weight, 0.0)
    )
    neg_weight = tf.square(tf.square(1.0 - target)) * weight
    neg_loss = tf.reduce_sum(
        tf.where(negative, tf.math.log(1.0 - prob) * tf.square(prob) * neg_weight, 0.0)
    )
    num_pos = tf.reduce_sum(tf.cast(positive, tf.float32))
    return tf.where(num_pos > 0.0, -(pos_loss + neg_loss) / tf.maximum(num_pos, 1.0), -neg_loss)


def embedding_loss(tl: tf.Tensor, br: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Associative-embedding pull and push losses (official `_ae_loss`).

    Per image with N objects and `e_k = (tl_k + br_k) / 2`:

        pull = sum_k [(tl_k - e_k)^2 + (br_k - e_k)^2] / (N + 1e-4)
        push = sum_{j,k} [relu(1 - |e_j - e_k|) - 1 / (N + 1e-4)] / ((N - 1) N + 1e-4)

    over the N^2 ordered pairs, diagonal included (each diagonal term is a
    constant; together they cancel the `- 1/N` terms up to 1e-4, leaving the
    off-diagonal mean). Both are summed over the images of the batch.

    Deviation: for an image with exactly one object the official push is the
    constant `(1 - 1/(1 + 1e-4)) / 1e-4 ~= 0.9999` (one diagonal term) with zero
    gradient; it is dropped here, so such images add 0 to `push`. Values equal
    the official ones for images with 0 or >= 2 objects, gradients always.

    Args:
        tl: `[B, M]` (or `[B, M, 1]`) top-left embeddings gathered at the tag
            indices.
        br: `[B, M]` (or `[B, M, 1]`) bottom-right embeddings.
        mask: `[B, M]`, 1 for real objects, 0 for padding slots.

    Returns:
        `(pull, push)`, float32 scalars.
    """
    tl = _squeeze_last(tf.cast(tl, tf.float32), "tl")
    br = _squeeze_last(tf.cast(br, tf.float32), "br")
    mask = tf.cast(mask, tf.float32)
    if not (tl.shape.is_compatible_with(br.shape) and tl.shape.is_compatible_with(mask.shape)):
        raise ValueError(
            f"embedding_loss: `tl` {tl.shape}, `br` {br.shape} and `mask` {mask.shape} must "
            "all have shape [B, M]."
        )
    num = tf.reduce_sum(mask, axis=1, keepdims=True)  # [B, 1]
    mean = (tl + br) / 2.0  # [B, M]

    pull = (tf.square(tl - mean) + tf.square(br - mean)) / (num + _NUM_EPS)  # [B, M]
    pull = tf.reduce_sum(tf.where(mask > 0.0, pull, 0.0))

    pair_mask = mask[:, :, None] * mask[:, None, :]  # [B, M, M]
    pair_mask *= tf.cast(num >= 2.0, tf.float32)[:, :, None]  # drop the 1-object constant
    num = num[:, :, None]  # [B, 1, 1]
    dist = tf.nn.relu(1.0 - tf.abs(mean[:, None, :] - mean[:, :, None]))  # [B, M, M]
    dist = (dist - 1.0 / (num + _NUM_EPS)) / ((num - 1.0) * num + _NUM_EPS)
    push = tf.reduce_sum(tf.where(pair_mask > 0.0, dist, 0.0))
    return pull, push


def offset_loss(pred: tf.Tensor, target: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Smooth-L1 corner offset loss (official `_regr_loss`).

    Smooth L1 with beta 1 (`0.5 d^2` for `|d| < 1`, else `|d| - 0.5`), summed
    over both coordinates of the masked objects, divided by the number of
    objects in the batch + 1e-4.

    Args:
        pred: `[B, M, 2]` predicted offsets gathered at the tag indices.
        target: `[B, M, 2]` ground-truth offsets.
        mask: `[B, M]`, 1 for real objects.

    Returns:
        A float32 scalar.
    """
    pred = tf.cast(pred, tf.float32)
    target = tf.cast(target, tf.float32)
    mask = tf.cast(mask, tf.float32)
    if not pred.shape.is_compatible_with(target.shape) or pred.shape.rank != 3:
        raise ValueError(
            f"offset_loss: `pred` {pred.shape} and `target` {target.shape} must both have "
            "shape [B, M, 2]."
        )
    if not mask.shape.is_compatible_with(pred.shape[:-1]):
        raise ValueError(f"offset_loss: `mask` {mask.shape} must have shape [B, M].")
    # Huber with delta 1 is smooth L1 with beta 1; the trailing axis of size 1
    # makes keras' mean over the last axis a no-op, leaving per-element values.
    per_element = keras.losses.huber(target[..., None], pred[..., None], delta=1.0)  # [B, M, 2]
    selected = tf.broadcast_to(mask[:, :, None] > 0.0, tf.shape(per_element))
    total = tf.reduce_sum(tf.where(selected, per_element, 0.0))
    return total / (tf.reduce_sum(mask) + _NUM_EPS)


def gather_at_indices(feature_map: tf.Tensor, index: tf.Tensor) -> tf.Tensor:
    """Feature vectors at flat `y * W + x` positions (official `_tranpose_and_gather_feat`).

    Args:
        feature_map: `[B, H, W, D]`.
        index: `[B, M]` integer flat indices `iy * W + ix` into the H x W map.

    Returns:
        `[B, M, D]`, same dtype as `feature_map`.
    """
    if feature_map.shape.rank != 4:
        raise ValueError(
            f"gather_at_indices: `feature_map` must have shape [B, H, W, D], got "
            f"{feature_map.shape}."
        )
    shape = tf.shape(feature_map)
    flat = tf.reshape(feature_map, [shape[0], shape[1] * shape[2], shape[3]])  # [B, H W, D]
    return tf.gather(flat, tf.cast(index, tf.int32), axis=1, batch_dims=1)  # [B, M, D]


def cornernet_loss(
    outputs: dict[str, tf.Tensor],
    targets: dict[str, tf.Tensor],
    *,
    num_stacks: int,
    pull_weight: float = 0.1,
    push_weight: float = 0.1,
    offset_weight: float = 1.0,
) -> dict[str, tf.Tensor]:
    """The CornerNet training loss over all stacks (official `AELoss.forward`).

    For every stack s the focal loss of both corner heatmaps, the pull/push
    losses of the embeddings and the offset losses of both corners are summed;
    the total over stacks is divided by `num_stacks` (intermediate
    supervision):

        loss = sum_s [focal_tl + focal_br + w_pull pull + w_push push
                      + w_off (offset_tl + offset_br)] / num_stacks

    Args:
        outputs: raw head outputs, keys `tl_heatmap_{s}`, `br_heatmap_{s}`
            `[B, H, W, C]`, `tl_embedding_{s}`, `br_embedding_{s}` `[B, H, W, 1]`,
            `tl_offset_{s}`, `br_offset_{s}` `[B, H, W, 2]` for s < num_stacks.
        targets: batched `encode_targets` output: `tl_heatmap`, `br_heatmap`
            `[B, H, W, C]`, `tl_index`, `br_index` `[B, M]`, `tl_offset`,
            `br_offset` `[B, M, 2]`, `mask` `[B, M]`; when present (the
            CornerNet-Saccade sampler), `tl_valid` and `br_valid`
            `[B, H, W, C]` mask the focal loss of their corner, as the
            official `CornerNet_Saccade_Loss` does. Other keys are ignored.
        num_stacks: number of hourglass stacks whose heads are supervised.
        pull_weight: weight of the pull loss (official 0.1).
        push_weight: weight of the push loss (official 0.1).
        offset_weight: weight of the offset loss (official 1).

    Returns:
        Float32 scalars: `loss` (the total above) and its unweighted parts
        `focal`, `pull`, `push`, `offset`, each summed over stacks and divided by
        `num_stacks`, so `loss = focal + w_pull pull + w_push push + w_off offset`.
    """
    if not isinstance(num_stacks, int) or isinstance(num_stacks, bool) or num_stacks < 1:
        raise ValueError(
            f"cornernet_loss: `num_stacks` must be a positive int, got {num_stacks!r}."
        )
    missing = [
        f"{corner}_{head}_{s}"
        for s in range(num_stacks)
        for head in _HEADS
        for corner in ("tl", "br")
        if f"{corner}_{head}_{s}" not in outputs
    ]
    if missing:
        raise ValueError(
            f"cornernet_loss: `outputs` lacks {missing} for num_stacks={num_stacks}; it has "
            f"{sorted(outputs)}."
        )
    missing = [key for key in _TARGET_KEYS if key not in targets]
    if missing:
        raise ValueError(
            f"cornernet_loss: `targets` lacks {missing}; pass the batched `encode_targets` output."
        )

    mask = targets["mask"]
    parts = {"focal": 0.0, "pull": 0.0, "push": 0.0, "offset": 0.0}
    for s in range(num_stacks):
        for corner in ("tl", "br"):
            parts["focal"] += focal_loss(
                outputs[f"{corner}_heatmap_{s}"],
                targets[f"{corner}_heatmap"],
                targets.get(f"{corner}_valid"),
            )
            pred_offset = gather_at_indices(
                outputs[f"{corner}_offset_{s}"], targets[f"{corner}_index"]
            )
            parts["offset"] += offset_loss(pred_offset, targets[f"{corner}_offset"], mask)
        pull, push = embedding_loss(
            gather_at_indices(outputs[f"tl_embedding_{s}"], targets["tl_index"]),
            gather_at_indices(outputs[f"br_embedding_{s}"], targets["br_index"]),
            mask,
        )
        parts["pull"] += pull
        parts["push"] += push
    parts = {name: tf.cast(value, tf.float32) / num_stacks for name, value in parts.items()}
    parts["loss"] = (
        parts["focal"]
        + pull_weight * parts["pull"]
        + push_weight * parts["push"]
        + offset_weight * parts["offset"]
    )
    return parts


def _squeeze_last(x: tf.Tensor, name: str) -> tf.Tensor:
    if x.shape.rank == 3 and x.shape[-1] == 1:
        return x[..., 0]
    if x.shape.rank != 2:
        raise ValueError(
            f"embedding_loss: `{name}` must have shape [B, M] or [B, M, 1], got {x.shape}."
        )
    return x
