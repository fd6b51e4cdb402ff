"""`cornernet_tf.serving.rest` and `tf_serving/client.py` against a double of TF Serving's REST API.

The client runs against `tests/serving_double.py`, a test double of TF
Serving's documented REST API (the real server cannot be installed here),
serving the session fixture `saved_model_root` (conftest.py).
"""

import base64
import json
import os
import re
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
import requests
import tensorflow as tf
from export_helpers import CLASS_NAMES, REPO, png, random_image
from serving_double import MisbehavingServer, ServingDouble

from cornernet_tf import export
from cornernet_tf.serving import cli
from cornernet_tf.serving import rest as client

DETECTION_KEYS = dict(export.DETECTION_OUTPUTS)  # detect key → exported name


@pytest.fixture(scope="module")
def server(saved_model_root):
    with ServingDouble(saved_model_root / "cornernet", "cornernet", lifetime=300) as double:
        yield double


def _client(server, *args):
    result = subprocess.run(
        [sys.executable, str(REPO / "tf_serving" / "client.py"), "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    return result.returncode, result.stdout, result.stderr


def test_client_status_and_metadata(server):
    code, out, _ = _client(server, "status")
    assert code == 0
    assert json.loads(out)["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    metadata = client.model_metadata(server.url, "cornernet")
    assert metadata["model_spec"] == {"name": "cornernet", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    images = signatures["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_STRING"
    assert images["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    boxes = signatures["detect_uint8"]["outputs"]["detection_boxes"]
    assert [d["size"] for d in boxes["tensor_shape"]["dim"]] == ["-1", "100", "4"]


def test_client_request_formats_follow_the_rest_api():
    body = client.predict_request_body([b"\x89PNG"], columnar=False)
    assert body == {
        "signature_name": "serving_default",
        "instances": [{"images": {"b64": "iVBORw=="}}],
    }
    body = client.predict_request_body([b"\x89PNG", b"ab"], columnar=True)
    assert body["inputs"] == {"images": [{"b64": "iVBORw=="}, {"b64": "YWI="}]}
    rows = client.parse_predict_response({"outputs": {"a": [1, 2], "b": [[3], [4]]}})
    assert rows == [{"a": 1, "b": [3]}, {"a": 2, "b": [4]}]


def test_client_predict_row_and_columnar_match_the_signature(server, saved_model):
    images = [png(random_image(6)), png(random_image(7, 100, 60))]
    expected = saved_model.signatures["serving_default"](images=tf.constant(images))
    for columnar in (False, True):
        results = client.predict(images, server.url, "cornernet", columnar=columnar)
        assert len(results) == 2
        for i, result in enumerate(results):
            for name in DETECTION_KEYS.values():
                np.testing.assert_allclose(result[name], expected[name][i].numpy(), atol=1e-5)
    pixels = [random_image(8).tolist()]
    result = client.predict(pixels, server.url, "cornernet", signature=client.SIGNATURE_UINT8)
    expected = saved_model.signatures["detect_uint8"](images=tf.constant(random_image(8)[None]))
    np.testing.assert_allclose(result[0]["detection_scores"], expected["detection_scores"][0])


def test_client_cli_prints_named_detections(server, saved_model_root, tmp_path):
    paths = []
    for i, image in enumerate([random_image(9), random_image(10, 80, 96)]):
        paths.append(tmp_path / f"image{i}.png")
        paths[-1].write_bytes(png(image))
    classes = saved_model_root / "cornernet" / "1" / "assets" / "classes.json"
    args = ["predict", *map(str, paths), "--classes", str(classes), "--score-threshold", "0"]
    code, out, err = _client(server, *args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: ") and "detections" in lines[0]
    detections = [line for line in lines if line.startswith("  ")]
    assert detections and all(line.split()[0] in CLASS_NAMES for line in detections)
    code, out, _ = _client(server, "predict", str(paths[0]), "--columnar", "--json")
    assert code == 0 and len(json.loads(out)[str(paths[0])]["detection_scores"]) == 100


def test_client_reports_server_errors(server, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = _client(server, "predict", str(bad))
    assert code == 1 and "HTTP 400" in err and "not a JPEG, PNG" in err
    code, _, err = _client(server, "--model", "other", "status")
    assert code == 1 and "HTTP 404" in err and "Servable not found" in err
    code, _, err = _client(server, "predict", str(tmp_path / "missing.png"))
    assert code == 2 and "cannot read image" in err  # an input error, not the server's
    with pytest.raises(client.ServingError, match="cannot reach TensorFlow Serving"):
        client.model_status("http://127.0.0.1:9", timeout=2)


def test_double_follows_documented_errors(server):
    address = f"{server.url}/v1/models/cornernet:predict"
    both = {"instances": [{"b64": "eA=="}], "inputs": [{"b64": "eA=="}]}
    response = requests.post(address, data=json.dumps(both), timeout=30)
    assert response.status_code == 400 and "error" in response.json()
    unnamed = {"instances": [{"b64": base64.b64encode(png(random_image(11, 40, 40))).decode()}]}
    response = requests.post(address, data=json.dumps(unnamed), timeout=60)
    assert response.status_code == 200
    assert len(response.json()["predictions"][0]["detection_boxes"]) == 100


# ------------------------------------------------------ a misbehaving server

STATUS = json.dumps({"model_version_status": []}).encode()


@pytest.mark.parametrize("part", ["trickle", "trickle_head"])
def test_a_trickling_answer_ends_at_the_total_deadline(capsys, part):
    """The timeout bounds the whole call, not each read (a byte every 0.2 s never stalls)."""
    with MisbehavingServer({"body": STATUS * 4, part: 0.2}) as server:
        start = time.monotonic()
        code = cli.main(["--url", server.url, "--timeout", "1.5", "status"], prog="client")
        elapsed = time.monotonic() - start
    assert code == 1 and elapsed < 2.5, elapsed
    err = capsys.readouterr().err
    assert "no complete answer from" in err and "within 1.5 s" in err and "--timeout" in err


def test_only_idempotent_requests_are_retried():
    busy = {"status": 503, "body": b'{"error": "busy"}'}
    with MisbehavingServer(busy, {"body": STATUS}) as server:
        assert client.model_status(server.url) == {"model_version_status": []}
        assert len(server.requests) == 2
    with MisbehavingServer(busy, {"body": STATUS}) as server:
        with pytest.raises(client.ServingError, match="HTTP 503: busy"):
            client.predict([b"x"], server.url)
        assert server.requests == [("POST", "/v1/models/cornernet:predict")]
    with MisbehavingServer(busy) as server:
        with pytest.raises(client.ServingError, match="HTTP 503"):
            client.model_status(server.url, retries=1)
        assert len(server.requests) == 2
    with MisbehavingServer({"status": 404, "body": b'{"error": "no such model"}'}) as server:
        with pytest.raises(client.ServingError, match="no such model"):
            client.model_status(server.url)
        assert len(server.requests) == 1  # an answer, not a failure: no retry


@pytest.mark.parametrize("length", ["declared", "undeclared"])
def test_answers_larger_than_the_limit_are_refused(length):
    reply = {"body": b" " * 5000 + STATUS}
    if length == "undeclared":
        reply["length"] = None
    with MisbehavingServer(reply) as server:
        with pytest.raises(client.ServingError, match="larger than 4096 bytes.*--max-response"):
            client.model_status(server.url, max_response_bytes=4096)
        assert client.model_status(server.url) == {"model_version_status": []}


def test_cli_defaults_are_the_client_s():
    args = cli._parser().parse_args(["status"])
    assert args.retries == client.DEFAULT_RETRIES
    assert args.max_response_bytes == client.DEFAULT_MAX_RESPONSE_BYTES
    assert args.timeout == 60.0


# ------------------------------------------------- hostile servers and input


def _answer_text(box="[1, 2, 30, 40]", score="0.9", label="2"):
    """A :predict answer of one image with one detection and one padding slot (JSON text)."""
    row = (
        f'{{"detection_boxes": [{box}, [-1, -1, -1, -1]], "detection_scores": [{score}, -1], '
        f'"detection_classes": [{label}, -1], "num_detections": 1}}'
    )
    return f'{{"predictions": [{row}]}}'.encode()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"box": "[NaN, 2, 30, 40]"}, r"detection_boxes \[0\] is \[nan, 2, 30, 40\], not finite"),
        ({"box": "[1, 2, Infinity, 40]"}, r"detection_boxes \[0\] is \[1, 2, inf, 40\]"),
        ({"score": "7.5"}, r"detection_scores \[0\] is 7.5, not a score from 0 to 1"),
        ({"score": "NaN"}, r"detection_scores \[0\] is nan"),
        ({"label": "-12"}, r"detection_classes \[0\] is -12, not a class id >= 0"),
        ({"label": "1.5"}, r"detection_classes \[0\] is 1.5"),
    ],
    ids=["nan-box", "inf-box", "score", "nan-score", "negative-class", "fractional-class"],
)
def test_impossible_detections_are_refused_naming_the_field(fields, message):
    # Before: printed as detections.
    with MisbehavingServer({"body": _answer_text(**fields)}) as server:
        with pytest.raises(client.ServingError, match=message):
            client.predict([b"x"], server.url)
    with MisbehavingServer({"body": _answer_text()}) as server:  # a sane answer passes
        assert client.predict([b"x"], server.url)[0]["detection_classes"] == [2, -1]


@pytest.mark.parametrize(
    ("reply", "message"),
    [
        (
            {"status": 302, "headers": [("Location", "/v1/models/cornernet")]},
            "redirects in a loop .*pass the server's own address with --url",
        ),
        ({"body": b"[" * 200_000 + b"]" * 200_000}, "JSON nested too deeply to read"),
        (
            {"body": STATUS, "headers": [("X-Padding", "a" * 200_000)]},
            "has a malformed or oversized HTTP header",
        ),
    ],
    ids=["redirect-loop", "deep-json", "huge-header"],
)
def test_hostile_answers_are_named_not_tracebacks_or_unreachable(capsys, reply, message):
    with MisbehavingServer(reply) as server:
        code = cli.main(["--url", server.url, "--retries", "0", "status"], prog="client")
    err = capsys.readouterr().err
    assert code == 1 and re.search(message, err), err
    assert "cannot reach" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--url", "127.0.0.1:8501", "status"],
            "needs an http:// or https:// scheme, e.g. http://127.0.0.1:8501",
        ),
        (
            ["--protocol", "grpc", "--version", "99999999999999999999", "status"],
            "argument --version: expected an integer from 1 to 2**63 - 1",
        ),
        (["--version", "0", "status"], "argument --version: expected an integer from 1"),
        (["--proto=grpc", "status"], "unrecognized arguments: --proto=grpc"),
        (["predict", "--class", "c.json", "x.png"], "unrecognized arguments: --class"),
    ],
    ids=["no-scheme", "grpc-version-beyond-int64", "version-0", "abbreviated", "abbreviated-sub"],
)
def test_bad_addresses_and_versions_name_the_flag(capsys, argv, message):
    assert cli.main(argv, prog="client") == 2
    assert message in capsys.readouterr().err


def test_uint8_mode_checks_the_header_before_decoding(tmp_path, capsys):
    # A PNG header claiming 30000 x 30000 pixels (2.7 GB decoded) in a tiny file.
    ihdr = struct.pack(">IIBBBBB", 30_000, 30_000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + b"\0" * 64)
    with MisbehavingServer({"body": _answer_text()}) as server:
        code = cli.main(["--url", server.url, "predict", "--uint8", str(bomb)], prog="client")
        assert server.requests == []  # refused before anything is sent
    err = capsys.readouterr().err
    assert code == 2 and "bomb.png" in err and "too large" in err, err
