"""The official CornerNet-Saccade training sampler as pure TensorFlow functions.

Follows princeton-vl/CornerNet-Lite `core/sample/cornernet_saccade.py`
(`cornernet_saccade`, `ref_scale`, `scale_image_detections`,
`crop_image_dets`, `clip_detections`, `bbox_overlaps`) with the settings of
`configs/CornerNet_Saccade.json` and `core/dbs/detection.py` (`rand_crop`
false, `rand_center` true, `min_scale` 16): per image, one object is chosen
at random and the image is rescaled so that the object's longer side becomes
16-32, 32-96 or 96-254 pixels (by its own size), and a crop of the network
input size is taken around it (on a zero canvas, centred on the object with
p = 0.5, else anywhere that keeps it whole). Images without objects are
rescaled by one of `rand_scales` and cropped anywhere. Objects cut by the crop
to half their area or less, or smaller than `MIN_SCALE` pixels, are not
targets: the official loss ignores the heatmap around their corners (the
`tl_valid` / `br_valid` masks).

As in `cornernet_tf.data.augment`, the geometry (`saccade_geometry`) takes its
random draws as arguments so that tests can compare it with the official
code, and `draw_saccade_params` is the only random part (stateless ops: a
seed fixes every draw). Each official `np.random.randint(lo, hi)` is
`lo + floor(u * (hi - lo))` of a uniform `u` in [0, 1) here (`_randint`), so
the draws are uniforms whatever the integer ranges they end up in.

Only the crop window of the rescaled image is computed (bilinear, half-pixel
centres, as `cv2.resize` on the whole image then cropping): an object of a few
pixels is enlarged up to 16 times, which on the whole image would take
gigabytes.

Boxes are `[N, 4]` float32 `x1, y1, x2, y2` in pixels; images are `[H, W, 3]`.
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

from cornernet_tf import saccade_targets
from cornernet_tf import targets as targets_lib
from cornernet_tf.data import augment

# Official `ref_scale`: the chosen object's longer side L is rescaled to
# randint(low, high) pixels by the first row with L > threshold.
REF_SIZE_TABLE = ((96.0, 96, 255), (32.0, 32, 97), (float("-inf"), 16, 33))
# Official `min_scale`: objects whose longer side (input pixels, integer
# corners) is smaller are not targets; their corners are ignored by the loss.
MIN_SCALE = 16
# Official `crop_image_dets`: a centred crop moves its centre up to 14 pixels
# either way (`np.random.randint(0, 15)`).
CENTER_JITTER = 15
# Official `cornernet_saccade`: an object is a target when the crop keeps more
# than half of its (rescaled) area.
MIN_AREA_KEPT = 0.5

__all__ = [
    "CENTER_JITTER",
    "MIN_AREA_KEPT",
    "MIN_SCALE",
    "REF_SIZE_TABLE",
    "draw_saccade_params",
    "encode_saccade_targets",
    "saccade_geometry",
]


def _randint(u: tf.Tensor, low: tf.Tensor, high: tf.Tensor) -> tf.Tensor:
    """`np.random.randint(low, high)` from a uniform `u` in [0, 1), int32.

    An empty range (`high <= low`, where the official call would raise) gives `low`.
    """
    low = tf.cast(low, tf.int32)
    count = tf.maximum(tf.cast(high, tf.int32) - low, 1)
    step = tf.cast(tf.floor(u * tf.cast(count, tf.float32)), tf.int32)
    return low + tf.minimum(step, count - 1)


def draw_saccade_params(
    seed: tf.Tensor, *, num_scales: int, flip_probability: float = 0.5
) -> dict[str, tf.Tensor]:
    """Draws every random choice of one Saccade training sample from a stateless seed.

    Args:
        seed: [2] int32/int64 stateless seed (distinct per sample).
        num_scales: number of `rand_scales` (for images without objects).
        flip_probability: probability of a horizontal flip.

    Returns:
        dict of tensors: `ref` (which object), `ref_size` (its new longer
        side, within the range of its size), `scale_index` (images without
        objects), `centered` bool, `center_u` [2, 3] float32 uniforms per
        axis (y, x): jitter below, jitter above, position; `flip` bool; and
        `color_alphas`, `color_order`, `lighting_alpha` as
        `augment.draw_train_params`.
    """
    if num_scales < 1:
        raise ValueError("draw_saccade_params: `num_scales` must be >= 1 (data.rand_scales).")
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 9)  # [9, 2]
    return {
        "ref": tf.random.stateless_uniform([], seeds[0]),
        "ref_size": tf.random.stateless_uniform([], seeds[1]),
        "scale_index": tf.random.stateless_uniform([], seeds[2], 0, num_scales, dtype=tf.int32),
        "centered": tf.random.stateless_uniform([], seeds[3]) > 0.5,
        "center_u": tf.random.stateless_uniform([2, 3], seeds[4]),
        "flip": tf.random.stateless_uniform([], seeds[5]) < flip_probability,
        "color_alphas": 1.0
        + tf.random.stateless_uniform(
            [3], seeds[6], -augment.COLOR_VAR, augment.COLOR_VAR, dtype=tf.float32
        ),
        "color_order": tf.argsort(tf.random.stateless_uniform([3], seeds[7])),
        "lighting_alpha": augment.LIGHTING_STD * tf.random.stateless_normal([3], seeds[8]),
    }


def clip_to_border(boxes: tf.Tensor, border: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Official `clip_detections`: clip to `[x0, x1 - 1] x [y0, y1 - 1]`, keep non-empty boxes.

    Args:
        boxes: [N, 4] x1, y1, x2, y2.
        border: [4] (y0, y1, x0, x1) of the region holding image pixels.

    Returns:
        (boxes [N, 4] clipped, keep [N] bool: `x2 - x1 > 0` and `y2 - y1 > 0`).
    """
    border = tf.cast(border, boxes.dtype)
    lo = tf.stack([border[2], border[0], border[2], border[0]])
    hi = tf.stack([border[3], border[1], border[3], border[1]]) - 1
    boxes = tf.minimum(tf.maximum(boxes, lo), hi)  # np.clip: max then min
    keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
    return boxes, keep


def reference_scale(boxes: tf.Tensor, draws, scales: Sequence[float]):
    """Official `ref_scale` (with `rand_crop` false) and `np.random.choice(rand_scales)`.

    Args:
        boxes: [N, 4] float32 boxes clipped to the image.
        draws: `ref`, `ref_size`, `scale_index`.
        scales: `rand_scales`, used when N = 0.

    Returns:
        (scale float64, ref int32 index of the chosen object (0 when N = 0),
        has_ref bool).
    """
    num = tf.shape(boxes)[0]
    has_ref = num > 0
    ref = _randint(draws["ref"], 0, tf.maximum(num, 1))
    ref_box = tf.gather(tf.concat([boxes, tf.ones([1, 4], boxes.dtype)], 0), ref)  # [4]
    ref_hw = tf.maximum(ref_box[3] - ref_box[1], ref_box[2] - ref_box[0])
    low, high = tf.constant(REF_SIZE_TABLE[-1][1]), tf.constant(REF_SIZE_TABLE[-1][2])
    for threshold, row_low, row_high in reversed(REF_SIZE_TABLE[:-1]):
        above = ref_hw > threshold
        low, high = tf.where(above, row_low, low), tf.where(above, row_high, high)
    size = _randint(draws["ref_size"], low, high)
    table = tf.constant([float(s) for s in scales], tf.float64)
    # float64 as the official `randint(...) / ref_hw` (a NumPy 1 float64).
    scale = tf.where(
        has_ref,
        tf.cast(size, tf.float64) / tf.cast(tf.where(has_ref, ref_hw, 1.0), tf.float64),
        tf.gather(table, draws["scale_index"]),
    )
    return scale, ref, has_ref


def crop_center(size, input_size: int, det_lo, det_hi, has_ref, centered, u) -> tf.Tensor:
    """One axis of the official `crop_image_dets` centre (`random_crop` and `rand_center` true).

    Args:
        size: rescaled image height or width, int32.
        input_size: crop height or width.
        det_lo, det_hi: the chosen object's extent on this axis (rescaled pixels).
        has_ref: whether there is a chosen object.
        centered: the official `centered` draw.
        u: [3] uniforms: jitter below, jitter above, position.

    Returns:
        The centre, int32.
    """
    size = tf.cast(size, tf.int32)
    # Not centred (or no object): anywhere the crop keeps the object whole.
    low = tf.where(has_ref, tf.maximum(det_hi - input_size, 0.0), 0.0)
    room = tf.cast(size - input_size, tf.float32)
    high = tf.where(has_ref, tf.minimum(room, det_lo), room)
    anywhere = _randint(u[2], tf.cast(low, tf.int32), tf.cast(high, tf.int32) + 1)
    anywhere += input_size // 2
    # Centred: the object's centre, jittered.
    middle = tf.floor((det_lo + det_hi) / 2.0)
    low = tf.maximum(middle - tf.cast(_randint(u[0], 0, CENTER_JITTER), tf.float32), 0.0)
    high = tf.minimum(
        middle + tf.cast(_randint(u[1], 0, CENTER_JITTER), tf.float32),
        tf.cast(size - 1, tf.float32),
    )
    near = _randint(u[2], tf.cast(low, tf.int32), tf.cast(high, tf.int32) + 1)
    center = tf.where(has_ref & centered, near, anywhere)
    return tf.where(size <= input_size, size // 2, center)


def _resize_axis(in_size, out_size, first, count):
    """Source rows (lower, upper) and weights of output rows `first ..< first + count`.

    The bilinear, half-pixel-centre sampling of `tf.image.resize` from
    `in_size` to `out_size` pixels, for a window of the output only.
    """
    ratio = tf.cast(in_size, tf.float32) / tf.cast(out_size, tf.float32)
    out = tf.cast(first + tf.range(count), tf.float32)
    source = (out + 0.5) * ratio - 0.5
    floor = tf.floor(source)
    lower = tf.maximum(tf.cast(floor, tf.int32), 0)
    upper = tf.minimum(tf.cast(tf.math.ceil(source), tf.int32), tf.cast(in_size, tf.int32) - 1)
    return lower, upper, source - floor


def resized_window(image: tf.Tensor, resized_size, window: dict[str, tf.Tensor]) -> tf.Tensor:
    """Rows `y0 ..< y1`, columns `x0 ..< x1` of `image` resized to `resized_size`, float32.

    Equals `augment.resize_image(image, resized_size)[y0:y1, x0:x1]` (same
    sampling, float rounding aside) without computing the rest.

    Args:
        image: [H, W, 3] uint8 or float.
        resized_size: (height, width) of the whole resized image.
        window: `augment.crop_window` of the resized image.

    Returns:
        [y1 - y0, x1 - x0, 3] float32.
    """
    image = tf.cast(image, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    top, bottom, y_lerp = _resize_axis(
        height, resized_size[0], window["y0"], window["y1"] - window["y0"]
    )
    left, right, x_lerp = _resize_axis(
        width, resized_size[1], window["x0"], window["x1"] - window["x0"]
    )
    y_lerp, x_lerp = y_lerp[:, None, None], x_lerp[None, :, None]
    upper_rows, lower_rows = tf.gather(image, top), tf.gather(image, bottom)  # [h, W, 3]

    def across(rows):
        a, b = tf.gather(rows, left, axis=1), tf.gather(rows, right, axis=1)  # [h, w, 3]
        return a + (b - a) * x_lerp

    upper, lower = across(upper_rows), across(lower_rows)
    return upper + (lower - upper) * y_lerp


def saccade_geometry(image, boxes, labels, draws, *, input_size, scales: Sequence[float]):
    """Rescale, object-centred crop, clip and flip of the official sampler, given the draws.

    Args:
        image: [H, W, 3] uint8.
        boxes: [N, 4] float32 in image pixels.
        labels: [N] int32.
        draws: from `draw_saccade_params`.
        input_size: int or (height, width) of the crop.
        scales: `rand_scales` (images without objects).

    Returns:
        dict: `image` [in_h, in_w, 3] float32 in 0-255; `boxes` [K, 4] and
        `labels` [K] of the objects left in the crop (clipped to the pixels
        that came from the image, flipped); `kept_area` [K] bool, whether the
        crop kept more than `MIN_AREA_KEPT` of each one's area (official
        `overlaps`); and the intermediate `scale`, `resized_size` [2],
        `center` [2] (cty, ctx) and `border` [4] (y0, y1, x0, x1).
    """
    in_h, in_w = augment.size_pair(input_size, "input_size")
    boxes = tf.cast(boxes, tf.float32)
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    # Official: clip to the image (the unclipped boxes are the area reference).
    image_border = tf.stack([0, height, 0, width])
    clipped, keep = clip_to_border(boxes, image_border)
    original = tf.boolean_mask(boxes, keep)
    boxes, labels = tf.boolean_mask(clipped, keep), tf.boolean_mask(labels, keep)

    scale, ref, has_ref = reference_scale(boxes, draws, scales)
    # Official: the image size `int(h * scale)` in float64, the boxes (float32
    # arrays) multiplied in float32.
    resized_size = tf.stack(
        [
            tf.cast(tf.cast(height, tf.float64) * scale, tf.int32),
            tf.cast(tf.cast(width, tf.float64) * scale, tf.int32),
        ]
    )
    boxes, original = boxes * tf.cast(scale, tf.float32), original * tf.cast(scale, tf.float32)
    ref_box = tf.gather(tf.concat([boxes, tf.zeros([1, 4])], 0), ref)  # [4], rescaled
    cty = crop_center(
        resized_size[0],
        in_h,
        ref_box[1],
        ref_box[3],
        has_ref,
        draws["centered"],
        draws["center_u"][0],
    )
    ctx = crop_center(
        resized_size[1],
        in_w,
        ref_box[0],
        ref_box[2],
        has_ref,
        draws["centered"],
        draws["center_u"][1],
    )
    window = augment.crop_window(resized_size, (in_h, in_w), (cty, ctx))
    patch = resized_window(image, resized_size, window)
    bottom = in_h - window["top"] - (window["y1"] - window["y0"])
    right = in_w - window["left"] - (window["x1"] - window["x0"])
    canvas = tf.pad(patch, [[window["top"], bottom], [window["left"], right], [0, 0]])
    canvas = tf.ensure_shape(canvas, [in_h, in_w, 3])
    boxes = augment.crop_boxes(boxes, window)
    border = tf.stack(
        [
            window["top"],
            window["top"] + window["y1"] - window["y0"],
            window["left"],
            window["left"] + window["x1"] - window["x0"],
        ]
    )
    boxes, keep = clip_to_border(boxes, border)
    boxes, labels = tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)
    original = tf.boolean_mask(original, keep)
    canvas = tf.cond(draws["flip"], lambda: tf.reverse(canvas, [1]), lambda: canvas)
    boxes = tf.cond(draws["flip"], lambda: augment.flip_boxes(boxes, in_w), lambda: boxes)

    def area(b):
        return (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])

    return {
        "image": canvas,
        "boxes": boxes,
        "labels": labels,
        "kept_area": area(boxes) / area(original) > MIN_AREA_KEPT,
        "scale": scale,
        "resized_size": resized_size,
        "center": tf.stack([cty, ctx]),
        "border": border,
    }


def is_target(boxes: tf.Tensor, kept_area: tf.Tensor) -> tf.Tensor:
    """Official `overlap and valid`: enough area kept and longer side >= `MIN_SCALE`.

    The side is measured between the corners truncated to integers
    (`int(x2) - int(x1)`), as officially.
    """
    corners = tf.floor(boxes)  # boxes are clipped to the crop: >= 0, so floor is int()
    longer = tf.maximum(corners[:, 3] - corners[:, 1], corners[:, 2] - corners[:, 0])
    return kept_area & (longer >= MIN_SCALE)


def encode_saccade_targets(
    boxes: tf.Tensor,
    labels: tf.Tensor,
    kept_area: tf.Tensor,
    *,
    input_size,
    output_size,
    num_classes: int,
    max_objects: int,
    gaussian_iou: float,
) -> dict[str, tf.Tensor]:
    """The targets of one Saccade crop (the per-object loop of official `cornernet_saccade`).

    Objects that are targets (`is_target`) get corner heatmaps, tags and
    offsets (`cornernet_tf.targets.encode_targets`). The Gaussians the others
    would have drawn mark where the loss ignores the heatmaps instead:
    `tl_valid` / `br_valid` are 0 there and 1 elsewhere (official `tl_valids
    == 0`). The attention maps (`saccade_targets.attention_targets`) mark
    every object left in the crop, targets or not.

    Args:
        boxes: [K, 4] crop boxes from `saccade_geometry`.
        labels: [K] int32 class ids.
        kept_area: [K] bool, `saccade_geometry`'s `kept_area`.
        input_size: (height, width) of the crop.
        output_size: (height, width) of the heatmaps.
        num_classes: heatmap channels.
        max_objects: tag slots.
        gaussian_iou: `gaussian_radius` overlap (official 0.5 for Saccade).

    Returns:
        The `encode_targets` dict plus `tl_valid`, `br_valid` [out_h, out_w, C]
        float32 and `attention_large`, `attention_medium`, `attention_small`.
    """
    in_size = augment.size_pair(input_size, "input_size")
    out_size = augment.size_pair(output_size, "output_size")

    def encode(rows):
        return targets_lib.encode_targets(
            tf.boolean_mask(boxes, rows),
            tf.boolean_mask(labels, rows),
            input_size=in_size,
            output_size=out_size,
            num_classes=num_classes,
            max_objects=max_objects,
            gaussian_iou=gaussian_iou,
        )

    chosen = is_target(boxes, kept_area)
    target = encode(chosen)
    ignored = encode(~chosen)
    for corner in ("tl", "br"):
        target[f"{corner}_valid"] = tf.cast(tf.equal(ignored[f"{corner}_heatmap"], 0.0), tf.float32)
    # Official `att_ratios` 16, 8, 4 input pixels per map pixel: output stride 4.
    stride = round(in_size[0] / out_size[0])
    target.update(saccade_targets.attention_targets(boxes, out_size, output_stride=stride))
    return target
