"""Clients for CornerNet SavedModels served by TensorFlow Serving.

- `cornernet_tf.serving.rest`: the REST API (port 8501), with `requests`.
- `cornernet_tf.serving.grpc`: the gRPC API (port 8500), with
  `tensorflow-serving-api`; `GrpcClient` keeps one channel open.
- `cornernet_tf.serving.common`: what both share (`ServingError`, output
  parsing, class names, formatting).
- `cornernet_tf.serving.batching`: TF Serving's `batching.config`, sized for a host.
- `cornernet_tf.serving.cli`: the command line (`python -m cornernet_tf.serving.cli`).

Importing this package imports neither TensorFlow nor a network library; the
protocol modules import theirs (the gRPC stubs import TensorFlow) when used.
docs/serving.md documents the outputs and the deployment.
"""

from cornernet_tf.serving.common import (
    DEFAULT_MODEL,
    OUTPUT_NAMES,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    ServingError,
    format_detections,
    load_class_names,
)

__all__ = [
    "DEFAULT_MODEL",
    "SIGNATURE_IMAGES",
    "OUTPUT_NAMES",
    "SIGNATURE_UINT8",
    "ServingError",
    "format_detections",
    "load_class_names",
]
