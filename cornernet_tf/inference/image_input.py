"""What the Keras inference API accepts as an image, checked in one place.

`CornerNet.predict` (NumPy batches), `CornerNet.predict_images` and the
TFLite detector run every host-side image through `check_image`: RGB pixel
values in [0, 255] as [H, W, 3] (or a [B, H, W, 3] batch of at least one
image), at least 1×1 and at most `max_side` pixels a side, of an integer or
float dtype with every value in [0, 255]. A single non-finite or huge pixel
would turn every heatmap into NaN and silently return no detections, a 16-bit
image would be read as very bright 8-bit pixels, and a very large image would
exhaust memory, so all are refused with the fix instead. docs/input.md states
the whole contract.
"""

from __future__ import annotations

import numpy as np

from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE

__all__ = ["check_image", "check_max_side"]


def check_max_side(max_side, where: str) -> int:
    """Returns `max_side` as an int after checking it is a positive integer."""
    if isinstance(max_side, bool) or not isinstance(max_side, int | np.integer) or max_side < 1:
        raise ValueError(f"{where}: `max_image_side` must be a positive integer, got {max_side!r}.")
    return int(max_side)


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
    elif array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"{where} has {array.dtype} values in [{array.min()}, {array.max()}]; pass 8-bit "
            "values in [0, 255] (for 16-bit images: (image // 257).astype('uint8'))."
        )
    return array
