"""What the Keras inference API accepts as an image, checked in one place.

`CornerNet.predict` (NumPy batches), `CornerNet.predict_images` and the
TFLite detector run every host-side image through `check_image`: RGB pixel
values in [0, 255] as [H, W, 3] (or a [B, H, W, 3] batch of at least one
image), at least 1×1 and at most `max_side` pixels a side, of an integer or
float dtype with every value in [0, 255]. A single non-finite or huge pixel
would turn every heatmap into NaN and silently return no detections, a 16-bit
image would be read as very bright 8-bit pixels, and a very large image would
exhaust memory, so all are refused with the fix instead. Float images whose
values all lie in (0, 1] are accepted with a warning: they are most likely
scaled to [0, 1] and would give meaningless boxes. docs/input.md states the
whole contract. `letterbox` fits an image into a fixed input (TFLite, ONNX and
their int8 calibration).

`check_image_batch` is its graph-side counterpart, for batches that arrive
as tensors (`CornerNet.predict` on a `tf.data.Dataset`, the SavedModel
signatures): the same conditions, failing the step with an
`InvalidArgumentError` that says what and how to fix it.
"""

from __future__ import annotations

import warnings

import numpy as np
import tensorflow as tf

from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE, check_input_size
from cornernet_tf.utils.checks import check_count

__all__ = ["check_image", "check_image_batch", "check_max_side", "letterbox"]


def check_max_side(max_side, where: str) -> int:
    """Returns `max_side` as an int after checking it is a positive integer."""
    return check_count(max_side, "max_image_side", where)


def check_image(
    image, where: str, *, batched: bool = False, max_side: int | None = DEFAULT_MAX_IMAGE_SIDE
) -> np.ndarray:
    """Returns `image` as a NumPy array after checking it is a valid RGB image.

    Args:
        image: an array-like image, [H, W, 3] (or [B, H, W, 3] with `batched`).
        where: how the error names the input, e.g. "predict_images: image 2".
        batched: expect a batch.
        max_side: refuse images with a longer side (memory grows with the
            pixels; see `cornernet_tf.spec.exported_io.DEFAULT_MAX_IMAGE_SIDE`);
            None: no limit (a fixed-size TFLite input letterboxes any size).

    Returns:
        The image as a NumPy array (not copied when it already is one).

    Raises:
        TypeError: not an array of numbers.
        ValueError: wrong rank or channels, an empty side, a side above
            `max_side`, an empty batch, or values outside [0, 255] (NaN and
            inf included).
    """
    if image is None or isinstance(image, str | bytes):
        raise TypeError(
            f"{where} is {type(image).__name__}, not an image array; read files with "
            "cornernet_tf.images.read_image (or use cornernet-predict on file names)."
        )
    if batched and isinstance(image, list | tuple) and len({np.shape(x) for x in image}) > 1:
        raise TypeError(
            f"{where} is a list of images of different sizes; pass them to predict_images as a "
            "list (each image runs at its own size), or resize them to one size."
        )
    array = np.asarray(image)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise TypeError(
            f"{where} has dtype {array.dtype}; pass RGB pixel values in [0, 255] as uint8 or "
            "float (images of different sizes go to predict_images as a list)."
        )
    shape = "[B, H, W, 3]" if batched else "[H, W, 3]"
    if array.ndim != (4 if batched else 3) or array.shape[-1] != 3:
        raise ValueError(
            f"{where} has shape {array.shape}; expected {shape} RGB (convert grayscale or "
            "RGBA to RGB first)."
        )
    if min(array.shape[-3:-1]) < 1:
        raise ValueError(f"{where} has shape {array.shape}: an image needs at least 1x1 pixels.")
    if array.size == 0:
        raise ValueError(f"{where} holds no images (shape {array.shape}); pass at least one.")
    if max_side is not None and max(array.shape[-3:-1]) > max_side:
        raise ValueError(
            f"{where} has shape {array.shape}: sides above {max_side} pixels are refused "
            "(memory grows with the pixels); resize the image, or pass a larger "
            "max_image_side if the machine has the memory (docs/input.md)."
        )
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(
                f"{where} has non-finite pixel values (NaN or inf), which would make every "
                "score NaN; clean or clip the image to [0, 255]."
            )
        if array.min() < 0 or array.max() > 255:
            raise ValueError(
                f"{where} has {array.dtype} values in [{array.min():g}, {array.max():g}]; pass "
                "RGB pixel values in [0, 255] (for images in [0, 1]: image * 255; clip "
                "others with np.clip(image, 0, 255))."
            )
        if 0 < array.max() <= 1:
            warnings.warn(
                f"{where} has {array.dtype} values in [{array.min():g}, {array.max():g}]: "
                "pixel values in [0, 255] are expected; multiply images scaled to [0, 1] by 255.",
                stacklevel=3,
            )
    elif array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"{where} has {array.dtype} values in [{array.min()}, {array.max()}]; pass 8-bit "
            "values in [0, 255] (for 16-bit images: (image // 257).astype('uint8'))."
        )
    return array


def check_image_batch(
    images: tf.Tensor,
    where: str,
    *,
    max_side: int | None = DEFAULT_MAX_IMAGE_SIDE,
    fix: str = "resize larger ones",
) -> tf.Tensor:
    """`images` once it is known to be a valid batch [B, H, W, 3] (graph-side `check_image`).

    Args:
        images: a tensor, any dtype, of any (possibly unknown) shape.
        where: how the error names the input, e.g. "detect_uint8: `images`".
        max_side: refuse a longer side; None: no limit.
        fix: how to meet the side limit, for the message.

    Returns:
        `images`, with every check as a control dependency (they run before
        anything reads it).

    Raises:
        InvalidArgumentError: when the checks run, for a batch of another
            rank or channel count, an empty batch or side, a side above
            `max_side`, or values outside [0, 255] (NaN and inf included).
    """
    images = tf.convert_to_tensor(images)
    # Raw ops: `tf.shape` and `tf.rank` answer from the traced shape, but a
    # loaded SavedModel signature is called with tensors of any shape.
    shape = tf.raw_ops.Shape(input=images, out_type=tf.int64)
    rank = tf.size(shape, out_type=tf.int64)
    # Padded to four entries, so the conditions below hold for any rank.
    padded = tf.concat([shape, tf.zeros([4], tf.int64)], 0)[:4]
    limit = f"; sides above {max_side} pixels are refused ({fix})" if max_side is not None else ""
    size = tf.raw_ops.Size(input=images, out_type=tf.int64)
    shape_ok = (
        (rank >= 4)
        & (size == tf.reduce_prod(padded))  # more axes than four: all of size 1
        & tf.reduce_all(padded[:3] >= 1)
        & (padded[3] == 3)
    )
    if max_side is not None:
        shape_ok &= tf.reduce_max(padded[1:3]) <= max_side
    checks = [
        tf.debugging.Assert(
            shape_ok,
            [
                # No brackets in the texts: the error shows each part in brackets.
                f"{where} must be a non-empty batch (B, H, W, 3) of RGB images{limit}; got shape",
                shape,
            ],
            summarize=4,
        )
    ]
    if images.dtype != tf.uint8 and (images.dtype.is_floating or images.dtype.is_integer):
        with tf.control_dependencies(checks):
            values = tf.cast(images, tf.float32)
            low, high = tf.reduce_min(values), tf.reduce_max(values)
        in_range = tf.reduce_all(tf.math.is_finite(values)) & (low >= 0) & (high <= 255)
        checks.append(
            tf.debugging.Assert(
                (tf.size(values) == 0) | in_range,
                [
                    f"{where} must hold RGB pixel values from 0 to 255 (clip them; NaN and "
                    "inf make every score NaN); its minimum is",
                    low,
                    "and its maximum",
                    high,
                ],
            )
        )
    with tf.control_dependencies(checks):
        # A traced graph may take the rank from its input signature (a loaded
        # signature is called with any shape): extra axes of size 1 pass the
        # checks above and are dropped here.
        return tf.ensure_shape(tf.reshape(images, padded), [None, None, None, 3])


def letterbox(image: np.ndarray, input_size) -> tuple[np.ndarray, float]:
    """Fits an image into the fixed TFLite input, keeping its aspect ratio.

    The image is resized (bilinear) by `scale = min(H / h, W / w)` and placed
    at the top-left of a zero canvas of `input_size`; boxes the model returns
    map back to the original image as `box / scale`.

    Args:
        image: [h, w, 3] RGB, any numeric dtype.
        input_size: (H, W) of the TFLite input.

    Returns:
        `(canvas, scale)`: [1, H, W, 3] float32 and the resize factor.

    Raises:
        ValueError: a bad `input_size` or an image that is not [h, w, 3].
    """
    height, width = check_input_size(input_size, "letterbox")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"letterbox: `image` must be [h, w, 3] RGB, got shape {image.shape}.")
    scale = min(height / image.shape[0], width / image.shape[1])
    new_h = max(1, min(height, round(image.shape[0] * scale)))
    new_w = max(1, min(width, round(image.shape[1] * scale)))
    resized = tf.image.resize(image.astype(np.float32), (new_h, new_w)).numpy()
    canvas = np.zeros((1, height, width, 3), np.float32)
    canvas[0, :new_h, :new_w] = resized
    return canvas, scale
