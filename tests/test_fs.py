"""`cornernet_tf.utils.fs`: temporaries of killed writers go, those of live ones stay."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cornernet_tf.utils import fs

REPO = Path(__file__).resolve().parents[1]

STALE_NAMES = {
    ".model.keras.incomplete-ab12cd34.keras": "removed",  # a killed model save
    ".cornernet_float32.tflite.incomplete-x_9y8z7w.tmp": "removed",  # a killed TFLite write
    ".summary.json.incomplete-00000000.tmp": "removed",
    ".3.incomplete-qwertyui/": "removed",  # a killed SavedModel export (a folder)
    ".model.keras.ab12cd34.keras": "kept",  # not this module's pattern
    ".hidden": "kept",
    "model.keras": "kept",
    "4/": "kept",
}


def _python(script: str, *args: str, **popen):
    """`script` in a fresh interpreter that imports the package from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-c", script, *args], env=env, **popen)


def test_stale_temporaries_are_removed_by_the_next_write(tmp_path):
    for name in STALE_NAMES:
        if name.endswith("/"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "saved_model.pb").write_bytes(b"partial")
        else:
            (tmp_path / name).write_bytes(b"partial")
        os.utime(tmp_path / name, (time.time() - 60, time.time() - 60))
    fresh = tmp_path / ".config.yaml.incomplete-fresh123.tmp"  # may be between create and lock
    fresh.write_bytes(b"")
    fs.atomic_write_text(tmp_path / "classes.json", "{}")
    left = {p.name + ("/" if p.is_dir() else "") for p in tmp_path.iterdir()}
    assert left == {n for n, fate in STALE_NAMES.items() if fate == "kept"} | {
        fresh.name,
        "classes.json",
    }


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_the_sweep_leaves_a_fifo_named_like_a_stale_temporary(tmp_path):
    # Opening a FIFO for reading blocks until a writer comes: the sweep must
    # not open it, so the write in a fresh process finishes.
    fifo = tmp_path / ".detections.json.incomplete-abcdefgh.tmp"
    os.mkfifo(fifo)
    os.utime(fifo, (time.time() - 3600,) * 2)
    script = (
        "import sys\n"
        "from cornernet_tf.utils.fs import atomic_write_text\n"
        "atomic_write_text(sys.argv[1], '[]')\n"
    )
    assert _python(script, str(tmp_path / "detections.json")).wait(timeout=60) == 0
    assert (tmp_path / "detections.json").read_text() == "[]"
    assert fifo.is_fifo()


def test_the_temporary_of_a_live_writer_stays_and_of_a_killed_one_goes(tmp_path):
    script = (
        "import sys, time\n"
        "from cornernet_tf.utils.fs import atomic_path\n"
        "with atomic_path(sys.argv[1], suffix='.keras') as tmp:\n"
        "    open(tmp, 'wb').write(b'half a model')\n"
        "    print(tmp, flush=True)\n"
        "    time.sleep(120)\n"
    )
    proc = _python(script, str(tmp_path / "model.keras"), stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(proc.stdout.readline().strip())
        os.utime(tmp, (time.time() - 60, time.time() - 60))
        assert fs.remove_stale_temporaries(tmp_path) == [] and tmp.exists()  # writer alive
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert fs.remove_stale_temporaries(tmp_path) == [str(tmp)]
        assert list(tmp_path.iterdir()) == []
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
