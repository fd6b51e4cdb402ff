"""Any COCO detection JSON with its image folder, re-laid out.

The image ids, category ids and names and the `file_name`s are kept (so
results stay comparable with the source); with `--classes`, the categories
are renumbered 1..K in that order. Boxes are COCO `[x, y, w, h]` in pixels
(`x2 = x + w`); `iscrowd=1` annotations stay ignore regions. Segmentations and
other fields are not copied. Each image's size is read from the file and
checked against `width` and `height`.
"""

from __future__ import annotations

import json
import math
import os

from cornernet_tf.data.coco import safe_join
from cornernet_tf.data.formats import common
from cornernet_tf.data.formats.common import Box, Conversion, FormatError, Issue, SourceImage
from cornernet_tf.data.formats.image_size import image_size

__all__ = ["read_coco"]


def _int_id(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def read_coco(
    annotations: str, images: str | None = None, *, classes: list[str] | None = None
) -> Conversion:
    """Reads a COCO JSON file (see the module docstring).

    Args:
        annotations: the JSON file.
        images: the folder `file_name` is relative to (default: the JSON's folder).
        classes: category names in class-id order (a subset); default all, by id.

    Returns:
        The conversion.

    Raises:
        FormatError: not a COCO detection JSON (missing lists, ids that are
            not integers or repeat, repeated category names).
    """
    name = os.path.relpath(annotations)
    reason = common.not_a_file(annotations)
    if reason is not None:
        raise FormatError(f"--annotations {annotations}: {reason}; pass the COCO JSON file.")
    images = images or os.path.dirname(os.path.abspath(annotations))
    if not os.path.isdir(images):
        raise FormatError(f"--images {images}: no such folder; pass the folder of the images.")
    try:
        with open(annotations, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as error:
        raise FormatError(f"{name}:{error.lineno}: not valid JSON ({error.msg}).") from None
    except (OSError, UnicodeDecodeError) as error:
        raise FormatError(f"{name}: cannot be read as UTF-8 JSON ({error}).") from None
    if not isinstance(data, dict) or not all(
        isinstance(data.get(k), list) for k in ("images", "annotations", "categories")
    ):
        raise FormatError(
            f"{name}: not a COCO detection file; it needs 'images', 'annotations' and "
            "'categories' lists."
        )
    categories = {}
    for k, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not _int_id(cat.get("id")) or cat["id"] in categories:
            raise FormatError(
                f"{name}: categories[{k}] {str(cat)[:80]} has no integer 'id' or repeats one."
            )
        categories[cat["id"]] = str(cat.get("name", cat["id"]))
    if len(set(categories.values())) != len(categories):
        raise FormatError(f"{name}: category names repeat; give each category its own name.")
    if classes is not None:
        unknown = [c for c in classes if c not in categories.values()]
        if unknown:
            raise FormatError(
                f"--classes: {unknown} are not categories of {name} "
                f"({sorted(categories.values())})."
            )
    issues: list[Issue] = []
    by_id: dict[int, SourceImage] = {}
    seen_paths: dict[str, int] = {}
    for k, img in enumerate(data["images"]):
        at = f"{name}: images[{k}]"
        image_id = img.get("id") if isinstance(img, dict) else None
        if not _int_id(image_id) or image_id in by_id:
            raise FormatError(f"{at} {str(img)[:80]} has no integer 'id' or repeats one.")
        file_name = img.get("file_name")
        path = safe_join(images, file_name) if isinstance(file_name, str) else None
        if path is None:
            issues.append(
                Issue(
                    at, common.MALFORMED, f"file_name {file_name!r} is not inside {images}", "image"
                )
            )
            continue
        if path in seen_paths:
            issues.append(
                Issue(
                    at,
                    common.DUPLICATE_IMAGE,
                    f"{file_name} is image {seen_paths[path]} too",
                    "image",
                )
            )
            continue
        size = image_size(path)
        if isinstance(size, str):
            kind = common.MISSING_IMAGE if size == "not found" else common.UNREADABLE_IMAGE
            issues.append(Issue(at, kind, f"{path}: {size}", "image"))
            continue
        seen_paths[path] = image_id
        width, height = size
        if (img.get("width"), img.get("height")) != (width, height):
            issues.append(
                Issue(
                    at,
                    common.SIZE_MISMATCH,
                    f"width={img.get('width')!r} height={img.get('height')!r} but {file_name} "
                    f"is {width}x{height} as the trainer reads it; the image's size is used",
                )
            )
        by_id[image_id] = SourceImage(
            path, file_name.replace("\\", "/"), width, height, image_id=image_id
        )
    raw_boxes: dict[int, list[Box]] = {i: [] for i in by_id}
    known_ids = {img.get("id") for img in data["images"] if isinstance(img, dict)}
    for k, ann in enumerate(data["annotations"]):
        at = f"{name}: annotations[{k}]"
        if not isinstance(ann, dict):
            issues.append(Issue(at, common.MALFORMED, "not an object", "box"))
            continue
        at += f" (id {ann.get('id')})"
        image_id = ann.get("image_id")
        if image_id not in by_id:
            if image_id not in known_ids:
                issues.append(Issue(at, common.MALFORMED, f"image_id {image_id!r} unknown", "box"))
            continue  # the image was left out, and listed
        if ann.get("category_id") not in categories:
            issues.append(
                Issue(at, common.UNKNOWN_CLASS, f"category_id {ann.get('category_id')!r}", "box")
            )
            continue
        bbox = ann.get("bbox")
        if (
            not isinstance(bbox, list)
            or len(bbox) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
            or not all(math.isfinite(v) for v in bbox)
        ):
            issues.append(Issue(at, common.MALFORMED, f"bbox {bbox!r}, need [x, y, w, h]", "box"))
            continue
        x, y, w, h = (float(v) for v in bbox)
        raw_boxes[image_id].append(
            Box(categories[ann["category_id"]], x, y, x + w, y + h, bool(ann.get("iscrowd")), at)
        )
    result = sorted(by_id.values(), key=lambda image: image.file_name)
    for image in result:
        image.boxes = common.finish_boxes(
            raw_boxes[image.image_id], image.width, image.height, issues
        )
    ids = sorted(categories)
    found = [categories[i] for i in ids]
    chosen = common.select_classes(result, found, classes, issues)
    category_ids = ids if classes is None else None
    return Conversion(result, chosen, issues, category_ids)
