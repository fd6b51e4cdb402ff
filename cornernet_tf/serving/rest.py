"""REST client for a CornerNet SavedModel served by TensorFlow Serving.

Talks to the stock `tensorflow_model_server` REST API (tensorflow/serving
`g3doc/api_rest.md`): model status `GET /v1/models/<name>`, metadata
`GET /v1/models/<name>/metadata` and `POST /v1/models/<name>:predict` in the
row ("instances") or columnar ("inputs") format, with images sent as base64
objects `{"b64": ...}`. A version is addressed as `/versions/<v>`, a version
label as `/labels/<label>`. Needs only `requests`.
"""

from __future__ import annotations

import base64
import json

import requests

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    IMAGES_SIGNATURE,
    INPUT_NAME,
    OUTPUT_NAMES,
    UINT8_SIGNATURE,
    ServingError,
    check_version_label,
    split_batch,
)

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_URL",
    "IMAGES_SIGNATURE",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "UINT8_SIGNATURE",
    "ServingError",
    "model_metadata",
    "model_status",
    "parse_predict_response",
    "predict",
    "predict_request_body",
]

DEFAULT_URL = "http://localhost:8501"


def _model_url(url: str, model: str, version: int | None, label: str | None = None) -> str:
    if label is not None:
        check_version_label(None, label, "rest")
        if version is not None:
            raise ValueError(f"rest: pass a version ({version}) or a label ({label!r}), not both.")
    base = f"{url.rstrip('/')}/v1/models/{model}"
    if label is not None:
        return f"{base}/labels/{label}"
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
        raise ServingError(
            f"{method} {address} failed with HTTP {response.status_code}: {message}",
            code=f"HTTP {response.status_code}",
        )
    if "error" in body:
        raise ServingError(f"{method} {address} failed: {body['error']}", code="HTTP 200")
    return body


def model_status(
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
) -> dict:
    """Model status (`GetModelStatusResponse` as JSON).

    Args:
        url: server root, e.g. "http://localhost:8501".
        model: served model name (`models.config`).
        version: one version, or None for all.
        label: a version label instead of `version`.
        timeout: seconds to wait for the answer.

    Returns:
        `{"model_version_status": [{"version": "1", "state": "AVAILABLE",
        "status": {...}}, ...]}`.
    """
    return _request("GET", _model_url(url, model, version, label), timeout)


def model_metadata(
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
) -> dict:
    """Model metadata (`GetModelMetadataResponse` as JSON: the signatures).

    Args:
        url: server root.
        model: served model name.
        version: a version, or None for the latest.
        label: a version label instead of `version`.
        timeout: seconds to wait for the answer.

    Returns:
        `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def":
        {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}}}`.
    """
    return _request("GET", _model_url(url, model, version, label) + "/metadata", timeout)


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _json_value(image):
    """An encoded image as a b64 object; pixels (lists or arrays) as nested lists."""
    if isinstance(image, bytes):
        return _b64(image)
    return image.tolist() if hasattr(image, "tolist") else image


def predict_request_body(
    images: list, *, signature: str = IMAGES_SIGNATURE, columnar: bool = False
) -> dict:
    """JSON body of a `:predict` request.

    Args:
        images: encoded image files (bytes, for `serving_default`) or uint8
            pixels [H][W][3] of one size, as nested lists or numpy arrays (for
            `detect_uint8`).
        signature: the signature to call.
        columnar: the columnar format (`"inputs": {"images": [...]}`) instead
            of the row format (`"instances": [{"images": ...}, ...]`).

    Returns:
        A dict ready for `json.dumps`.
    """
    values = [_json_value(image) for image in images]
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
        return split_batch(outputs)
    raise ServingError(f"unexpected :predict answer with keys {sorted(body)}.")


def predict(
    images: list,
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    signature: str = IMAGES_SIGNATURE,
    columnar: bool = False,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 60.0,
) -> list[dict]:
    """Runs detection on a batch of images.

    Args:
        images: encoded JPEG/PNG bytes (default signature) or uint8 pixels
            [H][W][3] of one size (`signature="detect_uint8"`).
        url: server root.
        model: served model name.
        signature: "serving_default" or "detect_uint8".
        columnar: send and receive the columnar format.
        version: a version, or None for the latest.
        label: a version label instead of `version`.
        timeout: seconds to wait for the answer.

    Returns:
        One dict per image: `detection_boxes` [M][4] (x1, y1, x2, y2 in the
        image's pixels), `detection_scores` [M], `detection_classes` [M]
        (0-based) and `num_detections`; entries past `num_detections` are
        padding (-1). M is the export's `max_detections` (100 by default).
    """
    if not images:
        raise ValueError("predict: `images` is empty; pass at least one image.")
    body = predict_request_body(images, signature=signature, columnar=columnar)
    address = _model_url(url, model, version, label) + ":predict"
    return parse_predict_response(_request("POST", address, timeout, data=json.dumps(body)))
