"""`cornernet_tf.training.callbacks`: stop, checkpoint, evaluation and log callbacks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.training import callbacks


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
