"""The Keras callbacks of a training run.

Every counter follows the optimizer's iteration count (`state.global_step`),
not the batch index of the current `fit`, so that a resumed run stops,
checkpoints, evaluates and logs at the same steps as an uninterrupted one.
The trainer's epochs are checkpoint intervals.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import sys
import time
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

from cornernet_tf.training import keras_compat
from cornernet_tf.training.state import global_step

logger = logging.getLogger(__name__)

__all__ = [
    "BadImageLogger",
    "CheckpointEvery",
    "EvaluateFn",
    "ImagesPerSecond",
    "LearningRateLogger",
    "MallocTuning",
    "PeriodicEvaluation",
    "StepTensorBoard",
    "StopAtStep",
]

EvaluateFn = Callable[[keras.Model], Mapping[str, float]]


class StopAtStep(keras.callbacks.Callback):
    """Stops `fit` once the optimizer has done `steps` iterations.

    The run's epochs are checkpoint intervals, so the last one may be cut
    short; a resumed run may also start in the middle of one.

    Args:
        steps: total iterations of the run.
    """

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self.model) >= self.steps:
            self.model.stop_training = True


class ImagesPerSecond(keras.callbacks.Callback):
    """Adds `images_per_sec` (global batch / wall time per step) to the logs.

    Batch logs get the rate over a sliding window of steps, epoch logs the
    rate over the epoch; both are measured between batch ends, so they include
    input waiting time but not the first step's tracing. Put this callback
    before the progress bar and TensorBoard (Keras appends the progress bar
    last).

    Args:
        global_batch: images per step over all replicas and workers.
        window: steps averaged in the batch logs.
    """

    def __init__(self, global_batch: int, window: int = 20):
        super().__init__()
        self.global_batch = global_batch
        self._window = collections.deque(maxlen=window + 1)
        self._run = []  # [first batch end, last batch end, batches] over the run
        self._epoch = []  # the same over the current epoch

    @staticmethod
    def _rate(span, global_batch) -> float | None:
        if not span or span[2] < 2:
            return None
        return (span[2] - 1) * global_batch / max(span[1] - span[0], 1e-9)

    @property
    def overall(self) -> float:
        """Images/s over the run so far, the first step excluded (0 before two steps)."""
        return self._rate(self._run, self.global_batch) or 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = []

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        for span in (self._run, self._epoch):
            if span:
                span[1:] = [now, span[2] + 1]
            else:
                span[:] = [now, now, 1]
        self._window.append(now)
        if logs is not None and len(self._window) > 1:
            elapsed = self._window[-1] - self._window[0]
            logs["images_per_sec"] = (
                (len(self._window) - 1) * self.global_batch / max(elapsed, 1e-9)
            )

    def on_epoch_end(self, epoch, logs=None):
        rate = self._rate(self._epoch, self.global_batch)
        if logs is not None and rate is not None:
            logs["images_per_sec"] = rate


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the current `learning_rate` to the batch and epoch logs."""

    def on_train_batch_end(self, batch, logs=None):
        if logs is not None:
            optimizer = self.model.optimizer
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))

    on_epoch_end = on_train_batch_end


class StepTensorBoard(keras.callbacks.TensorBoard):
    """`keras.callbacks.TensorBoard` whose batch step is the optimizer's iteration count.

    Keras numbers batch summaries from 0 at every `fit`; after a resume that
    would overwrite the curves of the interrupted run, so the counter starts
    at the restored iteration instead (`keras_compat.set_tensorboard_train_step`).
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        keras_compat.set_tensorboard_train_step(self, global_step(self.model))


class CheckpointEvery(keras.callbacks.Callback):
    """Saves a checkpoint every `every` iterations and when training ends.

    Every worker must run it (saving synchronised variables may need all of
    them); non-chief workers save into a temporary directory.

    Args:
        manager: the `tf.train.CheckpointManager`.
        every: iterations between checkpoints.
    """

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self.manager = manager
        self.every = every
        self.last_saved = None

    def _save(self, step: int) -> None:
        if step != self.last_saved:
            self.manager.save(checkpoint_number=step)
            self.last_saved = step

    def on_train_begin(self, logs=None):
        self.last_saved = global_step(self.model)  # restored (or initial) state is on disk already

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if step % self.every == 0:
            self._save(step)

    def on_train_end(self, logs=None):
        self._save(global_step(self.model))


class PeriodicEvaluation(keras.callbacks.Callback):
    """Calls `evaluate_fn(model)` every `every` (> 0) iterations and at the end of training.

    `evaluate_fn` returns a mapping of metric names to floats (e.g. COCO AP);
    the results are logged, added to the batch logs (as `val_<name>`) and,
    when `log_dir` is given, written as TensorBoard scalars at the current
    iteration. Under multi-worker training it runs on every worker; the
    function decides whether the non-chief workers take part.

    Args:
        evaluate_fn: `model -> {name: value}`.
        every: iterations between evaluations.
        log_dir: TensorBoard directory, or None not to write summaries.
    """

    def __init__(self, evaluate_fn: EvaluateFn, every: int, log_dir: str | None = None):
        super().__init__()
        self.evaluate_fn = evaluate_fn
        self.every = every
        self.log_dir = log_dir
        self.history: list[tuple[int, dict[str, float]]] = []
        self._writer = None

    def _evaluate(self, logs=None) -> None:
        step = global_step(self.model)
        if self.history and self.history[-1][0] == step:
            return
        results = {k: float(v) for k, v in dict(self.evaluate_fn(self.model)).items()}
        self.history.append((step, results))
        logger.info(
            "evaluation at step %d: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in results.items())
        )
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in results.items()})
        if self.log_dir is not None:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            with self._writer.as_default():
                for name, value in results.items():
                    tf.summary.scalar(name, value, step=step)
            self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self.model) % self.every == 0:
            self._evaluate(logs)

    def on_train_end(self, logs=None):
        self._evaluate(logs)
        if self._writer is not None:
            self._writer.close()


class MallocTuning(keras.callbacks.Callback):
    """Restores sane glibc `malloc` thresholds once the input pipeline runs (Linux).

    When a tf.data generator dataset starts (distributed iterators use one),
    TensorFlow sets glibc's `M_TRIM_THRESHOLD` to 128 KB. Setting it also
    freezes glibc's adaptive mmap threshold at 128 KB, so every tensor larger
    than that is `mmap`ed on allocation and unmapped on release: on the tiny
    preset at batch 16 that is ~20 million page faults and half the CPU time
    in the kernel. Raising both thresholds after the first step of each epoch
    (the pipeline has started by then) measured 2.2x the images/s on 2 cores.
    A no-op where glibc is absent.
    """

    _M_TRIM_THRESHOLD = -1
    _M_MMAP_THRESHOLD = -3

    def __init__(self):
        super().__init__()
        self._mallopt = None
        if sys.platform.startswith("linux"):
            try:
                self._mallopt = ctypes.CDLL("libc.so.6").mallopt
            except (OSError, AttributeError):
                self._mallopt = None

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0 and self._mallopt is not None:
            self._mallopt(self._M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum on 64 bit
            self._mallopt(self._M_TRIM_THRESHOLD, 256 << 20)


class BadImageLogger(keras.callbacks.Callback):
    """Adds `bad_images` (images skipped by the input pipeline) to the logs.

    Added only once it is non-zero, so the progress bar and TensorBoard show
    it when something was skipped.

    Args:
        count: returns the current number of bad images.
    """

    def __init__(self, count: Callable[[], int]):
        super().__init__()
        self.count = count

    def on_train_batch_end(self, batch, logs=None):
        bad = self.count()
        if bad and logs is not None:
            logs["bad_images"] = bad

    on_epoch_end = on_train_batch_end
