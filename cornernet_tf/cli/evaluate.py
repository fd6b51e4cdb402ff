"""Evaluates a trained CornerNet with COCO box AP (pycocotools) on a COCO-format split.

    cornernet-evaluate --config shapes_tiny --data-dir data/shapes \\
        --model runs/shapes/model.keras [--split val2017] [--output metrics.json] \\
        [--detections detections.json] [--max-images N] [--plots DIR] [--set test.flip_test=false]

(also `python -m cornernet_tf.cli.evaluate` or `python scripts/evaluate.py`).
`--config` is a YAML file or the name of a packaged config.

Prints the standard 12-number COCO table and the AP of each class, and writes
the metrics (`AP`, `AP50`, `AP75`, `APs`, `APm`, `APl`, the AR numbers and
`per_class_AP`) and the detections in the COCO results format (defaults:
`<model dir>/metrics_<split>.json`, `<model dir>/detections_<split>.json`).
The test-time settings are the config's `test` section (they replace those
stored in the model). `--plots DIR` adds precision-recall curves per class
(`pr_curves.png`) and the images with the most missed objects, ground truth
against detections (`missed.png`).

Exit codes: 0 done, 1 the evaluation failed (an unexpected error, with its
traceback), 2 bad arguments, config, model or data (one line on stderr naming
the file, the field and the fix).
"""

import argparse
import glob
import json
import os
import sys

from cornernet_tf.cli._common import (
    CONFIG_HELP,
    UsageError,
    add_precision_argument,
    check_model_file,
    load_config,
    load_model,
    setup_output,
)
from cornernet_tf.utils.host_memory import pool_host_memory

GALLERY_SIZE = 8
GALLERY_SCORE_THRESHOLD = 0.3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help=CONFIG_HELP)
    parser.add_argument("--data-dir", required=True, help="dataset root in the COCO 2017 layout")
    parser.add_argument("--model", required=True, help="trained model (.keras)")
    parser.add_argument("--split", help="split to evaluate (default: the config's data.val_split)")
    parser.add_argument("--output", help="metrics JSON (default: <model dir>/metrics_<split>.json)")
    parser.add_argument(
        "--detections",
        help="detections in the COCO results format (default: <model dir>/detections_<split>.json)",
    )
    parser.add_argument("--max-images", type=int, help="evaluate only the first N images")
    parser.add_argument(
        "--plots", metavar="DIR", help="write PR curves and a missed-object gallery"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value, e.g. --set test.flip_test=false; repeatable",
    )
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2),
        default=1,
        help="0 no progress bar, 1 a progress bar on a terminal (default), 2 a final progress "
        "line and TensorFlow's own start-up logs",
    )
    add_precision_argument(parser)
    return parser.parse_args(argv)


def check_inputs(args, config) -> str:
    """Checks the paths before TensorFlow is imported; returns the split."""
    split = args.split or config.data.val_split
    if args.max_images is not None and args.max_images < 1:
        raise UsageError(f"--max-images must be a positive integer, got {args.max_images}.")
    check_model_file(args.model)
    if not os.path.isdir(args.data_dir):
        raise UsageError(
            f"{args.data_dir}: --data-dir not found; pass a dataset root in the COCO 2017 layout "
            "(annotations/instances_<split>.json and <split>/), or generate one with "
            "`python scripts/make_shapes.py --output DIR`."
        )
    annotations = os.path.join(args.data_dir, "annotations", f"instances_{split}.json")
    if not os.path.isfile(annotations):
        available = sorted(
            os.path.basename(p)[len("instances_") : -len(".json")]
            for p in glob.glob(os.path.join(args.data_dir, "annotations", "instances_*.json"))
        )
        hint = (
            f"available splits: {', '.join(available)}; pass one with --split"
            if available
            else "the folder has no annotations/instances_<split>.json at all"
        )
        raise UsageError(f"{annotations}: annotation file for split {split!r} not found; {hint}.")
    if args.plots and os.path.exists(args.plots) and not os.path.isdir(args.plots):
        raise UsageError(f"{args.plots}: --plots must be a directory, and this is a file.")
    for path, flag in ((args.output, "--output"), (args.detections, "--detections")):
        if path and os.path.isdir(path):
            raise UsageError(f"{path}: {flag} is a directory; pass a file name ending in .json.")
    return split


def print_per_class(per_class_ap) -> None:
    width = max([len(name) for name in per_class_ap] + [5])
    print(f"{'class':<{width}}  AP@[.5:.95]")
    for name, ap in per_class_ap.items():
        print(f"{name:<{width}}  {ap:.3f}" if ap >= 0 else f"{name:<{width}}  n/a (no objects)")


def write_plots(evaluation, dataset, plots_dir) -> list:
    """Writes `pr_curves.png` and `missed.png` into `plots_dir`; returns their paths."""
    import numpy as np

    from cornernet_tf import evaluation as evaluation_lib
    from cornernet_tf import images as image_io
    from cornernet_tf import visualization

    coco_eval = evaluation.coco_eval
    names = list(evaluation.per_class_ap)
    pr_path = os.path.join(plots_dir, "pr_curves.png")
    visualization.plot_precision_recall(
        coco_eval.eval["precision"],
        coco_eval.params.recThrs,
        coco_eval.params.iouThrs,
        names,
        pr_path,
    )
    missed = evaluation_lib.missed_objects(
        coco_eval, iou_threshold=0.5, score_threshold=GALLERY_SCORE_THRESHOLD
    )
    records = {r.image_id: r for r in dataset.records}
    worst = sorted(evaluation.image_ids, key=lambda i: (-missed[i], i))[:GALLERY_SIZE]
    categories = dataset.categories
    images, titles = [], []
    for image_id in worst:
        record = records[image_id]
        image, code = image_io.read_image(record.path)
        if int(code) != image_io.OK:
            continue
        dets = [
            r
            for r in evaluation.results
            if r["image_id"] == image_id and r["score"] >= GALLERY_SCORE_THRESHOLD
        ]
        boxes = np.array([r["bbox"] for r in dets], np.float32).reshape(-1, 4)
        boxes[:, 2:] += boxes[:, :2]
        classes = [categories.to_contiguous(r["category_id"]) for r in dets]
        image, gt_boxes, boxes = visualization.upscale(image.numpy(), record.boxes, boxes)
        image = visualization.draw_detections(
            image,
            gt_boxes,
            record.labels,
            class_names=names,
            color=visualization.GROUND_TRUTH_COLOR,
        )
        image = visualization.draw_detections(
            image,
            boxes,
            np.array(classes, np.int32),
            np.array([r["score"] for r in dets], np.float32),
            class_names=names,
            color=visualization.DETECTION_COLOR,
        )
        images.append(image)
        titles.append(
            f"image {image_id}: {missed[image_id]} of {len(record.labels)} missed\n"
            f"{os.path.basename(record.path)}"
        )
    paths = [pr_path]
    if images:
        gallery_path = os.path.join(plots_dir, "missed.png")
        visualization.save_gallery(
            images,
            titles,
            gallery_path,
            legend=[
                ("ground truth", visualization.GROUND_TRUTH_COLOR),
                (f"detections (score >= {GALLERY_SCORE_THRESHOLD})", visualization.DETECTION_COLOR),
            ],
        )
        paths.append(gallery_path)
    return paths


def main(argv=None) -> int:
    args = parse_args(argv)
    pool_host_memory()  # before TensorFlow starts: see cornernet_tf.utils.host_memory
    # Arguments, config and paths are checked before TensorFlow is imported.
    from cornernet_tf.spec.config import ConfigError, atomic_write_text

    try:
        config = load_config(args.config, args.set)
        split = check_inputs(args, config)
    except (ConfigError, UsageError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    setup_output(verbose=args.verbose >= 2)
    from cornernet_tf import evaluation as evaluation_lib
    from cornernet_tf.data.coco import CocoDataset

    model_dir = os.path.dirname(os.path.abspath(args.model))
    output = args.output or os.path.join(model_dir, f"metrics_{split}.json")
    detections_path = args.detections or os.path.join(model_dir, f"detections_{split}.json")
    try:
        model = load_model(args.model, args.precision)
        dataset = CocoDataset.open(args.data_dir, split)
        if not dataset.records:
            raise UsageError(
                f"{dataset.annotation_file}: no usable images in split {split!r} (see the log "
                "above for what was excluded)."
            )
        test_config = config.test
        evaluation = evaluation_lib.run_coco_evaluation(
            model,
            dataset,
            max_images=args.max_images,
            test_config=test_config,
            # A progress bar only on a terminal: in a log file it is control characters.
            verbose=0 if args.verbose == 1 and not sys.stdout.isatty() else args.verbose,
        )
    except (UsageError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        print(f"error: {args.model} on {args.data_dir} ({split}): {e}", file=sys.stderr)
        return 2

    print(f"COCO box evaluation of {args.model} on {split} ({len(evaluation.image_ids)} images):")
    print(evaluation.summary, end="")
    print_per_class(evaluation.per_class_ap)
    if evaluation.bad_images:
        print(f"{len(evaluation.bad_images)} images could not be read (no detections):")
        for path, reason in evaluation.bad_images:
            print(f"  {path}: {reason}")
    if evaluation.excluded_annotations:
        print(
            f"{sum(evaluation.excluded_annotations.values())} bad ground-truth annotations not "
            "scored (training does not use them either): "
            + ", ".join(f"{k}={n}" for k, n in sorted(evaluation.excluded_annotations.items()))
        )

    metrics = {
        **evaluation.stats,
        "per_class_AP": evaluation.per_class_ap,
        "split": split,
        "num_images": len(evaluation.image_ids),
        "num_detections": len(evaluation.results),
        "num_bad_images": len(evaluation.bad_images),
        "excluded_annotations": evaluation.excluded_annotations,
        "model": os.path.abspath(args.model),
        "test_config": test_config.to_dict(),
    }
    atomic_write_text(output, json.dumps(metrics, indent=1) + "\n")
    atomic_write_text(detections_path, json.dumps(evaluation.results) + "\n")
    print(f"metrics: {output}")
    print(f"detections: {detections_path}")
    if args.plots:
        for path in write_plots(evaluation, dataset, args.plots):
            print(f"plot: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
