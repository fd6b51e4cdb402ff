"""Test-time geometry, flip test, rescaling and soft-NMS (SPEC §8).

Follows the official test procedure, princeton-vl/CornerNet `test/coco.py`
(`kp_detection`), `utils/image.py` (`crop_image`) and `external/nms.pyx`
(`soft_nms`, `soft_nms_merge`), as pure TensorFlow functions with fixed output
shapes, so that they run in `tf.data`, in `predict_step` and in an exported
SavedModel graph.

Typical use at one scale with the flip test::

    canvas, geometry = prepare_test_image(image, scale)  # [H', W', 3]
    images = tf.concat([canvas[None], tf.reverse(canvas, [1])[None]], 0)
    decoded = decode_outputs(model(images, training=False), flip_test=True)
    result = postprocess(decoded, geometry["ratios"], geometry["borders"],
                         tf.shape(image)[:2], scale)
"""

import math
import numbers
from collections.abc import Mapping, Sequence

import tensorflow as tf

from cornernet_tf.decode import REJECTED_SCORE, decode_corners

# Keys of the model's inference outputs, in `decode_corners` argument order.
OUTPUT_KEYS = (
    "tl_heatmap",
    "br_heatmap",
    "tl_embedding",
    "br_embedding",
    "tl_offset",
    "br_offset",
)
# Official `test/coco.py`: the input size is `size | 127`, the output (size + 1) // 4.
INPUT_SIZE_MASK = 127
OUTPUT_STRIDE = 4
# Official `config/CornerNet-multi_scale.json`.
MULTI_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)


def test_geometry(image_hw, scale=1.0) -> dict[str, tf.Tensor]:
    """Test-time sizes and placement of an image (official `kp_detection`).

    The image is resized to `int(h*scale) x int(w*scale)`; the network input is
    `(new_h | 127, new_w | 127)`, its output `(input + 1) // 4`; the resized
    image is placed centred on a zero canvas of the input size exactly as the
    official `crop_image(image, (new_h // 2, new_w // 2), input_size)` does.
    When a resized side is already of the form `128n - 1` and odd, that crop
    drops its last row/column (`centre + input // 2` stops one short); this is
    kept for parity.

    Args:
        image_hw: original image (height, width), [2] integers (Python or a
            tensor, e.g. `tf.shape(image)[:2]`).
        scale: test scale, a positive Python number or scalar tensor.

    Returns:
        A dict of tensors: `resized_size` [2] int32 (new_h, new_w),
        `input_size` [2] int32, `output_size` [2] int32, `ratios` [2] float32
        (output/input for height, width), `borders` [4] float32 (top, bottom,
        left, right of the image on the canvas, official `border`), `offset`
        [2] int32 (official `offset`: canvas origin in resized-image pixels),
        `crop` [4] int32 (y0, y1, x0, x1 of the resized image that is kept).

    Raises:
        TypeError: `image_hw` is not integer-valued.
        ValueError: `image_hw` is not two values, or `scale` is not positive.
    """
    image_hw = _as_image_hw(image_hw, "test_geometry")
    scale = _as_scale(scale, "test_geometry")
    # float64 as Python's `int(height * scale)`.
    resized = tf.cast(tf.floor(tf.cast(image_hw, tf.float64) * scale), tf.int32)  # [2]
    input_size = tf.bitwise.bitwise_or(resized, INPUT_SIZE_MASK)
    output_size = (input_size + 1) // OUTPUT_STRIDE
    ratios = tf.cast(tf.cast(output_size, tf.float64) / tf.cast(input_size, tf.float64), tf.float32)

    centre = resized // 2
    half = input_size // 2
    start = tf.maximum(0, centre - half)  # [2] (y0, x0)
    end = tf.minimum(centre + half, resized)  # [2] (y1, x1)
    before, after = centre - start, end - centre
    border_start, border_end = half - before, half + after
    borders = tf.cast(
        tf.stack([border_start[0], border_end[0], border_start[1], border_end[1]]), tf.float32
    )
    return {
        "resized_size": resized,
        "input_size": input_size,
        "output_size": output_size,
        "ratios": ratios,
        "borders": borders,
        "offset": centre - half,
        "crop": tf.stack([start[0], end[0], start[1], end[1]]),
    }


# A public name, not a test: keep pytest from collecting it where it is imported.
test_geometry.__test__ = False


def pad_for_test(image: tf.Tensor) -> tf.Tensor:
    """Places an (already resized) image centred on a zero test canvas.

    Official `crop_image` as called by `kp_detection`: the canvas is
    `(h | 127, w | 127)` and zero before normalisation (the model normalises
    inside, so zeros here are the official padding). Pure TF, usable in
    `tf.data.Dataset.map`.

    Args:
        image: [H, W, C] or [B, H, W, C] (a batch of same-size images), any
            dtype.

    Returns:
        The canvas, [H | 127, W | 127, C] (or with the batch dimension), same
        dtype. `test_geometry(tf.shape(image)[-3:-1])` gives its borders.
    """
    image = tf.convert_to_tensor(image)
    rank = image.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"pad_for_test: `image` must be [H, W, C] or [B, H, W, C], got shape {image.shape}."
        )
    geometry = test_geometry(tf.shape(image)[-3:-1])
    y0, y1, x0, x1 = tf.unstack(geometry["crop"])
    top, bottom, left, right = tf.unstack(tf.cast(geometry["borders"], tf.int32))
    input_h, input_w = tf.unstack(geometry["input_size"])
    kept = image[..., y0:y1, x0:x1, :]
    paddings = [[top, input_h - bottom], [left, input_w - right], [0, 0]]
    if rank == 4:
        paddings = [[0, 0]] + paddings
    return tf.pad(kept, paddings)


def prepare_test_image(image: tf.Tensor, scale=1.0) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Resizes an image by `scale` and places it on its test canvas.

    Official `kp_detection`: `cv2.resize` (bilinear) to `int(h*scale) x
    int(w*scale)`, then `crop_image`. `tf.image.resize` (bilinear, half-pixel
    centres, no antialiasing) samples like `cv2.INTER_LINEAR`; integer images
    are rounded back to their dtype as cv2 does.

    Args:
        image: [H, W, C] or [B, H, W, C], any numeric dtype.
        scale: positive Python number or scalar tensor.

    Returns:
        `(canvas, geometry)`: the canvas as in `pad_for_test` and
        `test_geometry(original_hw, scale)`.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank not in (3, 4):
        raise ValueError(
            f"prepare_test_image: `image` must be [H, W, C] or [B, H, W, C], got shape "
            f"{image.shape}."
        )
    geometry = test_geometry(tf.shape(image)[-3:-1], scale)
    if not (isinstance(scale, numbers.Real) and scale == 1):
        resized = tf.image.resize(image, geometry["resized_size"], method="bilinear")
        if image.dtype.is_integer:
            resized = tf.saturate_cast(tf.round(resized), image.dtype)
        else:
            resized = tf.cast(resized, image.dtype)
        image = resized
    return pad_for_test(image), geometry


def rescale_detections(boxes: tf.Tensor, ratios, borders, image_hw, scale=1.0) -> tf.Tensor:
    """Maps boxes from output-map pixels to original-image pixels.

    Official `_rescale_dets` followed by `dets[:, :, 0:4] /= scale`:
    `x / ratio_x - border_left`, `y / ratio_y - border_top`, clipped to
    `[0, int(w*scale)]` / `[0, int(h*scale)]`, then divided by `scale`.

    Args:
        boxes: [..., N, 4] (x1, y1, x2, y2) in output-map pixels.
        ratios: [..., 2] (height, width) output/input ratios (`test_geometry`).
        borders: [..., 4] (top, bottom, left, right) (`test_geometry`).
        image_hw: [..., 2] original image (height, width).
        scale: the test scale the boxes were decoded at: a number, or a
            tensor [] or [...] (one per image, e.g. [B]).

    Returns:
        [..., N, 4] float32 boxes in original-image pixels.
    """
    boxes = tf.cast(boxes, tf.float32)
    if boxes.shape.rank is not None and (boxes.shape.rank < 2 or boxes.shape[-1] != 4):
        raise ValueError(
            f"rescale_detections: `boxes` must be [..., N, 4], got shape {boxes.shape}."
        )
    scale = _as_scale(scale, "rescale_detections", max_rank=1)
    scale = tf.expand_dims(tf.cast(scale, tf.float64), -1)  # [..., 1] (or [1])
    ratios = tf.expand_dims(tf.cast(ratios, tf.float32), -2)  # [..., 1, 2]
    borders = tf.expand_dims(tf.cast(borders, tf.float32), -2)  # [..., 1, 4]
    limits = tf.floor(tf.cast(image_hw, tf.float64) * scale)
    limits = tf.expand_dims(tf.cast(limits, tf.float32), -2)  # [..., 1, 2]
    xs = boxes[..., 0::2] / ratios[..., 1:2] - borders[..., 2:3]  # [..., N, 2]
    ys = boxes[..., 1::2] / ratios[..., 0:1] - borders[..., 0:1]
    xs = tf.clip_by_value(xs, 0.0, limits[..., 1:2])
    ys = tf.clip_by_value(ys, 0.0, limits[..., 0:1])
    scale = tf.expand_dims(tf.cast(scale, tf.float32), -1)  # [..., 1, 1]
    return tf.stack([xs[..., 0], ys[..., 0], xs[..., 1], ys[..., 1]], axis=-1) / scale


def mirror_boxes(boxes: tf.Tensor, width) -> tf.Tensor:
    """Mirrors boxes of a horizontally flipped map: `x' = width - x`.

    Official flip test: `dets[1, :, [0, 2]] = out_width - dets[1, :, [2, 0]]`
    (x1 and x2 swap so that x1 <= x2 still holds).

    Args:
        boxes: [..., 4] (x1, y1, x2, y2).
        width: the output-map width (official `out_width`).

    Returns:
        [..., 4] mirrored boxes.
    """
    boxes = tf.convert_to_tensor(boxes)
    width = tf.cast(width, boxes.dtype)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.stack([width - x2, y1, width - x1, y2], axis=-1)


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


def postprocess(
    decoded: Mapping[str, tf.Tensor],
    ratios,
    borders,
    image_hw,
    scale=1.0,
    *,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    max_detections: int = 100,
    merge: bool = False,
    weight_exp: float = 8.0,
) -> dict[str, tf.Tensor]:
    """Decoded pairs → final detections in original-image pixels.

    `rescale_detections` then `soft_nms` (official `kp_detection` after the
    network: `_rescale_dets`, `/= scale`, per-class `soft_nms`,
    `max_per_image`). Fixed output shapes; runs in a `tf.function` or
    SavedModel graph.

    Args:
        decoded: `decode_corners` / `decode_outputs` dict with `boxes` [B, D, 4]
            (output-map pixels), `scores`, `classes` [B, D] (and `tl_scores`,
            `br_scores` for `merge`).
        ratios: [2] or [B, 2] (`test_geometry`).
        borders: [4] or [B, 4] (`test_geometry`).
        image_hw: [2] or [B, 2] original image sizes.
        scale: the test scale, a number or a [] or [B] tensor.
        sigma: see `soft_nms`.
        score_threshold: see `soft_nms`.
        max_detections: see `soft_nms`.
        merge: see `soft_nms`.
        weight_exp: see `soft_nms`.

    Returns:
        `boxes` [B, M, 4] (x1, y1, x2, y2 image pixels), `scores` [B, M],
        `classes` [B, M] int32, `num_detections` [B] int32; padding -1.
    """
    return postprocess_multiscale(
        [decoded],
        [ratios],
        [borders],
        image_hw,
        [scale],
        sigma=sigma,
        score_threshold=score_threshold,
        max_detections=max_detections,
        merge=merge,
        weight_exp=weight_exp,
    )


def postprocess_multiscale(
    decoded: Sequence[Mapping[str, tf.Tensor]],
    ratios: Sequence,
    borders: Sequence,
    image_hw,
    scales: Sequence,
    *,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    max_detections: int = 100,
    merge: bool = True,
    weight_exp: float = 10.0,
) -> dict[str, tf.Tensor]:
    """Combines detections decoded at several test scales (official multi-scale).

    Official `kp_detection` with `test_scales` [0.5, 0.75, 1, 1.25, 1.5]
    (`MULTI_SCALES`): each scale's pairs are rescaled to image pixels, all
    are concatenated, and `soft_nms` runs with box merging (`merge_bbox`,
    `weight_exp` 10 in `config/CornerNet-multi_scale.json`).

    Args:
        decoded: one decoded dict per scale (see `postprocess`).
        ratios: one `test_geometry` `ratios` per scale.
        borders: one `test_geometry` `borders` per scale.
        image_hw: [2] or [B, 2] original image sizes.
        scales: the scales, same order.
        sigma: see `soft_nms`.
        score_threshold: see `soft_nms`.
        max_detections: see `soft_nms`.
        merge: see `soft_nms`.
        weight_exp: see `soft_nms`.

    Returns:
        As `postprocess`.
    """
    lengths = {len(decoded), len(ratios), len(borders), len(scales)}
    if len(lengths) != 1 or not decoded:
        raise ValueError(
            "postprocess: pass one `decoded`, `ratios`, `borders` and `scale` per test scale "
            f"(got {len(decoded)}, {len(ratios)}, {len(borders)}, {len(scales)})."
        )
    required = ("boxes", "scores", "classes") + (("tl_scores", "br_scores") if merge else ())
    parts = {key: [] for key in required}
    for dets, ratio, border, scale in zip(decoded, ratios, borders, scales, strict=True):
        if not isinstance(dets, Mapping) or any(key not in dets for key in required):
            raise ValueError(
                f"postprocess: `decoded` must be a dict with keys {list(required)} "
                "(the output of `decode_corners`)."
            )
        parts["boxes"].append(rescale_detections(dets["boxes"], ratio, border, image_hw, scale))
        for key in required[1:]:
            parts[key].append(dets[key])
    merged = {key: tf.concat(values, axis=1) for key, values in parts.items()}
    return soft_nms(
        merged["boxes"],
        merged["scores"],
        merged["classes"],
        sigma=sigma,
        score_threshold=score_threshold,
        max_detections=max_detections,
        merge=merge,
        weight_exp=weight_exp,
        tl_scores=merged.get("tl_scores"),
        br_scores=merged.get("br_scores"),
    )


def _is_real(value) -> bool:
    return not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)


def _check_positive_float(name: str, value, allow_zero: bool = False) -> None:
    if not _is_real(value) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"soft_nms: `{name}` must be a finite number {bound}, got {value!r}.")


def _as_image_hw(image_hw, caller: str) -> tf.Tensor:
    image_hw = tf.convert_to_tensor(image_hw)
    if not image_hw.dtype.is_integer:
        raise TypeError(
            f"{caller}: `image_hw` must hold integer (height, width), got dtype "
            f"{image_hw.dtype.name}."
        )
    if image_hw.shape.rank is not None and (image_hw.shape.rank != 1 or image_hw.shape[0] != 2):
        raise ValueError(
            f"{caller}: `image_hw` must be (height, width), got shape {image_hw.shape}."
        )
    return tf.cast(image_hw, tf.int32)


def _as_scale(scale, caller: str, max_rank: int = 0):
    """A Python float, or a float64 tensor of rank <= `max_rank`."""
    if isinstance(scale, bool):
        raise TypeError(f"{caller}: `scale` must be a number, got {scale!r}.")
    if isinstance(scale, numbers.Real):
        if not math.isfinite(scale) or scale <= 0:
            raise ValueError(f"{caller}: `scale` must be a finite number > 0, got {scale!r}.")
        return float(scale)
    scale = tf.convert_to_tensor(scale)
    rank = scale.shape.rank
    if (rank is not None and rank > max_rank) or not scale.dtype.is_floating:
        kind = "a float scalar" if max_rank == 0 else f"a float tensor of rank <= {max_rank}"
        raise TypeError(f"{caller}: `scale` must be {kind}, got {scale!r}.")
    return tf.cast(scale, tf.float64)
