"""`cornernet_tf.serving.grpc` against a double of TF Serving's gRPC API.

The client runs against `tests/serving_double_grpc.py`, an in-process gRPC
test double of TF Serving (the real server cannot be installed here) serving
the session fixtures `saved_model_root` / `saved_model` (conftest.py).
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import CLASS_NAMES, REPO, png, random_image
from serving_double_grpc import GrpcServingDouble

from cornernet_tf.serving import cli, common
from cornernet_tf.serving import grpc as client

OUTPUTS = common.OUTPUT_NAMES


@pytest.fixture(scope="module")
def server(saved_model_root, saved_model):
    with GrpcServingDouble(
        saved_model_root / "cornernet",
        "cornernet",
        loaded=saved_model,
        labels={"stable": 1, "canary": 2},
        lifetime=300,
    ) as double:
        yield double


def _assert_matches(results, expected):
    assert len(results) == len(expected["num_detections"])
    for i, result in enumerate(results):
        assert isinstance(result["num_detections"], int)
        for name in OUTPUTS:
            np.testing.assert_array_equal(result[name], expected[name][i].numpy())


def test_grpc_predict_equals_the_saved_model(server, saved_model):
    images = [png(random_image(6)), png(random_image(7, 100, 60))]
    expected = saved_model.signatures["serving_default"](images=tf.constant(images))
    _assert_matches(client.predict(images, server.address, "cornernet"), expected)

    pixels = np.stack([random_image(8), random_image(9)])
    expected = saved_model.signatures["detect_uint8"](images=tf.constant(pixels))
    with client.GrpcClient(server.address) as channel:  # one channel, several calls
        for batch in (pixels, list(pixels), [image.tolist() for image in pixels]):
            results = channel.predict(batch, signature=client.SIGNATURE_UINT8, version=1)
            _assert_matches(results, expected)
        results = channel.predict(pixels, signature="detect_uint8", label="stable")
        _assert_matches(results, expected)


def test_grpc_status_and_metadata_read_like_rest(server):
    assert client.model_status(server.address, "cornernet") == {
        "model_version_status": [
            {
                "version": "1",
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
        ]
    }
    metadata = client.model_metadata(server.address, "cornernet", timeout=30)
    assert metadata["model_spec"] == {"name": "cornernet", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert set(signatures) >= {"serving_default", "detect_uint8"}
    images = signatures["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_STRING"
    assert images["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    boxes = signatures["detect_uint8"]["outputs"]["detection_boxes"]
    assert [d["size"] for d in boxes["tensor_shape"]["dim"]] == ["-1", "100", "4"]


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed on exit: nothing listens there


def _raises(call, code, *words):
    with pytest.raises(common.ServingError) as info:
        call()
    error = info.value
    assert error.code == code
    message = str(error)
    for word in words:
        assert word in message, message
    # The cause is in the message; no grpc exception is chained to print its traceback.
    assert error.__cause__ is None and error.__suppress_context__
    assert "Traceback" not in message and "debug_error_string" not in message
    return message


def test_grpc_errors_name_the_cause_and_the_fix(server):
    image = [png(random_image(10, 40, 40))]
    _raises(
        lambda: client.predict(image, server.address, "other"),
        "NOT_FOUND",
        "Servable not found for request: Latest(other)",
        "check --model",
    )
    _raises(
        lambda: client.predict(image, server.address, version=7),
        "NOT_FOUND",
        "Specific(cornernet, 7)",
    )
    _raises(
        lambda: client.predict(image, server.address, label="canary"),  # a label for version 2
        "NOT_FOUND",
        "Specific(cornernet, 2)",
    )
    _raises(
        lambda: client.model_status(server.address, label="nope"),
        "INVALID_ARGUMENT",
        "Unrecognized servable version label: nope",
        "version_labels",
    )
    _raises(
        lambda: client.predict([b"not an image"], server.address),
        "INVALID_ARGUMENT",
        "not a JPEG, PNG",
        "send JPEG/PNG file bytes",
    )
    _raises(
        lambda: client.predict(image, server.address, signature=client.SIGNATURE_UINT8),
        "INVALID_ARGUMENT",
        "Expects arg[0] to be uint8 but string is provided",
    )
    _raises(
        lambda: client.predict(image, server.address, signature="detect"),
        "FAILED_PRECONDITION",
        'Serving signature key "detect" not found.',
        "`metadata` lists",
    )


def test_grpc_deadline_and_unreachable_server(server):
    image = [png(random_image(11, 40, 40))]
    server.delay = 1.0
    try:
        _raises(
            lambda: client.predict(image, server.address, timeout=0.2),
            "DEADLINE_EXCEEDED",
            "within 0.2 s",
            "raise --timeout",
        )
    finally:
        server.delay = 0.0
    address = f"127.0.0.1:{_free_port()}"
    _raises(
        lambda: client.model_status(address, timeout=5),
        "UNAVAILABLE",
        f"cannot reach TensorFlow Serving's gRPC port at {address}",
        "docker compose",
    )


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ([], "`images` is empty"),
        ([b"\x89PNG", np.zeros((4, 4, 3), np.uint8)], "mixes encoded files"),
        ([np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 3), np.uint8)], "shapes"),
        ([np.zeros((4, 4, 3), np.float32) + 0.5], "uint8 pixels in \\[0, 255\\]"),
        ([np.zeros((4, 4), np.uint8)], "RGB"),
    ],
)
def test_grpc_client_checks_images_before_sending(images, message):
    with pytest.raises(ValueError, match=message):
        client.predict_request(images, signature=client.SIGNATURE_UINT8)


def test_grpc_client_checks_its_arguments():
    with pytest.raises(ValueError, match="HOST:PORT"):
        client.GrpcClient("http://localhost:8500")
    with pytest.raises(ValueError, match="not both"):
        client.predict_request([b"x"], version=1, label="stable")
    with client.GrpcClient("127.0.0.1:1") as channel:
        with pytest.raises(ValueError, match="positive"):
            channel.status(timeout=0)


def test_cli_over_grpc(server, saved_model_root, tmp_path, capsys):
    paths = []
    for i, image in enumerate([random_image(12), random_image(13, 80, 96)]):
        paths.append(tmp_path / f"image{i}.png")
        paths[-1].write_bytes(png(image))
    classes = saved_model_root / "cornernet" / "1" / "assets" / "classes.json"
    base = ["--protocol", "grpc", "--grpc-address", server.address]
    args = ["predict", *map(str, paths), "--classes", str(classes), "--score-threshold", "0"]
    assert cli.main([*base, *args], prog="client") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: ") and "detections" in lines[0]
    detections = [line for line in lines if line.startswith("  ")]
    assert detections and all(line.split()[0] in CLASS_NAMES for line in detections)

    assert cli.main([*base, "predict", str(paths[1]), "--uint8", "--json"], prog="client") == 0
    result = json.loads(capsys.readouterr().out)[str(paths[1])]
    assert len(result["detection_boxes"]) == 100 and isinstance(result["num_detections"], int)

    assert cli.main([*base, "--label", "stable", "status"], prog="client") == 0
    assert json.loads(capsys.readouterr().out)["model_version_status"][0]["state"] == "AVAILABLE"


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (["--model", "other", "status"], 1, ["NOT_FOUND", "versions of model other"]),
        (["predict", "{missing}"], 2, ["cannot read image"]),
        (["predict", "{bad}"], 1, ["INVALID_ARGUMENT", "not a JPEG, PNG"]),
        (["predict", "--columnar", "{bad}"], 2, ["--columnar is a REST format"]),
        (["--version", "1", "--label", "x", "status"], 2, ["not allowed with argument"]),
        (["--timeout", "-1", "status"], 2, ["--timeout: expected a positive number"]),
    ],
)
def test_cli_over_grpc_exit_codes(server, tmp_path, capsys, args, code, words):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    paths = {"missing": str(tmp_path / "missing.png"), "bad": str(bad)}
    args = [arg.format(**paths) for arg in args]
    base = ["--protocol", "grpc", "--grpc-address", server.address]
    assert cli.main([*base, *args], prog="client") == code
    err = capsys.readouterr().err
    assert all(word in err for word in words), err
    assert "Traceback" not in err


def test_client_script_over_grpc(server, tmp_path):
    path = tmp_path / "image.png"
    path.write_bytes(png(random_image(14, 64, 64)))
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "tf_serving" / "client.py"),
            "--protocol",
            "grpc",
            "--grpc-address",
            server.address,
            "predict",
            str(path),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)[str(path)]["detection_scores"]) == 100
