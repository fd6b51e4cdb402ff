"""`cornernet_tf.serving`: what it imports, its command line, its batching file."""

import json
import os
import subprocess
import sys

import pytest
from export_helpers import REPO

from cornernet_tf.serving import batching, cli, common, rest
from cornernet_tf.serving import grpc as grpc_client

MODULES = [
    "cornernet_tf.serving",
    "cornernet_tf.serving.common",
    "cornernet_tf.serving.rest",
    "cornernet_tf.serving.grpc",
    "cornernet_tf.serving.batching",
    "cornernet_tf.serving.cli",
]
HEAVY = ["tensorflow", "keras", "tf_keras", "grpc", "tensorflow_serving"]

# Imports the serving modules, runs `--help`, then prints the heavy modules loaded.
_PROBE = """
import contextlib, importlib, io, json, sys
for name in {modules!r}:
    importlib.import_module(name)
with contextlib.redirect_stdout(io.StringIO()) as help_text:
    code = importlib.import_module("cornernet_tf.serving.cli").main(["--help"], prog="client")
assert code == 0 and "--protocol" in help_text.getvalue(), (code, help_text.getvalue())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {heavy!r})
print(json.dumps(heavy))
"""


def _heavy_modules_loaded():
    code = _PROBE.format(modules=MODULES, heavy=HEAVY)
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_cornernet_tf_serving_imports_no_tensorflow():
    assert _heavy_modules_loaded() == []


def test_the_cli_defaults_are_the_clients():
    # Repeated in the command line so that `--help` imports no network library.
    assert cli._DEFAULT_URL == rest.DEFAULT_URL
    assert cli._DEFAULT_GRPC_ADDRESS == grpc_client.DEFAULT_ADDRESS


def test_rest_addresses_versions_and_labels():
    assert rest._model_url("http://h:1/", "m", None) == "http://h:1/v1/models/m"
    assert rest._model_url("http://h:1", "m", 3) == "http://h:1/v1/models/m/versions/3"
    assert (
        rest._model_url("http://h:1", "m", None, "stable") == "http://h:1/v1/models/m/labels/stable"
    )
    with pytest.raises(ValueError, match="not both"):
        rest._model_url("http://h:1", "m", 3, "stable")


def test_split_batch_and_format_detections():
    rows = common.split_batch({"a": [1, 2], "b": [[3], [4]]})
    assert rows == [{"a": 1, "b": [3]}, {"a": 2, "b": [4]}]
    with pytest.raises(common.ServingError, match="different batch sizes"):
        common.split_batch({"a": [1, 2], "b": [3]})
    result = {
        "num_detections": 2,
        "detection_boxes": [[1, 2, 30, 40], [5, 5, 9, 9], [-1, -1, -1, -1]],
        "detection_scores": [0.9, 0.1, -1],
        "detection_classes": [1, 7, -1],
    }
    lines = common.format_detections(result, ["circle", "square"], score_threshold=0.05)
    assert lines == [
        "square       0.900  [1.0, 2.0, 30.0, 40.0]",
        "7            0.100  [5.0, 5.0, 9.0, 9.0]",
    ]


def _parse_batching(text):
    fields = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, rest_ = line.partition(" ")
            fields[name.rstrip(":")] = rest_.strip("{} ").removeprefix("value: ").strip()
    return fields


def test_batching_config_defaults_to_the_cpu_count(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 12)
    fields = _parse_batching(batching.batching_config())
    assert fields == {
        "max_batch_size": "8",
        "batch_timeout_micros": "5000",
        "max_enqueued_batches": "64",
        "num_batch_threads": "12",
        "pad_variable_length_inputs": "false",
    }
    fields = _parse_batching(batching.batching_config(3, max_batch_size=16, batch_timeout_micros=0))
    assert (fields["num_batch_threads"], fields["max_batch_size"]) == ("3", "16")
    assert fields["batch_timeout_micros"] == "0"
    for bad in ({"num_batch_threads": 0}, {"max_batch_size": 1.5}, {"batch_timeout_micros": -1}):
        with pytest.raises(ValueError, match="must be a"):
            batching.batching_config(**bad)


def test_committed_batching_config_is_the_generated_default(monkeypatch):
    committed = (REPO / "tf_serving" / "batching.config").read_text()
    threads = int(_parse_batching(committed)["num_batch_threads"])
    monkeypatch.setattr(os, "cpu_count", lambda: threads)
    assert committed == batching.batching_config()


def test_cli_batching_config(tmp_path, capsys):
    output = tmp_path / "batching.config"
    assert cli.main(["batching-config", "--num-batch-threads", "6", "--output", str(output)]) == 0
    assert _parse_batching(output.read_text())["num_batch_threads"] == "6"
    assert cli.main(["batching-config", "--max-batch-size", "4"]) == 0
    assert _parse_batching(capsys.readouterr().out)["max_batch_size"] == "4"
    assert cli.main(["batching-config", "--num-batch-threads", "0"], prog="client") == 2
    assert "`num_batch_threads` must be a positive integer" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli.main(["batching-config", "--output", str(tmp_path / "file" / "x")]) == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        ([], 2),
        (["--protocol", "soap", "status"], 2),
        (["--help"], 0),
        (["predict", "--help"], 0),
    ],
)
def test_cli_usage_exit_codes(argv, code, capsys):
    assert cli.main(argv, prog="client") == code
    captured = capsys.readouterr()
    assert (captured.out if code == 0 else captured.err).startswith("usage: client")
