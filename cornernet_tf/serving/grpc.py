"""gRPC client for a CornerNet SavedModel served by TensorFlow Serving.

Talks to `tensorflow_model_server`'s gRPC port (8500 in the stock image) with
the stubs of `tensorflow-serving-api`: `PredictionService.Predict` and
`.GetModelMetadata`, and `ModelService.GetModelStatus`. Tensors travel as
binary `TensorProto`s: encoded images go to `serving_default` as one [B]
`DT_STRING` tensor, pixels to `detect_uint8` as one [B, H, W, 3] `DT_UINT8`
tensor, with none of REST's base64 or JSON number text.

Every call has a deadline (`timeout`), and every gRPC failure becomes a
`ServingError` whose message names the status, the server's words and the
fix. `tensorflow-serving-api`'s generated modules import TensorFlow (its
protos embed TensorFlow's `TensorProto`), so they and `grpc` are imported on
the first call, not with this module.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    ServingError,
    check_count,
    check_detections,
    check_timeout,
)
from cornernet_tf.serving.protocol import (
    images_tensor,
    parse_predict_response,
    predict_request,
    serving_apis,
    set_model_spec,
)

__all__ = [
    "DEFAULT_ADDRESS",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_MODEL",
    "SIGNATURE_IMAGES",
    "SIGNATURE_UINT8",
    "GrpcClient",
    "ServingError",
    "images_tensor",
    "model_metadata",
    "model_status",
    "parse_predict_response",
    "predict",
    "predict_request",
]

DEFAULT_ADDRESS = "localhost:8500"
# gRPC's default receive limit is 4 MiB; a batch of uint8 pixels passes that quickly
# (one 1280x720 image is 2.6 MiB). TF Serving itself accepts messages up to 2 GiB.
DEFAULT_MAX_MESSAGE_BYTES = 256 * 1024 * 1024

# What to do about each gRPC status TF Serving answers with.
_FIXES = {
    "NOT_FOUND": (
        "check --model and --version against the served models (tf_serving/models.config); "
        "`status` lists the loaded versions"
    ),
    "INVALID_ARGUMENT": (
        "send JPEG/PNG file bytes to serving_default, or uint8 RGB pixels [B, H, W, 3] of one "
        "size to detect_uint8"
    ),
    "FAILED_PRECONDITION": (
        "call serving_default or detect_uint8 (`metadata` lists the model's signatures)"
    ),
    "RESOURCE_EXHAUSTED": (
        "send fewer or smaller images per request, raise max_message_bytes, or wait for the "
        "server's batching queue to drain"
    ),
    "UNIMPLEMENTED": (
        "the address is not TF Serving's gRPC port; the stock image serves gRPC on 8500 and "
        "REST on 8501"
    ),
}
_DEFAULT_FIX = "see the server's log (`docker compose -f tf_serving/docker-compose.yml logs`)"


def _serving_error(error: Exception, method: str, address: str, timeout: float) -> ServingError:
    """A `ServingError` explaining a failed call (a `grpc.RpcError`)."""
    code = error.code() if callable(getattr(error, "code", None)) else None
    name = getattr(code, "name", "UNKNOWN")
    details = error.details() if callable(getattr(error, "details", None)) else str(error)
    if name == "UNAVAILABLE":
        message = (
            f"cannot reach TensorFlow Serving's gRPC port at {address} ({details}); start it "
            "with `docker compose -f tf_serving/docker-compose.yml up` or pass --grpc-address "
            "(gRPC is port 8500 in the stock image, REST 8501)."
        )
    elif name == "DEADLINE_EXCEEDED":
        message = (
            f"no answer to {method} from {address} within {timeout:g} s; raise --timeout, or "
            "send fewer images per request (a version's first requests are slow unless its "
            "warm-up file ran)."
        )
    else:
        fix = _FIXES.get(name, _DEFAULT_FIX)
        if "version label" in details:
            fix = "pass a label that models.config assigns (`version_labels`), or --version"
        message = f"{method} on {address} failed with {name}: {details}; {fix}."
    return ServingError(message, code=name)


class GrpcClient:
    """A channel to TF Serving's gRPC port, reused by its calls.

    Use as a context manager (or call `close`).

    Args:
        address: "host:port" of the gRPC port, e.g. "localhost:8500".
        max_message_bytes: largest request and answer the channel sends or
            accepts.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        *,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ):
        if not isinstance(address, str) or not address or "://" in address:
            raise ValueError(
                f"grpc: `address` must be HOST:PORT, e.g. {DEFAULT_ADDRESS!r}, got {address!r}."
            )
        check_count(max_message_bytes, "max_message_bytes", "grpc")
        self._apis = serving_apis()
        self.address = address
        options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._channel = self._apis.grpc.insecure_channel(address, options=options)
        self._predictions = self._apis.prediction_service_pb2_grpc.PredictionServiceStub(
            self._channel
        )
        self._models = self._apis.model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _call(self, method: str, rpc, request, timeout: float):
        timeout = check_timeout(timeout, method)
        try:
            return rpc(request, timeout=timeout)
        except self._apis.grpc.RpcError as error:
            # The message carries the status and the server's words; the grpc
            # exception's own multi-line debug string would add nothing but noise.
            raise _serving_error(error, method, self.address, timeout) from None

    def status(
        self,
        model: str = DEFAULT_MODEL,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 10.0,
    ) -> dict:
        """Model status, as the REST API's `GET /v1/models/<model>` prints it.

        Args:
            model: served model name.
            version: one version, or None for all.
            label: a version label instead of `version`.
            timeout: seconds to wait for the answer.

        Returns:
            `{"model_version_status": [{"version": "1", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}, ...]}`.
        """
        request = self._apis.get_model_status_pb2.GetModelStatusRequest()
        set_model_spec(request.model_spec, model, version, label)
        response = self._call("GetModelStatus", self._models.GetModelStatus, request, timeout)
        return self._to_dict(response)

    def metadata(
        self,
        model: str = DEFAULT_MODEL,
        *,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 10.0,
    ) -> dict:
        """Model metadata (the signatures), as the REST API prints it.

        Args:
            model: served model name.
            version: a version, or None for the latest.
            label: a version label instead of `version`.
            timeout: seconds to wait for the answer.

        Returns:
            `{"model_spec": {...}, "metadata": {"signature_def": {"signature_def":
            {name: {"inputs": ..., "outputs": ..., "method_name": ...}}}}}`.
        """
        apis = self._apis
        request = apis.get_model_metadata_pb2.GetModelMetadataRequest()
        set_model_spec(request.model_spec, model, version, label)
        request.metadata_field.append("signature_def")
        response = self._call(
            "GetModelMetadata", self._predictions.GetModelMetadata, request, timeout
        )
        metadata = {}
        for key, value in response.metadata.items():
            if key == "signature_def":
                signatures = apis.get_model_metadata_pb2.SignatureDefMap()
                value.Unpack(signatures)
                metadata[key] = self._to_dict(signatures)
        return {"model_spec": self._to_dict(response.model_spec), "metadata": metadata}

    def predict(
        self,
        images: Sequence[bytes] | Sequence[np.ndarray] | np.ndarray,
        model: str = DEFAULT_MODEL,
        *,
        signature: str = SIGNATURE_IMAGES,
        version: int | None = None,
        label: str | None = None,
        timeout: float = 60.0,
    ) -> list[dict]:
        """Runs detection on a batch of images.

        Args:
            images: encoded JPEG/PNG bytes (default signature), or uint8 RGB
                pixels of one size (`signature="detect_uint8"`): [H, W, 3]
                arrays or one [B, H, W, 3] array.
            model: served model name.
            signature: "serving_default" or "detect_uint8".
            version: a version, or None for the latest.
            label: a version label instead of `version`.
            timeout: seconds to wait for the answer.

        Returns:
            One dict per image, as `cornernet_tf.serving.rest.predict` returns:
            `detection_boxes` [M][4] (x1, y1, x2, y2 in the image's pixels),
            `detection_scores` [M], `detection_classes` [M] (0-based) and
            `num_detections`; entries past `num_detections` are padding (-1).
        """
        request = predict_request(images, model, signature=signature, version=version, label=label)
        response = self._call("Predict", self._predictions.Predict, request, timeout)
        return check_detections(parse_predict_response(response), len(images))

    def _to_dict(self, message) -> dict:
        return self._apis.json_format.MessageToDict(
            message,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )


def model_status(
    address: str = DEFAULT_ADDRESS,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
) -> dict:
    """`GrpcClient.status` over a channel opened for this one call."""
    with GrpcClient(address) as client:
        return client.status(model, version=version, label=label, timeout=timeout)


def model_metadata(
    address: str = DEFAULT_ADDRESS,
    model: str = DEFAULT_MODEL,
    *,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 10.0,
) -> dict:
    """`GrpcClient.metadata` over a channel opened for this one call."""
    with GrpcClient(address) as client:
        return client.metadata(model, version=version, label=label, timeout=timeout)


def predict(
    images: Sequence[bytes] | Sequence[np.ndarray] | np.ndarray,
    address: str = DEFAULT_ADDRESS,
    model: str = DEFAULT_MODEL,
    *,
    signature: str = SIGNATURE_IMAGES,
    version: int | None = None,
    label: str | None = None,
    timeout: float = 60.0,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> list[dict]:
    """`GrpcClient.predict` over a channel opened for this one call.

    Arguments as `GrpcClient.predict`, with the server's `address` and the
    channel's `max_message_bytes` (see `GrpcClient`).
    """
    with GrpcClient(address, max_message_bytes=max_message_bytes) as client:
        return client.predict(
            images, model, signature=signature, version=version, label=label, timeout=timeout
        )
