"""REST client for a CornerNet SavedModel served by TensorFlow Serving.

Talks to the stock `tensorflow_model_server` REST API (tensorflow/serving
`g3doc/api_rest.md`): model status `GET /v1/models/<name>`, metadata
`GET /v1/models/<name>/metadata` and `POST /v1/models/<name>:predict` in the
row ("instances") or columnar ("inputs") format, with images sent as base64
objects `{"b64": ...}`. Needs only `requests` (and OpenCV for `--uint8`).

    python serving/client.py status
    python serving/client.py metadata
    python serving/client.py predict a.jpg b.png --classes exports/cornernet/1/assets/classes.json
    python serving/client.py predict img.jpg --columnar --json
"""

import argparse
import base64
import json
import math
import sys
from pathlib import Path

import requests

DEFAULT_URL = "http://localhost:8501"
DEFAULT_MODEL = "cornernet"
IMAGES_SIGNATURE = "serving_default"
UINT8_SIGNATURE = "detect_uint8"
INPUT_NAME = "images"
OUTPUT_NAMES = ("detection_boxes", "detection_scores", "detection_classes", "num_detections")


class ServingError(RuntimeError):
    """The server could not be reached or answered with an error."""


def _model_url(url: str, model: str, version: int | None) -> str:
    base = f"{url.rstrip('/')}/v1/models/{model}"
    return base if version is None else f"{base}/versions/{int(version)}"


def _request(method: str, address: str, timeout: float, **kwargs) -> dict:
    """Sends one request; returns the JSON body or raises `ServingError`."""
    try:
        response = requests.request(method, address, timeout=timeout, **kwargs)
    except requests.ConnectionError as error:
        raise ServingError(
            f"cannot reach TensorFlow Serving at {address} ({error.__class__.__name__}); "
            "start it with `docker compose -f serving/docker-compose.yml up` or pass --url."
        ) from error
    except requests.Timeout as error:
        raise ServingError(
            f"no answer from {address} within {timeout} s; raise --timeout."
        ) from error
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        message = body.get("error") if isinstance(body, dict) else response.text[:500]
        raise ServingError(f"{method} {address} failed with HTTP {response.status_code}: {message}")
    if "error" in body:
        raise ServingError(f"{method} {address} failed: {body['error']}")
    return body


def model_status(
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    timeout: float = 10.0,
) -> dict:
    """Model status (`GetModelStatusResponse` as JSON).

    Args:
        url: server root, e.g. "http://localhost:8501".
        model: served model name (`models.config`).
        version: one version, or None for all.
        timeout: seconds to wait for the answer.

    Returns:
        `{"model_version_status": [{"version": "1", "state": "AVAILABLE",
        "status": {...}}, ...]}`.
    """
    return _request("GET", _model_url(url, model, version), timeout)


def model_metadata(
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    timeout: float = 10.0,
) -> dict:
    """Model metadata (`GetModelMetadataResponse` as JSON: the signatures).

    Args:
        url: server root.
        model: served model name.
        version: a version, or None for the latest.
        timeout: seconds to wait for the answer.

    Returns:
        `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def":
        {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}}}`.
    """
    return _request("GET", _model_url(url, model, version) + "/metadata", timeout)


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def predict_request_body(
    images: list, *, signature: str = IMAGES_SIGNATURE, columnar: bool = False
) -> dict:
    """JSON body of a `:predict` request.

    Args:
        images: encoded image files (bytes, for `serving_default`) or nested
            lists of uint8 pixels [H][W][3] of one size (for `detect_uint8`).
        signature: the signature to call.
        columnar: the columnar format (`"inputs": {"images": [...]}`) instead
            of the row format (`"instances": [{"images": ...}, ...]`).

    Returns:
        A dict ready for `json.dumps`.
    """
    values = [_b64(image) if isinstance(image, bytes) else image for image in images]
    body = {"signature_name": signature}
    if columnar:
        body["inputs"] = {INPUT_NAME: values}
    else:
        body["instances"] = [{INPUT_NAME: value} for value in values]
    return body


def parse_predict_response(body: dict) -> list[dict]:
    """Per-image output dicts from a row or columnar `:predict` answer.

    Args:
        body: `{"predictions": [{name: value}, ...]}` (row format) or
            `{"outputs": {name: [value, ...]}}` (columnar format).

    Returns:
        One dict per image mapping each output name to that image's value.
    """
    if "predictions" in body:
        rows = body["predictions"]
        if rows and not isinstance(rows[0], dict):
            raise ServingError("the model returned a single unnamed output; expected detections.")
        return rows
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict):
            raise ServingError("the model returned a single unnamed output; expected detections.")
        sizes = {len(value) for value in outputs.values()}
        if len(sizes) != 1:
            raise ServingError(f"outputs have different batch sizes {sorted(sizes)}.")
        return [{name: value[i] for name, value in outputs.items()} for i in range(sizes.pop())]
    raise ServingError(f"unexpected :predict answer with keys {sorted(body)}.")


def predict(
    images: list,
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    signature: str = IMAGES_SIGNATURE,
    columnar: bool = False,
    version: int | None = None,
    timeout: float = 60.0,
) -> list[dict]:
    """Runs detection on a batch of images.

    Args:
        images: encoded JPEG/PNG bytes (default signature) or uint8 pixel
            lists [H][W][3] of one size (`signature="detect_uint8"`).
        url: server root.
        model: served model name.
        signature: "serving_default" or "detect_uint8".
        columnar: send and receive the columnar format.
        version: a version, or None for the latest.
        timeout: seconds to wait for the answer.

    Returns:
        One dict per image: `detection_boxes` [100][4] (x1, y1, x2, y2 in the
        image's pixels), `detection_scores` [100], `detection_classes` [100]
        and `num_detections`; entries past `num_detections` are padding (-1).
    """
    if not images:
        raise ValueError("predict: `images` is empty; pass at least one image.")
    body = predict_request_body(images, signature=signature, columnar=columnar)
    address = _model_url(url, model, version) + ":predict"
    return parse_predict_response(_request("POST", address, timeout, data=json.dumps(body)))


def load_class_names(path: str | Path) -> list[str]:
    """Class names from an export's `assets/classes.json` (a JSON list)."""
    path = Path(path)
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ValueError(
            f"--classes: {path} does not exist; pass <export>/<name>/<version>/assets/classes.json."
        ) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"--classes: {path} is not valid JSON ({error}).") from error
    if isinstance(names, dict):
        names = names.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"--classes: {path} must hold a JSON list of class names.")
    return names


def format_detections(
    result: dict, class_names: list[str] | None = None, score_threshold: float = 0.0
) -> list[str]:
    """Human-readable lines, one per kept detection of one image.

    Args:
        result: one image's outputs (see `predict`).
        class_names: names indexed by class id, or None to print ids.
        score_threshold: detections scoring below are skipped.

    Returns:
        Lines like `"circle     0.912  [12.0, 30.5, 60.2, 88.0]"`.
    """
    lines = []
    count = int(result["num_detections"])
    for box, score, label in zip(
        result["detection_boxes"][:count],
        result["detection_scores"][:count],
        result["detection_classes"][:count],
        strict=True,
    ):
        if not math.isfinite(score) or score < score_threshold:
            continue
        label = int(label)
        name = class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        coords = ", ".join(f"{v:.1f}" for v in box)
        lines.append(f"{name:<12} {score:.3f}  [{coords}]")
    return lines


def _read_images(paths: list[str]) -> list[bytes]:
    images = []
    for path in paths:
        try:
            images.append(Path(path).read_bytes())
        except OSError as error:
            raise ValueError(f"cannot read image {path!r}: {error.strerror}.") from error
    return images


def _decode_pixels(paths: list[str]) -> list:
    import cv2  # only the uint8 mode decodes images on the client

    pixels = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise ValueError(f"cannot decode image {path!r}; pass a JPEG or PNG file.")
        pixels.append(image[:, :, ::-1])  # BGR → RGB
    sizes = {p.shape[:2] for p in pixels}
    if len(sizes) > 1:
        raise ValueError(
            f"--uint8 sends one [B, H, W, 3] tensor, but the images have sizes {sorted(sizes)}; "
            "send images of one size or drop --uint8 (encoded images may differ in size)."
        )
    return [p.tolist() for p in pixels]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="server root (REST port)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="served model name")
    parser.add_argument("--version", type=int, default=None, help="model version (default latest)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="GET /v1/models/<model>")
    commands.add_parser("metadata", help="GET /v1/models/<model>/metadata")
    run = commands.add_parser("predict", help="POST /v1/models/<model>:predict")
    run.add_argument("images", nargs="+", help="JPEG/PNG files")
    run.add_argument("--columnar", action="store_true", help='columnar "inputs" format')
    run.add_argument(
        "--uint8", action="store_true", help="decode locally and call the detect_uint8 signature"
    )
    run.add_argument("--classes", default=None, help="classes.json from the export's assets/")
    run.add_argument("--score-threshold", type=float, default=0.3, help="hide lower scores")
    run.add_argument("--json", action="store_true", help="print the raw outputs as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    common = {"url": args.url, "model": args.model, "version": args.version}
    try:
        if args.command == "status":
            print(json.dumps(model_status(**common, timeout=args.timeout), indent=2))
        elif args.command == "metadata":
            print(json.dumps(model_metadata(**common, timeout=args.timeout), indent=2))
        else:
            class_names = load_class_names(args.classes) if args.classes else None
            if args.uint8:
                images, signature = _decode_pixels(args.images), UINT8_SIGNATURE
            else:
                images, signature = _read_images(args.images), IMAGES_SIGNATURE
            results = predict(
                images,
                **common,
                signature=signature,
                columnar=args.columnar,
                timeout=args.timeout,
            )
            if args.json:
                print(json.dumps(dict(zip(args.images, results, strict=True)), indent=2))
                return 0
            for path, result in zip(args.images, results, strict=True):
                lines = format_detections(result, class_names, args.score_threshold)
                print(f"{path}: {len(lines)} detections (score >= {args.score_threshold})")
                for line in lines:
                    print(f"  {line}")
    except (ServingError, ValueError) as error:
        print(f"client.py: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
