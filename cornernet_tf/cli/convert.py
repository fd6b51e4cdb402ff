"""Converts an official CornerNet checkpoint (PyTorch) into a Keras `.keras` file.

    cornernet-convert CornerNet_500000.pkl --output cornernet_hg104.keras
    cornernet-convert CornerNet_Squeeze_500000.pkl --output cornernet_squeeze.keras
    cornernet-convert CornerNet_Saccade_500000.pkl --output cornernet_saccade.keras

(also `python -m cornernet_tf.cli.convert` or `python scripts/convert_official.py`).

The checkpoint is the published princeton-vl/CornerNet `CornerNet_500000.pkl`,
or princeton-vl/CornerNet-Lite's `CornerNet_Squeeze_500000.pkl`,
`CornerNet_Saccade_500000.pkl` or its re-released Hourglass-104
`CornerNet_500000.pkl` (or any state dict of one of these architectures, as a
PyTorch file or an `.npz`). The architecture is read from the keys
(Hourglass-104, CornerNet-Squeeze or CornerNet-Saccade) unless `--preset`
names it.
Reading PyTorch files needs torch (`pip install .[convert]`); `.npz` files need
only numpy. The output loads with `cornernet_tf.models.load_model` (or
`keras.saving.load_model` after `import cornernet_tf.models`), and is written
atomically (temporary file + rename).

Exit codes: 0 written, 1 the conversion could not run (torch missing for a
PyTorch file), 2 bad arguments or paths, or a checkpoint that cannot be read or
does not fit the preset (nothing is written).
"""

import argparse
import math
import os
import sys

from cornernet_tf.cli._common import setup_output


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("checkpoint", help="official state dict: PyTorch file (.pkl/.pth) or .npz")
    parser.add_argument("--output", required=True, help="Keras file to write (must end in .keras)")
    parser.add_argument(
        "--preset",
        default=None,
        help="architecture of the checkpoint (default: read from its keys, hourglass104, "
        "squeeze or saccade)",
    )
    parser.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="heatmap classes, for fine-tuned checkpoints (default: the preset's)",
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show TensorFlow's own start-up logs"
    )
    return parser.parse_args(argv)


def save_atomically(model, output):
    """Writes `model` to `output` through a temporary file in the same folder."""
    from cornernet_tf.utils.fs import atomic_path

    with atomic_path(output, suffix=".keras") as tmp:  # Keras saves only to ".keras" names
        model.save(tmp)


def main(argv=None):
    args = parse_args(argv)
    error = _check_paths(args)
    if error:
        print(f"convert_official: {error}", file=sys.stderr)
        return 2
    if args.num_classes is not None and args.num_classes < 1:
        print("convert_official: --num-classes must be a positive integer.", file=sys.stderr)
        return 2
    # The preset table is plain data: a wrong name fails before TensorFlow loads.
    from cornernet_tf.spec.presets import PRESETS

    if args.preset is not None and args.preset not in PRESETS:
        print(
            f"convert_official: unknown --preset {args.preset!r}; choose one of {sorted(PRESETS)}.",
            file=sys.stderr,
        )
        return 2

    # Imported here so that argument errors do not wait for TensorFlow.
    setup_output(verbose=args.verbose)
    from cornernet_tf import convert

    overrides = {} if args.num_classes is None else {"num_classes": args.num_classes}
    try:
        state_dict = convert.load_state_dict(args.checkpoint)
        model = convert.from_official_state_dict(state_dict, preset=args.preset, **overrides)
    except ImportError as exc:
        print(f"convert_official: {args.checkpoint}: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        # Not a checkpoint, or not one of this architecture: bad input, as a
        # bad model file is for the other tools.
        print(f"convert_official: {args.checkpoint}: {exc}", file=sys.stderr)
        return 2
    save_atomically(model, args.output)
    params = sum(math.prod(w.shape) for w in model.trainable_weights)
    preset = args.preset or f"{convert.detect_preset(state_dict)} (read from the keys)"
    print(
        f"convert_official: wrote {args.output} ({len(state_dict)} tensors, {params:,} trainable "
        f"parameters, preset {preset}, {model.num_classes} classes, output stride "
        f"{model.output_stride}, channel_order {model.channel_order!r})"
    )
    return 0


def _check_paths(args):
    if not os.path.isfile(args.checkpoint):
        return f"checkpoint {args.checkpoint!r} does not exist (or is not a file)."
    if not args.output.endswith(".keras"):
        return f"--output {args.output!r} must end in .keras (Keras' native format)."
    folder = os.path.dirname(os.path.abspath(args.output))
    if not os.path.isdir(folder):
        return f"--output folder {folder!r} does not exist; create it first."
    return None


if __name__ == "__main__":
    sys.exit(main())
