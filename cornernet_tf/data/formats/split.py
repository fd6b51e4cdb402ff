"""A seeded train/val division of one converted folder, every class in both where possible.

The images are shuffled with the seed; then, rarest class first, each class
that has no validation image yet gets one of its images moved to validation
(when it has at least two, so that training keeps one); then validation is
filled to `round(fraction * N)` images in shuffled order, skipping any image
whose move would take a class's last training image. The same images, seed
and fraction always give the same division.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter

from cornernet_tf.data.formats.common import Conversion, FormatError

__all__ = ["split_train_val"]


def split_train_val(
    conversion: Conversion, fraction: float, seed: int
) -> tuple[Conversion, Conversion]:
    """Divides a conversion's images into (train, val).

    Args:
        conversion: the images (in file-name order) and classes.
        fraction: share of images for validation, in (0, 1).
        seed: the shuffle's seed.

    Returns:
        (train, val), each a `Conversion` with the same classes; the reading problems
        stay with train (they were found once, reading the source).

    Raises:
        FormatError: `fraction` outside (0, 1), or fewer than two images.
    """
    if not 0.0 < fraction < 1.0:
        raise FormatError(f"--val-fraction {fraction}: must be between 0 and 1 (e.g. 0.2).")
    images = list(conversion.images)
    if len(images) < 2:
        raise FormatError(
            f"--val-fraction: {len(images)} image(s) cannot be divided into two splits."
        )
    order = list(range(len(images)))
    random.Random(seed).shuffle(order)
    labels = [{box.label for box in image.boxes if not box.ignore} for image in images]
    train_count = Counter(label for image_labels in labels for label in image_labels)
    target = min(len(images) - 1, max(1, round(fraction * len(images))))
    val: list[int] = []

    def movable(k: int) -> bool:
        return all(train_count[label] > 1 for label in labels[k])

    def move(k: int) -> None:
        val.append(k)
        train_count.subtract(labels[k])

    for label in sorted(train_count, key=lambda name: (train_count[name], name)):
        if len(val) >= target or any(label in labels[k] for k in val):
            continue
        candidate = next(
            (k for k in order if label in labels[k] and k not in val and movable(k)), None
        )
        if candidate is not None:
            move(candidate)
    for k in order:
        if len(val) >= target:
            break
        if k not in val and movable(k):
            move(k)
    chosen = set(val)
    train = [image for k, image in enumerate(images) if k not in chosen]
    validation = [image for k, image in enumerate(images) if k in chosen]
    return (
        dataclasses.replace(conversion, images=train),
        dataclasses.replace(conversion, images=validation, issues=[]),
    )
