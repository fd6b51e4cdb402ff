"""Command line client for a CornerNet SavedModel served by TensorFlow Serving.

    python -m cornernet_tf.serving.cli status
    python -m cornernet_tf.serving.cli metadata
    python -m cornernet_tf.serving.cli predict a.jpg b.png \
        --classes exports/cornernet/1/assets/classes.json
    python -m cornernet_tf.serving.cli --protocol grpc predict img.jpg --json
    python -m cornernet_tf.serving.cli batching-config > tf_serving/batching.config

`tf_serving/client.py` runs the same command line from a checkout. Exit codes: 0
done, 1 the server failed or could not be reached, 2 bad usage or input.
REST (`requests`) and gRPC (`grpc`, which imports TensorFlow) are imported
only by the commands that talk to a server, so `--help` and `batching-config`
start fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    ServingError,
    decode_pixels,
    format_detections,
    load_class_names,
    read_images,
)
from cornernet_tf.utils.console import setup_output

__all__ = ["main"]

# Duplicated from rest.py and grpc.py so that building the parser imports neither.
_DEFAULT_URL = "http://localhost:8501"
_DEFAULT_GRPC_ADDRESS = "localhost:8500"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# rest.DEFAULT_RETRIES and rest.DEFAULT_MAX_RESPONSE_BYTES (a test checks they agree).
_DEFAULT_RETRIES = 2
_DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    return parse


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value < 2**63:  # TF Serving's versions are int64
        raise argparse.ArgumentTypeError(f"expected an integer from 1 to 2**63 - 1, got {text!r}")
    return value


def _parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        description="Client for CornerNet served by TensorFlow Serving (REST or gRPC).",
        epilog="Exit codes: 0 done, 1 the server failed or could not be reached, "
        "2 bad usage or input.",
    )
    parser.add_argument(
        "--protocol", choices=("rest", "grpc"), default="rest", help="API to use (default rest)"
    )
    parser.add_argument("--url", default=_DEFAULT_URL, help="REST server root (port 8501)")
    parser.add_argument(
        "--grpc-address",
        default=_DEFAULT_GRPC_ADDRESS,
        metavar="HOST:PORT",
        help="gRPC address (port 8500)",
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="served model name")
    version = parser.add_mutually_exclusive_group()
    version.add_argument(
        "--version", type=_version, default=None, help="model version (default latest)"
    )
    version.add_argument("--label", default=None, help="model version label (models.config)")
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=60.0,
        help="seconds for the whole command: connecting, retries and reading the answer "
        "(default 60)",
    )
    parser.add_argument(
        "--retries",
        type=_non_negative_int,
        default=_DEFAULT_RETRIES,
        help="REST: retries of status/metadata after a connection failure or HTTP 502-504 "
        f"(default {_DEFAULT_RETRIES}; predict is never retried)",
    )
    parser.add_argument(
        "--max-response-bytes",
        type=_positive(int),
        default=_DEFAULT_MAX_RESPONSE_BYTES,
        help=f"refuse larger answers (default {_DEFAULT_MAX_RESPONSE_BYTES})",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show TensorFlow's own start-up logs (gRPC and --uint8 load TensorFlow)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="the model's versions and their states", allow_abbrev=False)
    commands.add_parser("metadata", help="the model's signatures", allow_abbrev=False)
    run = commands.add_parser("predict", help="detect objects in images", allow_abbrev=False)
    run.add_argument("images", nargs="+", help="JPEG/PNG files")
    run.add_argument("--columnar", action="store_true", help='REST: columnar "inputs" format')
    run.add_argument(
        "--uint8", action="store_true", help="decode locally and call the detect_uint8 signature"
    )
    run.add_argument("--classes", default=None, help="classes.json from the export's assets/")
    run.add_argument("--score-threshold", type=float, default=0.3, help="hide lower scores")
    run.add_argument("--json", action="store_true", help="print the raw outputs as JSON")
    batching = commands.add_parser(
        "batching-config",
        allow_abbrev=False,
        help="print a batching.config sized for this host",
        description="Print TF Serving's batching parameters; num_batch_threads defaults to "
        "this machine's CPU count (run it on the serving host).",
    )
    batching.add_argument("--num-batch-threads", type=int, default=None, help="default: CPUs")
    batching.add_argument("--max-batch-size", type=int, default=None)
    batching.add_argument("--batch-timeout-micros", type=int, default=None)
    batching.add_argument("--max-enqueued-batches", type=int, default=None)
    batching.add_argument("--output", default=None, help="write this file instead of stdout")
    return parser


def _batching_config(args) -> None:
    from cornernet_tf.serving.batching import batching_config

    options = {
        name: getattr(args, name)
        for name in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches")
        if getattr(args, name) is not None
    }
    text = batching_config(args.num_batch_threads, **options)
    if args.output is None:
        sys.stdout.write(text)
        return
    from cornernet_tf.utils.fs import atomic_write_text

    try:
        atomic_write_text(args.output, text)
    except OSError as error:
        raise ValueError(f"cannot write {args.output!r}: {error.strerror}.") from error


def _run(args) -> None:
    """Runs a server command; raises ServingError, ValueError or ImportError."""
    common = {"model": args.model, "version": args.version, "label": args.label}
    if args.protocol == "grpc":
        from cornernet_tf.serving import grpc as api

        common["address"] = args.grpc_address
        get_options = {}
        predict_options = {"max_message_bytes": args.max_response_bytes}
    else:
        from cornernet_tf.serving import rest as api

        common["url"] = args.url
        get_options = {"retries": args.retries, "max_response_bytes": args.max_response_bytes}
        predict_options = {
            "max_response_bytes": args.max_response_bytes,
            "columnar": args.columnar if args.command == "predict" else False,
        }
    if args.command == "status":
        status = api.model_status(**common, timeout=args.timeout, **get_options)
        print(json.dumps(status, indent=2))
        return
    if args.command == "metadata":
        metadata = api.model_metadata(**common, timeout=args.timeout, **get_options)
        print(json.dumps(metadata, indent=2))
        return
    class_names = load_class_names(args.classes) if args.classes else None
    if args.uint8:
        images, signature = decode_pixels(args.images), SIGNATURE_UINT8
    else:
        images, signature = read_images(args.images), SIGNATURE_IMAGES
    results = api.predict(
        images, **common, signature=signature, timeout=args.timeout, **predict_options
    )
    if args.json:
        print(json.dumps(dict(zip(args.images, results, strict=True)), indent=2))
        return
    for path, result in zip(args.images, results, strict=True):
        lines = format_detections(result, class_names, args.score_threshold)
        print(f"{path}: {len(lines)} detections (score >= {args.score_threshold})")
        for line in lines:
            print(f"  {line}")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Runs the command line.

    Args:
        argv: the arguments (default `sys.argv[1:]`).
        prog: the program name in messages (default from `sys.argv[0]`).

    Returns:
        0 done, 1 the server failed or could not be reached (or the gRPC
        client is not installed), 2 bad usage or input.
    """
    parser = _parser(prog)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse exits: 0 after --help, 2 on a usage error
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    if args.protocol == "grpc" and args.command == "predict" and args.columnar:
        print(
            f"{parser.prog}: error: --columnar is a REST format; drop it with --protocol grpc.",
            file=sys.stderr,
        )
        return EXIT_USAGE
    uses_tensorflow = args.command != "batching-config" and (
        args.protocol == "grpc" or (args.command == "predict" and args.uint8)
    )
    setup_output(verbose=args.verbose, import_tensorflow=uses_tensorflow)
    try:
        if args.command == "batching-config":
            _batching_config(args)
        else:
            _run(args)
    except (ServingError, ImportError) as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except ValueError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
