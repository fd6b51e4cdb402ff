"""CornerNet training targets: corner heatmaps, tag indices, offsets.

Follows the official `sample/coco.py` (`kp_detection`) and `sample/utils.py`
(`gaussian_radius`, `gaussian2D`, `draw_gaussian`) of princeton-vl/CornerNet,
rewritten as fixed-shape, vectorised TensorFlow so that it runs inside
`tf.data.Dataset.map` and under `tf.function(jit_compile=True)`. Nothing here
knows about Keras models.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from cornernet_tf.utils.checks import check_count

__all__ = ["encode_targets", "gaussian_radius"]

TensorLike = tf.Tensor | np.ndarray | float | int


def gaussian_radius(height: TensorLike, width: TensorLike, min_overlap: float) -> tf.Tensor:
    """Corner-Gaussian radius for boxes of the given size (official HEAD formula).

    The radius r is the smallest of the three roots of the official
    `sample/utils.py::gaussian_radius`, one per way of shifting the corners by r
    and keeping an IoU of at least `min_overlap` with the true box:

        r1 = (b1 - sqrt(b1^2 - 4 c1)) / 2,       b1 = h + w,       c1 = wh(1-o)/(1+o)
        r2 = (b2 - sqrt(b2^2 - 16 c2)) / 8,      b2 = 2(h + w),    c2 = (1-o)wh
        r3 = (b3 + sqrt(b3^2 - 16 o c3)) / (8o), b3 = -2o(h + w),  c3 = (o-1)wh

    These are the official expressions (denominators included), reproduced
    operation for operation so that the truncated radius is bit-identical.

    Args:
        height: box heights, any shape (broadcast against `width`), in the units
            of the heatmap (the official code passes `ceil(h * ratio)`).
        width: box widths, same units.
        min_overlap: the IoU `o` in (0, 1) a box through shifted corners must keep
            (`gaussian_iou`: 0.3 in the paper, in the official config since
            commit 3e71377 and in this project's configs).

    Returns:
        The radii, broadcast shape of `height` and `width`, not truncated to an
        integer. Floating tensors keep their dtype; Python numbers, numpy arrays
        and integer tensors are computed in float64 like the official numpy code.

    Raises:
        ValueError: if `min_overlap` is not in (0, 1), or (eagerly) if a size is
            negative or not finite.
    """
    if isinstance(min_overlap, numbers.Real) and not 0.0 < float(min_overlap) < 1.0:
        raise ValueError(
            f"gaussian_radius: `min_overlap` must be in (0, 1) (an IoU), got {min_overlap!r}."
        )
    height = _as_float(height)
    width = tf.cast(_as_float(width), height.dtype)
    for name, value in (("height", height), ("width", width)):
        if tf.executing_eagerly() and not bool(
            tf.reduce_all(tf.math.is_finite(value) & (value >= 0))
        ):
            raise ValueError(
                f"gaussian_radius: `{name}` must be finite and >= 0, got {value.numpy()!r}."
            )
    # tf.cast(0.3, tf.float64) would go through float32 and round the IoU.
    if isinstance(min_overlap, numbers.Real):
        o = tf.constant(float(min_overlap), height.dtype)
    else:
        o = tf.cast(min_overlap, height.dtype)
    # Same operations in the same order as the official float64 code: the
    # radius is truncated to an integer, so one ulp matters (sizes 23 x 60 give
    # exactly 7.0 officially, 6.999... if (1 - o) * w * h is reassociated).
    # Grappler's MinimizeBroadcasts reorders chains of Mul by operand shape,
    # so the second product of each such chain is a MulNoNan, which it leaves
    # alone (the same value for finite operands).
    hw_sum = height + width

    b1 = hw_sum
    c1 = width * height * (1 - o) / (1 + o)
    r1 = (b1 - tf.sqrt(b1 * b1 - 4 * c1)) / 2

    b2 = 2 * hw_sum
    c2 = tf.math.multiply_no_nan((1 - o) * width, height)
    r2 = (b2 - tf.sqrt(b2 * b2 - 16 * c2)) / 8

    a3 = 4 * o
    b3 = -2 * o * hw_sum
    c3 = tf.math.multiply_no_nan((o - 1) * width, height)
    r3 = (b3 + tf.sqrt(b3 * b3 - 4 * a3 * c3)) / (2 * a3)
    return tf.minimum(tf.minimum(r1, r2), r3)


def encode_targets(
    boxes: TensorLike,
    labels: TensorLike,
    *,
    input_size: int | tuple[int, int],
    output_size: int | tuple[int, int],
    num_classes: int,
    max_objects: int = 128,
    gaussian_iou: float = 0.3,
) -> dict[str, tf.Tensor]:
    """Encodes one image's boxes as CornerNet targets (official `kp_detection`).

    Per box, for each corner (tl = (x1, y1), br = (x2, y2)) with
    `ratio = output / input` per axis: `fx = x * ratio`, `ix = int(fx)`
    (truncation), offset target `fx - ix`, tag index `iy * W_out + ix`. The
    radius is `max(0, int(gaussian_radius(ceil(h * ratio), ceil(w * ratio))))`
    and a Gaussian of diameter `2r + 1`, sigma `(2r + 1) / 6`, restricted to the
    `(2r + 1)^2` window around `(ix, iy)` and clipped at the map borders, is
    drawn by elementwise max into the box's class channel of each heatmap.

    Implementation: the Gaussians are evaluated only on the windows they can
    cover (one square per corner, of side `2 r_max + 1` for the largest kept
    radius, kept inside the map) as outer products of two 1-D Gaussians, and
    drawn with a scatter-max onto zero maps, which is the official elementwise
    max. With a static number of boxes in a graph (XLA) the window is the
    whole map. Pass the image's boxes unpadded: the work grows with the
    number of rows N (up to `max_objects`), and padding rows would be counted
    as invalid.
    Geometry (ratios, corners, radii, offsets) is computed in float64 like the
    official numpy code, so integer cells, radii and offsets are bit-identical
    to it; heatmap values agree to ~1e-7.

    Differences from the official code, all for inputs it never produces:

    * Corner cells are clamped to `[0, W_out - 1] x [0, H_out - 1]`. The
      official sampler clips boxes to `[0, W_in - 1]` first, so `fx < W_out`
      and the clamp never fires; for a corner exactly on the right/bottom edge
      (`fx == W_out`) the official code would draw nothing and emit an index
      that wraps into the next row. The offset stays `fx - ix` (1.0 there), so
      cell + offset still reconstructs `fx`.
    * The official `gaussian2D` zeroes values below `eps * max`; inside the
      `(2r + 1)^2` window every value is at least `exp(-9)`, so that step never
      changes anything and is omitted.
    * More than `max_objects` boxes: the official code would fail (IndexError);
      here the first `max_objects` valid boxes are kept - in the heatmaps too -
      and the rest are counted in `num_dropped`.

    Invalid boxes: when called eagerly with concrete values, boxes with NaN/inf
    coordinates, `x2 < x1` or `y2 < y1`, or labels outside `[0, num_classes)`
    raise ValueError. In graph mode (`tf.data`, `tf.function`) values are not
    known at trace time, so such boxes are dropped from every target and counted
    in `num_invalid` (the data pipeline reports the count) instead of failing
    the whole pipeline.

    Args:
        boxes: `[N, 4]` boxes `(x1, y1, x2, y2)` in input pixels (any real
            dtype). N may be 0 or dynamic.
        labels: `[N]` integer class ids, 0-based.
        input_size: `(height, width)` of the network input, or one int (square).
        output_size: `(height, width)` of the heatmaps, or one int (square).
        num_classes: number of heatmap channels C.
        max_objects: M, the fixed number of tag slots (official `max_tag_len`).
        gaussian_iou: `min_overlap` of `gaussian_radius` (0.3, the paper's value).

    Returns:
        A dict of fixed-shape tensors:
        `tl_heatmap`, `br_heatmap`: `[H_out, W_out, C]` float32.
        `tl_index`, `br_index`: `[M]` int32, `iy * W_out + ix`, 0 in empty slots.
        `tl_offset`, `br_offset`: `[M, 2]` float32, `(fx - ix, fy - iy)`.
        `mask`: `[M]` float32, 1 for the slots holding a box.
        `num_dropped`: int32 scalar, valid boxes beyond `max_objects`.
        `num_invalid`: int32 scalar, boxes dropped as invalid (graph mode).

    Raises:
        ValueError: bad sizes/arguments, bad static shapes, or (eagerly) invalid
            box values or labels.
        TypeError: non-integer `labels` or non-numeric `boxes`.
    """
    in_h, in_w = _check_size("input_size", input_size)
    out_h, out_w = _check_size("output_size", output_size)
    check_count(num_classes, "num_classes", "encode_targets")
    check_count(max_objects, "max_objects", "encode_targets")
    if not isinstance(gaussian_iou, numbers.Real) or not 0.0 < float(gaussian_iou) < 1.0:
        raise ValueError(
            f"encode_targets: `gaussian_iou` must be a number in (0, 1), got {gaussian_iou!r}."
        )
    boxes, labels = _check_boxes_and_labels(boxes, labels, num_classes)
    num_slots = max_objects
    rows = _kept_rows(boxes, labels, num_classes, num_slots)
    kept, kept_boxes = rows["kept"], rows["boxes"]
    ratio_w = out_w / in_w
    ratio_h = out_h / in_h
    kx1, ky1, kx2, ky2 = tf.unstack(kept_boxes, num=4, axis=1)
    fx = tf.stack([kx1, kx2], axis=1) * ratio_w  # [K, 2] (tl, br)
    fy = tf.stack([ky1, ky2], axis=1) * ratio_h  # [K, 2]
    # int() truncates toward zero; clamping first keeps the cast in range and
    # equals clamp(int(f)) (see the docstring for when the clamp can fire).
    ix = tf.floor(tf.clip_by_value(fx, 0.0, out_w - 1.0))  # [K, 2]
    iy = tf.floor(tf.clip_by_value(fy, 0.0, out_h - 1.0))  # [K, 2]
    box_w = tf.math.ceil((kx2 - kx1) * ratio_w)  # [K]
    box_h = tf.math.ceil((ky2 - ky1) * ratio_h)  # [K]
    radius = tf.floor(tf.maximum(gaussian_radius(box_h, box_w, gaussian_iou), 0.0))  # [K]
    tl_heatmap, br_heatmap = _corner_heatmaps(
        ix, iy, radius, kept, rows["labels"], (out_h, out_w, num_classes), rows["static"]
    )
    kept_i = tf.cast(kept, tf.int32)[None, :]  # [1, K]
    kept_f = tf.cast(kept, tf.float64)[None, :]  # [1, K]
    index = tf.cast(tf.transpose(iy * out_w + ix), tf.int32) * kept_i  # [2, K]
    offset = tf.stack([tf.transpose(fx - ix) * kept_f, tf.transpose(fy - iy) * kept_f], axis=-1)
    offset = tf.cast(offset, tf.float32)  # [2, K, 2]

    pad = num_slots - tf.shape(kept)[0]
    index = tf.reshape(tf.pad(index, [[0, 0], [0, pad]]), [2, num_slots])  # [2, M]
    offset = tf.reshape(tf.pad(offset, [[0, 0], [0, pad], [0, 0]]), [2, num_slots, 2])
    mask = tf.reshape(tf.pad(tf.cast(kept, tf.float32), [[0, pad]]), [num_slots])  # [M]

    return {
        "tl_heatmap": tl_heatmap,
        "br_heatmap": br_heatmap,
        "tl_index": index[0],
        "br_index": index[1],
        "tl_offset": offset[0],
        "br_offset": offset[1],
        "mask": mask,
        "num_dropped": tf.maximum(rows["num_valid"] - num_slots, 0),
        "num_invalid": rows["num_boxes"] - rows["num_valid"],
    }


def _kept_rows(boxes, labels, num_classes: int, num_slots: int) -> dict:
    """The valid boxes first, in their order, at most `num_slots` rows (K).

    Returns:
        `kept` [K] bool (a valid box in the row), `boxes` [K, 4] float64 (0
        in other rows, so no NaN/inf reaches the arithmetic), `labels` [K]
        int32 (-1 in other rows), `num_boxes` and `num_valid` int32 scalars,
        and `static`: whether the number of boxes is known when tracing.
    """
    boxes = tf.cast(boxes, tf.float64)  # [N, 4]
    labels = tf.cast(labels, tf.int32)  # [N]
    x1, y1, x2, y2 = tf.unstack(boxes, num=4, axis=1)
    valid = (
        tf.reduce_all(tf.math.is_finite(boxes), axis=1)
        & (x2 >= x1)
        & (y2 >= y1)
        & (labels >= 0)
        & (labels < num_classes)
    )  # [N]
    num_boxes = tf.shape(labels)[0]
    num_valid = tf.reduce_sum(tf.cast(valid, tf.int32))
    # K is static when N is, so XLA sees fixed shapes.
    order = tf.argsort(tf.cast(~valid, tf.int32), stable=True)  # [N]
    static_n = boxes.shape[0]
    num_rows = (
        min(static_n, num_slots) if static_n is not None else tf.minimum(num_boxes, num_slots)
    )
    order = order[:num_rows]  # [K]
    kept = tf.range(tf.shape(order)[0]) < num_valid  # [K]
    return {
        "kept": kept,
        "boxes": tf.where(kept[:, None], tf.gather(boxes, order), 0.0),
        "labels": tf.where(kept, tf.gather(labels, order), -1),
        "num_boxes": num_boxes,
        "num_valid": num_valid,
        "static": static_n is not None,
    }


def _corner_heatmaps(ix, iy, radius, kept, labels, shape, static: bool):
    """The tl and br heatmaps [H, W, C]: each kept corner's Gaussian, by elementwise max.

    Args:
        ix, iy: [K, 2] corner cells (tl, br).
        radius: [K] Gaussian radii.
        kept: [K] rows that hold a box.
        labels: [K] classes (-1 in other rows).
        shape: (H, W, C) of the maps.
        static: the number of rows is fixed (XLA): the windows are the whole map.
    """
    out_h, out_w, num_classes = shape
    sigma = (2.0 * radius + 1.0) / 6.0  # [K]
    # Only the cells that can be non-zero are drawn: each corner's window,
    # placed inside the map, of the largest kept radius (a square of side
    # 2 r_max + 1, or the map side if smaller). With static shapes (XLA needs
    # them) the window is the whole map.
    if tf.executing_eagerly() or not static:
        largest = tf.reduce_max(tf.where(kept, radius, 0.0))  # -inf when K = 0
        r_max = tf.cast(tf.clip_by_value(largest, 0.0, max(out_h, out_w)), tf.int32)
        side_y, side_x = tf.minimum(2 * r_max + 1, out_h), tf.minimum(2 * r_max + 1, out_w)
    else:
        r_max, side_y, side_x = max(out_h, out_w), out_h, out_w
    cell_y, gauss_y = _window_1d(out_h, side_y, iy, r_max, radius, sigma)  # [K, 2, Dy]
    cell_x, gauss_x = _window_1d(out_w, side_x, ix, r_max, radius, sigma)  # [K, 2, Dx]
    # The official draw_gaussian takes the elementwise max of each box's window
    # with its class channel: a scatter-max of the window values onto zeros.
    # Cells outside a Gaussian (or of a dropped box) carry 0, a no-op for the max.
    gauss = gauss_y[:, :, :, None] * gauss_x[:, :, None, :]  # [K, 2, Dy, Dx]
    gauss = tf.where(kept[:, None, None, None], gauss, 0.0)
    grid = tf.shape(gauss)
    cells = tf.stack(
        [
            tf.broadcast_to(cell_y[:, :, :, None], grid),
            tf.broadcast_to(cell_x[:, :, None, :], grid),
            tf.broadcast_to(tf.maximum(labels, 0)[:, None, None, None], grid),
        ],
        axis=-1,
    )  # [K, 2, Dy, Dx, 3] (y, x, class)
    return tuple(
        tf.tensor_scatter_nd_max(
            tf.zeros([out_h, out_w, num_classes]),
            tf.reshape(cells[:, corner], [-1, 3]),
            tf.reshape(gauss[:, corner], [-1]),
        )
        for corner in (0, 1)
    )


def _window_1d(size: int, side, center: tf.Tensor, r_max, radius: tf.Tensor, sigma: tf.Tensor):
    """One axis of the official `gaussian2D` windows: cells and values.

    Args:
        size: map length along the axis.
        side: window length (<= size), int32 scalar or int.
        center: `[K, 2]` integer-valued float64 cells of the (tl, br) corners.
        r_max: the window starts `r_max` cells before the centre, moved inside
            `[0, size - side]`.
        radius: `[K]` integer-valued float64 radii.
        sigma: `[K]` float64 standard deviations.

    Returns:
        (cells `[K, 2, side]` int32, values `[K, 2, side]` float32):
        `exp(-d^2 / (2 sigma^2))` at the distance `d` from the centre where
        `|d| <= radius`, else 0.
    """
    center_i = tf.cast(center, tf.int32)
    start = tf.clip_by_value(center_i - r_max, 0, size - side)  # [K, 2]
    cells = start[:, :, None] + tf.range(side)  # [K, 2, side]
    dist = tf.cast(cells, tf.float64) - center[:, :, None]  # [K, 2, side]
    value = tf.exp(-(dist * dist) / (2.0 * sigma * sigma)[:, None, None])
    value = tf.cast(tf.where(tf.abs(dist) <= radius[:, None, None], value, 0.0), tf.float32)
    return cells, value


def _as_float(value: TensorLike) -> tf.Tensor:
    tensor = tf.convert_to_tensor(value)
    if isinstance(value, tf.Tensor | tf.Variable | np.ndarray) and tensor.dtype.is_floating:
        return tensor
    return tf.cast(tensor, tf.float64)


def _check_size(name: str, value: object) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, numbers.Integral) else value
    try:
        height, width = pair
    except (TypeError, ValueError):
        raise ValueError(
            f"encode_targets: `{name}` must be an int or a (height, width) pair, got {value!r}."
        ) from None
    for dim in (height, width):
        if not isinstance(dim, numbers.Integral) or isinstance(dim, bool) or dim < 1:
            raise ValueError(
                f"encode_targets: `{name}` must hold positive integers (height, width), "
                f"got {value!r}."
            )
    return int(height), int(width)


def _check_boxes_and_labels(
    boxes: TensorLike, labels: TensorLike, num_classes: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """Static checks always; value checks when the tensors are concrete (eager)."""
    boxes = tf.convert_to_tensor(boxes)
    labels = tf.convert_to_tensor(labels)
    if not (boxes.dtype.is_floating or boxes.dtype.is_integer):
        raise TypeError(f"encode_targets: `boxes` must be real numbers, got dtype {boxes.dtype}.")
    if not labels.dtype.is_integer:
        raise TypeError(
            f"encode_targets: `labels` must be integer class ids, got dtype {labels.dtype}; "
            "cast them with tf.cast(labels, tf.int32)."
        )
    if boxes.shape.rank != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"encode_targets: `boxes` must have shape [N, 4] (x1, y1, x2, y2), got {boxes.shape}."
        )
    if labels.shape.rank != 1:
        raise ValueError(f"encode_targets: `labels` must have shape [N], got {labels.shape}.")
    if not boxes.shape[:1].is_compatible_with(labels.shape):
        raise ValueError(
            f"encode_targets: `boxes` {boxes.shape} and `labels` {labels.shape} must have the "
            "same number of rows N."
        )
    if tf.executing_eagerly():
        values = boxes.numpy().astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(values).all(axis=1))
        if bad.size:
            raise ValueError(
                f"encode_targets: `boxes` rows {bad.tolist()} contain NaN or inf; drop or fix "
                "them before encoding."
            )
        bad = np.flatnonzero((values[:, 2] < values[:, 0]) | (values[:, 3] < values[:, 1]))
        if bad.size:
            raise ValueError(
                f"encode_targets: `boxes` rows {bad.tolist()} have a negative width or height; "
                "boxes must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2."
            )
        ids = labels.numpy()
        bad = np.flatnonzero((ids < 0) | (ids >= num_classes))
        if bad.size:
            raise ValueError(
                f"encode_targets: `labels` {ids[bad].tolist()} (rows {bad.tolist()}) are outside "
                f"[0, num_classes={num_classes}); map category ids to 0-based class ids."
            )
    return boxes, labels
