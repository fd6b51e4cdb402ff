"""CornerNet-Saccade attention targets: object centres on three maps, by object size.

Follows `create_attention_mask` of princeton-vl/CornerNet-Lite
`core/sample/cornernet_saccade.py` with the settings of `core/dbs/detection.py`
(`att_ranges`, `att_ratios`, `att_sizes`), as fixed-shape TensorFlow that runs
inside `tf.data.Dataset.map`. Nothing here knows about Keras models.
"""

from __future__ import annotations

import math

import tensorflow as tf

__all__ = ["ATTENTION_RANGES", "attention_targets"]

# Longer box side (input pixels, both ends inclusive) each attention map
# answers for, deepest map first (official `att_ranges`). A box whose longer
# side is exactly 32 or 96 is marked on two maps, as in the official code.
ATTENTION_RANGES = {"large": (96.0, 256.0), "medium": (32.0, 96.0), "small": (0.0, 32.0)}


def attention_targets(
    boxes: tf.Tensor,
    output_size: tuple[int, int] | int,
    *,
    output_stride: int = 4,
    valid: tf.Tensor | None = None,
) -> dict[str, tf.Tensor]:
    """The attention maps of one training image.

    For every box and every map whose size range (`ATTENTION_RANGES`) holds
    the box's longer side, the map pixel under the box centre is set to 1;
    everything else is 0. The maps are those of `CornerNet(attention=True)`:
    the small-object map at the heads' resolution, the medium one at half and
    the large one at a quarter of it, i.e. official `att_ratios` 4, 8, 16
    input pixels per map pixel at output stride 4. The pixel is the centre
    divided by that ratio and truncated toward zero, in float32.

    Args:
        boxes: `[N, 4]` boxes (x1, y1, x2, y2) in pixels of the network input
            (after cropping, scaling, flipping and clipping to the crop, as
            the official sampler passes them).
        output_size: `(height, width)` of the heads' maps (or one side for
            square maps), e.g. 64 for 255x255 inputs.
        output_stride: input pixels per head-map pixel (4 for CornerNet-Saccade).
        valid: optional `[N]` booleans; False rows (padding) mark nothing.

    Returns:
        `attention_large`, `attention_medium`, `attention_small`: float32 maps
        `[ceil(h / 4), ceil(w / 4), 1]`, `[ceil(h / 2), ceil(w / 2), 1]` and
        `[h, w, 1]` holding 0 or 1. A centre outside its map (impossible for
        boxes clipped to the input) marks nothing.

    Raises:
        ValueError: a size or stride is not a positive integer, or `boxes` is
            not `[N, 4]`.
    """
    height, width = _check_size(output_size)
    if not isinstance(output_stride, int) or isinstance(output_stride, bool) or output_stride < 1:
        raise ValueError(
            f"attention_targets: `output_stride` must be a positive int, got {output_stride!r}."
        )
    boxes = tf.convert_to_tensor(boxes)
    if boxes.shape.rank != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"attention_targets: `boxes` must be [N, 4] (x1, y1, x2, y2), got {boxes.shape}."
        )
    boxes = tf.cast(boxes, tf.float32)
    if valid is None:
        valid = tf.ones(tf.shape(boxes)[:1], tf.bool)
    valid = tf.cast(valid, tf.bool)
    longer = tf.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    center_x = (boxes[:, 0] + boxes[:, 2]) / 2.0
    center_y = (boxes[:, 1] + boxes[:, 3]) / 2.0
    maps = {}
    levels = len(ATTENTION_RANGES)
    for level, (name, (low, high)) in enumerate(ATTENTION_RANGES.items()):
        shrink = 2 ** (levels - 1 - level)  # 4, 2, 1: deepest map first
        ratio = float(output_stride * shrink)
        map_h, map_w = math.ceil(height / shrink), math.ceil(width / shrink)
        # Official `(x / ratio).astype(np.int32)`: truncation toward zero.
        x = tf.cast(center_x / ratio, tf.int32)
        y = tf.cast(center_y / ratio, tf.int32)
        inside = (x >= 0) & (x < map_w) & (y >= 0) & (y < map_h)
        marked = valid & (longer >= low) & (longer <= high) & inside
        indices = tf.stack([tf.where(marked, y, 0), tf.where(marked, x, 0)], axis=-1)
        counts = tf.scatter_nd(indices, tf.cast(marked, tf.float32), [map_h, map_w])
        maps[f"attention_{name}"] = tf.minimum(counts, 1.0)[..., None]
    return maps


def _check_size(output_size) -> tuple[int, int]:
    sides = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
    if len(sides) != 2 or not all(
        isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in sides
    ):
        raise ValueError(
            "attention_targets: `output_size` must be a positive int or (height, width) of "
            f"positive ints, got {output_size!r}."
        )
    return sides
