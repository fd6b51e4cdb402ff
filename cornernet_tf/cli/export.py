"""Exports a trained CornerNet for serving: a TF Serving SavedModel, TFLite or ONNX files.

    # TF Serving SavedModel: exports/cornernet/<version>/
    cornernet-export --model model.keras --output exports --format saved_model

    # TFLite detector (MediaPipe / TFLite Task Library contract, metadata, labels)
    # at a fixed input size: exports/cornernet_<float32|float16|int8>.tflite
    cornernet-export --model model.keras --output exports --format tflite \
        --quantize int8 --data-dir data/shapes/val2017 --input-size 127 127

    # ONNX (network and decoding; soft-NMS on the host): exports/cornernet.onnx
    cornernet-export --model model.keras --output exports --format onnx --input-size 127 127

    # CornerNet-Saccade: the SavedModel carries the whole multi-crop procedure;
    # TFLite the canvas network (float32), exports/cornernet_canvas.tflite plus
    # exports/cornernet_saccade.json, the settings of the host step around it
    # (cornernet_tf.export.saccade_tflite.tflite_saccade_procedure).
    cornernet-export --model saccade.keras --output exports --format tflite

(also `python -m cornernet_tf.cli.export` or `python scripts/export.py`).

A thin shell over `cornernet_tf.export`; every failure is one line naming the
argument and the fix.

Exit codes: 0 written, 1 the export failed (e.g. an op without a TFLite
builtin), 2 bad arguments, model file or calibration images.
"""

import argparse
import os
import sys

from cornernet_tf.cli._common import load_model, setup_output
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE

# `cornernet_tf.export.QUANTIZATIONS`, repeated so that `--help` and argument
# errors answer without importing TensorFlow.
QUANTIZATIONS = ("none", "float16", "int8")
INPUT_TYPES = ("uint8", "float32")
# TF Serving reads version directory names as int64.
MAX_VERSION = 2**63 - 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help=".keras file of a trained CornerNet")
    parser.add_argument("--output", required=True, help="export root directory")
    parser.add_argument("--verbose", action="store_true", help="also show TensorFlow's own logs")
    parser.add_argument("--format", required=True, choices=["saved_model", "tflite", "onnx"])
    parser.add_argument(
        "--quantize",
        default="none",
        choices=[*QUANTIZATIONS, "all"],
        help="TFLite weights: none (float32), float16, int8, or all three",
    )
    parser.add_argument(
        "--input-type",
        default="uint8",
        choices=INPUT_TYPES,
        help="TFLite detector input: uint8 (camera frames) or float32 0-255",
    )
    parser.add_argument(
        "--debug-heads",
        action="store_true",
        help="TFLite: write the debug files (pixel boxes, raw heads) instead of detector files",
    )
    parser.add_argument("--version", type=int, default=None, help="SavedModel version (next free)")
    parser.add_argument("--name", default="cornernet", help="served model name / file prefix")
    parser.add_argument("--data-dir", default=None, help="images for int8 calibration")
    parser.add_argument("--num-calibration", type=int, default=100, help="int8 calibration images")
    parser.add_argument(
        "--input-size",
        type=int,
        nargs=2,
        default=(511, 511),
        metavar=("H", "W"),
        help="fixed TFLite/ONNX input size (default 511 511)",
    )
    parser.add_argument(
        "--max-image-side",
        type=int,
        default=DEFAULT_MAX_IMAGE_SIDE,
        help="SavedModel: reject larger decoded images",
    )
    parser.add_argument(
        "--overwrite", action="store_true", help="TFLite/ONNX: replace existing files"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.format == "saved_model" and args.quantize != "none":
        parser.error("--quantize applies to --format tflite only; drop it for saved_model.")
    if args.format != "saved_model" and args.version is not None:
        parser.error("--version applies to --format saved_model only.")
    if args.version is not None and not 1 <= args.version <= MAX_VERSION:
        parser.error(
            f"--version must be from 1 to {MAX_VERSION} (TF Serving reads versions as int64), "
            f"got {args.version}."
        )
    if args.format == "onnx" and args.quantize != "none":
        parser.error("--quantize applies to --format tflite only; drop it for onnx.")
    if args.format != "tflite" and (args.debug_heads or args.input_type != "uint8"):
        parser.error("--debug-heads and --input-type apply to --format tflite only.")
    if args.debug_heads and args.input_type != "uint8":
        parser.error("--input-type applies to the detector files; drop it with --debug-heads.")
    quantizations = QUANTIZATIONS if args.quantize == "all" else (args.quantize,)
    if "int8" in quantizations and args.format == "tflite" and args.data_dir is None:
        parser.error("--quantize int8 needs --data-dir, a folder of images for calibration.")
    if args.num_calibration < 1:
        parser.error(f"--num-calibration must be >= 1, got {args.num_calibration}.")
    # Imported only now: the arguments are checked without TensorFlow.
    setup_output(verbose=args.verbose)
    from cornernet_tf import export

    try:
        model = load_model(args.model)
        if args.format == "saved_model":
            path = export.export_saved_model(
                model,
                args.output,
                name=args.name,
                version=args.version,
                max_image_side=args.max_image_side,
            )
            print(f"SavedModel written to {path}")
            return 0
        if args.format == "onnx":
            from cornernet_tf.export.onnx import export_onnx

            path = export_onnx(
                model,
                args.output,
                name=args.name,
                input_size=tuple(args.input_size),
                overwrite=args.overwrite,
            )
            print(f"ONNX written to {path} ({path.stat().st_size / 2**20:.2f} MiB)")
            return 0
        if getattr(model, "attention", False):
            return _export_saccade_tflite(model, args)
        calibration = None
        if "int8" in quantizations:
            calibration = export.representative_images(
                args.data_dir, args.input_size, max_images=args.num_calibration
            )
        paths = export.export_tflite(
            model,
            args.output,
            name=args.name,
            input_size=tuple(args.input_size),
            quantizations=quantizations,
            representative_data=calibration,
            input_type=args.input_type,
            debug=args.debug_heads,
            overwrite=args.overwrite,
        )
        for quantization, path in paths.items():
            size = path.stat().st_size / 2**20
            print(f"TFLite ({quantization}) written to {path} ({size:.2f} MiB)")
        classes = os.path.join(args.output, export.tflite_classes_file_name(args.name))
        print(f"class names written to {classes}")
    except ValueError as error:
        # The library raises ValueError for bad input only: the model file, the
        # name/version/output arguments or the calibration folder.
        print(f"export.py: error: {error}", file=sys.stderr)
        return 2
    except (TypeError, RuntimeError) as error:
        print(f"export.py: error: {error}", file=sys.stderr)
        return 1
    return 0


def _export_saccade_tflite(model, args) -> int:
    """`--format tflite` of a model with attention heads: the canvas network's file."""
    from cornernet_tf.export.saccade_tflite import export_saccade_tflite

    fixed = {"--quantize": args.quantize != "none", "--debug-heads": args.debug_heads}
    fixed["--input-type"] = args.input_type != "uint8"
    fixed["--input-size"] = tuple(args.input_size) != (511, 511)
    given = [flag for flag, set_ in fixed.items() if set_]
    if given:
        print(
            f"export.py: error: {', '.join(given)} do not apply to CornerNet-Saccade: its TFLite "
            "file is the float32 canvas network (crop-size canvases) that the host step runs; "
            "drop them.",
            file=sys.stderr,
        )
        return 2
    paths = export_saccade_tflite(model, args.output, name=args.name, overwrite=args.overwrite)
    size = paths["tflite"].stat().st_size / 2**20
    print(f"TFLite canvas network written to {paths['tflite']} ({size:.2f} MiB)")
    print(f"host-step settings written to {paths['settings']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
