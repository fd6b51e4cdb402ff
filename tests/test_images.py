"""`cornernet_tf.images`: files are read as a viewer shows them (EXIF orientation)."""

import numpy as np
import pytest
import tensorflow as tf
from image_files import displayed, exif_segment, jpeg, png_bomb, stored_image

from cornernet_tf import images


@tf.function(input_signature=[tf.TensorSpec([], tf.string)], autograph=False)
def _decode(contents):
    """`decode_checked` and `exif_orientation`, traced once for all the cases."""
    image, code = images.decode_checked(contents, max_pixels=1 << 20)
    return image, code, images.exif_orientation(contents)


_orientation = tf.function(
    images.exif_orientation, input_signature=[tf.TensorSpec([], tf.string)], autograph=False
)


@pytest.mark.parametrize("byte_order", ["II", "MM"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_gives_the_displayed_image(orientation, byte_order):
    contents = jpeg(stored_image(), orientation, byte_order)
    image, code, found = _decode(tf.constant(contents))
    assert int(code) == images.OK and int(found) == orientation
    np.testing.assert_array_equal(image.numpy(), displayed(contents))


@pytest.mark.parametrize(
    "contents",
    [
        pytest.param(jpeg(stored_image()), id="jpeg-without-exif"),
        pytest.param(jpeg(stored_image(), 9), id="orientation-out-of-range"),
        pytest.param(jpeg(stored_image(), 6)[:40], id="truncated-inside-exif"),
        pytest.param(b"\xff\xd8\xff\xe1\xff\xffExif\0\0MM", id="segment-longer-than-file"),
        pytest.param(
            jpeg(stored_image(), comment=b"\xff\xe1\x00\x40" + exif_segment(6, "II")),
            id="exif-bytes-inside-a-comment-segment",
        ),
        pytest.param(png_bomb(8, 8), id="png"),
        pytest.param(b"", id="empty"),
    ],
)
def test_exif_orientation_without_a_usable_tag_is_the_stored_one(contents):
    assert int(_orientation(tf.constant(contents))) == 1


def test_every_file_reader_applies_the_orientation(tmp_path):
    # images.read_image is the reader of training, evaluation, predict and calibration.
    path = tmp_path / "phone.jpg"
    path.write_bytes(jpeg(stored_image(128, 64), 6))
    image, code = images.read_image(tf.constant(str(path)))
    assert int(code) == images.OK and image.shape == (64, 128, 3)  # shown 128 wide, 64 high
