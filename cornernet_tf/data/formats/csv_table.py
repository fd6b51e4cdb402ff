"""CSV box tables: `filename,width,height,class,xmin,ymin,xmax,ymax`, one box a row.

The TensorFlow Object Detection API tutorials' format. The header row is
optional: when the first row's `width` field is not a number, it is a header
naming the eight columns (in any order, extra columns ignored); otherwise the
columns are in the order above. A row with `class` and the four corners empty
is an image without boxes.

Coordinates are taken as the Object Detection API reads them (it divides
`xmin` by `width`): continuous pixel corners, `x1 = xmin`, `x2 = xmax`. A table
made from VOC XML files (labelImg's `xml_to_csv.py`) carries VOC's 1-based
corners, one pixel off in this reading; convert the XML with `--format voc`
instead. `width` and `height` are checked against the image file, whose size
is used.
"""

from __future__ import annotations

import csv
import os

from cornernet_tf.data.coco import safe_join
from cornernet_tf.data.formats import common
from cornernet_tf.data.formats.common import Box, Conversion, FormatError, Issue, SourceImage
from cornernet_tf.data.formats.image_size import image_size

__all__ = ["COLUMNS", "read_csv"]

COLUMNS = ("filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax")
_CORNERS = ("xmin", "ymin", "xmax", "ymax")


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_csv(
    annotations: str, images: str | None = None, *, classes: list[str] | None = None
) -> Conversion:
    """Reads a CSV box table (see the module docstring for the conventions).

    Args:
        annotations: the CSV file.
        images: the image folder `filename` is relative to (default: the CSV's folder).
        classes: class names in class-id order (a subset); default the sorted names found.

    Returns:
        The conversion.

    Raises:
        FormatError: missing file, a header without the needed columns, no rows.
    """
    reason = common.not_a_file(annotations)
    if reason is not None:
        raise FormatError(f"--annotations {annotations}: {reason}; pass the CSV file.")
    images = images or os.path.dirname(os.path.abspath(annotations))
    if not os.path.isdir(images):
        raise FormatError(f"--images {images}: no such folder; pass the folder of the images.")
    where_file = os.path.relpath(annotations)
    try:
        with open(annotations, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise FormatError(f"{where_file}: cannot be read as UTF-8 CSV ({error}).") from None
    numbered = [(n, row) for n, row in enumerate(rows, 1) if any(cell.strip() for cell in row)]
    if not numbered:
        raise FormatError(f"{where_file}: no rows; need {','.join(COLUMNS)}.")
    columns = {name: k for k, name in enumerate(COLUMNS)}
    first_line, first = numbered[0]
    if len(first) > 1 and not _is_number(first[1].strip()):
        header = [cell.strip().lower() for cell in first]
        missing = [name for name in COLUMNS if name not in header]
        if missing:
            raise FormatError(
                f"{where_file}:{first_line}: header lacks {missing}; need the columns "
                f"{','.join(COLUMNS)} (or no header and that order)."
            )
        columns = {name: header.index(name) for name in COLUMNS}
        numbered = numbered[1:]
    width_needed = max(columns.values()) + 1
    issues: list[Issue] = []
    per_file: dict[str, list[tuple[str, list[str]]]] = {}
    for number, row in numbered:
        at = f"{where_file}:{number}"
        if len(row) < width_needed:
            issues.append(
                Issue(
                    at,
                    common.MALFORMED,
                    f"{len(row)} columns, need {width_needed} ({','.join(COLUMNS)})",
                    "box",
                )
            )
            continue
        cells = {name: row[k].strip() for name, k in columns.items()}
        if not cells["filename"]:
            issues.append(Issue(at, common.MALFORMED, "empty filename", "box"))
            continue
        per_file.setdefault(cells["filename"], []).append((at, cells))
    result = []
    for filename in sorted(per_file):
        entries = per_file[filename]
        first_at = entries[0][0]
        path = safe_join(images, filename)
        if path is None:
            issues.append(
                Issue(first_at, common.MALFORMED, f"filename {filename!r} leaves {images}", "image")
            )
            continue
        size = image_size(path)
        if isinstance(size, str):
            kind = common.MISSING_IMAGE if size == "not found" else common.UNREADABLE_IMAGE
            issues.append(Issue(first_at, kind, f"{path}: {size}", "image"))
            continue
        width, height = size
        boxes = []
        mismatch_noted = False
        for at, cells in entries:
            stated = (cells["width"], cells["height"])
            if (
                not mismatch_noted
                and all(_is_number(v) for v in stated)
                and (float(stated[0]), float(stated[1])) != (width, height)
            ):
                issues.append(
                    Issue(
                        at,
                        common.SIZE_MISMATCH,
                        f"width,height {stated[0]},{stated[1]} but {filename} is "
                        f"{width}x{height} as the trainer reads it; the image's size is used",
                    )
                )
                mismatch_noted = True
            if not cells["class"] and not any(cells[c] for c in _CORNERS):
                continue  # an image without boxes
            if not cells["class"]:
                issues.append(Issue(at, common.MALFORMED, "empty class", "box"))
                continue
            bad = next((c for c in _CORNERS if not _is_number(cells[c])), None)
            if bad is not None:
                issues.append(
                    Issue(at, common.MALFORMED, f"{bad} is {cells[bad]!r}, not a number", "box")
                )
                continue
            x1, y1, x2, y2 = (float(cells[c]) for c in _CORNERS)
            boxes.append(Box(cells["class"], x1, y1, x2, y2, where=at))
        boxes = common.finish_boxes(boxes, width, height, issues)
        result.append(SourceImage(path, common.relative_name(path, images), width, height, boxes))
    found = sorted({box.label for image in result for box in image.boxes})
    return Conversion(result, common.select_classes(result, found, classes, issues), issues)
