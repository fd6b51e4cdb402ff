"""Corner decoding: raw CornerNet head outputs → scored box candidates.

Follows the official `_decode` (princeton-vl/CornerNet
`models/py_utils/kp_utils.py`): sigmoid heatmaps, 3x3 max-pool NMS, the top K
corners per heatmap over all classes, offsets added, all K×K pairs scored by
the mean corner score and rejected (score -1) when the classes differ, the
embeddings are farther apart than `ae_threshold`, or the box is inverted; the
best `num_dets` pairs are kept. NHWC tensors, batched and XLA-compilable.
`decode_outputs` adds the flip test on top. The test-time geometry lives in
`cornernet_tf.inference.geometry`, soft-NMS in `cornernet_tf.inference.soft_nms`.
"""

import math
import numbers
from collections.abc import Mapping

import tensorflow as tf

from cornernet_tf.inference.geometry import mirror_boxes

# Score given to rejected corner pairs (official `scores[...] = -1`).
REJECTED_SCORE = -1.0
# Keys of the model's inference outputs, in `decode_corners` argument order.
OUTPUT_KEYS = (
    "tl_heatmap",
    "br_heatmap",
    "tl_embedding",
    "br_embedding",
    "tl_offset",
    "br_offset",
)


def decode_corners(
    tl_heat: tf.Tensor,
    br_heat: tf.Tensor,
    tl_emb: tf.Tensor,
    br_emb: tf.Tensor,
    tl_off: tf.Tensor,
    br_off: tf.Tensor,
    *,
    k: int = 100,
    ae_threshold: float = 0.5,
    num_dets: int = 1000,
    kernel: int = 3,
    no_border: bool = False,
) -> dict[str, tf.Tensor]:
    """Decodes raw corner head outputs into the best `num_dets` corner pairs.

    Official `_decode` (princeton-vl/CornerNet `models/py_utils/kp_utils.py`):
    sigmoid; max-pool NMS on the heatmaps (keep a value where it equals the
    `kernel`x`kernel` pooled maximum); top `k` corners over all classes and
    positions per corner type; add the offsets; score every one of the `k`x`k`
    (tl, br) pairs as `(tl_score + br_score) / 2`; give score -1 to pairs whose
    classes differ, whose embeddings are more than `ae_threshold` apart, or
    whose br corner lies left of or above the tl corner; keep the `num_dets`
    best pairs; a pair's class is its tl corner's class.

    The official code ranks corners in a CHW layout (top-k index =
    `c*H*W + y*W + x`); here the layout is HWC (index = `(y*W + x)*C + c`).
    Top-k sorts by value, so both give the same corners in the same order
    unless two corner scores are exactly equal; `tf.math.top_k` then takes the
    lower HWC index first. Pairs are indexed `tl * k + br` as official, and
    equal pair scores (e.g. the many -1s) keep the lower pair index first.

    NaN inputs (a diverged model) never produce a kept pair: NaN heatmap
    values count as score 0, and pairs with a NaN embedding or coordinate are
    rejected (the official comparisons would keep them).

    Args:
        tl_heat: top-left heatmap logits, [B, H, W, C].
        br_heat: bottom-right heatmap logits, [B, H, W, C].
        tl_emb: top-left embeddings, [B, H, W, 1].
        br_emb: bottom-right embeddings, [B, H, W, 1].
        tl_off: top-left sub-pixel offsets (x, y), [B, H, W, 2].
        br_off: bottom-right sub-pixel offsets (x, y), [B, H, W, 2].
        k: corners kept per corner type (official `K`); at most C·H·W.
        ae_threshold: largest embedding distance of a kept pair.
        num_dets: pairs returned per image; at most `k`².
        kernel: odd window of the heatmap max-pool NMS (1 disables it).
        no_border: also reject pairs with a tl corner in the first row or
            column or a br corner in the last row or column of the map
            (official `no_border`, used by CornerNet-Saccade's crops).

    Returns:
        A dict of float32 tensors unless noted, pairs sorted by score:
        `boxes` [B, num_dets, 4] (x1, y1, x2, y2 in output-map pixels),
        `scores` [B, num_dets] (-1 for rejected pairs), `tl_scores` and
        `br_scores` [B, num_dets] (the two corner scores), `classes`
        [B, num_dets] int32.

    Raises:
        TypeError: non-floating inputs or non-integer `k`/`num_dets`/`kernel`.
        ValueError: wrong ranks or channel counts, mismatched shapes, or
            out-of-range `k`, `num_dets`, `kernel`, `ae_threshold`.
    """
    tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off = _validate_inputs(
        tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off, k, ae_threshold, num_dets, kernel
    )
    shape = tf.shape(tl_heat)
    batch, width = shape[0], shape[2]

    tl_scores, tl_classes, tl_pixels = _top_corners(tl_heat, k, kernel)  # [B, K] each
    br_scores, br_classes, br_pixels = _top_corners(br_heat, k, kernel)
    tl_x, tl_y = _corner_positions(tl_off, tl_pixels, width, batch)  # [B, K] each
    br_x, br_y = _corner_positions(br_off, br_pixels, width, batch)
    tl_tag = tf.gather(tf.reshape(tl_emb, [batch, -1]), tl_pixels, batch_dims=1)  # [B, K]
    br_tag = tf.gather(tf.reshape(br_emb, [batch, -1]), br_pixels, batch_dims=1)

    # All pairs: tl along axis 1, br along axis 2 (official pair index tl * K + br).
    scores = (tl_scores[:, :, None] + br_scores[:, None, :]) / 2.0  # [B, K, K]
    # Written as "keep" conditions so that NaN comparisons reject the pair.
    keep = (
        (tl_classes[:, :, None] == br_classes[:, None, :])
        & (tf.abs(tl_tag[:, :, None] - br_tag[:, None, :]) <= ae_threshold)
        & (br_x[:, None, :] >= tl_x[:, :, None])
        & (br_y[:, None, :] >= tl_y[:, :, None])
    )  # [B, K, K]
    if no_border:
        height = shape[1]
        tl_inside = (tl_pixels // width > 0) & (tl_pixels % width > 0)
        br_inside = (br_pixels // width < height - 1) & (br_pixels % width < width - 1)
        keep &= tl_inside[:, :, None] & br_inside[:, None, :]
    if tl_heat.shape[1:].num_elements() is None:
        # Corners of `_top_corners`' padding (score -1) pair with nothing.
        keep &= (tl_scores >= 0)[:, :, None] & (br_scores >= 0)[:, None, :]
    scores = tf.where(keep, scores, REJECTED_SCORE)
    scores, pair = tf.math.top_k(tf.reshape(scores, [batch, k * k]), k=num_dets)  # [B, D]
    tl_index, br_index = pair // k, pair % k  # [B, D]

    def take(values, index):
        return tf.gather(values, index, batch_dims=1)

    boxes = tf.stack(
        [take(tl_x, tl_index), take(tl_y, tl_index), take(br_x, br_index), take(br_y, br_index)],
        axis=-1,
    )  # [B, D, 4]
    return {
        "boxes": boxes,
        "scores": scores,
        "tl_scores": take(tl_scores, tl_index),
        "br_scores": take(br_scores, br_index),
        "classes": take(tl_classes, tl_index),
    }


def _top_corners(heat: tf.Tensor, k: int, kernel: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Sigmoid, max-pool NMS and top-k of one heatmap (official `_nms` + `_topk`).

    Args:
        heat: logits [B, H, W, C] float32.
        k: corners to keep.
        kernel: odd NMS window.

    Returns:
        scores [B, K] float32, classes [B, K] int32 and flat pixel indices
        `y*W + x` [B, K] int32.
    """
    heat = tf.sigmoid(heat)
    heat = tf.where(tf.math.is_nan(heat), tf.zeros_like(heat), heat)  # [B, H, W, C]
    if kernel > 1:
        # "SAME" pads with -inf for max-pooling: the official `padding=(k-1)//2`.
        pooled = tf.nn.max_pool2d(heat, ksize=kernel, strides=1, padding="SAME")
        heat = tf.where(tf.equal(pooled, heat), heat, tf.zeros_like(heat))
    shape = tf.shape(heat)
    batch, num_classes = shape[0], shape[3]
    heat = tf.reshape(heat, [batch, -1])
    if heat.shape[1] is None:
        # A map of unknown size may hold fewer than k values (a small image's
        # canvas): -1 fills the rest, below every real score, and
        # `decode_corners` rejects the pairs of such corners. (A known size
        # below k is refused by `_validate_inputs`.)
        heat = tf.pad(heat, [[0, 0], [0, tf.maximum(k - tf.shape(heat)[1], 0)]], constant_values=-1)
    scores, flat = tf.math.top_k(heat, k=k)  # [B, K]
    flat = tf.where(scores < 0, tf.zeros_like(flat), flat)  # padding: any real pixel
    # HWC flat index (y*W + x)*C + c; the official CHW one is c*H*W + y*W + x.
    return scores, flat % num_classes, flat // num_classes


def _corner_positions(
    offsets: tf.Tensor, pixels: tf.Tensor, width: tf.Tensor, batch: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor]:
    """Sub-pixel corner positions `(x + dx, y + dy)` at the given pixels.

    Args:
        offsets: [B, H, W, 2] (dx, dy).
        pixels: flat pixel indices `y*W + x`, [B, K] int32.
        width: W, scalar int32.
        batch: B, scalar int32.

    Returns:
        x and y, [B, K] float32 each.
    """
    gathered = tf.gather(tf.reshape(offsets, [batch, -1, 2]), pixels, batch_dims=1)  # [B, K, 2]
    xs = tf.cast(pixels % width, tf.float32) + gathered[..., 0]
    ys = tf.cast(pixels // width, tf.float32) + gathered[..., 1]
    return xs, ys


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"decode_corners: `{name}` must be an int, got {value!r}.")
    if value < minimum:
        raise ValueError(f"decode_corners: `{name}` must be >= {minimum}, got {value}.")


def _validate_inputs(
    tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off, k, ae_threshold, num_dets, kernel
):
    """Checks arguments; returns the six inputs as float32 tensors."""
    _check_int("k", k, 1)
    _check_int("num_dets", num_dets, 1)
    _check_int("kernel", kernel, 1)
    if kernel % 2 == 0:
        raise ValueError(
            f"decode_corners: `kernel` must be odd (the NMS window is centred), got {kernel}."
        )
    if num_dets > k * k:
        raise ValueError(
            f"decode_corners: `num_dets` ({num_dets}) exceeds the k*k = {k * k} corner pairs; "
            "lower `num_dets` or raise `k`."
        )
    if (
        isinstance(ae_threshold, bool)
        or not isinstance(ae_threshold, numbers.Real)
        or not math.isfinite(ae_threshold)
        or ae_threshold < 0
    ):
        raise ValueError(
            f"decode_corners: `ae_threshold` must be a finite number >= 0, got {ae_threshold!r}."
        )

    names = ("tl_heat", "br_heat", "tl_emb", "br_emb", "tl_off", "br_off")
    tensors = []
    for name, value in zip(names, (tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off), strict=True):
        tensor = tf.convert_to_tensor(value)
        if not tensor.dtype.is_floating:
            raise TypeError(
                f"decode_corners: `{name}` must be a floating tensor of raw head outputs, "
                f"got dtype {tensor.dtype.name}."
            )
        if tensor.shape.rank is not None and tensor.shape.rank != 4:
            raise ValueError(
                f"decode_corners: `{name}` must be NHWC with rank 4, got shape {tensor.shape}."
            )
        tensors.append(tf.cast(tensor, tf.float32))

    heat_shape = tensors[0].shape
    expected_channels = {
        "br_heat": heat_shape[-1],
        "tl_emb": 1,
        "br_emb": 1,
        "tl_off": 2,
        "br_off": 2,
    }
    for name, tensor in zip(names[1:], tensors[1:], strict=True):
        channels = expected_channels[name]
        if tensor.shape.rank is not None and tensor.shape[-1] is not None and channels is not None:
            if tensor.shape[-1] != channels:
                raise ValueError(
                    f"decode_corners: `{name}` must have {channels} channels, got shape "
                    f"{tensor.shape}."
                )
        if not heat_shape[:-1].is_compatible_with(tensor.shape[:-1]):
            raise ValueError(
                f"decode_corners: `{name}` has batch/height/width {tensor.shape[:-1]} but "
                f"`tl_heat` has {heat_shape[:-1]}; pass outputs of the same images."
            )
    if heat_shape.rank is not None and None not in heat_shape[1:]:
        candidates = heat_shape[1] * heat_shape[2] * heat_shape[3]
        if k > candidates:
            raise ValueError(
                f"decode_corners: `k` ({k}) exceeds the C*H*W = {candidates} heatmap values; "
                "lower `k`."
            )
    return tensors


def decode_outputs(
    outputs: Mapping[str, tf.Tensor],
    *,
    flip_test: bool = False,
    k: int = 100,
    ae_threshold: float = 0.5,
    num_dets: int = 1000,
    kernel: int = 3,
) -> dict[str, tf.Tensor]:
    """Decodes the model's inference outputs, optionally as flip-test pairs.

    With `flip_test`, the batch holds 2B images: the B test images first,
    then the same B images flipped left-right in the same order (e.g.
    `tf.concat([x, tf.reverse(x, [2])], 0)`). Each is decoded on its own
    (`decode_corners`); the flipped detections are mirrored back with
    `x' = W_out - x` and appended after the image's own, as the official
    `kp_detection` concatenates them.

    Args:
        outputs: dict with `tl_heatmap`, `br_heatmap` [N, H, W, C],
            `tl_embedding`, `br_embedding` [N, H, W, 1], `tl_offset`,
            `br_offset` [N, H, W, 2] (N = 2B with `flip_test`, else B).
        flip_test: whether the batch is [images, flipped images].
        k: see `decode_corners`.
        ae_threshold: see `decode_corners`.
        num_dets: see `decode_corners`.
        kernel: see `decode_corners`.

    Returns:
        The `decode_corners` dict with leading shape [B, D], D = 2·num_dets
        with `flip_test`, else num_dets.
    """
    if not isinstance(outputs, Mapping):
        raise TypeError(
            f"decode_outputs: `outputs` must be the dict of head outputs, got "
            f"{type(outputs).__name__}."
        )
    missing = [key for key in OUTPUT_KEYS if key not in outputs]
    if missing:
        raise ValueError(
            f"decode_outputs: `outputs` lacks {missing}; pass the inference outputs of "
            f"CornerNet (keys {list(OUTPUT_KEYS)})."
        )
    heads = [outputs[key] for key in OUTPUT_KEYS]
    decoded = decode_corners(
        *heads, k=k, ae_threshold=ae_threshold, num_dets=num_dets, kernel=kernel
    )
    if not flip_test:
        return decoded
    heat = tf.convert_to_tensor(heads[0])
    if heat.shape.rank is not None and heat.shape[0] is not None and heat.shape[0] % 2:
        raise ValueError(
            f"decode_outputs: with `flip_test` the batch must hold image/flipped-image "
            f"halves, got an odd batch of {heat.shape[0]}."
        )
    half = tf.shape(heat)[0] // 2
    out_width = tf.shape(heat)[2]
    merged = {}
    for key, value in decoded.items():
        original, flipped = value[:half], value[half:]
        if key == "boxes":
            flipped = mirror_boxes(flipped, out_width)
        merged[key] = tf.concat([original, flipped], axis=1)
    return merged
