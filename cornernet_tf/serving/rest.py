"""REST client for a CornerNet SavedModel served by TensorFlow Serving.

Talks to the stock `tensorflow_model_server` REST API (tensorflow/serving
`g3doc/api_rest.md`): model status `GET /v1/models/<name>`, metadata
`GET /v1/models/<name>/metadata` and `POST /v1/models/<name>:predict` in the
row ("instances") or columnar ("inputs") format, with images sent as base64
objects `{"b64": ...}`. A version is addressed as `/versions/<v>`, a version
label as `/labels/<label>`. Needs only `requests` (and its urllib3).
"""

from __future__ import annotations

import base64
import http.client
import json
import queue
import threading
import time

import requests
import urllib3

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    INPUT_NAME,
    OUTPUT_NAMES,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    ServingError,
    check_count,
    check_detections,
    check_timeout,
    check_version_label,
    split_batch,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "DEFAULT_MODEL",
    "DEFAULT_RETRIES",
    "DEFAULT_URL",
    "SIGNATURE_IMAGES",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "SIGNATURE_UINT8",
    "ServingError",
    "model_metadata",
    "model_status",
    "parse_predict_response",
    "predict",
    "predict_request_body",
]

DEFAULT_URL = "http://localhost:8501"
# Retries of a GET (status, metadata) after a connection failure or HTTP 502-504.
DEFAULT_RETRIES = 2
# Largest answer read: 100 detections of one image are about 10 kB of JSON.
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024


def _model_url(url: str, model: str, version: int | None, label: str | None = None) -> str:
    if not isinstance(url, str) or not url.lower().startswith(("http://", "https://")):
        fix = f"http://{url}" if isinstance(url, str) and "://" not in url else DEFAULT_URL
        raise ValueError(
            f"rest: the server address {url!r} (--url) needs an http:// or https:// scheme, "
            f"e.g. {fix}."
        )
    check_version_label(version, None, "rest")
    if label is not None:
        check_version_label(None, label, "rest")
        if version is not None:
            raise ValueError(f"rest: pass a version ({version}) or a label ({label!r}), not both.")
    base = f"{url.rstrip('/')}/v1/models/{model}"
    if label is not None:
        return f"{base}/labels/{label}"
    return base if version is None else f"{base}/versions/{int(version)}"


def _request(
    method: str,
    address: str,
    timeout: float,
    *,
    retries: int = 0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    **kwargs,
) -> dict:
    """Sends a request and returns its JSON body, or raises `ServingError`.

    `timeout` is a deadline for the whole call (connecting, every retry and
    reading the answer to its last byte), not a limit per read: a server that
    trickles its answer is cut off when the deadline passes. Only GETs, which
    change nothing on the server, are retried, after a connection failure or
    an HTTP 502/503/504, waiting 0.5 s, 1 s, 2 s... while the deadline allows.
    """
    timeout = check_timeout(timeout, f"{method} {address}")
    check_count(retries, "retries", "rest", minimum=0)
    check_count(max_response_bytes, "max_response_bytes", "rest")
    deadline = time.monotonic() + timeout
    tries = retries + 1 if method == "GET" else 1
    for attempt in range(tries):
        try:
            return _request_once(method, address, timeout, deadline, max_response_bytes, **kwargs)
        except _Retryable as error:
            failure, wait = error, 0.5 * 2**attempt
            if attempt + 1 == tries or time.monotonic() + wait >= deadline:
                break
            time.sleep(wait)
    raise failure.error from failure.__cause__


def _cause(error: BaseException, kind: type) -> BaseException | None:
    """The first exception of type `kind` in `error`'s chain of causes, or None."""
    while error is not None:
        if isinstance(error, kind):
            return error
        error = error.__cause__ or error.__context__
    return None


class _Retryable(Exception):
    """A failure worth retrying for an idempotent request; wraps the `ServingError`."""

    def __init__(self, error: ServingError):
        super().__init__(str(error))
        self.error = error


def _send(method: str, address: str, deadline: float, **kwargs) -> requests.Response:
    """`requests.request` up to the answer's headers, given up at `deadline`.

    Each socket read waits at most the time left, but a server sending its
    status line and headers a byte at a time would reset that wait at every
    byte: the request runs in a daemon thread and is abandoned at the deadline
    (its socket closes when the server stops or a read times out).
    """
    answer = queue.SimpleQueue()

    def run() -> None:
        try:
            timeout = max(deadline - time.monotonic(), 0.001)
            answer.put(requests.request(method, address, timeout=timeout, stream=True, **kwargs))
        except BaseException as error:  # noqa: BLE001 - handed to the caller's thread
            answer.put(error)

    threading.Thread(target=run, daemon=True, name="cornernet-rest-request").start()
    try:
        result = answer.get(timeout=max(deadline - time.monotonic(), 0.0))
    except queue.Empty:
        raise requests.Timeout(f"no answer's headers before the deadline from {address}") from None
    if isinstance(result, BaseException):
        raise result
    return result


def _request_once(
    method: str, address: str, timeout: float, deadline: float, max_bytes: int, **kwargs
) -> dict:
    def late() -> ServingError:
        return ServingError(
            f"no complete answer from {address} within {timeout:g} s (the whole call: "
            "connecting, retries and reading); raise --timeout, or check the server."
        )

    headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
    try:
        response = _send(method, address, deadline, headers=headers, **kwargs)
    except requests.TooManyRedirects as error:
        raise ServingError(
            f"{address} redirects in a loop ({error}); pass the server's own address with "
            "--url (TF Serving does not redirect)."
        ) from error
    except requests.ConnectionError as error:
        if _cause(error, http.client.HTTPException):
            # The server answered, with a header line or header count that
            # http.client refuses (LineTooLong, "got more than 100 headers").
            raise ServingError(
                f"the answer of {address} has a malformed or oversized HTTP header "
                f"({_cause(error, http.client.HTTPException)}); TF Serving sends short "
                "headers, so --url points at something else or a proxy in between is broken."
            ) from error
        raise _Retryable(
            ServingError(
                f"cannot reach TensorFlow Serving at {address} ({error.__class__.__name__}); "
                "start it with `docker compose -f tf_serving/docker-compose.yml up` or pass --url."
            )
        ) from error
    except requests.Timeout as error:
        raise late() from error
    except requests.RequestException as error:  # an address requests cannot use
        raise ServingError(
            f"cannot send the request to {address} ({error}); check --url."
        ) from error
    with response:
        too_big = ServingError(
            f"the answer of {address} is larger than {max_bytes} bytes; raise "
            "--max-response-bytes, or send fewer images per request."
        )
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise too_big
        # `read1` returns what one socket read brings, so a trickle cannot
        # outlast the deadline (urllib3 1.x lacks it: reads of up to 64 KiB).
        read = getattr(response.raw, "read1", response.raw.read)
        chunks, size = [], 0
        try:
            while chunk := read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > max_bytes:
                    raise too_big
                if time.monotonic() > deadline:
                    raise late()
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as error:
            if time.monotonic() >= deadline:
                raise late() from error
            broken = ServingError(f"the connection to {address} broke while reading the answer.")
            raise _Retryable(broken) from error
    text = b"".join(chunks).decode("utf-8", "replace")
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    except RecursionError:
        raise ServingError(
            f"the answer of {address} is JSON nested too deeply to read; TF Serving's "
            "answers are a few levels deep, so check --url."
        ) from None
    if response.status_code != 200 or not isinstance(body, dict):
        message = body.get("error") if isinstance(body, dict) else text[:500]
        hint = "; the server failed: see its log" if response.status_code >= 500 else ""
        error = ServingError(
            f"{method} {address} failed with HTTP {response.status_code}: {message}{hint}",
            code=f"HTTP {response.status_code}",
        )
        if response.status_code in (502, 503, 504):
            raise _Retryable(error)
        if response.status_code == 200:
            raise ServingError(
                f"the server answered something that is not this model's output: {method} "
                f"{address} returned {message!r}, not a JSON object; check --url.",
                code="HTTP 200",
            )
        raise error
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
    retries: int = DEFAULT_RETRIES,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict:
    """Model status (`GetModelStatusResponse` as JSON).

    Args:
        url: server root, e.g. "http://localhost:8501".
        model: served model name (`models.config`).
        version: one version, or None for all.
        label: a version label instead of `version`.
        timeout: seconds for the whole call, retries included.
        retries: tries again this many times after a connection failure or
            HTTP 502/503/504, within `timeout`.
        max_response_bytes: larger answers are refused.

    Returns:
        `{"model_version_status": [{"version": "1", "state": "AVAILABLE",
        "status": {...}}, ...]}`.
    """
    return _request(
        "GET",
        _model_url(url, model, version, label),
        timeout,
        retries=retries,
        max_response_bytes=max_response_bytes,
    )


def model_metadata(
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
    retries: int = DEFAULT_RETRIES,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict:
    """Model metadata (`GetModelMetadataResponse` as JSON: the signatures).

    Args:
        url: server root.
        model: served model name.
        version: a version, or None for the latest.
        label: a version label instead of `version`.
        timeout: seconds for the whole call, retries included.
        retries: tries again this many times after a connection failure or
            HTTP 502/503/504, within `timeout`.
        max_response_bytes: larger answers are refused.

    Returns:
        `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def":
        {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}}}`.
    """
    return _request(
        "GET",
        _model_url(url, model, version, label) + "/metadata",
        timeout,
        retries=retries,
        max_response_bytes=max_response_bytes,
    )


def _b64(data: bytes) -> dict:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _json_value(image):
    """An encoded image as a b64 object; pixels (lists or arrays) as nested lists."""
    if isinstance(image, bytes):
        return _b64(image)
    return image.tolist() if hasattr(image, "tolist") else image


def predict_request_body(
    images: list, *, signature: str = SIGNATURE_IMAGES, columnar: bool = False
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
        if isinstance(rows, list) and rows and not isinstance(rows[0], dict):
            raise ServingError(
                "the server answered something that is not this model's output: predictions "
                f"holds {type(rows[0]).__name__} values, not the named detection outputs; check "
                "that --url and --model name a CornerNet export."
            )
        return rows
    if "outputs" in body:
        outputs = body["outputs"]
        if not isinstance(outputs, dict) or not all(isinstance(v, list) for v in outputs.values()):
            raise ServingError(
                "the server answered something that is not this model's output: outputs is "
                "not an object of named, batched detection outputs; check that --url and "
                "--model name a CornerNet export."
            )
        return split_batch(outputs)
    raise ServingError(
        "the server answered something that is not this model's output: the :predict answer "
        f"has the keys {sorted(body)}, not predictions or outputs."
    )


def predict(
    images: list,
    url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    *,
    signature: str = SIGNATURE_IMAGES,
    columnar: bool = False,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 60.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
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
        timeout: seconds for the whole call (sending and reading included).
            A prediction is never retried: the client cannot know whether the
            server ran it.
        max_response_bytes: larger answers are refused.

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
    answer = _request(
        "POST", address, timeout, max_response_bytes=max_response_bytes, data=json.dumps(body)
    )
    return check_detections(parse_predict_response(answer), len(images))
