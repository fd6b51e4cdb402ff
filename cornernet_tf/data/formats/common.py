"""What every format reader returns: images, boxes and the problems found on the way.

Boxes are continuous pixel corners `x1, y1, x2, y2` (the image spans
`[0, width] x [0, height]`), the frame `CocoDataset` reads with `x2 = x + w`.
Nothing is dropped silently: every box or image left out, and every box
changed (clipped), is an `Issue` naming `file:line` and the reason.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence

from cornernet_tf.utils.fs import not_a_file

__all__ = [
    "Box",
    "Conversion",
    "FormatError",
    "Issue",
    "SourceImage",
    "finish_boxes",
    "not_a_file",
    "parse_classes",
    "relative_name",
    "select_classes",
]

# Issue kinds. Each drops something (a box, an image or a whole file) or
# changes a box; `Issue.dropped` says which.
MALFORMED = "malformed"
UNKNOWN_CLASS = "unknown_class"
EXCLUDED_CLASS = "excluded_class"
EMPTY_BOX = "empty_box"
INVERTED_BOX = "inverted_box"
OUTSIDE_IMAGE = "outside_image"
CLIPPED = "clipped"
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
SIZE_MISMATCH = "size_mismatch"
DUPLICATE_IMAGE = "duplicate_image"
NO_LABEL_FILE = "no_label_file"
DUPLICATE_BOX = "duplicate_box"
IMAGE_BY_STEM = "image_by_stem"


class FormatError(Exception):
    """Input that cannot be converted at all; the message is one line naming the file and fix."""


@dataclasses.dataclass(frozen=True)
class Issue:
    """One problem found while reading: where, what, and what was left out.

    Attributes:
        where: `file:line` (or `file` when the whole file is concerned).
        kind: one of the module's kinds, e.g. "malformed".
        message: what is wrong, in words.
        dropped: "box", "image", "file" or "" (kept, changed or only noted).
    """

    where: str
    kind: str
    message: str
    dropped: str = ""

    def __str__(self) -> str:
        left_out = f" ({self.dropped} left out)" if self.dropped else ""
        return f"{self.where}: {self.kind}: {self.message}{left_out}"


@dataclasses.dataclass
class Box:
    """One object: class name, continuous pixel corners, and whether it is an ignore region.

    Attributes:
        label: class name.
        x1, y1, x2, y2: corners in pixels, `0 <= x1 < x2 <= width`.
        ignore: written with `iscrowd=1` (VOC `difficult`, COCO crowd):
            not a training target, and ignored by the COCO evaluation.
        where: `file:line` of the box, for the messages.
    """

    label: str
    x1: float
    y1: float
    x2: float
    y2: float
    ignore: bool = False
    where: str = ""

    @property
    def coco_bbox(self) -> list[float]:
        """`[x, y, w, h]` with `w = x2 - x1` (the inverse of the reader's `x2 = x + w`)."""
        return [self.x1, self.y1, self.x2 - self.x1, self.y2 - self.y1]


@dataclasses.dataclass
class SourceImage:
    """One image of the source dataset.

    Attributes:
        path: the source file (read, never modified).
        file_name: its name in the written split folder (a relative path).
        width, height: pixel size as the trainer reads it (EXIF orientation applied).
        boxes: its objects.
        image_id: the source's id (COCO input), or None to number the images.
    """

    path: str
    file_name: str
    width: int
    height: int
    boxes: list[Box] = dataclasses.field(default_factory=list)
    image_id: int | None = None


@dataclasses.dataclass
class Conversion:
    """A format reader's result.

    Attributes:
        images: the images kept, in file-name order.
        classes: class names in class-id order.
        issues: every problem found, in reading order.
        category_ids: the source's category id of each class (COCO input), or
            None to number the classes 1..K.
    """

    images: list[SourceImage]
    classes: list[str]
    issues: list[Issue]
    category_ids: list[int] | None = None

    def issue_counts(self) -> dict[str, int]:
        """Number of issues per kind."""
        return dict(Counter(issue.kind for issue in self.issues))


def finish_boxes(boxes: Iterable[Box], width: int, height: int, issues: list[Issue]) -> list[Box]:
    """Validates boxes against their image: drops the unusable, clips the overhanging.

    Args:
        boxes: boxes in continuous pixel corners.
        width, height: the image size.
        issues: where dropped and clipped boxes are recorded.

    Returns:
        The kept boxes, clipped to `[0, width] x [0, height]`.
    """
    kept = []
    for box in boxes:
        corners = (box.x1, box.y1, box.x2, box.y2)
        text = ", ".join(f"{v:g}" for v in corners)
        if not all(math.isfinite(v) for v in corners):
            issues.append(Issue(box.where, MALFORMED, f"non-finite corner in ({text})", "box"))
            continue
        if box.x2 < box.x1 or box.y2 < box.y1:
            issues.append(Issue(box.where, INVERTED_BOX, f"max < min in corners ({text})", "box"))
            continue
        if box.x2 <= 0 or box.y2 <= 0 or box.x1 >= width or box.y1 >= height:
            issues.append(
                Issue(
                    box.where,
                    OUTSIDE_IMAGE,
                    f"corners ({text}) outside the {width}x{height} image",
                    "box",
                )
            )
            continue
        clipped = (
            min(max(box.x1, 0.0), width),
            min(max(box.y1, 0.0), height),
            min(max(box.x2, 0.0), width),
            min(max(box.y2, 0.0), height),
        )
        if clipped[2] - clipped[0] <= 0 or clipped[3] - clipped[1] <= 0:
            issues.append(Issue(box.where, EMPTY_BOX, f"zero width or height ({text})", "box"))
            continue
        if clipped != corners:
            new = ", ".join(f"{v:g}" for v in clipped)
            issues.append(
                Issue(
                    box.where,
                    CLIPPED,
                    f"corners ({text}) clipped to the {width}x{height} image: ({new})",
                )
            )
            box = dataclasses.replace(
                box, x1=clipped[0], y1=clipped[1], x2=clipped[2], y2=clipped[3]
            )
        kept.append(box)
    return kept


def parse_classes(text: str | None) -> list[str] | None:
    """`--classes a,b,c` as a list (None when not given).

    Raises:
        FormatError: an empty or repeated name.
    """
    if text is None:
        return None
    names = [name.strip() for name in text.split(",")]
    if not names or any(not name for name in names):
        raise FormatError(f"--classes {text!r}: empty class name; pass names separated by commas.")
    repeated = sorted(name for name, n in Counter(names).items() if n > 1)
    if repeated:
        raise FormatError(f"--classes {text!r}: {repeated} given twice; name each class once.")
    return names


def select_classes(
    images: Sequence[SourceImage],
    found: Sequence[str],
    wanted: Sequence[str] | None,
    issues: list[Issue],
) -> list[str]:
    """The class list, and the boxes of the other classes removed (each an `Issue`).

    Args:
        images: the images; boxes of classes outside the result are removed in place.
        found: the format's class names, in its order.
        wanted: `--classes` (order and subset), or None for `found`.
        issues: where removed boxes are recorded.

    Returns:
        The class names in class-id order.
    """
    classes = list(found if wanted is None else wanted)
    keep = set(classes)
    for image in images:
        for box in image.boxes:
            if box.label not in keep:
                issues.append(
                    Issue(
                        box.where,
                        EXCLUDED_CLASS,
                        f"class {box.label!r} is not in --classes",
                        "box",
                    )
                )
        image.boxes = [box for box in image.boxes if box.label in keep]
    return classes


def relative_name(path: str, folder: str) -> str:
    """`path` relative to `folder` with forward slashes (the written `file_name`)."""
    return os.path.relpath(path, folder).replace(os.sep, "/")
