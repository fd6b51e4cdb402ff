"""Every module of the package imports alone, in a fresh interpreter.

An import that works only after something else was imported first (Keras, or
another module of the package) fails here, whatever order the other tests
import things in.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cornernet_tf"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(_module_name(p) for p in PACKAGE.rglob("*.py"))


def test_every_module_is_listed():
    assert {"cornernet_tf", "cornernet_tf.convert", "cornernet_tf.layers.fire"} <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_module_imports_alone(module):
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONSTARTUP", "PYTHONPATH"}}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # `-I` (isolated): no user site, no PYTHON* variables, no current directory
    # on the path; the package comes from the environment's installation.
    result = subprocess.run(
        [sys.executable, "-I", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=PACKAGE.parent.parent,
    )
    assert result.returncode == 0, result.stderr[-3000:]
