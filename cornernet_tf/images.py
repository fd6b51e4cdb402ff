"""Reading image files: header checks before decoding, status codes instead of errors.

One reader for every path that opens an image file: the training pipeline
(`cornernet_tf.data.pipeline`), COCO evaluation, the scripts and the TFLite
calibration. Formats are JPEG, PNG, GIF (first frame) and BMP; the size is read
from the file header and checked against `max_pixels` before anything is
decoded, so an image that would exhaust memory is refused undecoded.
"""

from __future__ import annotations

import os
from pathlib import Path

import tensorflow as tf

__all__ = [
    "CORRUPT",
    "DEFAULT_MAX_PIXELS",
    "EMPTY_FILE",
    "IMAGE_SUFFIXES",
    "OK",
    "REASONS",
    "TOO_LARGE",
    "UNSUPPORTED_FORMAT",
    "decode_checked",
    "image_files",
    "image_header_size",
    "read_image",
]

# Status codes of `read_image`.
OK, EMPTY_FILE, CORRUPT, TOO_LARGE, UNSUPPORTED_FORMAT = range(5)
REASONS = (
    "ok",
    "empty file",
    "missing, unreadable, truncated or corrupt",
    "too many pixels (see max_pixels)",
    "unsupported format (JPEG, PNG, GIF and BMP are read)",
)
DEFAULT_MAX_PIXELS = 1 << 26  # 67 megapixels (8192 x 8192): ~200 MB decoded

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _bytes_at(contents: tf.Tensor, start: int, length: int) -> tf.Tensor:
    """`length` bytes of `contents` from `start` as int64 [length] (raises when too short)."""
    raw = tf.io.decode_raw(tf.strings.substr(contents, start, length), tf.uint8)
    raw = tf.ensure_shape(tf.reshape(raw, [length]), [length])  # fails on short data
    return tf.cast(raw, tf.int64)


def _big_endian(values: tf.Tensor) -> tf.Tensor:
    weights = tf.constant([256**k for k in reversed(range(values.shape[0]))], tf.int64)
    return tf.reduce_sum(values * weights)


def image_header_size(contents: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Image (height, width) read from the file header, without decoding.

    JPEG via `tf.image.extract_jpeg_shape`; PNG (IHDR, big-endian), GIF
    (logical screen, little-endian) and BMP (DIB header, little-endian) parsed
    from their fixed header fields.

    Args:
        contents: scalar string, the file bytes.

    Returns:
        (size [2] int64, format_code) where format_code is OK for a known
        format and UNSUPPORTED_FORMAT otherwise (size is then [-1, -1]).
        Raises (inside TF) on a header too short to read.
    """
    is_jpeg = tf.io.is_jpeg(contents)
    is_png = tf.strings.substr(contents, 0, 8) == _PNG_SIGNATURE
    magic = tf.strings.substr(contents, 0, 6)
    is_gif = (magic == b"GIF87a") | (magic == b"GIF89a")
    is_bmp = tf.strings.substr(contents, 0, 2) == b"BM"

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(contents)[:2], tf.int64)

    def png():
        return tf.stack(
            [_big_endian(_bytes_at(contents, 20, 4)), _big_endian(_bytes_at(contents, 16, 4))]
        )

    def gif():
        return tf.stack(
            [
                _big_endian(_bytes_at(contents, 8, 2)[::-1]),
                _big_endian(_bytes_at(contents, 6, 2)[::-1]),
            ]
        )

    def bmp():
        def signed32(v):
            v = _big_endian(v[::-1])
            return tf.abs(tf.where(v >= 2**31, v - 2**32, v))  # height < 0: top-down rows

        return tf.stack(
            [signed32(_bytes_at(contents, 22, 4)), signed32(_bytes_at(contents, 18, 4))]
        )

    size = tf.case(
        [(is_jpeg, jpeg), (is_png, png), (is_gif, gif), (is_bmp, bmp)],
        default=lambda: tf.constant([-1, -1], tf.int64),
        exclusive=False,
    )
    known = is_jpeg | is_png | is_gif | is_bmp
    return size, tf.where(known, OK, UNSUPPORTED_FORMAT)


def decode_checked(contents: tf.Tensor, *, max_pixels: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Checks the header, then decodes to a 3-channel uint8 image.

    Grayscale becomes RGB, alpha is dropped, 16-bit PNGs are scaled to 8 bits
    (`tf.io.decode_image` semantics), animations give their first frame. JPEGs
    use the accurate integer IDCT, as OpenCV (the official reader) does.

    Args:
        contents: scalar string, the file bytes.
        max_pixels: refuse images with more pixels (from the header) undecoded.

    Returns:
        (image [H, W, 3] uint8, code int32 scalar). For a code other than OK
        the image is [1, 1, 3] zeros. Corrupt data raises (inside TF); wrap
        the call as `read_image` does.
    """
    size, code = image_header_size(contents)
    num_pixels = size[0] * size[1]
    code = tf.where(tf.strings.length(contents) == 0, EMPTY_FILE, code)
    code = tf.where((code == OK) & tf.reduce_any(size <= 0), CORRUPT, code)
    code = tf.where((code == OK) & (num_pixels > max_pixels), TOO_LARGE, code)

    def decode():
        image = tf.cond(
            tf.io.is_jpeg(contents),
            lambda: tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
            lambda: tf.io.decode_image(
                contents, channels=3, dtype=tf.uint8, expand_animations=False
            ),
        )
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(code == OK, decode, lambda: tf.zeros([1, 1, 3], tf.uint8))
    return image, tf.cast(code, tf.int32)


def read_image(path: tf.Tensor, *, max_pixels: int = DEFAULT_MAX_PIXELS):
    """Reads and decodes an image file; never raises on bad files.

    Any error while reading, parsing the header or decoding (missing file,
    truncated or corrupt data) is caught inside the graph: the work runs in a
    one-element dataset with `ignore_errors`, followed by a fallback element.

    Args:
        path: scalar string tensor.
        max_pixels: see `decode_checked`.

    Returns:
        (image [H, W, 3] uint8, code int32 scalar; `REASONS[code]` explains it).
    """
    attempt = (
        tf.data.Dataset.from_tensors(path)
        .map(
            tf.autograph.experimental.do_not_convert(
                lambda p: decode_checked(tf.io.read_file(p), max_pixels=max_pixels)
            )
        )
        .ignore_errors()
    )
    fallback = tf.data.Dataset.from_tensors((tf.zeros([1, 1, 3], tf.uint8), tf.constant(CORRUPT)))
    return attempt.concatenate(fallback).take(1).get_single_element()


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def image_files(data_dir: str | os.PathLike, max_images: int | None = None) -> list[Path]:
    """Image files under `data_dir` (recursive, sorted), e.g. a COCO split folder.

    Args:
        data_dir: a directory.
        max_images: keep the first this many.

    Raises:
        ValueError: the directory is missing or holds no images.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {str(data_dir)!r} does not exist.")
    files = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"data directory {str(data_dir)!r} holds no {'/'.join(IMAGE_SUFFIXES)} images; pass "
            "the folder of a dataset's images."
        )
    return files[:max_images]
