"""The Keras callbacks of a training run.

Every counter follows the optimizer's iteration count (`state.global_step`),
not the batch index of the current `fit`, so that a resumed run stops,
checkpoints, evaluates and logs at the same steps as an uninterrupted one.
The trainer's epochs are checkpoint intervals.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import glob
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping

import keras
import tensorflow as tf

from cornernet_tf.training.errors import CheckpointWriteError, io_error_reason
from cornernet_tf.training.state import global_step
from cornernet_tf.utils import private_api
from cornernet_tf.utils.fs import atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "BadImageLogger",
    "BestModel",
    "CheckpointEvery",
    "EvaluateFn",
    "ImagesPerSecond",
    "LearningRateLogger",
    "MallocTuning",
    "PeriodicEvaluation",
    "StepTensorBoard",
    "StopAtStep",
    "StopOnSignal",
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
    at the restored iteration instead (`private_api.set_tensorboard_train_step`).
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        private_api.set_tensorboard_train_step(self, global_step(self.model))


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
        if step == self.last_saved:
            return
        try:
            self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            self._remove_partial(step)
            previous = self.manager.latest_checkpoint
            resume = (
                f"run the same command to resume from {previous}"
                if previous
                else "run the same command again"
            )
            raise CheckpointWriteError(
                f"{os.path.join(self.manager.directory, f'ckpt-{step}')}: cannot write the "
                f"checkpoint ({io_error_reason(e)}); free disk space or make "
                f"{self.manager.directory} writable, then {resume}."
            ) from None
        self.last_saved = step

    def _remove_partial(self, step: int) -> None:
        """Removes what a failed save of checkpoint `step` left (its `_temp` folder, part files)."""
        prefix = os.path.join(self.manager.directory, f"ckpt-{step}")
        for path in glob.glob(glob.escape(prefix) + "_temp*") + glob.glob(
            glob.escape(prefix) + ".*"
        ):
            with contextlib.suppress(OSError):
                if os.path.isdir(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)

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
        skip_final: returns True when the evaluation at the end of training
            is to be left out (training was interrupted).
    """

    def __init__(
        self,
        evaluate_fn: EvaluateFn,
        every: int,
        log_dir: str | None = None,
        skip_final: Callable[[], bool] | None = None,
    ):
        super().__init__()
        self.evaluate_fn = evaluate_fn
        self.every = every
        self.log_dir = log_dir
        self.skip_final = skip_final
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
        if self.skip_final is None or not self.skip_final():
            self._evaluate(logs)
        if self._writer is not None:
            self._writer.close()


class BestModel(keras.callbacks.Callback):
    """Writes `best.keras` whenever an evaluation improves on the best `metric` so far.

    Reads the results of a `PeriodicEvaluation` placed before it. The model is
    written atomically, then its record `best.json` (`{"step", "metric",
    "value", "path"}`), which a resumed run reads back (`read`) so that it
    replaces the file only with a better model. Higher is better (COCO AP).

    Args:
        evaluation: the run's `PeriodicEvaluation`.
        path: the `.keras` file to write.
        metric: the result to compare (e.g. "AP").
        save: `save(model, path)`, an atomic `.keras` writer.
        previous: the record of the best model of the interrupted run, if any.
    """

    def __init__(
        self,
        evaluation: PeriodicEvaluation,
        path: str,
        metric: str,
        save: Callable[[keras.Model, str], None],
        previous: dict | None = None,
    ):
        super().__init__()
        self.evaluation = evaluation
        self.path = path
        self.metric = metric
        self.save = save
        self.best = previous
        self._seen = len(evaluation.history)
        self._warned = False

    @staticmethod
    def record_path(path: str) -> str:
        """The `best.json` beside the `best.keras` at `path`."""
        return os.path.splitext(path)[0] + ".json"

    @classmethod
    def read(cls, path: str) -> dict | None:
        """The record of an earlier best model at `path`, or None (missing or unreadable)."""
        try:
            with open(cls.record_path(path), encoding="utf-8") as f:
                record = json.load(f)
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or not isinstance(record.get("value"), int | float):
            return None
        return record if os.path.isfile(path) else None

    def _check(self) -> None:
        history = self.evaluation.history
        new, self._seen = history[self._seen :], len(history)
        for step, results in new:
            value = results.get(self.metric)
            if value is None:
                if not self._warned:
                    logger.warning(
                        "no %r in the evaluation results: best.keras not written", self.metric
                    )
                    self._warned = True
                continue
            if self.best is not None and not value > self.best["value"]:
                continue
            self.best = {"step": step, "metric": self.metric, "value": value, "path": self.path}
            self.save(self.model, self.path)
            atomic_write_json(self.record_path(self.path), self.best)
            logger.info("best %s so far (%.4f at step %d): %s", self.metric, value, step, self.path)

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_train_end(self, logs=None):
        self._check()


class StopOnSignal(keras.callbacks.Callback):
    """Ends `fit` after the current step when SIGINT or SIGTERM arrives.

    Within `catching()`, the first of these signals is recorded (`received`)
    and the default handling is put back, so that a second one ends the
    process at once; at the end of the step `fit` stops, and
    `CheckpointEvery` saves the current step as training ends. Outside the
    main thread signals cannot be caught and nothing changes.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        super().__init__()
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.received = signum
        logger.info(
            "%s received: stopping after this step (again to stop at once)",
            signal.Signals(signum).name,
        )
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}

    @contextlib.contextmanager
    def catching(self):
        """Catches the signals for the duration of the block (main thread only)."""
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        try:
            yield self
        finally:
            self._restore()

    def on_train_batch_end(self, batch, logs=None):
        if self.received is not None:
            self.model.stop_training = True


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
