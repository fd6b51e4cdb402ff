"""`cornernet_tf.models.load_model` and the tools' `--model`: errors that name the problem."""

import os
import re
from pathlib import Path

import keras
import numpy as np
import pytest
from harness import save_small_model

from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.models import load_model


@pytest.mark.parametrize(
    ("name", "contents", "message"),
    [
        ("nope.keras", None, "nope.keras' not found"),
        ("weights.h5", b"x", "is not a .keras file"),
        ("broken.keras", b"not a zip", "is truncated or corrupt"),
    ],
)
def test_load_model_names_the_problem(tmp_path, name, contents, message):
    if contents is not None:
        (tmp_path / name).write_bytes(contents)
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / name)


def test_load_model_refuses_other_models(tmp_path):
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="holds a Sequential, not a CornerNet"):
        load_model(tmp_path / "other.keras")


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model_files")
    data = Path(save_small_model(folder, seed=0)).read_bytes()
    (folder / "truncated.keras").write_bytes(data[: len(data) // 2])
    (folder / "random.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "empty.keras").touch()
    os.mkfifo(folder / "pipe.keras")
    (folder / "exported" / "1").mkdir(parents=True)
    (folder / "exported" / "1" / "saved_model.pb").write_bytes(b"")
    return {
        "truncated": (folder / "truncated.keras", "truncated or corrupt"),
        "random-bytes": (folder / "random.keras", "truncated or corrupt"),
        "empty": (folder / "empty.keras", "truncated or corrupt"),
        "savedmodel-dir": (folder / "exported" / "1", "is a SavedModel folder"),
        "fifo": (folder / "pipe.keras", r"is a named pipe \(FIFO\)"),
        "missing": (folder / "none.keras", "not found"),
    }


@pytest.mark.parametrize(
    "case", ["truncated", "random-bytes", "empty", "savedmodel-dir", "fifo", "missing"]
)
def test_a_bad_model_path_is_named_for_what_it_is(model_files, case, capsys):
    path, message = model_files[case]
    with pytest.raises(ValueError, match=message):
        load_model(path)
    code = predict_cli.main(["--model", str(path), "--output", str(path.parent / "o"), "x.png"])
    assert code == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "Traceback" not in err
