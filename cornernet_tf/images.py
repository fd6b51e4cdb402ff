"""Reading image files: header checks before decoding, status codes instead of errors.

One reader for every path that opens an image file: the training pipeline
(`cornernet_tf.data.pipeline`), COCO evaluation, the scripts, the TFLite
calibration and the SavedModel's `serving_default` signature. Formats are JPEG,
PNG, GIF (first frame), BMP and WebP (still images; the SavedModel's signature
refuses WebP before this reader runs); the size is read from the file header and
checked against `max_pixels` (and `max_side`) before anything is decoded, so an
image that would exhaust memory is refused undecoded. A JPEG's EXIF orientation
is applied, so that pixels and boxes are those of the image as viewers show it
(as OpenCV's `imread`, the official reader, does). The accepted input is
described in docs/input.md.
"""

from __future__ import annotations

import functools
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
    "SIZE_MISMATCH",
    "TOO_LARGE",
    "UNSUPPORTED_FORMAT",
    "apply_orientation",
    "check_annotated_size",
    "decode_checked",
    "exif_orientation",
    "image_files",
    "image_header_size",
    "read_image",
]

# Status codes of `read_image` (and SIZE_MISMATCH of `check_annotated_size`).
OK, EMPTY_FILE, CORRUPT, TOO_LARGE, UNSUPPORTED_FORMAT, SIZE_MISMATCH = range(6)
REASONS = (
    "ok",
    "empty file",
    "missing, unreadable, truncated or corrupt",
    "too large (more pixels than max_pixels, or a side longer than max_image_side)",
    "unsupported format (JPEG, PNG, GIF, BMP and WebP are read)",
    "its size differs from the annotation file's width and height, so its boxes cannot be "
    "trusted (a JPEG is read turned by its EXIF orientation: give the displayed size)",
)
DEFAULT_MAX_PIXELS = 1 << 26  # 67 megapixels (8192 x 8192): ~200 MB decoded

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# EXIF lives in a JPEG's APP1 segment, which precedes the image data: the
# first bytes of the file hold it (APP segments are at most 64 KiB each).
_EXIF_SEARCH_BYTES = 1 << 18
# (offset, byte) of an APP1 "Exif" segment's start: marker FF E1, a 2-byte
# length, the identifier "Exif\0\0".
_EXIF_SEGMENT_BYTES = ((0, 0xFF), (1, 0xE1), *((4 + k, v) for k, v in enumerate(b"Exif\0\0")))
_MAX_JPEG_SEGMENTS = 32
_MAX_IFD_ENTRIES = 64
_ORIENTATION_TAG = 0x0112


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
    (logical screen, little-endian), BMP (DIB header, little-endian) and WebP
    (the first chunk of the RIFF container: VP8X canvas, VP8 key frame or VP8L
    bitstream header) parsed from their fixed header fields.

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
    # Zero-padded: `substr` fails at a position beyond the end of a short file.
    riff = tf.strings.join([tf.strings.substr(contents, 0, 12), b"\0" * 12])
    is_webp = (tf.strings.substr(riff, 0, 4) == b"RIFF") & (
        tf.strings.substr(riff, 8, 4) == b"WEBP"
    )

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
        [
            (is_jpeg, jpeg),
            (is_png, png),
            (is_gif, gif),
            (is_bmp, bmp),
            (is_webp, _webp_size(contents)),
        ],
        default=lambda: tf.constant([-1, -1], tf.int64),
        exclusive=False,
    )
    known = is_jpeg | is_png | is_gif | is_bmp | is_webp
    return size, tf.where(known, OK, UNSUPPORTED_FORMAT)


def _webp_size(contents: tf.Tensor):
    """A function giving a WebP file's (height, width) from its first chunk's header.

    The chunk follows the 12-byte RIFF header: "VP8X" (extended format) holds
    the canvas size minus one in two 24-bit little-endian fields; "VP8 " (lossy)
    a key frame whose 14-bit width and height follow the start code; "VP8L"
    (lossless) a signature byte, then width - 1 and height - 1 in 14 bits each.
    An unknown chunk gives [0, 0], which `decode_checked` calls corrupt.
    """

    def little(start, length):
        return _big_endian(_bytes_at(contents, start, length)[::-1])

    def extended():
        return tf.stack([little(27, 3) + 1, little(24, 3) + 1])

    def lossy():
        return tf.stack(
            [
                tf.bitwise.bitwise_and(little(28, 2), 0x3FFF),
                tf.bitwise.bitwise_and(little(26, 2), 0x3FFF),
            ]
        )

    def lossless():
        bits = little(21, 4)
        width = tf.bitwise.bitwise_and(bits, 0x3FFF) + 1
        height = tf.bitwise.bitwise_and(tf.bitwise.right_shift(bits, 14), 0x3FFF) + 1
        return tf.stack([height, width])

    def size():
        head = tf.strings.join([tf.strings.substr(contents, 0, 16), b"\0" * 16])
        chunk = tf.strings.substr(head, 12, 4)
        return tf.case(
            [(chunk == b"VP8X", extended), (chunk == b"VP8 ", lossy), (chunk == b"VP8L", lossless)],
            default=lambda: tf.constant([0, 0], tf.int64),
            exclusive=True,
        )

    return size


def exif_orientation(contents: tf.Tensor) -> tf.Tensor:
    """The EXIF orientation (1-8) of a JPEG file, read from its bytes; 1 when absent.

    Walks the JPEG segments up to the image data to the APP1 "Exif" segment
    and reads tag 0x0112 of its first IFD (either byte order). Anything else
    (another format, no EXIF, a value outside 1-8, truncated data) gives 1,
    the stored orientation. Never raises.

    Args:
        contents: scalar string, the file bytes.

    Returns:
        int32 scalar in 1..8 (TIFF/EXIF orientation codes).
    """
    head = tf.io.decode_raw(tf.strings.substr(contents, 0, _EXIF_SEARCH_BYTES), tf.uint8)
    padded = tf.concat([head, tf.zeros([16], tf.uint8)], 0)
    # Where an APP1 "Exif" segment could start: the segment walk below (a
    # while loop, ~0.1 ms a segment in a tf.data map) only runs when some
    # position matches, as it finds nothing otherwise.
    size = tf.size(head)
    candidates = tf.reduce_all(
        tf.stack([padded[k : size + k] == value for k, value in _EXIF_SEGMENT_BYTES]), axis=0
    )
    return tf.cond(
        tf.io.is_jpeg(contents) & tf.reduce_any(candidates),
        lambda: _walk_to_orientation(padded),
        lambda: tf.constant(1, tf.int32),
    )


def _walk_to_orientation(padded: tf.Tensor) -> tf.Tensor:
    """`exif_orientation` of a JPEG whose first bytes, zero-padded, are `padded` (uint8)."""
    data = tf.cast(padded, tf.int32)
    last = tf.size(data) - 1

    def byte(i):  # out-of-range offsets read the zero padding
        return tf.gather(data, tf.clip_by_value(i, 0, last))

    def big16(i):
        return byte(i) * 256 + byte(i + 1)

    def segment(i, pos, tiff):
        marker = byte(pos + 1)
        is_exif = (marker == 0xE1) & tf.reduce_all(
            byte(pos + 4 + tf.range(6)) == tf.constant(list(b"Exif\0\0"))
        )
        tiff = tf.where(is_exif & (tiff < 0), pos + 10, tiff)
        return i + 1, pos + 2 + big16(pos + 2), tiff

    def more(i, pos, tiff):
        marker = byte(pos + 1)
        return (
            (i < _MAX_JPEG_SEGMENTS)
            & (tiff < 0)
            & (pos + 4 <= last)
            & (byte(pos) == 0xFF)
            & (marker != 0xDA)  # start of scan: the image data follows
            & (marker != 0xD9)
        )

    _, _, tiff = tf.while_loop(more, segment, (0, 2, -1))
    little = (byte(tiff) == 0x49) & (byte(tiff + 1) == 0x49)  # "II"; "MM" is big-endian

    def read16(i):
        return tf.where(little, byte(i) + byte(i + 1) * 256, big16(i))

    def read32(i):
        low, high = read16(i), read16(i + 2)
        return tf.where(little, low + high * 65536, high + low * 65536)

    ifd = tiff + read32(tiff + 4)
    entries = ifd + 2 + 12 * tf.range(_MAX_IFD_ENTRIES)  # [E] entry offsets
    tags, values = read16(entries), read16(entries + 8)  # a SHORT value is left-aligned
    found = (tags == _ORIENTATION_TAG) & (tf.range(_MAX_IFD_ENTRIES) < read16(ifd))
    value = tf.reduce_max(tf.where(found, values, 0))
    valid = (tiff >= 0) & (value >= 1) & (value <= 8)
    return tf.where(valid, value, 1)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """Turns a stored image [H, W, C] into the displayed one for an EXIF orientation.

    1: as stored; 2: mirrored; 3: rotated 180°; 4: flipped; 5: transposed;
    6: rotated 90° clockwise; 7: transverse; 8: rotated 90° counter-clockwise
    (as `PIL.ImageOps.exif_transpose`). Orientations 5-8 swap height and width.
    """
    orientation = tf.cast(orientation, tf.int32)
    transpose = (orientation >= 5) & (orientation <= 8)
    flip_rows = tf.reduce_any(orientation == tf.constant([3, 4, 7, 8]))
    flip_cols = tf.reduce_any(orientation == tf.constant([2, 3, 6, 7]))
    image = tf.cond(transpose, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    return tf.reverse(image, tf.boolean_mask(tf.constant([0, 1]), tf.stack([flip_rows, flip_cols])))


def decode_checked(
    contents: tf.Tensor, *, max_pixels: int, max_side: int | None = None
) -> tuple[tf.Tensor, tf.Tensor]:
    """Checks the header, then decodes to a 3-channel uint8 image as displayed.

    Grayscale becomes RGB, alpha is dropped, 16-bit PNGs are scaled to 8 bits
    (`tf.io.decode_image` semantics), animations give their first frame. JPEGs
    use the accurate integer IDCT, as OpenCV (the official reader) does, and
    are turned by their EXIF orientation (`exif_orientation`).

    Args:
        contents: scalar string, the file bytes.
        max_pixels: refuse images with more pixels (from the header) undecoded.
        max_side: refuse images with a longer side (from the header) undecoded;
            None: no side limit.

    Returns:
        (image [H, W, 3] uint8, code int32 scalar). For a code other than OK
        the image is [1, 1, 3] zeros. Corrupt data raises (inside TF); wrap
        the call as `read_image` does.
    """
    size, code = image_header_size(contents)
    num_pixels = size[0] * size[1]
    code = tf.where(tf.strings.length(contents) == 0, EMPTY_FILE, code)
    code = tf.where((code == OK) & tf.reduce_any(size <= 0), CORRUPT, code)
    too_large = num_pixels > max_pixels
    if max_side is not None:
        too_large |= tf.reduce_max(size) > max_side
    code = tf.where((code == OK) & too_large, TOO_LARGE, code)

    def decode():
        image = tf.cond(
            tf.io.is_jpeg(contents),
            lambda: apply_orientation(
                tf.io.decode_jpeg(contents, channels=3, dct_method="INTEGER_ACCURATE"),
                exif_orientation(contents),
            ),
            lambda: tf.io.decode_image(
                contents, channels=3, dtype=tf.uint8, expand_animations=False
            ),
        )
        return tf.ensure_shape(image, [None, None, 3])

    image = tf.cond(code == OK, decode, lambda: tf.zeros([1, 1, 3], tf.uint8))
    return image, tf.cast(code, tf.int32)


def check_annotated_size(image: tf.Tensor, code: tf.Tensor, size: tf.Tensor) -> tf.Tensor:
    """`code`, or SIZE_MISMATCH when a read image is not the size its annotation gives.

    A COCO annotation's boxes are in the pixels of an image of its `height` x
    `width`; an image of another size (another file, a resized copy, an EXIF
    orientation 5-8 against a stored size) would train and score on wrong boxes.

    Args:
        image: a decoded image [H, W, 3] (`read_image`).
        code: its status code.
        size: annotated (height, width), int64 [2]; zeros when not annotated.

    Returns:
        int32 status code.
    """
    size = tf.cast(size, tf.int64)
    actual = tf.cast(tf.shape(image)[:2], tf.int64)
    mismatch = (code == OK) & tf.reduce_all(size > 0) & tf.reduce_any(actual != size)
    return tf.where(mismatch, SIZE_MISMATCH, tf.cast(code, tf.int32))


def read_image(
    path: tf.Tensor, *, max_pixels: int = DEFAULT_MAX_PIXELS, max_side: int | None = None
):
    """Reads and decodes an image file; never raises on bad files.

    Any error while reading, parsing the header or decoding (missing file,
    truncated or corrupt data) is caught inside the graph: the work runs in a
    one-element dataset with `ignore_errors`, followed by a fallback element.

    Args:
        path: scalar string tensor.
        max_pixels: see `decode_checked`.
        max_side: see `decode_checked`.

    Returns:
        (image [H, W, 3] uint8, code int32 scalar; `REASONS[code]` explains it).
    """
    return _reader(max_pixels, max_side)(tf.convert_to_tensor(path, tf.string))


@functools.cache
def _reader(max_pixels: int, max_side: int | None) -> tf.types.experimental.GenericFunction:
    """`read_image` for one pair of limits, traced once per process (not on every call)."""

    def decode(path):
        return decode_checked(tf.io.read_file(path), max_pixels=max_pixels, max_side=max_side)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
    def read(path):
        attempt = (
            tf.data.Dataset.from_tensors(path)
            .map(tf.autograph.experimental.do_not_convert(decode))
            .ignore_errors()
        )
        fallback = tf.data.Dataset.from_tensors(
            (tf.zeros([1, 1, 3], tf.uint8), tf.constant(CORRUPT))
        )
        return attempt.concatenate(fallback).take(1).get_single_element()

    return read


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


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
