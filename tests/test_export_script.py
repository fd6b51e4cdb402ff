"""`cornernet-export` (`scripts/export.py`): arguments wired to `cornernet_tf.export`, exit codes.

The export functions are replaced by fakes (they are tested in
test_saved_model.py and test_tflite.py); only the script's own work is tested.
"""

import pytest

from cornernet_tf import export
from cornernet_tf.cli import export as export_script


def test_cli_wires_arguments_to_the_export(tmp_path, monkeypatch, capsys):
    model = object()  # only passed through: loading and exporting are faked
    calls = []
    monkeypatch.setattr(export_script, "load_model", lambda path: model)

    def fake_export(*args, **kwargs):
        calls.append((args, kwargs))
        return tmp_path / "cornernet" / "4"

    monkeypatch.setattr(export, "export_saved_model", fake_export)
    argv = ["--model", "m.keras", "--output", str(tmp_path), "--format", "saved_model"]
    assert export_script.main([*argv, "--version", "4", "--name", "cornernet"]) == 0
    assert calls == [
        ((model, str(tmp_path)), {"name": "cornernet", "version": 4, "max_image_side": 2048})
    ]
    assert "SavedModel written to" in capsys.readouterr().out


def test_cli_reports_bad_input(tmp_path, capsys):
    missing = ["--model", str(tmp_path / "nope.keras"), "--output", str(tmp_path)]
    assert export_script.main([*missing, "--format", "saved_model"]) == 2
    assert "nope.keras' not found" in capsys.readouterr().err
    (tmp_path / "weights.h5").write_bytes(b"x")
    wrong = ["--model", str(tmp_path / "weights.h5"), "--output", str(tmp_path)]
    assert export_script.main([*wrong, "--format", "saved_model"]) == 2
    assert "is not a .keras file" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    broken = ["--model", str(tmp_path / "broken.keras"), "--output", str(tmp_path)]
    assert export_script.main([*broken, "--format", "saved_model"]) == 2
    assert "is truncated or corrupt" in capsys.readouterr().err
    for argv, message in [
        ([*missing, "--format", "coreml"], "invalid choice: 'coreml'"),
        ([*missing, "--format", "saved_model", "--version", str(2**63)], "int64"),
        ([*missing, "--format", "onnx", "--version", "3"], "--version applies"),
        ([*missing, "--format", "saved_model", "--input-type", "float32"], "apply to --format"),
        ([*missing, "--form", "tflite"], "required: --format"),  # no abbreviations
        ([*missing, "--format", "saved_model", "--quantize", "int8"], "--quantize applies"),
        ([*missing, "--format", "tflite", "--quantize", "int8"], "needs --data-dir"),
    ]:
        with pytest.raises(SystemExit) as exited:
            export_script.main(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ValueError("export_tflite: ['x'] already exist"), 2),  # bad input
        (RuntimeError("convert_tflite: conversion to TFLite builtin ops failed"), 1),
    ],
)
def test_cli_exit_code_tells_bad_input_from_failed_work(tmp_path, monkeypatch, capsys, error, code):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(export_script, "load_model", lambda path: object())
    monkeypatch.setattr(export, "export_tflite", fail)
    argv = ["--model", "m.keras", "--output", str(tmp_path), "--format", "tflite"]
    assert export_script.main(argv) == code
    assert f"export.py: error: {error}" in capsys.readouterr().err


def test_cli_wires_tflite_and_onnx_options(tmp_path, monkeypatch, capsys):
    from cornernet_tf.export import onnx as onnx_export

    model = object()
    calls = {}
    monkeypatch.setattr(export_script, "load_model", lambda path: model)

    def fake_tflite(*args, **kwargs):
        calls["tflite"] = kwargs
        path = tmp_path / "cornernet_float32.tflite"
        path.write_bytes(b"x")
        return {"none": path}

    def fake_onnx(*args, **kwargs):
        calls["onnx"] = kwargs
        path = tmp_path / "cornernet.onnx"
        path.write_bytes(b"x")
        return path

    monkeypatch.setattr(export, "export_tflite", fake_tflite)
    monkeypatch.setattr(onnx_export, "export_onnx", fake_onnx)
    argv = ["--model", "m.keras", "--output", str(tmp_path), "--input-size", "127", "127"]
    assert export_script.main([*argv, "--format", "tflite", "--input-type", "float32"]) == 0
    assert calls["tflite"]["input_type"] == "float32" and calls["tflite"]["debug"] is False
    assert export_script.main([*argv, "--format", "tflite", "--debug-heads"]) == 0
    assert calls["tflite"]["debug"] is True and calls["tflite"]["input_size"] == (127, 127)
    assert export_script.main([*argv, "--format", "onnx"]) == 0
    assert calls["onnx"] == {
        "name": "cornernet",
        "input_size": (127, 127),
        "overwrite": False,
    }
    assert "ONNX written to" in capsys.readouterr().out
