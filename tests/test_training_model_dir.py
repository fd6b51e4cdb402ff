"""`cornernet_tf.training.model_dir` and what `train` checks of a model directory before work:
the lock, remote paths, `restart`, the classes of a resumed run, the batch size."""

import json
import os
import socket
import subprocess
import sys

import keras
import pytest

from cornernet_tf import training
from cornernet_tf.data import shapes
from cornernet_tf.data.coco import CategoryMap
from cornernet_tf.spec.config import ConfigError, load_config
from cornernet_tf.training import loop, model_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "shapes_tiny.yaml")


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_second_writer_is_refused_naming_the_pid_and_host(tmp_path):
    with model_dir.ModelDirLock(tmp_path / "run") as lock:
        holder = json.loads((tmp_path / "run" / "train.lock").read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        with pytest.raises(training.SetupError) as error:
            model_dir.ModelDirLock(tmp_path / "run").acquire()
        message = str(error.value)
        assert f"PID {os.getpid()} on host {socket.gethostname()}" in message
        assert str(lock.path) in message and "another --model-dir" in message
    assert not (tmp_path / "run" / "train.lock").exists()  # released
    with model_dir.ModelDirLock(tmp_path / "run"):  # free again
        pass


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    caplog.set_level("INFO", logger="cornernet_tf.training.model_dir")
    (tmp_path / "train.lock").write_text(
        json.dumps({"pid": _dead_pid(), "host": socket.gethostname(), "started": "earlier"})
    )
    with model_dir.ModelDirLock(tmp_path):
        holder = json.loads((tmp_path / "train.lock").read_text())
        assert holder["pid"] == os.getpid()
    assert "took over the lock of a run that ended without releasing it" in caplog.text


def test_without_file_locks_a_live_process_on_this_host_keeps_its_lock(tmp_path, monkeypatch):
    # A file system without `flock`: the PID decides (alive: refused; gone: taken over).
    monkeypatch.setattr(model_dir, "fcntl", None)
    path = tmp_path / "train.lock"
    path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    with pytest.raises(training.SetupError, match=f"PID {os.getppid()} on host"):
        model_dir.ModelDirLock(tmp_path).acquire()
    path.write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    with model_dir.ModelDirLock(tmp_path):
        assert json.loads(path.read_text())["pid"] == os.getpid()


@pytest.mark.parametrize("url", ["gs://bucket/run", "s3://bucket/run", "hdfs://nn/run"])
def test_url_model_dirs_are_refused_before_any_work(shapes_root, tmp_path, monkeypatch, url):
    monkeypatch.chdir(tmp_path)
    config = load_config(CONFIG)
    with pytest.raises(training.SetupError) as error:
        training.train(config, shapes_root, url, strategy="one_device")
    message = str(error.value)
    assert message.startswith(f"--model-dir {url}: ")
    assert "local or mounted folder" in message
    assert os.listdir(tmp_path) == []  # no "gs:" folder


def test_a_model_dir_that_cannot_be_created_is_one_message(shapes_root, tmp_path):
    (tmp_path / "file").write_text("")
    config = load_config(CONFIG)
    target = tmp_path / "file" / "run"
    with pytest.raises(training.SetupError, match=f"--model-dir {target}: cannot write there"):
        training.train(config, shapes_root, target, strategy="one_device")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_model_dir_is_one_message(shapes_root, tmp_path):
    target = tmp_path / "run"
    target.mkdir()
    target.chmod(0o555)
    config = load_config(CONFIG)
    try:
        with pytest.raises(training.SetupError, match="cannot write there .*writable folder"):
            training.train(config, shapes_root, target, strategy="one_device")
    finally:
        target.chmod(0o755)


def test_a_batch_larger_than_the_dataset_is_refused_naming_the_key(shapes_root, tmp_path):
    # Before: the pipeline built batches of 100000 images until the process was killed.
    config = load_config(CONFIG, ["train.batch_size=100000"])
    with pytest.raises(ConfigError) as error:
        training.train(config, shapes_root, tmp_path / "run", strategy="one_device")
    assert error.value.key == "train.batch_size"
    message = str(error.value)
    assert message.startswith("train.batch_size=100000 is larger than the training set (8 ")
    assert "instances_train2017.json" in message and "at most 8" in message
    assert not (tmp_path / "run").exists()


def _previous_run(run, names):
    """A model dir as an interrupted run leaves it: a checkpoint and its classes."""
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "ckpt-2.index").write_bytes(b"")
    CategoryMap(tuple(range(1, len(names) + 1)), tuple(names)).to_json(run / "classes.json")


def test_resuming_with_renamed_classes_is_refused_naming_classes_json(shapes_root, tmp_path):
    # Before: the same class count resumed silently and classes.json was rewritten.
    run = tmp_path / "run"
    _previous_run(run, ["cat", "dog", "bird"])
    before = (run / "classes.json").read_text()
    config = load_config(CONFIG)
    with pytest.raises(training.SetupError) as error:
        training.train(config, shapes_root, run, strategy="one_device")
    message = str(error.value)
    assert message.startswith(f"{run / 'classes.json'}: the checkpoints were trained on ")
    assert "[1:cat, 2:dog, 3:bird]" in message and "1:rectangle" in message
    assert "--restart" in message and "new --model-dir" in message
    assert (run / "classes.json").read_text() == before
    assert not (run / "train.lock").exists()  # released on the error


def test_move_previous_run_keeps_everything(tmp_path):
    _previous_run(tmp_path, ["a"])
    (tmp_path / "model.keras").write_bytes(b"model")
    (tmp_path / "mine.txt").write_text("not the run's")
    target = model_dir.move_previous_run(tmp_path)
    assert os.path.basename(target).startswith("replaced-")
    assert sorted(os.listdir(target)) == ["checkpoints", "classes.json", "model.keras"]
    assert (tmp_path / "mine.txt").exists()
    assert model_dir.move_previous_run(tmp_path) is None  # nothing left to move


def test_a_model_file_that_cannot_be_written_is_one_message(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    (tmp_path / "file").write_text("")
    path = tmp_path / "file" / "model.keras"
    with pytest.raises(training.CheckpointWriteError) as error:
        loop._save_model(model, str(path))
    assert str(error.value).startswith(f"{path}: cannot write the model (")
    assert "free disk space or make" in str(error.value)


def test_a_batch_that_outgrows_the_machine_is_refused_before_any_work():
    from cornernet_tf.training.inputs import batch_bytes, check_batch_fits_memory

    config = load_config(CONFIG, ["train.batch_size=64"])  # 127 px, 32x32 maps
    per_image = 127 * 127 * 3 * 4 + 2 * 32 * 32 * 80 * 4
    assert batch_bytes(config, 80) == 64 * per_image
    check_batch_fits_memory(config, 80, memory=64 * per_image)  # exactly fits
    with pytest.raises(ConfigError) as error:
        check_batch_fits_memory(config, 80, memory=64 * per_image - 1)
    assert error.value.key == "train.batch_size"
    assert "train.batch_size=64 needs" in str(error.value)
    assert f"at most {(64 * per_image - 1) // (4 * per_image)}" in str(error.value)


def test_restarting_a_finished_run_keeps_its_summary(shapes_root, tmp_path):
    # A finished run restarted trains nothing and keeps its summary (not images_per_sec 0).
    overrides = [
        "train.steps=2",
        "train.eval_every=0",
        "data.input_size=63",
        "data.output_size=16",
        "train.batch_size=2",
        "train.jit_compile=false",
        "model.overrides={num_stacks: 1, dims: [8, 8], modules: [1, 1], pre_dim: 8, "
        "cnv_dim: 8, pool_dim: 8}",
    ]
    config = load_config(CONFIG, overrides)
    run = tmp_path / "run"
    state = training.build_training_state(
        config,
        list(shapes.CLASSES),
        str(run / "checkpoints"),
        learning_rate=training.LearningRate.from_config(config.train),
    )
    state.model.optimizer.iterations.assign(config.train.steps)  # a run that has finished
    state.manager.save(checkpoint_number=config.train.steps)
    finished = {"step": 2, "images_per_sec": 12.5, "model_path": str(run / "model.keras")}
    (run / "summary.json").write_text(json.dumps(finished))
    result = training.train(config, shapes_root, run, strategy="one_device", verbose=0)
    assert result.step == config.train.steps and result.images_per_sec == 12.5
    assert json.loads((run / "summary.json").read_text()) == finished
    assert (run / "model.keras").is_file()
