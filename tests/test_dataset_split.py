"""`--val-fraction`: a seeded train/val division with every class in both where possible."""

import pytest

from cornernet_tf.data.formats.common import Box, Conversion, FormatError, SourceImage
from cornernet_tf.data.formats.split import split_train_val


def _conversion(labels_per_image):
    images = [
        SourceImage(
            f"/src/{k:02d}.jpg", f"{k:02d}.jpg", 10, 10, [Box(x, 0, 0, 5, 5) for x in labels]
        )
        for k, labels in enumerate(labels_per_image)
    ]
    return Conversion(images, ["a", "b", "rare", "single"], issues=[])


# 20 images: "a" in most, "b" in some, "rare" in two, "single" in one, two backgrounds.
LABELS = (
    [["a"]] * 10 + [["a", "b"]] * 3 + [["b"]] * 3 + [["rare"], ["rare", "a"], ["single"]] + [[]]
)


def _classes(images):
    return {box.label for image in images for box in image.boxes}


def _names(conversion):
    return [image.file_name for image in conversion.images]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_every_class_with_two_images_is_in_both(seed):
    train, val = split_train_val(_conversion(LABELS), 0.25, seed)
    assert len(val.images) == 5 and len(train.images) == 15
    assert sorted(_names(train) + _names(val)) == [f"{k:02d}.jpg" for k in range(20)]
    assert _classes(val.images) == {"a", "b", "rare"}
    assert _classes(train.images) == {"a", "b", "rare", "single"}  # one image: kept for training
    assert _names(train) == sorted(_names(train)) and _names(val) == sorted(_names(val))


def test_the_seed_decides_and_repeats():
    conversion = _conversion(LABELS)
    first = _names(split_train_val(conversion, 0.25, 0)[1])
    assert _names(split_train_val(conversion, 0.25, 0)[1]) == first
    assert _names(split_train_val(_conversion(LABELS), 0.25, 0)[1]) == first
    assert _names(split_train_val(conversion, 0.25, 1)[1]) != first


def test_the_fraction_is_checked():
    for fraction in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(FormatError, match="--val-fraction"):
            split_train_val(_conversion(LABELS), fraction, 0)
    with pytest.raises(FormatError, match="cannot be divided"):
        split_train_val(_conversion([["a"]]), 0.5, 0)
    train, val = split_train_val(_conversion([["a"], ["a"]]), 0.01, 0)
    assert (len(train.images), len(val.images)) == (1, 1)
