"""Image sizes from file headers (Pillow opens lazily: no pixel is decoded).

The size is the one the trainer sees: `cornernet_tf.images` applies a JPEG's
EXIF orientation, so orientations 5-8 (the quarter turns) swap width and
height here too. Only the formats the trainer reads are accepted.
"""

from __future__ import annotations

import os

from cornernet_tf.utils.fs import not_a_file

__all__ = ["READABLE_FORMATS", "image_size"]

# Pillow's names of the formats `cornernet_tf.images.read_image` decodes.
READABLE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "GIF", "BMP"})
_ORIENTATION_TAG = 0x0112


def image_size(path: str | os.PathLike) -> tuple[int, int] | str:
    """(width, height) of an image as displayed, or the reason it cannot be used.

    Args:
        path: the image file.

    Returns:
        `(width, height)`, or a string saying why the file is unusable
        (missing, not an image, a format the trainer cannot read).
    """
    from PIL import Image, UnidentifiedImageError

    reason = not_a_file(path)  # a FIFO or device would block the read
    if reason is not None:
        return reason
    try:
        with Image.open(path) as image:
            if image.format not in READABLE_FORMATS:
                return f"{image.format} images are not read by the trainer (JPEG, PNG, GIF, BMP)"
            width, height = image.size
            orientation = (
                image.getexif().get(_ORIENTATION_TAG, 1)
                if image.format
                in (
                    "JPEG",
                    "MPO",
                )
                else 1
            )
    except FileNotFoundError:
        return "not found"
    except UnidentifiedImageError:
        return "not an image file (or a truncated one)"
    except OSError as error:
        return f"cannot be read ({error})"
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return width, height
