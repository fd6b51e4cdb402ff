"""Writes the embedded synthetic shapes dataset in the COCO 2017 layout.

    cornernet-make-shapes --output data/shapes [--train N --val N --size 128 --seed 0]

(also `python -m cornernet_tf.cli.make_shapes` or `python scripts/make_shapes.py`).
See `cornernet_tf.data.shapes` for what is drawn.

Exit codes: 0 written, 1 writing failed, 2 bad arguments.
"""

import argparse
import sys
import time

from cornernet_tf.cli._common import setup_output
from cornernet_tf.data import shapes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--output", required=True, help="dataset root to write")
    parser.add_argument("--train", type=int, default=shapes.DEFAULT_NUM_TRAIN, help="train images")
    parser.add_argument("--val", type=int, default=shapes.DEFAULT_NUM_VAL, help="val images")
    parser.add_argument(
        "--size", type=int, default=shapes.DEFAULT_IMAGE_SIZE, help="image side in pixels"
    )
    parser.add_argument("--height", type=int, help="image height (overrides --size)")
    parser.add_argument("--width", type=int, help="image width (overrides --size)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", choices=("jpg", "png"), default="jpg")
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--max-objects", type=int, default=8)
    parser.add_argument("--min-size", type=int, default=8, help="smallest shape side (pixels)")
    parser.add_argument(
        "--max-fraction", type=float, default=0.6, help="largest shape side / image side"
    )
    args = parser.parse_args(argv)
    try:
        config = shapes.ShapesConfig(
            height=args.height or args.size,
            width=args.width or args.size,
            min_objects=args.min_objects,
            max_objects=args.max_objects,
            min_object_size=args.min_size,
            max_object_fraction=args.max_fraction,
            image_format=args.format,
        )
        for name, count in (("--train", args.train), ("--val", args.val)):
            if count < 0:
                raise ValueError(f"{name} must be >= 0, got {count}.")
    except ValueError as err:
        parser.error(str(err))
    setup_output(import_tensorflow=False)
    start = time.perf_counter()
    paths = shapes.make_shapes_dataset(
        args.output, num_train=args.train, num_val=args.val, seed=args.seed, config=config
    )
    elapsed = time.perf_counter() - start
    print(f"wrote {args.train} + {args.val} images in {elapsed:.1f} s:")
    for path in paths.values():
        print(f"  {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
