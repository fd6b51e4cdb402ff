"""Converts VOC, YOLO, CSV and COCO annotations to the COCO 2017 layout, and checks a split.

    cornernet-dataset convert --format voc|yolo|csv|coco --annotations PATH [--images DIR]
        --output ROOT --split NAME [--classes a,b,...] [--val-fraction F --seed S]
    cornernet-dataset check ROOT --split NAME [--draw N --output DIR]

(also `python -m cornernet_tf.cli.dataset`). `convert` writes
`ROOT/annotations/instances_NAME.json` and `ROOT/NAME/` (images hard-linked, or
copied), the layout `cornernet-train --data-dir ROOT` reads; every box or image
it leaves out, and every box it clips, is listed with its `file:line`.
`check` reports what the trainer will see in a split. The conventions of each
format are in docs/custom_data.md.

Exit codes: 0 done, 1 writing failed, 2 bad arguments or input (one line on
stderr naming the file and the fix; with `--strict`, any left-out box or image).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections import Counter

from cornernet_tf.cli._common import UsageError, setup_output
from cornernet_tf.utils.console import CurrentStreamHandler

FORMATS = ("voc", "yolo", "csv", "coco")
# Issues printed per kind; the full list goes to the conversion log file.
_PRINTED_PER_KIND = 20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="cornernet-dataset", description=__doc__.splitlines()[0], allow_abbrev=False
    )
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser(
        "convert",
        help="write a split in the COCO 2017 layout from VOC, YOLO, CSV or COCO annotations",
        allow_abbrev=False,
    )
    convert.add_argument("--format", required=True, choices=FORMATS)
    convert.add_argument(
        "--annotations",
        required=True,
        help="VOC: root, Annotations/ or a folder of .xml; YOLO: labels folder (or its parent); "
        "CSV: the .csv file; COCO: the .json file",
    )
    convert.add_argument(
        "--images",
        help="image folder (default: VOC JPEGImages/ or the XML folder; YOLO labels→images; "
        "CSV/COCO: the file's folder)",
    )
    convert.add_argument("--output", required=True, help="dataset root to write into")
    convert.add_argument("--split", required=True, help="split name, e.g. train2017")
    convert.add_argument(
        "--classes", help="class names in class-id order, comma-separated (others left out)"
    )
    convert.add_argument("--image-set", help="VOC: ImageSets/Main/<NAME>.txt chooses the images")
    convert.add_argument("--names", help="YOLO: data.yaml or classes.txt (default: looked up)")
    convert.add_argument(
        "--val-fraction",
        type=float,
        help="also write a validation split with this share of the images (e.g. 0.2)",
    )
    convert.add_argument("--val-split", default="val2017", help="its name (default val2017)")
    convert.add_argument("--seed", type=int, default=0, help="seed of the division (default 0)")
    convert.add_argument("--copy", action="store_true", help="copy images instead of hard links")
    convert.add_argument(
        "--strict",
        action="store_true",
        help="write nothing and exit 2 if a box or image is left out",
    )
    check = commands.add_parser(
        "check", help="counts, sizes and problems of a split", allow_abbrev=False
    )
    check.add_argument("root", help="dataset root (COCO 2017 layout)")
    check.add_argument("--split", required=True, help="split name, e.g. train2017")
    check.add_argument("--draw", type=int, default=0, help="draw the ground truth of N images")
    check.add_argument("--output", help="folder for the drawings (with --draw)")
    check.add_argument("--json", help="also write the statistics to this JSON file")
    check.add_argument(
        "--verbose", action="store_true", help="with --draw: TensorFlow's own start-up logs too"
    )
    return parser.parse_args(argv)


def _read(args):
    from cornernet_tf.data.formats import coco_json, csv_table, voc, yolo
    from cornernet_tf.data.formats.common import FormatError, parse_classes

    classes = parse_classes(args.classes)
    if args.image_set is not None and args.format != "voc":
        raise FormatError("--image-set is for --format voc only.")
    if args.names is not None and args.format != "yolo":
        raise FormatError("--names is for --format yolo only.")
    if args.format == "voc":
        return voc.read_voc(
            args.annotations, args.images, classes=classes, image_set=args.image_set
        )
    if args.format == "yolo":
        return yolo.read_yolo(args.annotations, args.images, classes=classes, names_file=args.names)
    if args.format == "csv":
        return csv_table.read_csv(args.annotations, args.images, classes=classes)
    return coco_json.read_coco(args.annotations, args.images, classes=classes)


def _summary(conversion) -> str:
    """One line: images, boxes, ignore regions, boxes per class."""
    boxes = [box for image in conversion.images for box in image.boxes]
    per_class = Counter(box.label for box in boxes if not box.ignore)
    ignored = sum(box.ignore for box in boxes)
    return (
        f"{len(conversion.images)} images, {len(boxes) - ignored} boxes, {ignored} ignore "
        f"regions, {len(conversion.classes)} classes: "
        + ", ".join(f"{name} {per_class.get(name, 0)}" for name in conversion.classes)
    )


def _issue_lines(issues) -> list[str]:
    """Issues by kind: a count line, then up to `_PRINTED_PER_KIND` of them."""
    lines = []
    by_kind: dict[str, list] = {}
    for issue in issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    for kind, found in sorted(by_kind.items()):
        left_out = Counter(issue.dropped for issue in found if issue.dropped)
        what = ", ".join(f"{n} {d}{'s' if n > 1 else ''} left out" for d, n in left_out.items())
        lines.append(f"{kind}: {len(found)}" + (f" ({what})" if what else ""))
        lines += [f"  {issue}" for issue in found[:_PRINTED_PER_KIND]]
        if len(found) > _PRINTED_PER_KIND:
            lines.append(f"  ... {len(found) - _PRINTED_PER_KIND} more")
    return lines


def convert(args) -> int:
    from cornernet_tf.data.formats import split as split_lib
    from cornernet_tf.data.formats import writer
    from cornernet_tf.data.formats.common import FormatError
    from cornernet_tf.utils.fs import atomic_write_text

    splits = [args.split] + ([args.val_split] if args.val_fraction is not None else [])
    if len(set(splits)) < len(splits):
        raise FormatError(f"--val-split {args.val_split}: same name as --split; choose another.")
    for split in splits:
        for path in writer.split_paths(args.output, split):
            if os.path.lexists(path):
                raise FormatError(
                    f"{path} exists already; choose another --split or --output, or remove it."
                )
    conversion = _read(args)
    dropped = [issue for issue in conversion.issues if issue.dropped]
    print(f"read {args.format} annotations from {args.annotations}:")
    print(f"  {_summary(conversion)}")
    for line in _issue_lines(conversion.issues):
        print(f"  {line}")
    if args.strict and dropped:
        raise FormatError(
            f"{dropped[0]} ({len(dropped)} boxes or images left out, listed above); fix the "
            "annotations or run without --strict."
        )
    if not conversion.images:
        raise FormatError(
            f"--annotations {args.annotations}: no usable image (see the list above)."
        )
    if not conversion.classes:
        raise FormatError(
            f"--annotations {args.annotations}: no box with a class name; nothing to train on "
            "(see the list above)."
        )
    parts = [(args.split, conversion)]
    if args.val_fraction is not None:
        train, val = split_lib.split_train_val(conversion, args.val_fraction, args.seed)
        parts = [(args.split, train), (args.val_split, val)]
    description = f"converted from {args.format}: {args.annotations}"
    for split, part in parts:
        written = writer.write_split(
            part, args.output, split, copy=args.copy, description=description
        )
        print(
            f"wrote {split}: {written['images']} images ({written['linked']} linked, "
            f"{written['copied']} copied), {written['annotations']} annotations"
        )
        print(f"  {written['annotation_file']}")
        print(f"  {written['image_dir']}")
        print(f"  {_summary(part)}")
    if conversion.issues:
        log = os.path.join(args.output, "annotations", f"conversion_{args.split}.txt")
        atomic_write_text(log, "".join(f"{issue}\n" for issue in conversion.issues))
        print(f"all {len(conversion.issues)} issues: {log}")
    return 0


def _draw(root: str, split: str, count: int, output: str) -> list[str]:
    import numpy as np
    from PIL import Image, ImageOps

    from cornernet_tf import visualization
    from cornernet_tf.data.coco import CocoDataset

    dataset = CocoDataset.open(root, split)
    names = list(dataset.categories.names)
    written = []
    for record in dataset.records[:count]:
        try:
            with Image.open(record.path) as image:
                pixels = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        except OSError as error:  # the statistics above list it too
            print(f"not drawn: {record.path}: {error}")
            continue
        pixels, boxes = visualization.upscale(pixels, record.boxes)
        drawn = visualization.draw_detections(
            pixels,
            boxes,
            record.labels,
            class_names=names,
        )
        stem = os.path.splitext(record.file_name.replace("/", "_"))[0]
        path = os.path.join(output, f"{record.image_id}_{stem}.png")
        visualization.save_image(path, drawn)
        written.append(path)
    return written


def check(args) -> int:
    from cornernet_tf.data.check import split_statistics
    from cornernet_tf.data.coco import layout_problem
    from cornernet_tf.utils.fs import atomic_write_json

    if args.draw < 0:
        raise UsageError(f"--draw must be >= 0, got {args.draw}.")
    if args.draw and not args.output:
        raise UsageError("--draw N needs --output DIR for the drawings.")
    if args.output and os.path.isfile(args.output):
        raise UsageError(f"{args.output}: --output must be a folder, and this is a file.")
    problem = layout_problem(args.root, args.split, "--split")
    if problem is not None:
        raise UsageError(problem.replace("--data-dir", "ROOT"))
    package_logger = logging.getLogger("cornernet_tf")
    if not package_logger.handlers:
        handler = CurrentStreamHandler("stderr")
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.WARNING)
    try:
        statistics = split_statistics(args.root, args.split)
    except (FileNotFoundError, ValueError) as error:
        raise UsageError(str(error)) from None
    for line in statistics.lines():
        print(line)
    log = os.path.join(args.root, "annotations", f"conversion_{args.split}.txt")
    if os.path.isfile(log):
        with open(log, encoding="utf-8") as f:
            count = sum(1 for line in f if line.strip())
        print(f"  what convert left out or changed ({count}): {log}")
    if args.json:
        atomic_write_json(args.json, statistics.to_dict(), indent=1)
        print(f"statistics: {args.json}")
    if args.draw:
        setup_output(verbose=args.verbose)
        for path in _draw(args.root, args.split, args.draw, args.output):
            print(f"drawn: {path}")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    from cornernet_tf.data.formats.common import FormatError

    try:
        return convert(args) if args.command == "convert" else check(args)
    except (FormatError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: writing failed: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
