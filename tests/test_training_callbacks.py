"""`cornernet_tf.training.callbacks`: stop, checkpoint, evaluation and log callbacks."""

import os
import signal

import keras
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.training import callbacks
from cornernet_tf.training.errors import CheckpointWriteError


class _FakeManager:
    def __init__(self):
        self.saved = []

    def save(self, checkpoint_number):
        self.saved.append(int(checkpoint_number))


def _toy_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    return model


def test_checkpoints_evaluation_and_stop_follow_the_global_step():
    x = np.ones((8, 3), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).repeat().batch(2)
    model = _toy_model()
    manager = _FakeManager()
    calls = []

    def evaluate_fn(m):
        calls.append(int(m.optimizer.iterations.numpy()))
        return {"ap": 0.5}

    evaluation = callbacks.PeriodicEvaluation(evaluate_fn, every=3)
    throughput = callbacks.ImagesPerSecond(global_batch=2)
    history = model.fit(
        dataset,
        epochs=4,
        steps_per_epoch=2,
        verbose=0,
        shuffle=False,
        callbacks=[
            callbacks.StopAtStep(7),
            throughput,
            callbacks.LearningRateLogger(),
            callbacks.CheckpointEvery(manager, every=2),
            evaluation,
        ],
    )
    assert int(model.optimizer.iterations.numpy()) == 7  # stopped inside the 4th epoch
    assert manager.saved == [2, 4, 6, 7]  # every 2 steps, then the final step
    assert calls == [3, 6, 7]
    assert evaluation.history[-1] == (7, {"ap": 0.5})
    assert history.history["learning_rate"] == [pytest.approx(0.01)] * 4
    assert throughput.overall > 0
    assert all(r > 0 for r in history.history["images_per_sec"])


def test_images_per_sec_uses_the_time_between_batches(monkeypatch):
    clock = iter([10.0, 10.5, 11.0, 12.0])
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: next(clock))
    callback = callbacks.ImagesPerSecond(global_batch=8, window=2)
    logs = [{} for _ in range(4)]
    for i, batch_logs in enumerate(logs):
        callback.on_train_batch_end(i, batch_logs)
    assert "images_per_sec" not in logs[0]  # one batch end: no interval yet
    assert logs[1]["images_per_sec"] == pytest.approx(8 / 0.5)
    assert logs[3]["images_per_sec"] == pytest.approx(2 * 8 / 1.5)  # window of 2 intervals
    assert callback.overall == pytest.approx(3 * 8 / 2.0)


def test_bad_image_logger_adds_the_count_once_there_is_one():
    counts = iter([0, 3])
    callback = callbacks.BadImageLogger(lambda: next(counts))
    quiet, noted = {}, {}
    callback.on_train_batch_end(0, quiet)
    callback.on_train_batch_end(1, noted)
    assert quiet == {} and noted == {"bad_images": 3}


class _FullDiskManager:
    """Writes what a save killed by a full disk leaves, then fails as TensorFlow does."""

    def __init__(self, directory):
        self.directory = str(directory)
        self.latest_checkpoint = os.path.join(self.directory, "ckpt-2")

    def save(self, checkpoint_number):
        temp = os.path.join(self.directory, f"ckpt-{checkpoint_number}_temp")
        os.makedirs(temp)
        with open(os.path.join(temp, "part-00000-of-00001.data-00000-of-00001"), "wb") as f:
            f.write(b"half")
        raise tf.errors.ResourceExhaustedError(
            None,
            None,
            "{{function_node __wrapped__SaveV2_dtypes_1_device_/job:localhost/replica:0/task:0"
            f"/device:CPU:0}} {temp}/part-00000-of-00001.data-00000-of-00001.tempstate1; "
            "No space left on device [Op:SaveV2]",
        )


def test_a_checkpoint_that_cannot_be_written_is_one_message_and_leaves_nothing(tmp_path):
    # Before: ResourceExhaustedError ... SaveV2 (a raw traceback), ckpt-4_temp/ left behind.
    callback = callbacks.CheckpointEvery(_FullDiskManager(tmp_path), every=2)
    callback.last_saved = 2
    with pytest.raises(CheckpointWriteError) as error:
        callback._save(4)
    assert str(error.value) == (
        f"{tmp_path / 'ckpt-4'}: cannot write the checkpoint (No space left on device); free "
        f"disk space or make {tmp_path} writable, then run the same command to resume from "
        f"{tmp_path / 'ckpt-2'}."
    )
    assert os.listdir(tmp_path) == []


def test_stop_on_signal_records_the_first_signal_and_gives_the_second_back():
    stop = callbacks.StopOnSignal()
    default = signal.getsignal(signal.SIGTERM)
    with stop.catching():
        assert signal.getsignal(signal.SIGTERM) == stop._handle
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(100):  # delivered at the next bytecode boundary
            if stop.received is not None:
                break
        assert stop.received == signal.SIGTERM
        assert signal.getsignal(signal.SIGTERM) == default  # a second one is not caught
    assert signal.getsignal(signal.SIGINT) == signal.default_int_handler


def test_best_model_is_written_when_the_metric_improves_and_only_then(tmp_path):
    x = np.ones((8, 3), "float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, x[:, :1])).repeat().batch(2)
    model = _toy_model()
    aps = iter([0.2, 0.5, 0.4, 0.1])
    evaluation = callbacks.PeriodicEvaluation(lambda m: {"AP": next(aps)}, every=2)
    saved = []

    def save(m, path):
        saved.append(int(m.optimizer.iterations.numpy()))
        with open(path, "w") as f:
            f.write(str(saved[-1]))

    path = str(tmp_path / "best.keras")
    best = callbacks.BestModel(evaluation, path, "AP", save)
    model.fit(
        dataset, epochs=1, steps_per_epoch=7, verbose=0, shuffle=False, callbacks=[evaluation, best]
    )
    assert [s for s, _ in evaluation.history] == [2, 4, 6, 7]
    assert saved == [2, 4]  # 0.2, then 0.5; not 0.4 nor 0.1
    record = {"step": 4, "metric": "AP", "value": 0.5, "path": path}
    assert best.best == record
    assert callbacks.BestModel.read(path) == record  # best.json, for a resumed run
    # A resumed run knows the best so far: a worse model does not replace it.
    aps = iter([0.45])
    evaluation = callbacks.PeriodicEvaluation(lambda m: {"AP": next(aps)}, every=9)
    resumed = callbacks.BestModel(evaluation, path, "AP", save, previous=record)
    model.fit(
        dataset,
        epochs=1,
        steps_per_epoch=2,
        verbose=0,
        shuffle=False,
        callbacks=[evaluation, resumed],
    )
    assert saved == [2, 4] and resumed.best["value"] == 0.5
    os.remove(path)
    assert callbacks.BestModel.read(path) is None  # a record without its model


def test_an_interrupted_run_skips_the_final_evaluation():
    model = _toy_model()
    calls = []
    evaluation = callbacks.PeriodicEvaluation(
        lambda m: calls.append(1) or {"AP": 0.0}, every=100, skip_final=lambda: True
    )
    evaluation.set_model(model)
    evaluation.on_train_end()
    assert calls == []
