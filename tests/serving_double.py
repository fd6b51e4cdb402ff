"""TEST DOUBLE of TensorFlow Serving's REST API. Not a model server; tests only.

The stock `tensorflow_model_server` cannot be installed on the test machines,
so the contract tests run the REST client (`cornernet_tf.serving.rest`, and
`tf_serving/client.py` around it) against this stand-in. It
implements the parts of the documented REST API (tensorflow/serving
`g3doc/api_rest.md`) that the client uses, on top of the exported SavedModel
loaded with `tf.saved_model.load`:

- `GET /v1/models/<name>[/versions/<v>]`: `{"model_version_status":
  [{"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK",
  "error_message": ""}}]}` (`GetModelStatusResponse`).
- `GET /v1/models/<name>[/versions/<v>]/metadata`: `{"model_spec": {...},
  "metadata": {"signature_def": {"signature_def": {...}}}}`
  (`GetModelMetadataResponse`; the `SignatureDefMap` read from
  `saved_model.pb` and printed with protobuf's JSON mapping).
- `POST /v1/models/<name>[/versions/<v>]:predict` with `signature_name` and
  either `instances` (row format, answered with `predictions`) or `inputs`
  (columnar format, answered with `outputs`); `{"b64": ...}` objects are
  binary strings.
- Errors: `{"error": <message>}` with HTTP 400 (bad request or
  `InvalidArgumentError`) or 404 (unknown model, version or path).

Like the real server, it serves the highest numeric version directory under
`<base_path>` (policy `latest {num_versions: 1}`). It binds 127.0.0.1 on a
free port, answers at most `max_requests` requests and stops by itself after
`lifetime` seconds.

    python tests/serving_double.py --base-path exports/cornernet --model-name cornernet
"""

import argparse
import base64
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

_ROUTE = re.compile(
    r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<version>\d+))?"
    r"(?P<suffix>/metadata|:predict)?$"
)


class _Error(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class ServingDouble:
    """A bounded-lifetime stand-in for `tensorflow_model_server --rest_api_port`.

    Use as a context manager; `url` is the server root.

    Args:
        base_path: the model's base path, `<export root>/<name>`, holding
            numbered version directories.
        model_name: the served name.
        lifetime: seconds after which the server stops by itself.
        max_requests: requests after which it stops by itself.
    """

    def __init__(self, base_path, model_name, *, lifetime=120.0, max_requests=200):
        base_path = Path(base_path)
        versions = sorted(int(p.name) for p in base_path.iterdir() if p.name.isdigit())
        if not versions:
            raise ValueError(f"ServingDouble: no version directories under {base_path}.")
        self.model_name = model_name
        self.version = versions[-1]
        self.export_dir = base_path / str(self.version)
        self.loaded = tf.saved_model.load(str(self.export_dir))
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((self.export_dir / "saved_model.pb").read_bytes())
        self.signature_defs = saved_model.meta_graphs[0].signature_def
        self.lifetime = lifetime
        self.max_requests = max_requests
        self.requests_served = 0
        self._server = None
        self._thread = None
        self._timer = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                double._handle(self, "GET")

            def do_POST(self):  # noqa: N802
                double._handle(self, "POST")

            def log_message(self, *args):
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._server.timeout = 5
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def stop(self):
        """Stops serving (idempotent, from any thread but the serving one)."""
        if self._timer is not None:
            self._timer.cancel()
        with self._lock:
            if self._server is None or self._stopped:
                return
            self._stopped = True
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ routes

    def _handle(self, handler, method):
        self.requests_served += 1
        if self.requests_served >= self.max_requests:
            threading.Thread(target=self.stop, daemon=True).start()
        try:
            body = self._route(handler, method)
            status = 200
        except _Error as error:
            body, status = {"error": str(error)}, error.status
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)

    def _route(self, handler, method):
        match = _ROUTE.match(handler.path)
        if match is None:
            raise _Error(404, f"Malformed request: {method} {handler.path}")
        name, version, suffix = match["name"], match["version"], match["suffix"]
        if name != self.model_name:
            raise _Error(404, f"Servable not found for request: Latest({name})")
        if version is not None and int(version) != self.version:
            raise _Error(404, f"Servable not found for request: Specific({name}, {version})")
        if method == "GET" and suffix is None:
            return self._status()
        if method == "GET" and suffix == "/metadata":
            return self._metadata()
        if method == "POST" and suffix == ":predict":
            length = int(handler.headers.get("Content-Length", 0))
            try:
                request = json.loads(handler.rfile.read(length) or b"null")
            except json.JSONDecodeError as error:
                raise _Error(400, f"JSON Parse error: {error}") from error
            return self._predict(request)
        raise _Error(404, f"Malformed request: {method} {handler.path}")

    def _status(self):
        return {
            "model_version_status": [
                {
                    "version": str(self.version),
                    "state": "AVAILABLE",
                    "status": {"error_code": "OK", "error_message": ""},
                }
            ]
        }

    def _metadata(self):
        signatures = {
            key: json_format.MessageToDict(
                value,
                preserving_proto_field_name=True,
                always_print_fields_with_no_presence=True,
            )
            for key, value in self.signature_defs.items()
        }
        return {
            "model_spec": {
                "name": self.model_name,
                "signature_name": "",
                "version": str(self.version),
            },
            "metadata": {"signature_def": {"signature_def": signatures}},
        }

    def _predict(self, request):
        if not isinstance(request, dict):
            raise _Error(400, "Request body must be a JSON object.")
        signature_name = request.get("signature_name", "serving_default")
        if signature_name not in self.loaded.signatures:
            raise _Error(
                400, f'Serving signature name: "{signature_name}" not found in signature def'
            )
        function = self.loaded.signatures[signature_name]
        specs = function.structured_input_signature[1]  # {name: TensorSpec}
        if ("instances" in request) == ("inputs" in request):
            raise _Error(
                400,
                "Missing 'inputs' or 'instances' key"
                if "inputs" not in request
                else "Request has both 'inputs' and 'instances' keys",
            )
        if "instances" in request:
            values = self._rows_to_columns(request["instances"], specs)
        else:
            values = request["inputs"]
            if not isinstance(values, dict) or set(values) != set(specs):
                if len(specs) != 1 or isinstance(values, dict):
                    raise _Error(400, f"'inputs' must name the inputs {sorted(specs)}.")
                values = {next(iter(specs)): values}
        tensors = {name: self._tensor(values[name], spec) for name, spec in specs.items()}
        try:
            outputs = function(**tensors)
        except tf.errors.InvalidArgumentError as error:
            raise _Error(400, error.message) from error
        outputs = {name: _to_json(name, value.numpy()) for name, value in outputs.items()}
        if "inputs" in request:
            return {"outputs": next(iter(outputs.values())) if len(outputs) == 1 else outputs}
        rows = len(next(iter(outputs.values())))
        if len(outputs) == 1:
            return {"predictions": next(iter(outputs.values()))}
        return {"predictions": [{k: v[i] for k, v in outputs.items()} for i in range(rows)]}

    @staticmethod
    def _rows_to_columns(instances, specs):
        if not isinstance(instances, list):
            raise _Error(400, "'instances' must be a list.")
        names = list(specs)
        columns = {name: [] for name in names}
        for row in instances:
            named = isinstance(row, dict) and not _is_b64(row)
            if named:
                if set(row) != set(names):
                    raise _Error(
                        400, f"instance has inputs {sorted(row)}; expected {sorted(names)}."
                    )
                for name in names:
                    columns[name].append(row[name])
            elif len(names) == 1:
                columns[names[0]].append(row)
            else:
                raise _Error(400, f"instances must be objects naming the inputs {names}.")
        return columns

    @staticmethod
    def _tensor(value, spec):
        value = _decode_b64(value)
        try:
            if spec.dtype == tf.string:
                array = np.array(value, dtype=object)
            else:
                array = np.array(value, dtype=spec.dtype.as_numpy_dtype)
        except (TypeError, ValueError) as error:
            raise _Error(400, f"input {spec.name!r}: {error}") from error
        if not spec.shape.is_compatible_with(array.shape):
            raise _Error(
                400,
                f"input {spec.name!r} has shape {array.shape}; the signature needs {spec.shape}.",
            )
        return tf.constant(array, dtype=spec.dtype)


class MisbehavingServer:
    """TEST DOUBLE of a broken REST server: each request gets the next scripted reply.

    A reply is a dict: `status` (default 200), `body` (bytes), `length` (the
    Content-Length sent; default `len(body)`, None sends none), `headers`
    (more `(name, value)` headers, e.g. a `Location`), `trickle`
    (seconds between the body's bytes), `trickle_head` (seconds between the
    bytes of a status line sent before the real one). The last reply repeats. `requests`
    lists `(method, path)` as they arrive. Binds 127.0.0.1 on a free port.
    """

    def __init__(self, *replies):
        self.replies = list(replies)
        self.requests = []
        self._stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server._reply(self, "GET")

            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server._reply(self, "POST")

            def log_message(self, *args):
                pass

        self._server = HTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc_info):
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def _reply(self, handler, method):
        self.requests.append((method, handler.path))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        body = reply.get("body", b"")
        length = reply.get("length", len(body))
        if reply.get("trickle_head"):  # the status line, a byte at a time
            for byte in b"HTTP/1.0 200 OK\r\n":
                if self._stopping.wait(reply["trickle_head"]):
                    return
                try:
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                except OSError:
                    return
        handler.send_response(reply.get("status", 200))
        handler.send_header("Content-Type", "application/json")
        if length is not None:
            handler.send_header("Content-Length", str(length))
        for name, value in reply.get("headers", ()):
            handler.send_header(name, value)
        handler.end_headers()
        try:
            if not reply.get("trickle"):
                handler.wfile.write(body)
                return
            for i in range(len(body)):
                if self._stopping.wait(reply["trickle"]):
                    return
                handler.wfile.write(body[i : i + 1])
                handler.wfile.flush()
        except OSError:  # the client gave up
            pass


def _is_b64(value) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _decode_b64(value):
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except ValueError as error:
            raise _Error(400, f"Unable to base64 decode: {error}") from error
    if isinstance(value, list):
        return [_decode_b64(v) for v in value]
    return value


def _to_json(name, array):
    if array.dtype == object:
        encode = (
            (lambda b: {"b64": base64.b64encode(b).decode()})
            if name.endswith("_bytes")
            else (lambda b: b.decode("utf-8", "replace"))
        )
        return np.vectorize(encode, otypes=[object])(array).tolist()
    return array.tolist()


def main(argv=None):
    parser = argparse.ArgumentParser(description="TEST DOUBLE of TF Serving's REST API.")
    parser.add_argument("--base-path", required=True, help="<export root>/<model name>")
    parser.add_argument("--model-name", default="cornernet")
    parser.add_argument("--lifetime", type=float, default=300.0, help="seconds, then stop")
    args = parser.parse_args(argv)
    with ServingDouble(args.base_path, args.model_name, lifetime=args.lifetime) as double:
        print(
            f"TEST DOUBLE serving {args.model_name} v{double.version} at {double.url}", flush=True
        )
        deadline = time.monotonic() + args.lifetime
        while time.monotonic() < deadline and double._thread.is_alive():
            time.sleep(0.2)


if __name__ == "__main__":
    main()
