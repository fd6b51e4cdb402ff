"""What a COCO-layout split holds, as the trainer will read it.

`split_statistics(root, split)` opens the split with `CocoDataset` (the
trainer's reader: what it excludes, and why, comes from there) and adds what
that reader does not look at: boxes per class, image and box sizes, images
without boxes, boxes that overhang the image (the trainer clips them), ignore
regions, and image files whose size differs from the JSON's `width`/`height`
(boxes of such an image are in another frame).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter

import numpy as np

from cornernet_tf.data.coco import CocoDataset
from cornernet_tf.data.formats.image_size import image_size

__all__ = ["SplitStatistics", "split_statistics"]

_LISTED = 10
# COCO's size buckets (pixel area of the box in the image).
_SMALL, _MEDIUM = 32**2, 96**2


@dataclasses.dataclass
class SplitStatistics:
    """Counts and sizes of one split.

    Attributes:
        annotation_file: the JSON read.
        classes: class names in class-id order.
        num_images: images kept by the reader.
        boxes_per_class: boxes (training targets) per class name.
        images_per_class: images with at least one box of the class.
        ignore_regions: `iscrowd=1` boxes per class name (not trained, ignored by evaluation).
        images_without_boxes: file names of kept images with no training box.
        image_sizes: `{"width": [min, median, max], "height": [...]}`.
        box_sizes: `{"width": [...], "height": [...]}` in pixels, plus
            `"small"`, `"medium"`, `"large"` counts (COCO's area buckets).
        overhanging: boxes past the image border (clipped by the trainer), as strings.
        excluded: the reader's exclusions by kind.
        excluded_examples: the first excluded entries, as strings.
        size_mismatches: images whose file size differs from the JSON, as strings.
    """

    annotation_file: str
    classes: list[str]
    num_images: int
    boxes_per_class: dict[str, int]
    images_per_class: dict[str, int]
    ignore_regions: dict[str, int]
    images_without_boxes: list[str]
    image_sizes: dict[str, list[float]]
    box_sizes: dict[str, object]
    overhanging: list[str]
    excluded: dict[str, int]
    excluded_examples: list[str]
    size_mismatches: list[str]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def lines(self) -> list[str]:
        """A readable report."""
        out = [f"{self.annotation_file}: {self.num_images} images, {len(self.classes)} classes"]
        width = max([len(c) for c in self.classes] + [5])
        out.append(f"  {'class':<{width}}  boxes  images  ignored")
        for name in self.classes:
            out.append(
                f"  {name:<{width}}  {self.boxes_per_class.get(name, 0):>5}  "
                f"{self.images_per_class.get(name, 0):>6}  {self.ignore_regions.get(name, 0):>7}"
            )
        for key, values in self.image_sizes.items():
            out.append(f"  image {key}: min {values[0]:g}, median {values[1]:g}, max {values[2]:g}")
        for key in ("width", "height"):
            values = self.box_sizes.get(key)
            if values:
                out.append(
                    f"  box {key} (px): min {values[0]:g}, median {values[1]:g}, max {values[2]:g}"
                )
        out.append(
            "  boxes by area: "
            + ", ".join(f"{k} {self.box_sizes.get(k, 0)}" for k in ("small", "medium", "large"))
            + " (COCO buckets: < 32², < 96², larger)"
        )
        out.append(_listed("images without boxes", self.images_without_boxes))
        out.append(
            _listed("boxes past the image border (the trainer clips them)", self.overhanging)
        )
        out.append(_listed("images whose file size differs from the JSON", self.size_mismatches))
        if self.excluded:
            counts = ", ".join(f"{k}={n}" for k, n in sorted(self.excluded.items()))
            out.append(_listed(f"left out by the reader ({counts})", self.excluded_examples))
        else:
            out.append("  left out by the reader: none")
        return out


def _listed(title: str, items: list[str]) -> str:
    if not items:
        return f"  {title}: none"
    shown = "; ".join(items[:_LISTED]) + (" ..." if len(items) > _LISTED else "")
    return f"  {title}: {len(items)}: {shown}"


def _spread(values) -> list[float]:
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return []
    return [round(float(v), 1) for v in (values.min(), np.median(values), values.max())]


def split_statistics(root: str, split: str, *, check_sizes: bool = True) -> SplitStatistics:
    """Statistics of `<root>/annotations/instances_<split>.json` and `<root>/<split>/`.

    Args:
        root: dataset root (COCO 2017 layout).
        split: split name.
        check_sizes: read every image's header and compare with the JSON.

    Returns:
        The statistics.

    Raises:
        FileNotFoundError, ValueError: as `CocoDataset.open`.
    """
    dataset = CocoDataset.open(root, split)
    names = list(dataset.categories.names)
    boxes_per_class: Counter = Counter()
    images_per_class: Counter = Counter()
    empty, overhanging, mismatches = [], [], []
    widths, heights, box_w, box_h, areas = [], [], [], [], []
    for record in dataset.records:
        labels = [names[k] for k in record.labels]
        boxes_per_class.update(labels)
        images_per_class.update(set(labels))
        if not labels:
            empty.append(record.file_name)
        width, height = record.width, record.height
        if check_sizes:
            size = image_size(record.path)
            if isinstance(size, str):
                mismatches.append(f"{record.file_name}: {size}")
            elif width is not None and size != (width, height):
                mismatches.append(
                    f"{record.file_name}: JSON {width}x{height}, file {size[0]}x{size[1]}"
                )
            if width is None and not isinstance(size, str):
                width, height = size
        if width is None:
            continue
        widths.append(width)
        heights.append(height)
        for box, name in zip(record.boxes, labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            box_w.append(x2 - x1)
            box_h.append(y2 - y1)
            areas.append((x2 - x1) * (y2 - y1))
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                overhanging.append(
                    f"{record.file_name}: {name} ({x1:g}, {y1:g}, {x2:g}, {y2:g}) "
                    f"in {width}x{height}"
                )
    with open(dataset.annotation_file, encoding="utf-8") as f:
        data = json.load(f)
    kept_ids = {r.image_id for r in dataset.records}
    by_id = dict(zip(dataset.categories.category_ids, names, strict=True))
    ignore = Counter(
        by_id.get(ann.get("category_id"), "?")
        for ann in data.get("annotations", [])
        if isinstance(ann, dict) and ann.get("iscrowd") and ann.get("image_id") in kept_ids
    )
    areas = np.asarray(areas)
    report = dataset.report
    errors = [p for p in report.problems if p.kind != "crowd"]
    return SplitStatistics(
        annotation_file=os.path.relpath(dataset.annotation_file),
        classes=names,
        num_images=len(dataset.records),
        boxes_per_class=dict(boxes_per_class),
        images_per_class=dict(images_per_class),
        ignore_regions=dict(ignore),
        images_without_boxes=empty,
        image_sizes={"width": _spread(widths), "height": _spread(heights)},
        box_sizes={
            "width": _spread(box_w),
            "height": _spread(box_h),
            "small": int((areas < _SMALL).sum()),
            "medium": int(((areas >= _SMALL) & (areas < _MEDIUM)).sum()),
            "large": int((areas >= _MEDIUM).sum()),
        },
        overhanging=overhanging,
        excluded=dict(Counter(p.kind for p in errors)),
        excluded_examples=[str(p) for p in errors],
        size_mismatches=mismatches,
    )
