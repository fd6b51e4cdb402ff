"""COCO box AP of a detector on a COCO-format split.

Follows princeton-vl/CornerNet `test/coco.py` (`kp_detection`: every image
once, at its own size, through the official test procedure that
`CornerNet.detect` implements) and `db/coco.py` (`convert_to_coco`: boxes as
`[x, y, w, h]` with `w = x2 - x1`, original category ids, boxes and scores
rounded to 2 decimals; `evaluate`: `COCOeval` "bbox" restricted to the
evaluated images and all categories).

    metrics = evaluate_coco(model, "data/shapes", "val2017")   # {"AP": ..., ...}

`evaluate_coco` returns a flat `{name: float}` dict (the trainer logs it as
TensorBoard scalars): the 12 `COCOeval.stats` (`STAT_NAMES`) and one
`AP/<class name>` per class. pycocotools' convention is kept: -1 means
"undefined" (no ground truth of that class or area range among the evaluated
images). `run_coco_evaluation` returns everything behind those numbers
(`CocoEvaluation`: the results list, the `COCOeval` object, its printed
summary) for `scripts/evaluate.py`.

Differences from the official evaluation, on purpose:
    * when the model finds nothing at all, pycocotools' `loadRes` cannot load
      an empty list; the evaluation then runs against an empty result set
      (AP 0 where ground truth exists) and logs a warning, instead of failing;
    * an image that cannot be decoded (or has a side above `max_image_side`)
      is evaluated with no detections (its objects count as missed, so AP is
      not inflated) and named in a warning; images that the dataset reader
      excluded (missing files, unsafe names; see `cornernet_tf.data.coco`) are
      not evaluated;
    * the ground truth is what training uses: annotations the reader excludes
      (NaN, negative or zero sizes, boxes outside the image, unknown
      categories) are not scored, and are counted in
      `CocoEvaluation.excluded_annotations` and a warning; crowd regions stay
      (COCOeval ignores detections on them).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf import images
from cornernet_tf.data import pipeline
from cornernet_tf.data.coco import CategoryMap, CocoDataset
from cornernet_tf.inference.feeding import without_autotune
from cornernet_tf.spec.config import TestConfig
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE
from cornernet_tf.utils.checks import check_count

logger = logging.getLogger(__name__)

__all__ = [
    "STAT_NAMES",
    "CocoEvaluation",
    "detections_to_coco",
    "evaluate_coco",
    "evaluate_detections",
    "make_evaluate_fn",
    "missed_objects",
    "run_coco_evaluation",
]

# Names of `COCOeval.stats`, in order (pycocotools `summarize`).
STAT_NAMES = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)
# Official `db/coco.py` (`_to_float`): boxes and scores are written with 2 decimals.
OFFICIAL_DECIMALS = 2


@dataclasses.dataclass
class CocoEvaluation:
    """A finished COCO evaluation.

    Attributes:
        stats: the 12 `COCOeval.stats` by `STAT_NAMES` name (-1: undefined).
        per_class_ap: AP@[.5:.95] per class name, in class-id order (-1: the
            class has no ground truth among the evaluated images).
        summary: the standard 12-line table printed by `COCOeval.summarize`.
        coco_eval: the `COCOeval` object (`eval["precision"]` is
            [T=10, R=101, K, A=4, M=3]; `evalImgs` holds the matches).
        results: detections in the COCO results format, one dict per box
            (`image_id`, `category_id`, `bbox` [x, y, w, h], `score`).
        image_ids: the evaluated image ids, in dataset order.
        bad_images: (file, reason) of the images that could not be decoded.
        excluded_annotations: bad ground-truth annotations left out of the
            scoring (as out of training) by kind, e.g. `{"empty_box": 2}`.
    """

    stats: dict[str, float]
    per_class_ap: dict[str, float]
    summary: str
    coco_eval: Any
    results: list[dict[str, Any]]
    image_ids: list[int]
    bad_images: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    excluded_annotations: dict[str, int] = dataclasses.field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """Flat `{name: float}`: `stats` plus `AP/<class name>` per class."""
        flat = dict(self.stats)
        flat.update({f"AP/{name}": ap for name, ap in self.per_class_ap.items()})
        return flat


def detections_to_coco(
    image_id: int,
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    categories: CategoryMap,
    *,
    decimals: int | None = OFFICIAL_DECIMALS,
) -> list[dict[str, Any]]:
    """Converts one image's detections to the COCO results format.

    Official `db/coco.py` (`convert_to_coco`): `[x1, y1, x2, y2]` becomes
    `[x1, y1, x2 - x1, y2 - y1]`, the contiguous class id its dataset category
    id, and boxes and scores are rounded to `decimals`. Slots with a negative
    class (the -1 padding of `CornerNet.detect`) are skipped.

    Args:
        image_id: COCO image id.
        boxes: [N, 4] `x1, y1, x2, y2` in image pixels.
        scores: [N] confidences.
        classes: [N] contiguous 0-based class ids; < 0 marks padding.
        categories: the dataset's `CategoryMap`.
        decimals: rounding of boxes and scores; None keeps full precision.

    Returns:
        One dict per detection: `image_id`, `category_id`, `bbox` (4 floats),
        `score`.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)  # [N, 4]
    scores = np.asarray(scores, np.float64).reshape(-1)  # [N]
    classes = np.asarray(classes).reshape(-1).astype(np.int64)  # [N]
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(
            f"detections_to_coco: `boxes`, `scores` and `classes` must have the same length, "
            f"got {len(boxes)}, {len(scores)} and {len(classes)}."
        )
    valid = classes >= 0
    if np.any(classes[valid] >= categories.num_classes):
        raise ValueError(
            f"detections_to_coco: class id {int(classes[valid].max())} is outside the dataset's "
            f"{categories.num_classes} classes; the model was trained on another class list."
        )
    boxes, scores, classes = boxes[valid], scores[valid], classes[valid]
    xywh = np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)  # [N, 4]
    if decimals is not None:
        xywh, scores = np.round(xywh, decimals), np.round(scores, decimals)
    category_ids = np.asarray(categories.category_ids, np.int64)[classes]  # [N]
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_id),
            "bbox": [float(v) for v in box],
            "score": float(score),
        }
        for box, score, category_id in zip(xywh, scores, category_ids, strict=True)
    ]


def evaluate_detections(
    coco_gt,
    results: Sequence[Mapping[str, Any]],
    image_ids: Sequence[int],
    categories: CategoryMap,
) -> CocoEvaluation:
    """COCO box evaluation of results on the given images (official `db/coco.py`, `evaluate`).

    Args:
        coco_gt: pycocotools `COCO` ground truth (`CocoDataset.coco`).
        results: detections in the COCO results format (not modified).
        image_ids: images to evaluate (`COCOeval.params.imgIds`); images
            without results count as having no detections.
        categories: the dataset's `CategoryMap` (`params.catIds` and the
            per-class names).

    Returns:
        The `CocoEvaluation` (`bad_images` empty).

    Raises:
        ValueError: a result names an image not in `image_ids`, or
            `image_ids` is empty.
    """
    from pycocotools.cocoeval import COCOeval

    image_ids = [int(i) for i in image_ids]
    if not image_ids:
        raise ValueError("evaluate_detections: `image_ids` is empty; evaluate at least one image.")
    unknown = {int(r["image_id"]) for r in results} - set(image_ids)
    if unknown:
        raise ValueError(
            f"evaluate_detections: results for image ids {sorted(unknown)[:10]} that are not in "
            "`image_ids`; pass the ids of every image the results come from."
        )
    # `loadRes` adds keys to the dicts it gets: give it copies.
    results = [dict(r, bbox=list(r["bbox"])) for r in results]
    summary = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:
            logger.warning(
                "COCO evaluation: the model made no detections on the %d evaluated images; every "
                "object counts as missed (AP 0 where there is ground truth).",
                len(image_ids),
            )
            coco_dt = _empty_results(coco_gt)
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.params.imgIds = image_ids
        coco_eval.params.catIds = list(categories.category_ids)
        coco_eval.evaluate()
        coco_eval.accumulate()
    with contextlib.redirect_stdout(summary):
        coco_eval.summarize()
    stats = {name: float(v) for name, v in zip(STAT_NAMES, coco_eval.stats, strict=True)}
    precision = coco_eval.eval["precision"]  # [T, R, K, A, M]
    per_class = {}
    for k, name in enumerate(_unique_names(categories)):
        p = precision[:, :, k, 0, -1]  # [T, R] area "all", 100 detections
        per_class[name] = float(np.mean(p[p > -1])) if np.any(p > -1) else -1.0
    return CocoEvaluation(
        stats=stats,
        per_class_ap=per_class,
        summary=summary.getvalue(),
        coco_eval=coco_eval,
        results=[{k: r[k] for k in ("image_id", "category_id", "bbox", "score")} for r in results],
        image_ids=image_ids,
    )


def missed_objects(
    coco_eval, *, iou_threshold: float = 0.5, score_threshold: float = 0.0
) -> dict[int, int]:
    """Ground-truth objects per image that no confident detection found.

    Uses COCOeval's own greedy matching (`evalImgs`, area "all", 100
    detections): an object is missed when it is not matched at
    `iou_threshold`, or only by a detection scoring below `score_threshold`
    (the same as matching only the detections at or above it, since the
    matching proceeds in score order). Crowd objects never count.

    Args:
        coco_eval: a `COCOeval` after `evaluate()`.
        iou_threshold: one of `coco_eval.params.iouThrs` (0.5, 0.55, ..., 0.95).
        score_threshold: detections below it do not count as found.

    Returns:
        `{image_id: number of missed objects}` for every evaluated image.
    """
    params = coco_eval.params
    matches = np.flatnonzero(np.isclose(params.iouThrs, iou_threshold))
    if len(matches) != 1:
        raise ValueError(
            f"missed_objects: `iou_threshold` must be one of {list(params.iouThrs)}, got "
            f"{iou_threshold!r}."
        )
    t = int(matches[0])
    image_ids = [int(i) for i in params.imgIds]
    missed = dict.fromkeys(image_ids, 0)
    num_images, num_areas = len(image_ids), len(params.areaRng)
    for k in range(len(params.catIds)):
        for i, image_id in enumerate(image_ids):
            entry = coco_eval.evalImgs[k * num_areas * num_images + i]  # area index 0: "all"
            if entry is None:
                continue
            matched = entry["gtMatches"][t]  # [G] matched detection id, 0 when missed
            if len(matched) == 0:
                continue
            score_of = dict(zip(entry["dtIds"], entry["dtScores"], strict=True))
            found = np.array([m > 0 and score_of[int(m)] >= score_threshold for m in matched])
            counted = ~np.asarray(entry["gtIgnore"], bool)  # [G]
            missed[image_id] += int(np.sum(counted & ~found))
    return missed


def run_coco_evaluation(
    model,
    dataset: str | os.PathLike | CocoDataset,
    split: str = "val2017",
    *,
    max_images: int | None = None,
    test_config: TestConfig | Mapping[str, Any] | None = None,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
    decimals: int | None = OFFICIAL_DECIMALS,
    verbose: int = 1,
) -> CocoEvaluation:
    """Runs the detector over a split image by image and evaluates it with COCOeval.

    Each image is decoded at its own size (grayscale/RGBA files become RGB)
    and passed alone to `model.detect` (official `test/coco.py`: per-image
    padding, flip test, soft-NMS, 100 detections), traced once as a
    `tf.function` with a [1, None, None, 3] signature (no autograph).

    Args:
        model: a `CornerNet` (or any object with `detect(images [1, H, W, 3]
            uint8) -> {"boxes", "confidence", "classes"}` of the same meaning).
        dataset: dataset root in the COCO 2017 layout, or an opened `CocoDataset`.
        split: split name (used when `dataset` is a root).
        max_images: evaluate only the first N images (in file order).
        test_config: test settings for this evaluation instead of the model's:
            a `TestConfig` (e.g. a config's `test` section) or a dict of
            fields replacing the model's; the model is not modified.
        max_pixels: images with more pixels are treated as unreadable.
        max_image_side: images with a longer side are treated as unreadable
            (from the file header; see docs/input.md).
        decimals: rounding of the results (official: 2); None keeps all.
        verbose: 0 silent, 1 a progress bar over the images, 2 one line at the end.

    Returns:
        The `CocoEvaluation`.

    Raises:
        FileNotFoundError: the annotation file or image folder is missing.
        ValueError: bad arguments, a dataset without usable images, a model
            whose class count differs from the dataset's.
    """
    source = pipeline.open_source(dataset, split, "run_coco_evaluation")
    if max_images is not None:
        check_count(max_images, "max_images")
    records = list(source.records[:max_images] if max_images else source.records)
    categories = source.categories
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != categories.num_classes:
        raise ValueError(
            f"run_coco_evaluation: the model predicts {num_classes} classes but "
            f"{source.annotation_file!r} has {categories.num_classes} categories; evaluate on the "
            "dataset the model was trained for."
        )
    names = getattr(model, "class_names", None)
    if names is not None and list(names) != list(categories.names):
        logger.warning(
            "The model's class names %s differ from the dataset's %s; classes are matched by "
            "index.",
            list(names)[:10],
            list(categories.names)[:10],
        )
    results, bad_images = [], []
    # `detect` uses explicit TF control flow (tf.while_loop, static Python
    # loops over settings): autograph's source conversion only adds tracing time.
    detect = model.detect if test_config is None else _with_test_config(model, test_config)
    detect = tf.function(
        detect,
        input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)],
        autograph=False,
    )
    progbar = keras.utils.Progbar(len(records), verbose=verbose, unit_name="image")
    excluded = source.report.excluded_annotations
    if excluded:
        logger.warning(
            "COCO evaluation: %d ground-truth annotations of %s are not scored, as training "
            "does not use them (%s).",
            sum(excluded.values()),
            source.annotation_file,
            ", ".join(f"{kind}={n}" for kind, n in sorted(excluded.items())),
        )
    read = _read_images(records, max_pixels, max_image_side)
    for record, (image, code) in zip(records, read, strict=True):
        code = int(code)
        if code != images.OK:
            bad_images.append((record.path, images.REASONS[code]))
            logger.warning(
                "COCO evaluation: %s (image %d) is not usable (%s); evaluated with no detections.",
                record.path,
                record.image_id,
                images.REASONS[code],
            )
        else:
            out = detect(image[None])
            results += detections_to_coco(
                record.image_id,
                out["boxes"][0].numpy(),
                out["confidence"][0].numpy(),
                out["classes"][0].numpy(),
                categories,
                decimals=decimals,
            )
        progbar.add(1)
    evaluation = evaluate_detections(
        source.coco, results, [r.image_id for r in records], categories
    )
    evaluation.bad_images = bad_images
    evaluation.excluded_annotations = excluded
    return evaluation


def evaluate_coco(
    model,
    dataset_root: str | os.PathLike | CocoDataset,
    split: str = "val2017",
    *,
    max_images: int | None = None,
    test_config: TestConfig | Mapping[str, Any] | None = None,
    max_pixels: int = images.DEFAULT_MAX_PIXELS,
    verbose: int = 1,
) -> dict[str, float]:
    """COCO box AP of `model` on a split (see `run_coco_evaluation`).

    Args:
        model: a `CornerNet` (anything with a compatible `detect`).
        dataset_root: dataset root in the COCO 2017 layout, or an opened `CocoDataset`.
        split: split name, e.g. "val2017".
        max_images: evaluate only the first N images.
        test_config: test settings for this call (see `run_coco_evaluation`).
        max_pixels: images with more pixels are treated as unreadable.
        verbose: 0 silent, 1 progress bar, 2 one line at the end.

    Returns:
        `{name: float}`: `AP`, `AP50`, `AP75`, `APs`, `APm`, `APl`, `AR1`,
        `AR10`, `AR100`, `ARs`, `ARm`, `ARl` and `AP/<class name>` per class
        (pycocotools values; -1 where undefined).
    """
    evaluation = run_coco_evaluation(
        model,
        dataset_root,
        split,
        max_images=max_images,
        test_config=test_config,
        max_pixels=max_pixels,
        verbose=verbose,
    )
    return evaluation.metrics()


def make_evaluate_fn(
    dataset_root: str | os.PathLike,
    split: str = "val2017",
    *,
    max_images: int | None = None,
    test_config: TestConfig | Mapping[str, Any] | None = None,
    verbose: int = 0,
) -> Callable[[Any], dict[str, float]]:
    """The trainer's periodic-evaluation hook: `model -> evaluate_coco(model, ...)`.

    The dataset is opened at the first call and kept. Under multi-worker
    training every worker evaluates (the same images, the same numbers): the
    others would wait for the chief at the next step anyway.

    Args:
        dataset_root: dataset root in the COCO 2017 layout.
        split: split name.
        max_images: evaluate only the first N images.
        test_config: test settings for the evaluation (see `run_coco_evaluation`).
        verbose: progress output (0: none, the trainer logs the results).

    Returns:
        A function `model -> {name: float}`.
    """
    if max_images is not None:
        check_count(max_images, "max_images")
    opened: list[CocoDataset] = []

    def evaluate_fn(model) -> dict[str, float]:
        if not opened:
            opened.append(pipeline.open_source(dataset_root, split, "make_evaluate_fn"))
        return evaluate_coco(
            model, opened[0], max_images=max_images, test_config=test_config, verbose=verbose
        )

    return evaluate_fn


# --------------------------------------------------------------------- helpers


def _read_images(records, max_pixels: int, max_side: int) -> Iterator[tuple[tf.Tensor, tf.Tensor]]:
    """(image [H, W, 3] uint8, status code) per record, decoded ahead in parallel.

    An image whose size differs from its annotated one is SIZE_MISMATCH: its
    ground-truth boxes do not describe its pixels.
    """
    paths = tf.constant([os.fsencode(r.path) for r in records], tf.string)  # any file name
    sizes = tf.constant(
        [(r.height or 0, r.width or 0) for r in records], tf.int64, [len(records), 2]
    )

    def read(path, size):
        image, code = images.read_image(path, max_pixels=max_pixels, max_side=max_side)
        return image, images.check_annotated_size(image, code, size)

    dataset = (
        tf.data.Dataset.from_tensor_slices((paths, sizes))
        .map(
            read,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        .prefetch(2)
    )
    return iter(without_autotune(dataset))


def _with_test_config(model, test_config):
    """`model.detect` with `test_config` for this evaluation, the model untouched."""
    if not hasattr(model, "test_config"):
        raise ValueError(
            "run_coco_evaluation: `test_config` was given but the model has no `test_config`."
        )
    if isinstance(test_config, Mapping):
        known = [field.name for field in dataclasses.fields(TestConfig)]
        unknown = sorted(set(test_config) - set(known))
        if unknown:
            raise ValueError(
                f"run_coco_evaluation: unknown `test_config` keys {unknown}; valid keys are "
                f"{known}."
            )

    def detect(images):
        return model.detect(images, test_config=test_config)

    return detect


def _empty_results(coco_gt):
    """A results index without detections (`loadRes` refuses an empty list)."""
    from pycocotools.coco import COCO

    coco_dt = COCO()
    coco_dt.dataset = {
        "images": list(coco_gt.dataset["images"]),
        "categories": copy.deepcopy(coco_gt.dataset["categories"]),
        "annotations": [],
    }
    coco_dt.createIndex()
    return coco_dt


def _unique_names(categories: CategoryMap) -> list[str]:
    """Class names, with the category id appended to names used twice."""
    names = list(categories.names)
    return [
        f"{name} ({cid})" if names.count(name) > 1 else name
        for name, cid in zip(names, categories.category_ids, strict=True)
    ]
