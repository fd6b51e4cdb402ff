"""Writing a `Conversion` as one split of a COCO 2017 layout dataset.

`<root>/<split>/` receives the images (hard links when the file system allows,
else copies; the source files are never opened for writing) and
`<root>/annotations/instances_<split>.json` the annotations, so that
`CocoDataset.open(root, split)` and `cornernet-train --data-dir root` read it.
Image ids are 1..N in `file_name` order and categories 1..K in class order,
unless the source had its own (COCO input); annotation ids are 1..M.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from typing import Any

from cornernet_tf.data.formats.common import Conversion, FormatError
from cornernet_tf.utils.fs import atomic_directory, atomic_write_json

__all__ = ["coco_dict", "split_paths", "write_split"]

# Sub-pixel digits kept: YOLO's normalised values give products such as 63.99999999999999.
_DIGITS = 4


def split_paths(root: str, split: str) -> tuple[str, str]:
    """(annotation file, image folder) of `split` under `root`."""
    return (
        os.path.join(root, "annotations", f"instances_{split}.json"),
        os.path.join(root, split),
    )


def coco_dict(conversion: Conversion, description: str = "") -> dict[str, Any]:
    """The COCO detection dict of a conversion (what `write_split` writes)."""
    category_ids = conversion.category_ids or list(range(1, len(conversion.classes) + 1))
    category_of = dict(zip(conversion.classes, category_ids, strict=True))
    images, annotations = [], []
    for k, image in enumerate(conversion.images, 1):
        image_id = image.image_id if image.image_id is not None else k
        images.append(
            {
                "id": image_id,
                "file_name": image.file_name,
                "width": image.width,
                "height": image.height,
            }
        )
        for box in image.boxes:
            bbox = [round(v, _DIGITS) for v in box.coco_bbox]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category_of[box.label],
                    "bbox": bbox,
                    "area": round(bbox[2] * bbox[3], _DIGITS),
                    "iscrowd": int(box.ignore),
                }
            )
    return {
        "info": {"description": description},
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": cid, "name": name, "supercategory": ""}
            for name, cid in sorted(category_of.items(), key=lambda item: item[1])
        ],
    }


def _place(source: str, destination: str, copy: bool) -> str:
    """Links (or copies) one image; returns "linked" or "copied"."""
    os.makedirs(os.path.dirname(destination), exist_ok=True)
    if not copy:
        try:
            os.link(source, destination)
            return "linked"
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copyfile(source, destination)
    return "copied"


def write_split(
    conversion: Conversion,
    root: str,
    split: str,
    *,
    copy: bool = False,
    description: str = "",
) -> Mapping[str, Any]:
    """Writes `<root>/annotations/instances_<split>.json` and `<root>/<split>/`.

    The image folder is filled under a temporary name and renamed when
    complete, then the JSON is written atomically; on failure neither is left.

    Args:
        conversion: what to write.
        root: dataset root (created if needed; other splits are left alone).
        split: split name, e.g. "train2017".
        copy: copy the images instead of hard-linking them.
        description: the JSON's `info.description`.

    Returns:
        `{"annotation_file", "image_dir", "images", "annotations", "linked", "copied"}`.

    Raises:
        FormatError: the split exists already, or its name is not a plain folder name.
    """
    if not split or split in (".", "..") or "/" in split or os.sep in split:
        raise FormatError(f"--split {split!r}: must be a plain folder name such as train2017.")
    annotation_file, image_dir = split_paths(root, split)
    for path in (annotation_file, image_dir):
        if os.path.lexists(path):
            raise FormatError(
                f"{path} exists already; choose another --split or --output, or remove it."
            )
    data = coco_dict(conversion, description)
    placed = {"linked": 0, "copied": 0}
    os.makedirs(root, exist_ok=True)
    with atomic_directory(image_dir) as staging:
        for image in conversion.images:
            how = _place(image.path, os.path.join(staging, *image.file_name.split("/")), copy)
            placed[how] += 1
    try:
        atomic_write_json(annotation_file, data, indent=None)
    except BaseException:
        shutil.rmtree(image_dir, ignore_errors=True)
        raise
    return {
        "annotation_file": annotation_file,
        "image_dir": image_dir,
        "images": len(data["images"]),
        "annotations": len(data["annotations"]),
        **placed,
    }
