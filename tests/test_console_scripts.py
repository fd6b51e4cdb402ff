"""The installed console scripts, run as users run them: fresh processes, chained.

The recipe of docs/custom_data.md, each step a `cornernet-*` executable of this
environment in its own process, on files the previous step wrote, under a
folder with non-ASCII names: a Pascal VOC folder (made from the shapes
dataset) converted and split, checked, then train, evaluate, predict, export. Converting official
checkpoints through `cornernet-convert` is in test_convert.py (Hourglass-104)
and test_squeeze.py (CornerNet-Squeeze).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TIMEOUT = 600

# A one-level, one-stack hourglass at 63x63: the workflow, not the accuracy.
SMALL = [
    "data.input_size=63",
    "data.output_size=16",
    "data.border=16",
    "train.batch_size=4",
    "train.steps=2",
    "train.checkpoint_every=2",
    "train.log_every=1",
    "train.jit_compile=false",
    "model.overrides={num_stacks: 1, dims: [16, 16], modules: [1, 1], "
    "pre_dim: 8, cnv_dim: 16, pool_dim: 8}",
]


def _run(tool, *args, cwd):
    executable = BIN / tool
    assert executable.is_file(), f"{executable}: console script not installed"
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "TF_CONFIG"}}
    return subprocess.run(
        [str(executable), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        cwd=cwd,
    )


def _ok(result):
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    root = tmp_path_factory.mktemp("scripts") / "données 写真"
    root.mkdir()
    data, run = root / "jeu de données", root / "modèle"
    _ok(
        _run(
            "cornernet-make-shapes",
            "--output",
            data,
            "--train",
            8,
            "--val",
            3,
            "--size",
            64,
            "--format",
            "png",
            cwd=root,
        )
    )
    sets = [f"--set={item}" for item in SMALL]
    _ok(
        _run(
            "cornernet-train",
            "--config",
            "shapes_tiny",
            "--data-dir",
            data,
            "--model-dir",
            run,
            "--verbose",
            2,
            *sets,
            cwd=root,
        )
    )
    return root, data, run, sets


@pytest.mark.slow
def test_train_writes_the_model_and_its_summary(workflow):
    _, _, run, _ = workflow
    assert (run / "model.keras").is_file()
    assert json.loads((run / "summary.json").read_text())["step"] == 2


@pytest.mark.slow
def test_evaluate_predict_and_export_read_what_train_wrote(workflow):
    root, data, run, sets = workflow
    model = run / "model.keras"
    metrics = root / "métriques.json"
    _ok(
        _run(
            "cornernet-evaluate",
            "--config",
            "shapes_tiny",
            "--data-dir",
            data,
            "--model",
            model,
            "--output",
            metrics,
            *sets,
            cwd=root,
        )
    )
    assert set(json.loads(metrics.read_text())) >= {"AP", "AP50"}

    images = sorted((data / "val2017").iterdir())
    predictions = root / "prédictions"
    _ok(_run("cornernet-predict", "--model", model, "--output", predictions, *images, cwd=root))
    assert {p.stem for p in predictions.glob("*.png")} >= {p.stem for p in images}

    exports = root / "exportés"

    def export(*options):
        _ok(_run("cornernet-export", "--model", model, "--output", exports, *options, cwd=root))

    export("--format", "saved_model")
    assert (exports / "cornernet" / "1" / "saved_model.pb").is_file()
    export("--format", "tflite", "--quantize", "none", "--input-size", 63, 63)
    assert list(exports.glob("*.tflite"))
