"""Reading detection datasets in COCO JSON format (COCO 2017 layout).

`CocoDataset.open(root, split)` reads `<root>/annotations/instances_<split>.json`
(pycocotools) with images in `<root>/<split>/`, maps category ids to contiguous
0-based class ids (`CategoryMap`, saved as JSON by the trainer and the
exporters), converts boxes from COCO `[x, y, w, h]` to `[x1, y1, x2, y2]` with
`x2 = x + w` (princeton-vl/CornerNet `db/coco.py`, `_extract_data`), and checks
every image and annotation. Bad entries are excluded and reported by image /
annotation id (`DatasetReport`, logged as a summary with counts when the
dataset is opened).

Differences from the official reader, on purpose:
    * crowd annotations (`iscrowd=1`) are excluded from the training targets
      (the official reader keeps them; crowd boxes cover groups of objects, not
      one object with two corners);
    * bad annotations (unknown category ids, NaN/negative/zero sizes, boxes
      entirely outside the image) and unsafe or missing image files are
      excluded and reported instead of crashing or training on garbage; the
      evaluation index (`CocoDataset.coco`) holds exactly the annotations
      training uses plus the crowd regions (which COCOeval ignores), so
      detections are scored against the ground truth the model learnt from;
    * an image whose decoded size differs from its annotated `height` and
      `width` is a bad image when it is read (training and evaluation count
      and name it): its boxes describe other pixels. Decoding applies a
      JPEG's EXIF orientation, as OpenCV's `imread` (the official reader)
      does, so the annotation must give the displayed size;
    * a training split without a single usable annotation is an error
      (`make_train_dataset`), and so is an empty `categories` list.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import io
import json
import logging
import math
import os
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cornernet_tf.utils.fs import atomic_write_json

logger = logging.getLogger(__name__)

# Problem kinds; the keys of `DatasetReport.counts`.
UNKNOWN_CATEGORY = "unknown_category"
UNKNOWN_IMAGE = "unknown_image"
MALFORMED_BBOX = "malformed_bbox"
NON_FINITE_BBOX = "non_finite_bbox"
NEGATIVE_SIZE = "negative_size"
EMPTY_BOX = "empty_box"
OUTSIDE_IMAGE = "outside_image"
CROWD = "crowd"
UNSAFE_FILE_NAME = "unsafe_file_name"
BAD_IMAGE_SIZE = "bad_image_size"
MISSING_FILE = "missing_file"
EMPTY_FILE = "empty_file"
NOT_A_FILE = "not_a_file"

# Kinds that exclude a whole image (the others exclude one annotation).
IMAGE_PROBLEMS = frozenset({UNSAFE_FILE_NAME, BAD_IMAGE_SIZE, MISSING_FILE, EMPTY_FILE, NOT_A_FILE})
# Kinds that are expected and not errors (reported at INFO, not WARNING).
EXPECTED_EXCLUSIONS = frozenset({CROWD})

_LOG_EXAMPLES = 20


@dataclasses.dataclass(frozen=True)
class CategoryMap:
    """Category id ↔ contiguous 0-based class id ↔ name.

    Class `k` is the `k`-th smallest category id of the annotation file (the
    official code numbers COCO's sorted ids 1..80 the same way, 1-based).

    Attributes:
        category_ids: dataset category id of each contiguous class id.
        names: category name of each contiguous class id.
    """

    category_ids: tuple[int, ...]
    names: tuple[str, ...]

    def __post_init__(self):
        if len(self.category_ids) != len(self.names):
            raise ValueError(
                "CategoryMap: `category_ids` and `names` must have the same length, got "
                f"{len(self.category_ids)} and {len(self.names)}."
            )
        if len(set(self.category_ids)) != len(self.category_ids):
            raise ValueError(f"CategoryMap: duplicate category ids in {self.category_ids}.")

    @property
    def num_classes(self) -> int:
        return len(self.category_ids)

    def to_contiguous(self, category_id: int) -> int:
        """Contiguous 0-based class id of a dataset category id."""
        try:
            return self._index[int(category_id)]
        except KeyError:
            raise ValueError(
                f"CategoryMap: unknown category id {category_id}; known ids are "
                f"{list(self.category_ids)}."
            ) from None

    def to_category_id(self, class_id: int) -> int:
        """Dataset category id of a contiguous class id."""
        if not 0 <= int(class_id) < self.num_classes:
            raise ValueError(
                f"CategoryMap: class id {class_id} is outside [0, {self.num_classes})."
            )
        return self.category_ids[int(class_id)]

    def name(self, class_id: int) -> str:
        """Category name of a contiguous class id."""
        return self.names[self.to_contiguous(self.to_category_id(class_id))]

    @property
    def _index(self) -> dict[int, int]:
        return {cid: k for k, cid in enumerate(self.category_ids)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: `{"categories": [{"class_id", "category_id", "name"}]}`."""
        return {
            "categories": [
                {"class_id": k, "category_id": cid, "name": name}
                for k, (cid, name) in enumerate(zip(self.category_ids, self.names, strict=True))
            ]
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoryMap:
        """Inverse of `to_dict`."""
        try:
            entries = sorted(data["categories"], key=lambda e: int(e["class_id"]))
            ids = tuple(int(e["category_id"]) for e in entries)
            names = tuple(str(e["name"]) for e in entries)
            class_ids = [int(e["class_id"]) for e in entries]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                "CategoryMap.from_dict: expected {'categories': [{'class_id', 'category_id', "
                f"'name'}}, ...]}}, got {str(data)[:200]} ({err})."
            ) from None
        if class_ids != list(range(len(class_ids))):
            raise ValueError(
                f"CategoryMap.from_dict: class ids must be 0..N-1 without gaps, got {class_ids}."
            )
        return cls(ids, names)

    def to_json(self, path: str | os.PathLike) -> None:
        """Writes `to_dict()` to `path` atomically (write to a temp file, then rename)."""
        atomic_write_json(path, self.to_dict(), indent=1)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> CategoryMap:
        """Reads a file written by `to_json`."""
        with open(path, encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    @classmethod
    def from_coco_categories(cls, categories: Sequence[Mapping[str, Any]]) -> CategoryMap:
        """Builds the map from a COCO `categories` list, sorted by category id."""
        entries = sorted(categories, key=lambda c: int(c["id"]))
        return cls(
            tuple(int(c["id"]) for c in entries),
            tuple(str(c.get("name", c["id"])) for c in entries),
        )


@dataclasses.dataclass(frozen=True)
class Problem:
    """One excluded image or annotation.

    Attributes:
        kind: one of the problem kinds (module constants, e.g. "unknown_category").
        image_id: COCO image id (None when unknown).
        annotation_id: COCO annotation id, None for image problems.
        detail: human-readable detail (value found, file name).
    """

    kind: str
    image_id: int | None
    annotation_id: int | None
    detail: str

    def __str__(self) -> str:
        where = f"image {self.image_id}"
        if self.annotation_id is not None:
            where = f"annotation {self.annotation_id} ({where})"
        return f"{where}: {self.kind}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class DatasetReport:
    """What was excluded when a dataset was opened.

    Attributes:
        source: the annotation file.
        problems: every excluded image / annotation, in file order.
        num_images: images kept.
        num_annotations: annotations kept.
    """

    source: str
    problems: tuple[Problem, ...]
    num_images: int
    num_annotations: int

    @property
    def counts(self) -> dict[str, int]:
        """Number of problems per kind."""
        return dict(Counter(p.kind for p in self.problems))

    @property
    def bad_images(self) -> tuple[Problem, ...]:
        """Problems that excluded a whole image."""
        return tuple(p for p in self.problems if p.kind in IMAGE_PROBLEMS)

    @property
    def excluded_annotations(self) -> dict[str, int]:
        """Bad annotations of kept images by kind: absent from training and evaluation."""
        return dict(
            Counter(
                p.kind
                for p in self.problems
                if p.kind not in IMAGE_PROBLEMS | EXPECTED_EXCLUSIONS | {UNKNOWN_IMAGE}
            )
        )

    def log(self, log: logging.Logger = logger) -> None:
        """Logs a summary with counts and the first problems by id (all at DEBUG)."""
        errors = [p for p in self.problems if p.kind not in EXPECTED_EXCLUSIONS]
        expected = Counter(p.kind for p in self.problems if p.kind in EXPECTED_EXCLUSIONS)
        log.info(
            "%s: %d images, %d annotations kept%s.",
            self.source,
            self.num_images,
            self.num_annotations,
            "".join(f", {n} {k} annotations excluded" for k, n in sorted(expected.items())),
        )
        if not errors:
            return
        counts = Counter(p.kind for p in errors)
        log.warning(
            "%s: excluded %d bad entries (%s); first ones: %s%s",
            self.source,
            len(errors),
            ", ".join(f"{k}={n}" for k, n in sorted(counts.items())),
            "; ".join(str(p) for p in errors[:_LOG_EXAMPLES]),
            " ..." if len(errors) > _LOG_EXAMPLES else "",
        )
        for p in errors:
            log.debug("%s: excluded %s", self.source, p)


@dataclasses.dataclass(frozen=True)
class ImageRecord:
    """One image and its usable ground truth.

    Attributes:
        image_id: COCO image id.
        file_name: file name relative to the image directory.
        path: full path of the image file.
        height: height from the annotation file (None when absent).
        width: width from the annotation file (None when absent).
        boxes: [N, 4] float32 `x1, y1, x2, y2` in image pixels (`x2 = x + w`).
        labels: [N] int32 contiguous 0-based class ids.
    """

    image_id: int
    file_name: str
    path: str
    height: int | None
    width: int | None
    boxes: np.ndarray
    labels: np.ndarray


def layout_problem(root: str | os.PathLike, split: str, split_field: str) -> str | None:
    """What keeps `root` from holding `split` in the COCO 2017 layout, or None.

    Only checks that the folders and the annotation file exist (nothing is
    read), so a command can answer a wrong path before it loads anything heavy.

    Args:
        root: dataset root; `annotations/instances_<split>.json` and the image
            folder `<split>/` are expected in it.
        split: the split name, e.g. "train2017".
        split_field: where the split was set (e.g. "data.train_split"), named
            in the message.

    Returns:
        None, or one line naming the missing path and the fix.
    """
    root = os.fspath(root)
    fix = (
        "pass --data-dir pointing at a COCO-layout folder (annotations/instances_<split>.json "
        "and <split>/), or create the demo data with `python scripts/make_shapes.py --output DIR`"
    )
    if not os.path.isdir(root):
        return f"--data-dir {root}: no such directory; {fix}."
    annotation_file = os.path.join(root, "annotations", f"instances_{split}.json")
    if not os.path.isfile(annotation_file):
        return (
            f"{annotation_file}: annotation file for {split_field}={split!r} not found; {fix}, "
            f"or set {split_field} to a split that exists."
        )
    image_dir = os.path.join(root, split)
    if not os.path.isdir(image_dir):
        return f"{image_dir}: image folder for {split_field}={split!r} not found; {fix}."
    return None


def safe_join(root: str, file_name: str) -> str | None:
    """Joins `file_name` under `root`, or None when it would escape `root`.

    Absolute paths, drive letters, `..` components that leave the root, empty
    names and NUL bytes are refused. The check is lexical (symlinks inside the
    root are followed as usual, as COCO setups often symlink image folders).
    """
    if not isinstance(file_name, str) or not file_name or "\x00" in file_name:
        return None
    if os.path.isabs(file_name) or os.path.splitdrive(file_name)[0] or file_name.startswith("\\"):
        return None
    normalised = os.path.normpath(file_name.replace("\\", "/"))
    if normalised == os.curdir or normalised.split(os.sep)[0] == os.pardir:
        return None
    return os.path.join(root, normalised)


# No image format stores a longer side (PNG's limit); larger values are typos.
_MAX_IMAGE_SIDE = 2**31 - 1


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or not 0 < value <= _MAX_IMAGE_SIDE or int(value) != value:
        return None
    return int(value)


class CocoDataset:
    """A detection dataset in COCO JSON format, checked and indexed.

    Use `CocoDataset.open(root, split)`; the constructor takes already-loaded
    parts.

    Attributes:
        annotation_file: path of the JSON file.
        image_dir: folder the image file names are relative to.
        categories: the `CategoryMap`.
        records: kept images (`ImageRecord`), in annotation-file order.
        report: the `DatasetReport` of what was excluded.
        coco: the pycocotools `COCO` object (for evaluation with `COCOeval`).
    """

    def __init__(
        self,
        annotation_file: str,
        image_dir: str,
        categories: CategoryMap,
        records: Sequence[ImageRecord],
        report: DatasetReport,
        coco: Any,
    ):
        self.annotation_file = annotation_file
        self.image_dir = image_dir
        self.categories: CategoryMap = categories
        self.records: tuple[ImageRecord, ...] = tuple(records)
        self.report: DatasetReport = report
        self.coco = coco

    @property
    def num_classes(self) -> int:
        return self.categories.num_classes

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"CocoDataset({self.annotation_file!r}, images={len(self.records)}, "
            f"classes={self.num_classes})"
        )

    @classmethod
    def open(
        cls,
        root: str | os.PathLike,
        split: str,
        *,
        annotation_file: str | os.PathLike | None = None,
        image_dir: str | os.PathLike | None = None,
        check_files: bool = True,
    ) -> CocoDataset:
        """Opens `<root>/annotations/instances_<split>.json` with images in `<root>/<split>/`.

        Args:
            root: dataset root in the COCO 2017 layout.
            split: split name, e.g. "train2017".
            annotation_file: overrides the annotation path.
            image_dir: overrides the image folder.
            check_files: stat every image file and exclude missing and empty
                ones (about a second for COCO train2017 on a local disk).

        Returns:
            The dataset; its `report` lists (and the opening logs) every
            excluded image and annotation by id.

        Raises:
            FileNotFoundError: the annotation file or the image folder is missing.
            ValueError: the JSON is not a COCO detection file.
        """
        if not isinstance(split, str) or not split:
            raise ValueError(
                f"CocoDataset.open: `split` must be a non-empty string, got {split!r}."
            )
        root = os.fspath(root)
        ann_file = os.fspath(
            annotation_file or os.path.join(root, "annotations", f"instances_{split}.json")
        )
        img_dir = os.fspath(image_dir or os.path.join(root, split))
        if not os.path.isfile(ann_file):
            raise FileNotFoundError(
                f"CocoDataset: annotation file {ann_file!r} not found. Expected the COCO 2017 "
                f"layout <root>/annotations/instances_<split>.json; check `root` and `split`, "
                "pass `annotation_file=`, or generate the embedded dataset with "
                "`python scripts/make_shapes.py --output DIR`."
            )
        if not os.path.isdir(img_dir):
            raise FileNotFoundError(
                f"CocoDataset: image folder {img_dir!r} not found. Expected images in "
                "<root>/<split>/ (COCO 2017 layout); check `root` and `split` or pass `image_dir=`."
            )
        try:
            with open(ann_file, encoding="utf-8") as f:
                data = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"CocoDataset: {ann_file!r} is not valid JSON: {err}.") from None
        _check_top_level(data, ann_file)
        return cls.from_dict(data, ann_file, img_dir, check_files=check_files)

    @classmethod
    def from_dict(
        cls, data: dict, annotation_file: str, image_dir: str, *, check_files: bool = True
    ) -> CocoDataset:
        """Builds the dataset from a parsed COCO dict (see `open`)."""
        from pycocotools.coco import COCO

        _check_top_level(data, annotation_file)
        # pycocotools' index keeps the last entry of a repeated id: the boxes of one
        # image would silently train and score against another file.
        for section, kind in (("images", "image"), ("categories", "category")):
            counts = collections.Counter(
                entry.get("id") for entry in data[section] if isinstance(entry, dict)
            )
            repeated = sorted((i for i, n in counts.items() if n > 1), key=str)
            if repeated:
                raise ValueError(
                    f"CocoDataset: {annotation_file!r}: duplicate {kind} ids "
                    f"{repeated[:10]}{' ...' if len(repeated) > 10 else ''} in '{section}'; "
                    f"give every {kind} its own id."
                )
        categories = CategoryMap.from_coco_categories(data["categories"])
        index = categories._index
        problems: list[Problem] = []

        images: dict[int, dict] = {}
        paths: dict[int, str] = {}
        for img in data["images"]:
            image_id = img.get("id") if isinstance(img, dict) else None
            if not isinstance(image_id, int) or isinstance(image_id, bool):
                raise ValueError(
                    f"CocoDataset: {annotation_file!r}: image entry without an integer 'id': "
                    f"{str(img)[:200]}."
                )
            file_name = img.get("file_name")
            path = safe_join(image_dir, file_name) if isinstance(file_name, str) else None
            if path is None:
                problems.append(
                    Problem(
                        UNSAFE_FILE_NAME,
                        image_id,
                        None,
                        f"file_name {file_name!r} escapes "
                        "the image folder or is empty (must be a relative path inside it)",
                    )
                )
                continue
            height, width = img.get("height"), img.get("width")
            if (height is not None or width is not None) and (
                _positive_int(height) is None or _positive_int(width) is None
            ):
                problems.append(
                    Problem(BAD_IMAGE_SIZE, image_id, None, f"height={height!r} width={width!r}")
                )
                continue
            if check_files:
                try:
                    info = os.stat(path)
                except OSError:
                    problems.append(Problem(MISSING_FILE, image_id, None, f"{path!r} not found"))
                    continue
                if not stat.S_ISREG(info.st_mode):  # a folder, FIFO or device would hang
                    problems.append(
                        Problem(NOT_A_FILE, image_id, None, f"{path!r} is not a regular file")
                    )
                    continue
                if info.st_size == 0:
                    problems.append(Problem(EMPTY_FILE, image_id, None, f"{path!r} is empty"))
                    continue
            images[image_id] = img
            paths[image_id] = path

        all_ids = {img["id"] for img in data["images"]}
        boxes: dict[int, list] = {i: [] for i in images}
        labels: dict[int, list] = {i: [] for i in images}
        num_annotations = 0
        evaluated = []  # the evaluation index: what training uses, plus crowd regions
        for ann in data.get("annotations", []):
            problem = _check_annotation(ann, index, images, all_ids)
            if problem is not None:
                if problem.kind != UNKNOWN_IMAGE or ann.get("image_id") not in all_ids:
                    problems.append(problem)
                if problem.kind == CROWD and _crowd_region(ann, index):
                    evaluated.append(ann)
                continue
            evaluated.append(ann)
            x, y, w, h = (float(v) for v in ann["bbox"])
            boxes[ann["image_id"]].append((x, y, x + w, y + h))
            labels[ann["image_id"]].append(index[int(ann["category_id"])])
            num_annotations += 1

        records = [
            ImageRecord(
                image_id=image_id,
                file_name=img["file_name"],
                path=paths[image_id],
                height=img.get("height"),
                width=img.get("width"),
                boxes=np.asarray(boxes[image_id], np.float32).reshape(-1, 4),
                labels=np.asarray(labels[image_id], np.int32).reshape(-1),
            )
            for image_id, img in images.items()
        ]
        report = DatasetReport(annotation_file, tuple(problems), len(records), num_annotations)
        report.log()
        coco = COCO()
        coco.dataset = dict(data)
        coco.dataset["annotations"] = _evaluation_annotations(evaluated)
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
        return cls(annotation_file, image_dir, categories, records, report, coco)

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays of the records, for `tf.data`.

        Returns:
            dict with `path` [N] bytes (the file system's encoding of each
            path, so any name that exists can be read), `image_id` [N] int64,
            `size` [N, 2] int64 (annotated height and width, 0 when absent),
            `boxes` [T, 4] float32, `labels` [T] int32 and `row_splits`
            [N + 1] int64 (the boxes of image i are
            `boxes[row_splits[i]:row_splits[i + 1]]`).
        """
        counts = [len(r.labels) for r in self.records]
        return {
            "path": np.asarray([os.fsencode(r.path) for r in self.records], dtype=bytes),
            "image_id": np.asarray([r.image_id for r in self.records], np.int64),
            "size": np.asarray(
                [(r.height or 0, r.width or 0) for r in self.records], np.int64
            ).reshape(-1, 2),
            "boxes": np.concatenate([r.boxes for r in self.records] or [np.zeros((0, 4))])
            .astype(np.float32)
            .reshape(-1, 4),
            "labels": np.concatenate([r.labels for r in self.records] or [np.zeros(0)]).astype(
                np.int32
            ),
            "row_splits": np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64),
        }


def _crowd_region(ann: dict, index: Mapping[int, int]) -> bool:
    """Whether a crowd annotation is a usable ignore region for COCOeval."""
    bbox = ann.get("bbox")
    return (
        ann.get("category_id") in index
        and isinstance(bbox, list | tuple)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and math.isfinite(v) for v in bbox)
        and min(bbox[2:]) > 0
    )


def _evaluation_annotations(annotations: list[dict]) -> list[dict]:
    """Copies for COCOeval's index: `area` and `iscrowd` filled in, ids made unique.

    pycocotools needs `area` and `iscrowd` (training reads a missing `iscrowd`
    as 0) and looks annotations up by id, so a repeated id would score one
    object's box in place of another's (and a missing one fails); the index
    then numbers them itself.
    """
    copies = [
        {
            "iscrowd": 0,
            "area": float(ann["bbox"][2]) * float(ann["bbox"][3]),
            **ann,
        }
        for ann in annotations
    ]
    ids = [ann.get("id") for ann in copies]
    if len(set(ids)) != len(ids) or not all(isinstance(i, int) for i in ids):
        logger.warning(
            "annotation ids repeat or are missing (e.g. %s); the evaluation numbers the "
            "annotations 1..%d.",
            sorted((i for i, n in Counter(ids).items() if n > 1), key=str)[:5],
            len(ids),
        )
        copies = [dict(ann, id=k) for k, ann in enumerate(copies, 1)]
    return copies


def _check_top_level(data: Any, annotation_file: str) -> None:
    if not isinstance(data, dict):
        raise ValueError(
            f"CocoDataset: {annotation_file!r} must hold a JSON object with 'images', "
            f"'annotations' and 'categories', got {type(data).__name__}."
        )
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(
                f"CocoDataset: {annotation_file!r} has no '{key}' list; a COCO detection file "
                "needs 'images', 'annotations' and 'categories'."
            )
    if not isinstance(data.get("annotations", []), list):
        raise ValueError(f"CocoDataset: {annotation_file!r}: 'annotations' must be a list.")
    if not data["categories"]:
        raise ValueError(
            f"CocoDataset: {annotation_file!r} has an empty 'categories' list; list the "
            "dataset's classes there as {'id': <int>, 'name': <str>} entries."
        )
    for cat in data["categories"]:
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int):
            raise ValueError(
                f"CocoDataset: {annotation_file!r}: category without an integer 'id': {cat!r}."
            )


def _check_annotation(
    ann: Any, index: Mapping[int, int], images: Mapping[int, dict], all_ids: set
) -> Problem | None:
    """Returns the problem that excludes `ann`, or None when it is usable."""
    if not isinstance(ann, dict):
        return Problem(MALFORMED_BBOX, None, None, f"annotation is not an object: {ann!r}")
    ann_id, image_id = ann.get("id"), ann.get("image_id")
    if image_id not in images:
        # Annotations of excluded images are dropped with their image (already reported).
        return Problem(UNKNOWN_IMAGE, image_id, ann_id, f"image id {image_id!r} not in 'images'")
    if ann.get("iscrowd", 0):
        return Problem(CROWD, image_id, ann_id, "iscrowd=1")
    category_id = ann.get("category_id")
    if (
        isinstance(category_id, bool)
        or not isinstance(category_id, int)
        or category_id not in index
    ):
        return Problem(UNKNOWN_CATEGORY, image_id, ann_id, f"category_id {category_id!r}")
    bbox = ann.get("bbox")
    if (
        not isinstance(bbox, list | tuple)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        return Problem(MALFORMED_BBOX, image_id, ann_id, f"bbox {bbox!r} (need [x, y, w, h])")
    x, y, w, h = (float(v) for v in bbox)
    if not all(math.isfinite(v) for v in (x, y, w, h)):
        return Problem(NON_FINITE_BBOX, image_id, ann_id, f"bbox {bbox!r}")
    if w < 0 or h < 0:
        return Problem(NEGATIVE_SIZE, image_id, ann_id, f"bbox {bbox!r}")
    if w == 0 or h == 0:
        return Problem(EMPTY_BOX, image_id, ann_id, f"bbox {bbox!r}")
    img = images[image_id]
    width, height = img.get("width"), img.get("height")
    if width is not None and (x + w <= 0 or y + h <= 0 or x >= width or y >= height):
        return Problem(
            OUTSIDE_IMAGE, image_id, ann_id, f"bbox {bbox!r} outside the {width}x{height} image"
        )
    return None
