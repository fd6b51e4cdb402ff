"""Detects objects in images with a trained CornerNet; writes annotated images and JSON.

    cornernet-predict --model runs/shapes/model.keras IMAGE [IMAGE ...] --output DIR \\
        [--score-threshold 0.3] [--max-image-side 2048]

(also `python -m cornernet_tf.cli.predict` or `python scripts/predict.py`).

For each image `DIR/<name>.png` shows the detections scoring at least the
threshold (box, class name, score) and `DIR/<name>.json` lists them
(`box` x1, y1, x2, y2 in image pixels, `class_id`, `class_name`, `score`);
`DIR/detections.json` gathers all images and the files that failed (an input
named `detections.*` writes `detections_2.png/.json`). JPEG, PNG, GIF and BMP
files are read; grayscale and RGBA images are converted to RGB, a JPEG's EXIF
orientation is applied (sizes and boxes are those of the image as viewers show
it). Each image is run at its own size with the model's test settings
(official test procedure: flip test, soft-NMS, at most 100 detections).

An image with a side above `--max-image-side` is refused from its file header,
before decoding (memory grows with the pixels; docs/input.md gives the
figures). A file that cannot be read (missing, not a regular file, not an
image, corrupt, too large) is reported on stderr and skipped; the others are
still processed.

Exit codes: 0 done, 1 some images failed, 2 bad arguments or model.
"""

import argparse
import json
import os
import sys

from cornernet_tf.cli._common import UsageError, check_model_file
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE
from cornernet_tf.utils.fs import not_a_file

# The summary file's stem; an input image of that name gets `detections_2`.
SUMMARY_STEM = "detections"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="trained model (.keras)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("--output", required=True, help="folder for annotated images and JSON")
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=0.3,
        help="lowest confidence drawn and listed (0-1, default 0.3)",
    )
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=DEFAULT_MAX_IMAGE_SIDE,
        help="refuse images with a longer side, from the file header (default "
        f"{DEFAULT_MAX_IMAGE_SIDE}; memory grows with the pixels)",
    )
    return parser.parse_args(argv)


def check_args(args) -> None:
    check_model_file(args.model)
    if not 0.0 <= args.score_threshold <= 1.0:
        raise UsageError(f"--score-threshold must be in [0, 1], got {args.score_threshold}.")
    if args.max_image_side < 1:
        raise UsageError(f"--max-image-side must be a positive integer, got {args.max_image_side}.")
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise UsageError(f"{args.output}: --output must be a folder, and this is a file.")


def load_model(path):
    from cornernet_tf.models import load_model as load_cornernet

    try:
        return load_cornernet(path)
    except ValueError as e:  # missing, not .keras, unreadable, or another model
        raise UsageError(f"{e} Pass a .keras file saved by scripts/train.py.") from None


def class_names_for(model, model_path) -> list:
    """The model's class names, else those of `classes.json` beside it, else the ids."""
    if model.class_names:
        return list(model.class_names)
    classes_json = os.path.join(os.path.dirname(os.path.abspath(model_path)), "classes.json")
    if os.path.isfile(classes_json):
        from cornernet_tf.data.coco import CategoryMap

        names = list(CategoryMap.from_json(classes_json).names)
        if len(names) == model.num_classes:
            return names
    return [str(k) for k in range(model.num_classes)]


def output_stem(path, taken) -> str:
    """`<file name without extension>`, with `_2`, `_3`... when two inputs share it."""
    base = os.path.splitext(os.path.basename(path))[0] or "image"
    stem, n = base, 1
    while stem in taken:
        n += 1
        stem = f"{base}_{n}"
    taken.add(stem)
    return stem


def detect_one(
    model, image, score_threshold, class_names, max_image_side=DEFAULT_MAX_IMAGE_SIDE
) -> list:
    detections = model.predict_images([image], max_image_side=max_image_side)
    boxes, scores = detections["boxes"][0], detections["confidence"][0]  # [M, 4], [M]
    classes = detections["classes"][0]  # [M]
    keep = (classes >= 0) & (scores >= score_threshold)
    return [
        {
            "box": [round(float(v), 2) for v in box],
            "class_id": int(k),
            "class_name": class_names[int(k)],
            "score": round(float(s), 4),
        }
        for box, k, s in zip(boxes[keep], classes[keep], scores[keep], strict=True)
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        check_args(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    from cornernet_tf import images, visualization
    from cornernet_tf.spec.config import atomic_write_text

    try:
        model = load_model(args.model)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    class_names = class_names_for(model, args.model)
    os.makedirs(args.output, exist_ok=True)

    entries, errors, taken = [], [], {SUMMARY_STEM}
    for path in args.images:
        reason = not_a_file(path)
        if reason is not None:
            errors.append({"file": path, "error": f"{reason}; pass an image file"})
            print(f"error: {path}: {errors[-1]['error']}.", file=sys.stderr)
            continue
        image, code = images.read_image(path, max_side=args.max_image_side)
        if int(code) != images.OK:
            fix = (
                f"resize it to at most {args.max_image_side} pixels a side, or raise "
                "--max-image-side if the machine has the memory (docs/input.md)"
                if int(code) == images.TOO_LARGE
                else "pass a JPEG, PNG, GIF or BMP file"
            )
            errors.append(
                {
                    "file": path,
                    "error": f"cannot read the image ({images.REASONS[int(code)]}); {fix}",
                }
            )
            print(f"error: {path}: {errors[-1]['error']}.", file=sys.stderr)
            continue
        image = image.numpy()  # [H, W, 3] uint8 RGB, as displayed
        detections = detect_one(
            model, image, args.score_threshold, class_names, args.max_image_side
        )
        stem = output_stem(path, taken)
        annotated_path = os.path.join(args.output, f"{stem}.png")
        visualization.save_image(
            annotated_path,
            visualization.draw_detections(
                image,
                np.array([d["box"] for d in detections], np.float32).reshape(-1, 4),
                np.array([d["class_id"] for d in detections], np.int32),
                np.array([d["score"] for d in detections], np.float32),
                class_names=class_names,
            ),
        )
        entry = {
            "file": path,
            "height": int(image.shape[0]),
            "width": int(image.shape[1]),
            "annotated": annotated_path,
            "detections": detections,
        }
        atomic_write_text(os.path.join(args.output, f"{stem}.json"), json.dumps(entry, indent=1))
        entries.append(entry)
        print(f"{path}: {len(detections)} objects -> {annotated_path}")

    summary = {
        "model": os.path.abspath(args.model),
        "score_threshold": args.score_threshold,
        "images": entries,
        "errors": errors,
    }
    atomic_write_text(
        os.path.join(args.output, f"{SUMMARY_STEM}.json"), json.dumps(summary, indent=1)
    )
    if errors:
        print(
            f"{len(errors)} of {len(args.images)} images failed: "
            + ", ".join(e["file"] for e in errors),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
