"""TEST DOUBLE of TensorFlow Serving's gRPC API. Not a model server; tests only.

The stock `tensorflow_model_server` cannot be installed on the test machines,
so the gRPC client's contract tests run against this stand-in, the gRPC
sibling of `serving_double.py`: an in-process `grpc.server` on 127.0.0.1
implementing, with `tensorflow-serving-api`'s servicers, what the client
uses, on top of the exported SavedModel loaded with `tf.saved_model.load`:

- `PredictionService.Predict`: `model_spec` (name, optional version or
  version label, signature name defaulting to `serving_default`) and
  `inputs` as `TensorProto`s; the answer has the signature's outputs
  (`output_filter` honoured) and the resolved `model_spec`.
- `PredictionService.GetModelMetadata` with `metadata_field: "signature_def"`:
  the `SignatureDefMap` read from `saved_model.pb`, packed in an `Any`.
- `ModelService.GetModelStatus`: the served version, AVAILABLE.
- Errors, with TF Serving's status codes and wording: unknown model or
  version → NOT_FOUND ("Servable not found for request: ..."); unknown
  label → INVALID_ARGUMENT ("Unrecognized servable version label: ...");
  unknown signature → FAILED_PRECONDITION ('Serving signature key "x" not
  found.'); wrong input names, dtypes or shapes, and the graph's own
  `InvalidArgumentError`s → INVALID_ARGUMENT.

Like the real server it serves the highest numeric version directory under
`<base_path>`, and accepts messages up to 2 GiB. It answers at most
`max_requests` calls and stops by itself after `lifetime` seconds; `delay`
(seconds) slows every Predict down, to test the client's deadlines.
"""

import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

_MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving's limit (kint32max)


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class GrpcServingDouble:
    """A bounded-lifetime stand-in for `tensorflow_model_server --port`.

    Use as a context manager; `address` is "127.0.0.1:<port>".

    Args:
        base_path: the model's base path, `<export root>/<name>`, holding
            numbered version directories.
        model_name: the served name.
        loaded: the served version already loaded with `tf.saved_model.load`
            (tests pass their session fixture); loaded here if None.
        labels: version labels, `{label: version}` (`version_labels` in
            models.config).
        lifetime: seconds after which the server stops by itself.
        max_requests: calls after which it stops by itself.
    """

    def __init__(
        self,
        base_path,
        model_name,
        *,
        loaded=None,
        labels=None,
        lifetime=120.0,
        max_requests=200,
    ):
        base_path = Path(base_path)
        versions = sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit())
        if not versions:
            raise ValueError(f"GrpcServingDouble: no version directories under {base_path}.")
        self.model_name = model_name
        self.version = versions[-1]
        self.export_dir = base_path / str(self.version)
        self.loaded = loaded if loaded is not None else tf.saved_model.load(str(self.export_dir))
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((self.export_dir / "saved_model.pb").read_bytes())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self.labels = dict(labels or {})
        self.lifetime = lifetime
        self.max_requests = max_requests
        self.delay = 0.0
        self.requests_served = 0
        self.port = None
        self._server = None
        self._timer = None
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self):
        options = [
            ("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES),
        ]
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            _PredictionService(self), self._server
        )
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        """Stops serving (idempotent); calls in flight get a short grace period."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(grace=1.0).wait(5)

    # ------------------------------------------------------------------ helpers

    def _count(self):
        with self._lock:
            self.requests_served += 1
            last = self.requests_served >= self.max_requests
        if last:
            threading.Thread(target=self.stop, daemon=True).start()

    def _resolve(self, spec) -> int:
        """The version a `ModelSpec` names, as ServerCore resolves it."""
        name = spec.name
        if not name:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
        if name != self.model_name:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})"
            )
        choice = spec.WhichOneof("version_choice")
        if choice == "version_label":
            if spec.version_label not in self.labels:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Unrecognized servable version label: {spec.version_label}",
                )
            version = self.labels[spec.version_label]
        elif choice == "version":
            version = spec.version.value
        else:
            return self.version
        if version != self.version:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND,
                f"Servable not found for request: Specific({name}, {version})",
            )
        return version

    def _predict(self, request):
        version = self._resolve(request.model_spec)
        signature_name = request.model_spec.signature_name or "serving_default"
        if signature_name not in self.signature_defs:
            raise _Abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'Serving signature key "{signature_name}" not found.',
            )
        function = self.loaded.signatures[signature_name]
        specs = function.structured_input_signature[1]  # {name: TensorSpec}
        sent, expected = set(request.inputs), set(specs)
        if sent != expected:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(expected)} "
                f"len({sorted(sent)}) != len({sorted(expected)}). Sent extra: "
                f"{sorted(sent - expected)}. Missing but required: {sorted(expected - sent)}.",
            )
        outputs_def = self.signature_defs[signature_name].outputs
        unknown = [name for name in request.output_filter if name not in outputs_def]
        if unknown:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"output tensor alias not found in signature: {unknown[0]} Outputs expected to "
                f"be in the set {{{','.join(sorted(outputs_def))}}}.",
            )
        tensors = {}
        for position, (name, spec) in enumerate(specs.items()):
            proto = request.inputs[name]
            if proto.dtype != spec.dtype.as_datatype_enum:
                sent_dtype = tf.dtypes.as_dtype(proto.dtype).name if proto.dtype else "invalid"
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"Expects arg[{position}] to be {spec.dtype.name} but {sent_dtype} is provided",
                )
            try:
                array = tf.make_ndarray(proto)
            except (TypeError, ValueError) as error:
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"input {name!r}: {error}"
                ) from error
            if not spec.shape.is_compatible_with(array.shape):
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"input {name!r} has shape {list(array.shape)}; the signature needs "
                    f"{spec.shape}.",
                )
            tensors[name] = tf.constant(array, dtype=spec.dtype)
        try:
            outputs = function(**tensors)
        except tf.errors.InvalidArgumentError as error:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, error.message) from error
        response = predict_pb2.PredictResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature_name
        for name, value in outputs.items():
            if not request.output_filter or name in request.output_filter:
                response.outputs[name].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        return response

    def _metadata(self, request):
        version = self._resolve(request.model_spec)
        for field in request.metadata_field:
            if field != "signature_def":
                raise _Abort(
                    grpc.StatusCode.INVALID_ARGUMENT, f"Metadata field {field} is not supported"
                )
        if not request.metadata_field:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "GetModelMetadataRequest must specify at least one metadata_field",
            )
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = self.model_name
        response.model_spec.version.value = version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, value in self.signature_defs.items():
            signatures.signature_def[key].CopyFrom(value)
        response.metadata["signature_def"].Pack(signatures)
        return response

    def _status(self, request):
        spec = request.model_spec
        if spec.WhichOneof("version_choice") is not None:
            self._resolve(spec)
        elif spec.name != self.model_name:
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {spec.name}"
            )
        response = get_model_status_pb2.GetModelStatusResponse()
        status = response.model_version_status.add()
        status.version = self.version
        status.state = get_model_status_pb2.ModelVersionStatus.AVAILABLE
        status.status.SetInParent()  # TF Serving sends an OK status (error_code 0)
        return response

    def _serve(self, handler, request, context):
        self._count()
        try:
            return handler(request)
        except _Abort as error:
            context.abort(error.code, str(error))


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, double):
        self._double = double

    def Predict(self, request, context):  # noqa: N802 - the gRPC method's name
        if self._double.delay:
            time.sleep(self._double.delay)
        return self._double._serve(self._double._predict, request, context)

    def GetModelMetadata(self, request, context):  # noqa: N802
        return self._double._serve(self._double._metadata, request, context)


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, double):
        self._double = double

    def GetModelStatus(self, request, context):  # noqa: N802
        return self._double._serve(self._double._status, request, context)
