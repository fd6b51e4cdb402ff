"""YOLO (Darknet / Ultralytics) label files.

One `labels/<image stem>.txt` per image, one object per line:
`class cx cy w h`, the centre and size normalised by the image's width and
height. A line with more numbers (`class x1 y1 x2 y2 ... xn yn`, an Ultralytics
segment) becomes the box around its points. The continuous pixel box is
`x1 = (cx - w / 2) * W`, `x2 = (cx + w / 2) * W` (and likewise in y), with `W`,
`H` the size of the image as the trainer reads it (EXIF orientation applied, as
Ultralytics measures it).

Class names, by class id: `names:` of a `data.yaml` (a list, or a mapping from
id to name), else `classes.txt` (or Darknet's `obj.names`), one name a line;
looked up in the labels folder and its two parents unless `--names` is given.
Images are every image file in the image folder (default: the labels folder's
path with its last `labels` component replaced by `images`, the Ultralytics
rule); an image without a label file is a background image (no boxes), as in
Ultralytics, and is listed.
"""

from __future__ import annotations

import math
import os

from cornernet_tf.data.formats import common
from cornernet_tf.data.formats.common import Box, Conversion, FormatError, Issue, SourceImage
from cornernet_tf.data.formats.image_size import image_size

__all__ = ["read_names", "read_yolo"]

NAME_FILES = ("data.yaml", "dataset.yaml", "classes.txt", "obj.names")
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def read_names(path: str) -> list[str]:
    """Class names by id from a `data.yaml` (`names:`) or a one-name-a-line text file.

    Raises:
        FormatError: unreadable file, no `names`, ids with gaps, repeated names.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as error:
        raise FormatError(f"{path}: cannot be read ({error}); pass --names FILE.") from None
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise FormatError(
                f"{path}{line}: not valid YAML ({error.__class__.__name__})."
            ) from None
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict):
            if sorted(names) != list(range(len(names))):
                raise FormatError(
                    f"{path}: `names` ids {sorted(names, key=str)} are not 0..{len(names) - 1}; "
                    "number the classes from 0 without gaps."
                )
            names = [names[k] for k in range(len(names))]
        if not isinstance(names, list) or not names:
            raise FormatError(
                f"{path}: no `names:` list or mapping; add the class names (e.g. "
                "`names: [cat, dog]`)."
            )
        names = [str(n).strip() for n in names]
    else:
        names = [line.strip() for line in text.splitlines()]
        while names and not names[-1]:
            names.pop()
        if "" in names:
            raise FormatError(
                f"{path}:{names.index('') + 1}: empty line among the class names; each line "
                "is the name of the class with that line's index."
            )
    if not names:
        raise FormatError(f"{path}: no class names; one name a line.")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FormatError(f"{path}: class names {repeated} repeat; name each class once.")
    return names


def _find_names(labels: str) -> str:
    folder = os.path.abspath(labels)
    for _ in range(3):
        for name in NAME_FILES:
            if os.path.isfile(os.path.join(folder, name)):
                return os.path.join(folder, name)
        folder = os.path.dirname(folder)
    raise FormatError(
        f"--annotations {labels}: no {', '.join(NAME_FILES)} in the labels folder or its two "
        "parents; pass --names FILE with the class names."
    )


def _default_images(labels: str) -> str:
    parts = os.path.normpath(os.path.abspath(labels)).split(os.sep)
    if "labels" not in parts:
        raise FormatError(
            f"--annotations {labels}: the path has no `labels` component to find the images "
            "by; pass --images DIR."
        )
    k = len(parts) - 1 - parts[::-1].index("labels")
    return os.sep.join([*parts[:k], "images", *parts[k + 1 :]])


def _parse_line(line: str, where: str, names: list[str], issues: list[Issue]):
    """(class id, cx, cy, w, h) of a label line, or None (recorded in `issues`)."""
    fields = line.split()
    if len(fields) != 5 and (len(fields) < 7 or len(fields) % 2 == 0):
        issues.append(
            Issue(
                where,
                common.MALFORMED,
                f"{len(fields)} fields in {line.strip()!r}; need `class cx cy w h` "
                "(or `class x1 y1 ... xn yn`, n >= 3)",
                "box",
            )
        )
        return None
    try:
        class_id = int(fields[0])
    except ValueError:
        issues.append(
            Issue(where, common.MALFORMED, f"class {fields[0]!r} is not an integer", "box")
        )
        return None
    if not 0 <= class_id < len(names):
        issues.append(
            Issue(
                where,
                common.UNKNOWN_CLASS,
                f"class {class_id} is not in 0..{len(names) - 1} (the names file has {len(names)})",
                "box",
            )
        )
        return None
    try:
        values = [float(v) for v in fields[1:]]
    except ValueError:
        bad = next(v for v in fields[1:] if not _is_float(v))
        issues.append(Issue(where, common.MALFORMED, f"{bad!r} is not a number", "box"))
        return None
    if not all(math.isfinite(v) for v in values):
        issues.append(
            Issue(where, common.MALFORMED, f"non-finite value in {line.strip()!r}", "box")
        )
        return None
    if len(values) == 4:
        return class_id, *values
    xs, ys = values[0::2], values[1::2]
    return (
        class_id,
        (min(xs) + max(xs)) / 2,
        (min(ys) + max(ys)) / 2,
        max(xs) - min(xs),
        max(ys) - min(ys),
    )


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_yolo(
    annotations: str,
    images: str | None = None,
    *,
    classes: list[str] | None = None,
    names_file: str | None = None,
) -> Conversion:
    """Reads YOLO labels (see the module docstring for layouts and conventions).

    Args:
        annotations: the labels folder, or a dataset folder holding `labels/`.
        images: the image folder (default: the Ultralytics rule).
        classes: class names in class-id order (a subset); default the names file's order.
        names_file: `data.yaml` or `classes.txt`; default looked up.

    Returns:
        The conversion.

    Raises:
        FormatError: missing folders, no names file, a bad names file.
    """
    if annotations.endswith((".yaml", ".yml")) and os.path.isfile(annotations):
        raise FormatError(
            f"--annotations {annotations}: pass the labels folder (e.g. labels/train) as "
            "--annotations, and this file as --names."
        )
    if not os.path.isdir(annotations):
        raise FormatError(
            f"--annotations {annotations}: no such folder; pass the YOLO labels folder."
        )
    labels = annotations
    if os.path.isdir(os.path.join(annotations, "labels")):
        labels = os.path.join(annotations, "labels")
    names = read_names(names_file or _find_names(labels))
    if classes is not None:
        unknown = [c for c in classes if c not in names]
        if unknown:
            raise FormatError(
                f"--classes: {unknown} not among the names {names}; use names of the names file."
            )
    images = images or _default_images(labels)
    if not os.path.isdir(images):
        raise FormatError(f"--images {images}: no such folder; pass the folder of the images.")
    issues: list[Issue] = []
    image_paths = sorted(
        os.path.join(folder, name)
        for folder, _, files in os.walk(images)
        for name in files
        if os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES
    )
    used_labels = set()
    result = []
    for path in image_paths:
        relative = common.relative_name(path, images)
        label_path = os.path.join(labels, os.path.splitext(relative)[0] + ".txt")
        where = os.path.relpath(label_path)
        size = image_size(path)
        if isinstance(size, str):
            issues.append(Issue(os.path.relpath(path), common.UNREADABLE_IMAGE, size, "image"))
            used_labels.add(os.path.normpath(label_path))
            continue
        width, height = size
        boxes = []
        if not os.path.isfile(label_path):
            issues.append(
                Issue(
                    where, common.NO_LABEL_FILE, f"no label file for {relative}: a background image"
                )
            )
        else:
            used_labels.add(os.path.normpath(label_path))
            try:
                with open(label_path, encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except (OSError, UnicodeDecodeError) as error:
                issues.append(Issue(where, common.MALFORMED, f"cannot be read ({error})", "image"))
                continue
            seen = {}
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                at = f"{where}:{number}"
                parsed = _parse_line(line, at, names, issues)
                if parsed is None:
                    continue
                if parsed in seen:
                    issues.append(
                        Issue(at, common.DUPLICATE_BOX, f"same box as line {seen[parsed]}", "box")
                    )
                    continue
                seen[parsed] = number
                class_id, cx, cy, w, h = parsed
                boxes.append(
                    Box(
                        names[class_id],
                        (cx - w / 2) * width,
                        (cy - h / 2) * height,
                        (cx + w / 2) * width,
                        (cy + h / 2) * height,
                        where=at,
                    )
                )
        boxes = common.finish_boxes(boxes, width, height, issues)
        result.append(SourceImage(path, relative, width, height, boxes))
    for folder, _, files in os.walk(labels):
        for name in sorted(files):
            path = os.path.normpath(os.path.join(folder, name))
            if name.endswith(".txt") and path not in used_labels and name not in NAME_FILES:
                issues.append(
                    Issue(
                        os.path.relpath(path), common.MISSING_IMAGE, f"no image in {images}", "file"
                    )
                )
    if not result:
        raise FormatError(f"--images {images}: no image files; pass the folder of the images.")
    return Conversion(result, common.select_classes(result, names, classes, issues), issues)
