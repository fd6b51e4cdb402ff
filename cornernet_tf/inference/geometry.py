"""Test-time geometry: the official test canvas and the way back to image pixels.

Follows princeton-vl/CornerNet `test/coco.py` (`kp_detection`) and
`utils/image.py` (`crop_image`): each image, resized by the test scale, is placed
centred on a zero canvas of `(h | 127, w | 127)`; the network's output map is
`(input + 1) // output_stride`; detections on the map are mapped back with the
canvas borders and the map/canvas ratios.

127 is one less than the input granule of the official networks (128 =
output stride × 2**levels for Hourglass-104 and CornerNet-Squeeze): the canvas
is the smallest input of the form `128k - 1` that holds the image. For a
network of another granule `g` (the `tiny` preset's is 32) the canvas is
`(h | (g - 1), w | (g - 1))`, the same rule: `| 127` would pad a 128-pixel
image to 255 pixels where 159 fit (2.6 times the pixels). `CornerNet` passes
its own granule (`CornerNet.input_size_granule`); the default is 128.

Pure TensorFlow with fixed output shapes, so it runs in `tf.data`, in
`predict_step`, in a SavedModel and in a TFLite graph (where a fixed input size
folds it into constants).
"""

import math
import numbers

import tensorflow as tf

from cornernet_tf.utils.checks import check_count

# Official `test/coco.py`: the canvas is `size | 127`, the output map
# `(size + 1) // stride`; 127 is one less than the official networks' granule.
OFFICIAL_GRANULE = 128
INPUT_SIZE_MASK = OFFICIAL_GRANULE - 1


def test_geometry(
    image_hw, scale=1.0, output_stride: int = 4, granule: int = OFFICIAL_GRANULE
) -> dict[str, tf.Tensor]:
    """Test-time sizes and placement of an image (official `kp_detection`).

    The image is resized to `int(h*scale) x int(w*scale)`; the network input is
    `(new_h | 127, new_w | 127)` (`| (granule - 1)`), its output
    `(input + 1) // output_stride`; the resized
    image is placed centred on a zero canvas of the input size exactly as the
    official `crop_image(image, (new_h // 2, new_w // 2), input_size)` does.
    When a resized side is already of the form `granule * n - 1`, that crop
    drops its last row/column (`centre + input // 2` stops one short); this is
    kept for parity.

    Args:
        image_hw: original image (height, width), [2] integers (Python or a
            tensor, e.g. `tf.shape(image)[:2]`).
        scale: test scale, a positive Python number or scalar tensor.
        output_stride: input pixels per output-map pixel
            (`CornerNet.output_stride`, 4 for the hourglass presets).
        granule: the network's input granule, a power of two
            (`CornerNet.input_size_granule`; 128, the official `| 127`, for
            Hourglass-104 and CornerNet-Squeeze).

    Returns:
        A dict of tensors: `resized_size` [2] int32 (new_h, new_w),
        `input_size` [2] int32, `output_size` [2] int32, `ratios` [2] float32
        (output/input for height, width), `borders` [4] float32 (top, bottom,
        left, right of the image on the canvas, official `border`), `offset`
        [2] int32 (official `offset`: canvas origin in resized-image pixels),
        `crop` [4] int32 (y0, y1, x0, x1 of the resized image that is kept).

    Raises:
        TypeError: `image_hw` is not integer-valued.
        ValueError: `image_hw` is not two values, `scale` is not positive, or
            `granule` is not a power of two.
    """
    image_hw = _as_image_hw(image_hw, "test_geometry")
    mask = _size_mask(granule, "test_geometry")
    output_stride = check_count(output_stride, "output_stride", "test_geometry")
    scale = _as_scale(scale, "test_geometry")
    # float64 as Python's `int(height * scale)`.
    resized = tf.cast(tf.floor(tf.cast(image_hw, tf.float64) * scale), tf.int32)  # [2]
    input_size = tf.bitwise.bitwise_or(resized, mask)
    output_size = (input_size + 1) // output_stride
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


def pad_for_test(image: tf.Tensor, granule: int = OFFICIAL_GRANULE) -> tf.Tensor:
    """Places an (already resized) image centred on a zero test canvas.

    Official `crop_image` as called by `kp_detection`: the canvas is
    `(h | 127, w | 127)` and zero before normalisation (the model normalises
    inside, so zeros here are the official padding). Pure TF, usable in
    `tf.data.Dataset.map`.

    Args:
        image: [H, W, C] or [B, H, W, C] (a batch of same-size images), any
            dtype.
        granule: see `test_geometry`; the canvas is `| (granule - 1)`.

    Returns:
        The canvas, [H | 127, W | 127, C] (or with the batch dimension), same
        dtype. `test_geometry(tf.shape(image)[-3:-1], granule=granule)` gives
        its borders.
    """
    image = tf.convert_to_tensor(image)
    rank = image.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"pad_for_test: `image` must be [H, W, C] or [B, H, W, C], got shape {image.shape}."
        )
    mask = _size_mask(granule, "pad_for_test")
    geometry = test_geometry(tf.shape(image)[-3:-1], granule=granule)
    y0, y1, x0, x1 = tf.unstack(geometry["crop"])
    top, bottom, left, right = tf.unstack(tf.cast(geometry["borders"], tf.int32))
    input_h, input_w = tf.unstack(geometry["input_size"])
    kept = image[..., y0:y1, x0:x1, :]
    paddings = [[top, input_h - bottom], [left, input_w - right], [0, 0]]
    if rank == 4:
        paddings = [[0, 0]] + paddings
    canvas = tf.pad(kept, paddings)
    # The padding amounts are tensors, so the canvas would leave the graph with
    # an unknown height and width even when the image's are known; the network
    # then runs its size-generic paths (the chunked corner pool, convolutions
    # without static shapes), 2-3x slower at 511x511. The size is a function of
    # the image size alone: state it.
    height, width = image.shape[-3:-1]
    if height is not None and width is not None:
        canvas = tf.ensure_shape(
            canvas,
            image.shape[:-3].concatenate([height | mask, width | mask, image.shape[-1]]),
        )
    return canvas


def prepare_test_image(
    image: tf.Tensor, scale=1.0, output_stride: int = 4, granule: int = OFFICIAL_GRANULE
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Resizes an image by `scale` and places it on its test canvas.

    Official `kp_detection`: `cv2.resize` (bilinear) to `int(h*scale) x
    int(w*scale)`, then `crop_image`. `tf.image.resize` (bilinear, half-pixel
    centres, no antialiasing) samples like `cv2.INTER_LINEAR`; integer images
    are rounded back to their dtype as cv2 does.

    Args:
        image: [H, W, C] or [B, H, W, C], any numeric dtype.
        scale: positive Python number or scalar tensor.
        output_stride, granule: see `test_geometry`.

    Returns:
        `(canvas, geometry)`: the canvas as in `pad_for_test` and
        `test_geometry(original_hw, scale, output_stride, granule)`.
    """
    image = tf.convert_to_tensor(image)
    if image.shape.rank not in (3, 4):
        raise ValueError(
            f"prepare_test_image: `image` must be [H, W, C] or [B, H, W, C], got shape "
            f"{image.shape}."
        )
    geometry = test_geometry(tf.shape(image)[-3:-1], scale, output_stride, granule)
    if not (isinstance(scale, numbers.Real) and scale == 1):
        resized = tf.image.resize(image, geometry["resized_size"], method="bilinear")
        if image.dtype.is_integer:
            resized = tf.saturate_cast(tf.round(resized), image.dtype)
        else:
            resized = tf.cast(resized, image.dtype)
        height, width = image.shape[-3:-1]
        if isinstance(scale, numbers.Real) and height is not None and width is not None:
            # A static size keeps the canvas static (see `pad_for_test`).
            resized = tf.ensure_shape(
                resized,
                image.shape[:-3].concatenate(
                    [math.floor(height * scale), math.floor(width * scale), image.shape[-1]]
                ),
            )
        image = resized
    return pad_for_test(image, granule), geometry


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


def _size_mask(granule, caller: str) -> int:
    """`granule - 1` for a power-of-two `granule`; the canvas is `size | mask`."""
    if (
        isinstance(granule, bool)
        or not isinstance(granule, numbers.Integral)
        or granule < 1
        or granule & (granule - 1)
    ):
        raise ValueError(
            f"{caller}: `granule` must be a power of two (the network's output stride times "
            f"2**levels, `CornerNet.input_size_granule`; 128 for Hourglass-104), got {granule!r}."
        )
    return int(granule) - 1


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
