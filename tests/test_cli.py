"""The command-line tools as a whole: `--help`, usage errors, exit codes, `--config NAME`.

What each tool does is tested with it (test_train.py, test_evaluation.py,
test_predict_scripts.py, test_export_script.py, test_convert.py,
test_shapes.py); here are the rules they share. `--help` runs in subprocesses,
so that "no TensorFlow was imported" is about the tool, not this test session.
"""

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cornernet_tf.cli import evaluate as evaluate_cli
from cornernet_tf.cli import export as export_cli
from cornernet_tf.cli import train as train_cli
from cornernet_tf.spec import catalog

REPO = Path(__file__).resolve().parents[1]
CONFIGS = sorted(path.stem for path in (REPO / "configs").glob("*.yaml"))

# Every tool with arguments that satisfy its parser (the paths need not exist).
TOOLS = {
    "train": ["--config", "c.yaml", "--data-dir", "d", "--model-dir", "m"],
    "evaluate": ["--config", "c.yaml", "--data-dir", "d", "--model", "m.keras"],
    "predict": ["--model", "m.keras", "--output", "o", "image.png"],
    "export": ["--model", "m.keras", "--output", "o", "--format", "tflite"],
    "convert": ["checkpoint.pkl", "--output", "o.keras"],
    "make_shapes": ["--output", "o"],
}
SCRIPTS = {  # scripts/<file>.py → tool
    "train": "train",
    "evaluate": "evaluate",
    "predict": "predict",
    "export": "export",
    "convert_official": "convert",
    "make_shapes": "make_shapes",
}


def _run(args, **kwargs):
    env = dict(os.environ, PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, timeout=120, **kwargs
    )


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_help_imports_no_tensorflow(tool):
    # `python -m` and the import of the module itself: --help must not wait for
    # TensorFlow (seconds) before printing.
    probe = (
        "import sys\n"
        f"from cornernet_tf.cli import {tool} as cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "heavy = sorted({'tensorflow', 'keras', 'torch'} & set(sys.modules))\n"
        "print('RESULT', code, heavy, file=sys.stderr)\n"
    )
    proc = _run(["-c", probe], cwd=REPO)
    assert "RESULT 0 []" in proc.stderr, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: ")
    proc = _run(["-m", f"cornernet_tf.cli.{tool}", "--help"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("usage: ")


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_scripts_are_the_same_tools(script):
    proc = _run([f"scripts/{script}.py", "--help"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    module = importlib.import_module(f"cornernet_tf.cli.{SCRIPTS[script]}")
    description = module.__doc__.splitlines()[0]
    assert " ".join(description.split()[:4]) in " ".join(proc.stdout.split())


def test_demo_script_still_answers_help():
    proc = _run(["scripts/demo.py", "--help"], cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "--output" in proc.stdout


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_unknown_flag_is_a_usage_error(tool, capsys):
    cli = importlib.import_module(f"cornernet_tf.cli.{tool}")
    with pytest.raises(SystemExit) as exited:
        cli.main([*TOOLS[tool], "--no-such-flag"])
    assert exited.value.code == 2
    assert "error: unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_duplicated_choices_match_the_library():
    from cornernet_tf import export, training

    # Repeated in the tools so that --help does not import TensorFlow.
    assert export_cli.QUANTIZATIONS == export.QUANTIZATIONS
    assert export_cli.DEFAULT_MAX_IMAGE_SIDE == export.DEFAULT_MAX_IMAGE_SIDE
    assert train_cli.STRATEGIES == training.STRATEGIES


# ---------------------------------------------------------------- --config NAME


def test_packaged_configs_are_the_repository_configs():
    assert catalog.packaged_config_names() == CONFIGS
    assert {"cornernet_hg104_coco", "shapes_tiny"} <= set(CONFIGS)


@pytest.mark.parametrize("name", ["shapes_tiny", "shapes_tiny.yaml"])
def test_config_by_name(name):
    path = catalog.resolve_config_path(name)
    assert path.samefile(REPO / "configs" / "shapes_tiny.yaml")


def test_config_file_wins_over_a_packaged_name(tmp_path, monkeypatch):
    (tmp_path / "shapes_tiny.yaml").write_text("train:\n  steps: 3\n")
    monkeypatch.chdir(tmp_path)
    assert catalog.resolve_config_path("shapes_tiny.yaml") == Path("shapes_tiny.yaml")
    # Not a file here, so the packaged one.
    assert catalog.resolve_config_path("shapes_tiny").parent.name == "configs"


@pytest.mark.parametrize(
    "value", ["no_such_config", "configs/no_such.yaml", "elsewhere/shapes_tiny"]
)
def test_unknown_config_lists_the_packaged_names(value):
    with pytest.raises(catalog.UnknownConfigError) as error:
        catalog.resolve_config_path(value)
    message = str(error.value)
    assert "\n" not in message
    assert f"--config {value}: " in message
    assert message.endswith(f"packaged configs: {', '.join(CONFIGS)}.")


def test_train_loads_a_packaged_config_by_name(tmp_path, capsys):
    # A bad override is reported after the config is found and read, and before
    # any training work: the packaged file was loaded.
    argv = ["--config", "shapes_tiny", "--data-dir", str(tmp_path), "--model-dir", "m"]
    assert train_cli.main([*argv, "--set", "train.steps=many"]) == 2
    err = capsys.readouterr().err
    assert "train.steps must be an integer" in err
    assert err.count("\n") == 1


def test_train_command_ends_with_the_code_and_output_of_main():
    # `run` ends the process itself (os._exit, no interpreter shutdown) once
    # `main` returns: its exit code and its buffered output must come through.
    code = (
        "from cornernet_tf.cli import train\n"
        "train.main = lambda: (print('written', end=''), 3)[1]\n"
        "train.run()"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )
    assert (proc.returncode, proc.stdout) == (3, "written"), proc.stderr[-2000:]


def test_train_refuses_a_missing_dataset_before_importing_tensorflow(tmp_path):
    missing = tmp_path / "no_data"
    code = (
        "import sys\n"
        "from cornernet_tf.cli import train\n"
        f"code = train.main(['--config', 'shapes_tiny', '--data-dir', {str(missing)!r}, "
        "'--model-dir', 'm'])\n"
        "print(code, 'tensorflow' in sys.modules)"
    )
    proc = _run(["-c", code], cwd=REPO)
    assert proc.stdout.split() == ["2", "False"], proc.stderr[-2000:]
    assert proc.stderr.startswith(f"error: --data-dir {missing}: no such directory")
    assert proc.stderr.count("\n") == 1


@pytest.mark.parametrize("cli", [train_cli, evaluate_cli], ids=["train", "evaluate"])
def test_unknown_config_name_exits_2_with_one_line(cli, tmp_path, capsys):
    argv = ["--config", "cornernet_hg999", "--data-dir", str(tmp_path)]
    argv += ["--model-dir", "m"] if cli is train_cli else ["--model", "m.keras"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: --config cornernet_hg999: no such file")
    assert f"packaged configs: {', '.join(CONFIGS)}." in err


def test_evaluate_accepts_a_config_name_with_suffix(tmp_path, capsys):
    argv = ["--config", "cornernet_hg104_coco.yaml", "--data-dir", str(tmp_path)]
    assert evaluate_cli.main([*argv, "--model", str(tmp_path / "missing.keras")]) == 2
    # Past the config: the next check (the model file) is the one that fails.
    assert "missing.keras: model file not found" in capsys.readouterr().err


# ------------------------------------------------------------------ exit codes


def test_export_bad_model_file_exits_2(tmp_path, capsys):
    model = tmp_path / "model.keras"
    model.write_bytes(b"not a keras zip")
    argv = ["--model", str(model), "--output", str(tmp_path / "out"), "--format", "saved_model"]
    assert export_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("export.py: error: ") and "is truncated or corrupt" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "out").exists()
