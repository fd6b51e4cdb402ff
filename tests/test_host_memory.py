"""TensorFlow's pooled host allocator: set before TensorFlow starts, by the tools that need it.

Each check runs in a fresh interpreter: the allocator is chosen once per process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cornernet_tf.utils.host_memory import HOST_ALLOCATOR_ENV

REPO = Path(__file__).resolve().parents[1]


def _probe(code: str, allocator: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != HOST_ALLOCATOR_ENV}
    env.update(PYTHONPATH=str(REPO), TF_CPP_MIN_LOG_LEVEL="2")
    if allocator is not None:
        env[HOST_ALLOCATOR_ENV] = allocator
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip()


def test_pooling_takes_effect_only_before_tensorflow_starts():
    probe = (
        "from cornernet_tf.utils.host_memory import pool_host_memory\n"
        "first = pool_host_memory()\n"
        "import tensorflow as tf\n"
        "tf.zeros([256, 256]).numpy()\n"
        "stats = tf.config.experimental.get_memory_info('CPU:0')\n"  # pooled allocator only
        "print(first, pool_host_memory(), stats['peak'] >= 256 * 256 * 4)\n"
    )
    assert _probe(probe) == "True False True"


@pytest.mark.parametrize(
    ("tool", "argv"),
    [
        ("train", ["--config", "c.yaml", "--data-dir", "d", "--model-dir", "m"]),
        ("evaluate", ["--config", "c.yaml", "--data-dir", "d", "--model", "m.keras"]),
    ],
)
@pytest.mark.parametrize(("allocator", "expected"), [(None, "true"), ("false", "false")])
def test_train_and_evaluate_ask_for_the_pool_unless_the_user_chose(tool, argv, allocator, expected):
    # The missing config stops the tool (exit 2) before TensorFlow is imported;
    # the setting must already be made by then.
    probe = (
        "import os, sys\n"
        f"from cornernet_tf.cli import {tool} as cli\n"
        f"code = cli.main({argv!r})\n"
        "heavy = sorted({'tensorflow', 'keras'} & set(sys.modules))\n"
        f"print(code, os.environ.get({HOST_ALLOCATOR_ENV!r}), heavy)\n"
    )
    assert _probe(probe, allocator) == f"2 {expected} []"
