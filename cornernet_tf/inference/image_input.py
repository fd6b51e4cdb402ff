"""What the Keras inference API accepts as an image, checked in one place.

`CornerNet.predict` (NumPy batches) and `CornerNet.predict_images` run every
host-side image through `check_image`: RGB pixel values in [0, 255] as
[H, W, 3] (or a [B, H, W, 3] batch), at least 1×1, of an integer dtype whose
values fit 0-255 or a float dtype with finite values. A single non-finite pixel
would turn every heatmap into NaN and silently return no detections, and a
16-bit image would be read as very bright 8-bit pixels, so both are refused
with the fix instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_image"]


def check_image(image, where: str, *, batched: bool = False) -> np.ndarray:
    """Returns `image` as a NumPy array after checking it is a valid RGB image.

    Args:
        image: an array-like image, [H, W, 3] (or [B, H, W, 3] with `batched`).
        where: how the error names the input, e.g. "predict_images: image 2".
        batched: expect a batch.

    Returns:
        The image as a NumPy array (not copied when it already is one).

    Raises:
        TypeError: not an array of numbers.
        ValueError: wrong rank or channels, an empty side, non-finite values,
            or integer values outside 0-255.
    """
    if image is None or isinstance(image, str | bytes):
        raise TypeError(
            f"{where} is {type(image).__name__}, not an image array; read files with "
            "cornernet_tf.images.read_image (or use cornernet-predict on file names)."
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
        raise ValueError(f"{where} holds no images (shape {array.shape}).")
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(
                f"{where} has non-finite pixel values (NaN or inf), which would make every "
                "score NaN; clean or clip the image to [0, 255]."
            )
    elif array.min() < 0 or array.max() > 255:
        raise ValueError(
            f"{where} has {array.dtype} values in [{array.min()}, {array.max()}]; pass 8-bit "
            "values in [0, 255] (for 16-bit images: (image // 257).astype('uint8'))."
        )
    return array
