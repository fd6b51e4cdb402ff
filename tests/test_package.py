"""The top-level package: a cheap import, the Keras backend check, deprecated names."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _python(code, **env):
    import os

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
    )


def test_import_loads_no_tensorflow_and_keras_still_finds_the_classes(tmp_path):
    from cornernet_tf.models import cornernet

    cornernet.CornerNet.from_preset("tiny").save(tmp_path / "m.keras")
    # A fresh process: importing Keras after the package registers its classes.
    load = f"""
import sys
import cornernet_tf
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "eager import"
import keras
model = keras.saving.load_model({str(tmp_path / "m.keras")!r})
print(type(model).__name__)
"""
    result = _python(load)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "CornerNet"


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_keras_backends_are_refused_in_one_line(backend):
    result = _python("import cornernet_tf", KERAS_BACKEND=backend)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last == (
        f"ImportError: cornernet_tf needs the TensorFlow backend of Keras, but "
        f"KERAS_BACKEND={backend!r}; unset it or set KERAS_BACKEND=tensorflow."
    )


def test_deprecated_names_warn_and_still_work():
    from cornernet_tf import CornerNet, postprocess
    from cornernet_tf.config import TestConfig

    with pytest.warns(DeprecationWarning, match="DEFAULT_TEST_CONFIG"):
        assert CornerNet.DEFAULT_TEST_CONFIG == TestConfig().to_dict()
    with pytest.warns(DeprecationWarning, match="cornernet_tf.inference.soft_nms.soft_nms"):
        from cornernet_tf.inference.soft_nms import soft_nms

        assert postprocess.soft_nms is soft_nms
    with pytest.raises(AttributeError):
        postprocess.postprocess_multiscale  # noqa: B018 - removed, not moved
