"""TF Serving's gRPC messages for CornerNet: a `PredictRequest` of images, detections
from a `PredictResponse`.

The gRPC client (`cornernet_tf.serving.grpc`) sends these messages, and the
SavedModel export writes them as warm-up records (`cornernet_tf.export.warmup`),
so the server warms up on exactly what clients send. `tensorflow-serving-api`'s
generated modules import TensorFlow, so they are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import numpy as np

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    INPUT_NAME,
    OUTPUT_NAMES,
    SIGNATURE_IMAGES,
    ServingError,
    check_version_label,
    split_batch,
)

__all__ = [
    "images_tensor",
    "parse_predict_response",
    "predict_request",
    "serving_apis",
    "set_model_spec",
]


def serving_apis() -> SimpleNamespace:
    """`grpc`, TensorFlow and the TF Serving API modules, imported on first use."""
    try:
        import grpc
        import tensorflow as tf
        from google.protobuf import json_format
        from tensorflow_serving.apis import (
            get_model_metadata_pb2,
            get_model_status_pb2,
            model_service_pb2_grpc,
            predict_pb2,
            prediction_service_pb2_grpc,
        )
    except ImportError as error:
        raise ImportError(
            f"the gRPC client needs grpcio and tensorflow-serving-api ({error}); install "
            "cornernet_tf with its dependencies or `pip install tensorflow-serving-api`, or use "
            "the REST client (--protocol rest)."
        ) from error
    return SimpleNamespace(
        grpc=grpc,
        tf=tf,
        json_format=json_format,
        get_model_metadata_pb2=get_model_metadata_pb2,
        get_model_status_pb2=get_model_status_pb2,
        model_service_pb2_grpc=model_service_pb2_grpc,
        predict_pb2=predict_pb2,
        prediction_service_pb2_grpc=prediction_service_pb2_grpc,
    )


def set_model_spec(
    spec, model: str, version: int | None, label: str | None, signature: str | None = None
) -> None:
    check_version_label(version, label, "grpc")
    if not isinstance(model, str) or not model:
        raise ValueError(f"grpc: `model` must be a served model name, got {model!r}.")
    spec.name = model
    if version is not None:
        spec.version.value = int(version)
    if label is not None:
        spec.version_label = label
    if signature is not None:
        spec.signature_name = signature


def images_tensor(images: Sequence[bytes] | Sequence[np.ndarray] | np.ndarray):
    """The `images` input as a `TensorProto`.

    Args:
        images: encoded image files (bytes; a [B] `DT_STRING` tensor for
            `serving_default`), or RGB pixels of one size: [H, W, 3] arrays or
            nested lists, or one [B, H, W, 3] array (a `DT_UINT8` tensor for
            `detect_uint8`).

    Returns:
        A `tensorflow.TensorProto`.

    Raises:
        ValueError: no images, bytes mixed with pixels, pixels of different
            sizes or not [H, W, 3], or values that are not uint8.
    """
    tf = serving_apis().tf
    if len(images) == 0:
        raise ValueError("predict: `images` is empty; pass at least one image.")
    if not isinstance(images, np.ndarray):
        encoded = [isinstance(image, bytes) for image in images]
        if all(encoded):
            return tf.make_tensor_proto(list(images), dtype=tf.string, shape=[len(images)])
        if any(encoded):
            raise ValueError(
                "predict: `images` mixes encoded files (bytes) and pixels; send one kind per "
                "request (serving_default takes files, detect_uint8 pixels)."
            )
        arrays = [np.asarray(image) for image in images]
        shapes = sorted({array.shape for array in arrays})
        if len(shapes) > 1:
            raise ValueError(
                f"predict: detect_uint8 takes one [B, H, W, 3] tensor, but the images have "
                f"shapes {shapes}; send images of one size, or encoded files to serving_default."
            )
        images = np.stack(arrays)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"predict: pixels must be RGB [H, W, 3] per image ([B, H, W, 3] in all), got "
            f"shape {images.shape}."
        )
    if images.dtype != np.uint8:
        if not (
            np.issubdtype(images.dtype, np.integer)
            and images.size
            and images.min() >= 0
            and images.max() <= 255
        ):
            raise ValueError(
                f"predict: detect_uint8 takes uint8 pixels in [0, 255], got {images.dtype}; "
                "convert with `np.asarray(image, np.uint8)` or send the encoded file."
            )
        images = images.astype(np.uint8)
    return tf.make_tensor_proto(images)


def predict_request(
    images: Sequence[bytes] | Sequence[np.ndarray] | np.ndarray,
    model: str = DEFAULT_MODEL,
    *,
    signature: str = SIGNATURE_IMAGES,
    version: int | None = None,
    label: str | None = None,
):
    """A `tensorflow.serving.PredictRequest` for a batch of images.

    Args:
        images: see `images_tensor`.
        model: served model name.
        signature: "serving_default" (encoded files) or "detect_uint8" (pixels).
        version: a version, or None for the latest.
        label: a version label instead of `version`.

    Returns:
        The request, its one input named `images`.
    """
    request = serving_apis().predict_pb2.PredictRequest()
    set_model_spec(request.model_spec, model, version, label, signature)
    request.inputs[INPUT_NAME].CopyFrom(images_tensor(images))
    return request


def parse_predict_response(response) -> list[dict[str, Any]]:
    """Per-image output dicts from a `PredictResponse`, in the REST client's form.

    Args:
        response: a `tensorflow.serving.PredictResponse`.

    Returns:
        One dict per image mapping each output name to that image's value as
        Python lists and numbers (`num_detections` an int).

    Raises:
        ServingError: the detection outputs are missing or disagree in batch size.
    """
    tf = serving_apis().tf
    missing = sorted(set(OUTPUT_NAMES) - set(response.outputs))
    if missing:
        raise ServingError(
            f"the answer lacks the outputs {missing} (it has {sorted(response.outputs)}); "
            "is --model a CornerNet export?"
        )
    return split_batch(
        {name: tf.make_ndarray(proto).tolist() for name, proto in response.outputs.items()}
    )
