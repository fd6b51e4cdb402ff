"""The top-level package: a light import, explicit registration, the Keras backend check."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def test_root_import_loads_no_tensorflow_and_models_registers_the_classes(tmp_path):
    from cornernet_tf.models import CornerNet

    CornerNet.from_preset("tiny").save(tmp_path / "m.keras")
    # A fresh process, Keras imported last: registration must not depend on order.
    load = f"""
import sys
import cornernet_tf
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "eager import"
import cornernet_tf.models
import keras
model = keras.saving.load_model({str(tmp_path / "m.keras")!r})
print(type(model).__name__)
"""
    result = _python(load)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "CornerNet"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_keras_backends_are_refused_in_one_line(backend):
    result = _python("import cornernet_tf.models", KERAS_BACKEND=backend)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: cornernet_tf needs the TensorFlow backend of Keras, but Keras is set to "
        f"{backend!r}; unset KERAS_BACKEND (or set it to tensorflow) and check "
        "~/.keras/keras.json."
    )
