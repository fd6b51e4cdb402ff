"""Distributed, resumable CornerNet training with `keras.Model.fit` (SPEC §7).

`train(config, data_dir, model_dir)` is what `scripts/train.py` runs:

* a `tf.distribute` strategy (`make_strategy`): one device, `MirroredStrategy`
  over the local GPUs, or `MultiWorkerMirroredStrategy` from `TF_CONFIG`; the
  global batch (`train.batch_size`) is split over the replicas, the learning
  rate follows it linearly (`scaled_learning_rate`), and the input pipelines
  are built per worker by `strategy.distribute_datasets_from_function`;
* Adam with a `PiecewiseConstantDecay` schedule driven by the optimizer's
  iteration counter (official `train.py`: the rate is divided by
  `decay_rate` after iteration `stepsize`);
* checkpoints every `train.checkpoint_every` iterations with
  `tf.train.CheckpointManager`, restored automatically on restart;
* a Keras progress bar with the loss parts, the learning rate and images/s,
  TensorBoard scalars, and an optional periodic evaluation hook;
* the final model written atomically as `model.keras`, with `classes.json`
  and the resolved `config.yaml`.

Why `tf.train.CheckpointManager` and not `keras.callbacks.BackupAndRestore`:
in Keras 3 `BackupAndRestore` overwrites `latest.weights.h5` in place (a kill
during the write leaves a corrupt file; `double_checkpoint=True` only keeps a
non-atomic copy of the previous one, and weights and `training_metadata.json`
are two separate writes that a kill can leave out of step), and on restore it
sets only the epoch (the saved batch is ignored), so `save_freq=N` inside an
epoch loses progress. A TensorFlow checkpoint is written under a temporary name
and renamed, and the manager's `checkpoint` index file is replaced atomically
only after the checkpoint is complete, so at every moment the index names a
whole checkpoint; restoring it sets the weights, the Adam slots and the
iteration counter (hence the schedule) exactly.

What a resume restores exactly: the weights (BatchNorm statistics included),
the Adam slots, the iteration counter and so the learning-rate schedule, the
TensorBoard step axis. The input stream is not replayed: a run resumed at
step s draws its data from a seed mixed from (`train.seed`, s), so it is
reproducible but does not see the very images the interrupted run would have.

Model directory layout:

    model_dir/
        config.yaml        resolved config (written before training)
        classes.json       class mapping (`CategoryMap.to_json`)
        checkpoints/       ckpt-<step>.{index,data-*} + `checkpoint` index
        logs/train/        TensorBoard scalars (losses, learning rate, images/s)
        logs/eval/         evaluation results, when an evaluation hook is given
        model.keras        final model (after the last step)
        summary.json       final step, bad-sample count, throughput, memory
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import importlib.util
import json
import logging
import math
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf.config import Config, ConfigError, atomic_write_text, save_config

logger = logging.getLogger(__name__)

__all__ = [
    "BadDataError",
    "BadImageLogger",
    "CheckpointEvery",
    "ImagesPerSecond",
    "LearningRateLogger",
    "MallocTuning",
    "PeriodicEvaluation",
    "SetupError",
    "StepTensorBoard",
    "StopAtStep",
    "TrainResult",
    "TrainingState",
    "build_training_state",
    "default_evaluate_fn",
    "learning_rate_schedule",
    "make_train_pipeline",
    "make_strategy",
    "save_model_atomic",
    "scaled_learning_rate",
    "train",
    "validate_data_dir",
]

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
EvaluateFn = Callable[[keras.Model], Mapping[str, float]]


class SetupError(ValueError):
    """Training cannot start (missing data, bad cluster config); the message says the fix."""


class BadDataError(RuntimeError):
    """The input pipeline found more bad images than `data.max_bad_images`."""


# ----------------------------------------------------------------- schedule


def scaled_learning_rate(learning_rate: float, batch_size: int, base_batch: int) -> float:
    """Linear learning-rate scaling: `learning_rate * batch_size / base_batch`.

    Args:
        learning_rate: the rate tuned at `base_batch` (official: 2.5e-4 at 49).
        batch_size: the global batch actually trained with.
        base_batch: the batch `learning_rate` belongs to.

    Returns:
        The scaled rate (Goyal et al. 2017, "linear scaling rule").
    """
    if batch_size <= 0 or base_batch <= 0:
        raise ValueError(
            f"scaled_learning_rate: batch sizes must be > 0, got batch_size={batch_size}, "
            f"base_batch={base_batch}."
        )
    return learning_rate * batch_size / base_batch


def learning_rate_schedule(
    learning_rate: float, decay_steps: tuple[int, ...], decay_factor: float
) -> keras.optimizers.schedules.PiecewiseConstantDecay:
    """The official step schedule as a function of the optimizer's iteration counter.

    Official `train.py` trains iterations 1..max_iter and divides the rate by
    `decay_rate` after iteration `stepsize` (so iteration `stepsize + 1` is the
    first at the lower rate). Keras evaluates the schedule with
    `optimizer.iterations`, which is 0 during iteration 1, so iteration i runs
    at `schedule(i - 1)`; the boundaries are therefore `stepsize - 1`.

    Args:
        learning_rate: initial rate (already scaled for the global batch).
        decay_steps: iterations after which the rate is divided (official
            `stepsize` 450000).
        decay_factor: divisor at each of them (official `decay_rate` 10).

    Returns:
        A `PiecewiseConstantDecay`: `learning_rate / decay_factor**k` after the
        k-th decay step.
    """
    boundaries = [int(step) - 1 for step in decay_steps]
    values = [learning_rate / decay_factor**k for k in range(len(boundaries) + 1)]
    if not boundaries:
        # PiecewiseConstantDecay needs one boundary; put it beyond any run.
        boundaries, values = [2**62], [learning_rate, learning_rate]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


# ----------------------------------------------------------------- strategy


def make_strategy(name: str = "auto") -> tf.distribute.Strategy:
    """Creates the distribution strategy; call it before any other TensorFlow work.

    Args:
        name: "auto" (multi-worker when `TF_CONFIG` names more than one task,
            else `MirroredStrategy` when there are several GPUs, else one
            device), "one_device" (the first GPU, else the CPU), "mirrored"
            (`MirroredStrategy` over all local GPUs, or over all logical CPU
            devices when there is no GPU), "multi_worker"
            (`MultiWorkerMirroredStrategy`, cluster from `TF_CONFIG`).

    Returns:
        The strategy.

    Raises:
        SetupError: unknown name, or "multi_worker" without a valid `TF_CONFIG`.
    """
    if name not in STRATEGIES:
        raise SetupError(
            f"--strategy {name!r}: unknown strategy; choose one of {', '.join(STRATEGIES)}."
        )
    tf_config = _tf_config()
    if name == "auto" and tf_config is not None and _cluster_size(tf_config) > 1:
        name = "multi_worker"
    if name == "multi_worker":
        if tf_config is None:
            raise SetupError(
                "--strategy multi_worker: the TF_CONFIG environment variable is not set; set it "
                'on every worker to {"cluster": {"worker": ["host:port", ...]}, '
                '"task": {"type": "worker", "index": i}}.'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.OneDeviceStrategy(gpus[0] if gpus else "/cpu:0")


def _tf_config() -> dict | None:
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as e:
        raise SetupError(
            f"TF_CONFIG is not valid JSON ({e}); fix the environment variable."
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("cluster"), dict):
        raise SetupError(
            'TF_CONFIG must be a JSON object with a "cluster" mapping and a "task" '
            f"({{type, index}}), got {text[:200]!r}."
        )
    return config


def _cluster_size(tf_config: Mapping) -> int:
    return sum(len(v) for v in tf_config["cluster"].values() if isinstance(v, list))


def _task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, logs and the final model."""
    task_type, task_id = _task(strategy)
    if task_type is None:
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


# --------------------------------------------------------------------- data


def validate_data_dir(config: Config, data_dir: str | os.PathLike) -> None:
    """Checks, before any work, that the training split exists in COCO layout.

    Args:
        config: the experiment config (`data.train_split`).
        data_dir: dataset root with `annotations/instances_<split>.json` and
            the image folder `<split>/`.

    Raises:
        SetupError: naming the missing path and how to fix it.
    """
    data_dir = os.fspath(data_dir)
    fix = (
        "pass --data-dir pointing at a COCO-layout folder (annotations/instances_<split>.json "
        "and <split>/), or create the demo data with `python scripts/make_shapes.py --output DIR`"
    )
    if not os.path.isdir(data_dir):
        raise SetupError(f"--data-dir {data_dir}: no such directory; {fix}.")
    split = config.data.train_split
    annotation = os.path.join(data_dir, "annotations", f"instances_{split}.json")
    if not os.path.isfile(annotation):
        raise SetupError(
            f"{annotation}: annotation file for data.train_split={split!r} not found; {fix}, "
            "or set data.train_split to a split that exists."
        )
    image_dir = os.path.join(data_dir, split)
    if not os.path.isdir(image_dir):
        raise SetupError(
            f"{image_dir}: image folder for data.train_split={split!r} not found; {fix}."
        )


# ------------------------------------------------------------------ model


@dataclasses.dataclass
class TrainingState:
    """The model and what is checkpointed with it.

    Attributes:
        model: the compiled `CornerNet` (variables created under the strategy).
        checkpoint: a `tf.train.Checkpoint` of `model.weights` (trainable
            and BatchNorm statistics) and `model.optimizer.variables` (Adam
            slots, iteration counter, loss scale).
        manager: the `tf.train.CheckpointManager` writing this worker's
            checkpoints (the chief's directory, or a temporary one).
        step: the optimizer's iteration count after restoring.
        restored_from: the checkpoint path restored, or None for a fresh start.
    """

    model: keras.Model
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager
    step: int
    restored_from: str | None


def build_training_state(
    config: Config,
    class_names: list[str],
    checkpoint_dir: str,
    *,
    strategy: tf.distribute.Strategy | None = None,
    write_dir: str | None = None,
) -> TrainingState:
    """Builds the compiled model and restores the latest checkpoint, if any.

    Args:
        config: the experiment config.
        class_names: one name per class (sets `num_classes` and `class_names`
            unless `model.overrides` gives them).
        checkpoint_dir: directory holding the checkpoints to resume from.
        strategy: the distribution strategy (default: the current one).
        write_dir: directory this worker writes checkpoints to (default
            `checkpoint_dir`; non-chief workers pass a temporary one).

    Returns:
        The `TrainingState`; `step` is the restored iteration count (0 when
        starting fresh).

    Raises:
        SetupError: the checkpoint does not match the configured model.
    """
    from cornernet_tf.models.cornernet import CornerNet

    strategy = strategy or tf.distribute.get_strategy()
    train_cfg = config.train
    overrides = dict(config.model.overrides)
    overrides.setdefault("num_classes", len(class_names))
    if overrides["num_classes"] == len(class_names):
        overrides.setdefault("class_names", list(class_names))
    else:
        raise ConfigError(
            f"model.overrides.num_classes={overrides['num_classes']} but the training set has "
            f"{len(class_names)} categories; remove the override or fix the dataset."
        )
    overrides.setdefault("test_config", dataclasses.asdict(config.test))
    lr = scaled_learning_rate(train_cfg.learning_rate, train_cfg.batch_size, train_cfg.base_batch)
    with strategy.scope():
        try:
            model = CornerNet.from_preset(config.model.preset, **overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: cannot build preset {config.model.preset!r}: {e}") from None
        size = config.data.input_size
        # Creates every variable: both stacks' heads, as training uses them.
        model(tf.zeros([1, size, size, 3]), training=False, all_stacks=True)
        optimizer = keras.optimizers.Adam(
            learning_rate_schedule(lr, train_cfg.lr_decay_steps, train_cfg.lr_decay_factor)
        )
        model.compile(
            optimizer=optimizer,
            pull_weight=train_cfg.pull_weight,
            push_weight=train_cfg.push_weight,
            offset_weight=train_cfg.offset_weight,
            jit_compile=_jit_compile(train_cfg.jit_compile, strategy),
        )
        # Slots must exist before a restore can fill them.
        model.optimizer.build(model.trainable_variables)
    # Keras 3 layers keep sub-layers in Keras-tracked lists and dicts that
    # TensorFlow's object graph does not see, so `Checkpoint(model=model)`
    # would silently drop e.g. the BatchNorm statistics. The variables are
    # listed explicitly instead, in their (deterministic) creation order.
    checkpoint = tf.train.Checkpoint(
        model_weights=list(model.weights), optimizer_variables=list(model.optimizer.variables)
    )
    manager = tf.train.CheckpointManager(
        checkpoint,
        write_dir or checkpoint_dir,
        max_to_keep=train_cfg.keep_checkpoints,
        checkpoint_name="ckpt",
    )
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is not None:
        try:
            checkpoint.restore(latest).assert_consumed()
        except (AssertionError, ValueError, tf.errors.OpError) as e:
            raise SetupError(
                f"{latest}: this checkpoint does not match the configured model "
                f"({_first_line(e)}); use a new --model-dir, or the config it was trained with."
            ) from None
    _skip_symbolic_build(model)
    if _multi_worker(strategy):
        _vector_logs(model)
    step = int(model.optimizer.iterations.numpy())
    return TrainingState(model, checkpoint, manager, step, latest)


def _multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def _vector_logs(model: keras.Model) -> None:
    """Makes `fit` work under multi-worker `MultiWorkerMirroredStrategy`.

    Keras 3's TF trainer reduces each replica's logs with
    `strategy.reduce("MEAN", value, axis=0)` in multi-worker mode, which fails
    on the scalar losses and metrics a train step returns ("Invalid reduction
    dimension 0 for input with 0 dimensions"; keras-team/keras#20585). Giving
    every log a leading axis of 1 makes that reduce the mean over all replicas
    of all workers, a scalar again.
    """
    train_step = model.train_step

    def vector_train_step(data):
        logs = train_step(data)
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    model.train_step = vector_train_step


def _skip_symbolic_build(model: keras.Model) -> None:
    """Stops `fit` from peeking at a batch to build a model that is already built.

    Keras 3's TF trainer, when the model was created under a strategy, takes
    one batch of the distributed dataset and `strategy.reduce`s the whole
    (nested) batch before checking whether anything needs building; under
    `MultiWorkerMirroredStrategy` that reduce fails on nested structures
    (keras-team/keras#20585, "Attempt to convert a value (PerReplica...)"), and
    elsewhere it costs a batch of the input pipeline. Our model, optimizer and
    (metric-free, loss-free) compile state are all built by
    `build_training_state`, so the step is a no-op there and is skipped.
    """
    compiled = getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)
    if model.built and model.optimizer.built and all(c is None or c.built for c in compiled):
        model._maybe_symbolic_build = lambda *args, **kwargs: None


# --------------------------------------------------------------- callbacks


def _step(model: keras.Model) -> int:
    return int(model.optimizer.iterations.numpy())


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
        if _step(self.model) >= self.steps:
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
    at the restored iteration instead.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._global_train_batch = _step(self.model)


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
        self.last_saved = _step(self.model)  # restored (or initial) state is on disk already

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.every == 0:
            self._save(step)

    def on_train_end(self, logs=None):
        self._save(_step(self.model))


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
        step = _step(self.model)
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
        if _step(self.model) % self.every == 0:
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


# ------------------------------------------------------------------- train


def make_train_pipeline(config: Config, source, *, seed: int, input_context=None):
    """The training input of `config.data` (`pipeline.make_train_dataset`).

    Args:
        config: the experiment config (`data` section, `train.batch_size`).
        source: the opened `CocoDataset` (or a dataset root).
        seed: data seed (shuffle order and augmentation draws).
        input_context: from `distribute_datasets_from_function`.

    Returns:
        The `PipelineData` (dataset of `(images, targets)`, per-replica
        batches when `input_context` is given, and its bad-image tracker).
    """
    from cornernet_tf.data import pipeline

    return pipeline.make_train_dataset(
        source,
        config.data,
        batch_size=config.train.batch_size,
        seed=seed,
        input_context=input_context,
    )


@dataclasses.dataclass
class TrainResult:
    """What a `train` call did.

    Attributes:
        step: the optimizer's iteration count at the end.
        start_step: the iteration restored from a checkpoint (0 when fresh).
        bad_samples: training images skipped as unusable: excluded when the
            annotations were opened plus found bad by this worker's input
            pipelines while reading (each worker reads its own shard).
        images_per_sec: training throughput over the run (first step excluded).
        replicas: replicas in sync (devices over all workers).
        global_batch: images per step over all replicas.
        learning_rate: the scaled initial learning rate.
        model_path: the final `model.keras` (None on non-chief workers).
        peak_memory_mb: peak resident memory of this process.
        evaluations: `(step, results)` of the evaluation hook.
    """

    step: int
    start_step: int
    bad_samples: int
    images_per_sec: float
    replicas: int
    global_batch: int
    learning_rate: float
    model_path: str | None
    peak_memory_mb: float
    evaluations: list = dataclasses.field(default_factory=list)


def train(
    config: Config,
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    strategy: str | tf.distribute.Strategy = "auto",
    evaluate_fn: EvaluateFn | None = None,
    verbose: int | str = "auto",
) -> TrainResult:
    """Trains (or resumes training) CornerNet as configured.

    Args:
        config: the experiment config (`load_config`).
        data_dir: COCO-layout dataset root.
        model_dir: output directory (checkpoints, logs, final model); a
            directory with checkpoints is resumed from the latest one.
        strategy: a strategy name for `make_strategy` or a strategy instance
            (names must be resolved before any other TensorFlow work).
        evaluate_fn: optional `model -> {metric: value}` run every
            `train.eval_every` iterations and at the end (not when
            `eval_every` is 0).
        verbose: Keras `fit` verbosity on the chief ("auto": progress bar).

    Returns:
        The `TrainResult`.

    Raises:
        ConfigError, SetupError: invalid config, data or cluster, raised before
            any training step.
        BadDataError: the input pipeline found more bad images than
            `data.max_bad_images`.
    """
    from cornernet_tf.data.coco import CocoDataset

    if isinstance(strategy, str):
        strategy = make_strategy(strategy)
    validate_data_dir(config, data_dir)
    data_dir, model_dir = os.fspath(data_dir), os.fspath(model_dir)
    train_cfg = config.train
    replicas = strategy.num_replicas_in_sync
    if train_cfg.batch_size % replicas:
        raise ConfigError(
            f"train.batch_size={train_cfg.batch_size} is the global batch and must be divisible by "
            f"the {replicas} replicas; use e.g. --set train.batch_size="
            f"{max(replicas, train_cfg.batch_size // replicas * replicas)}."
        )
    chief = is_chief(strategy)
    task_type, task_id = _task(strategy)

    keras.mixed_precision.set_dtype_policy(
        "mixed_float16" if train_cfg.mixed_precision else "float32"
    )
    keras.utils.set_random_seed(train_cfg.seed)

    try:  # reads and checks the annotations once; every input pipeline shares it
        source = CocoDataset.open(data_dir, config.data.train_split)
    except (FileNotFoundError, ValueError) as e:
        raise SetupError(str(e)) from None
    excluded = source.report.bad_images
    if len(excluded) > config.data.max_bad_images:
        raise SetupError(
            f"{source.annotation_file}: {len(excluded)} images are unusable (missing, empty or "
            f"unsafe file names; more than data.max_bad_images={config.data.max_bad_images}), "
            f"e.g. {excluded[0]}; fix the dataset or raise data.max_bad_images."
        )
    class_names = list(source.categories.names)

    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    scratch = None
    if chief:
        os.makedirs(checkpoint_dir, exist_ok=True)
        write_dir = checkpoint_dir
    else:
        scratch = tempfile.mkdtemp(prefix=f"cornernet_{task_type}{task_id}_")
        write_dir = os.path.join(scratch, "checkpoints")
    state = build_training_state(
        config, class_names, checkpoint_dir, strategy=strategy, write_dir=write_dir
    )
    model, start = state.model, state.step
    lr = scaled_learning_rate(train_cfg.learning_rate, train_cfg.batch_size, train_cfg.base_batch)
    if chief:
        save_config(config, os.path.join(model_dir, "config.yaml"))
        source.categories.to_json(os.path.join(model_dir, "classes.json"))
    logger.info(
        "strategy %s: %d replica(s), global batch %d (%d per replica), learning rate %.3g "
        "(%.3g x %d / %d)",
        type(strategy).__name__,
        replicas,
        train_cfg.batch_size,
        train_cfg.batch_size // replicas,
        lr,
        train_cfg.learning_rate,
        train_cfg.batch_size,
        train_cfg.base_batch,
    )
    if state.restored_from:
        logger.info("resumed from %s at step %d", state.restored_from, start)
    else:
        logger.info("starting from scratch (no checkpoint in %s)", checkpoint_dir)

    # Resumed runs draw their data from a seed mixed with the restored step, so
    # they are reproducible without replaying the images already trained on.
    data_seed = int(np.random.SeedSequence([train_cfg.seed, start]).generate_state(1)[0] >> 1)
    pipelines = []  # this worker's input pipelines (their bad-image trackers)

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        data = make_train_pipeline(config, source, seed=data_seed, input_context=context)
        pipelines.append(data)
        return data.dataset

    try:
        dataset = strategy.distribute_datasets_from_function(dataset_fn)
    except ValueError as e:  # e.g. more bad images at opening than data.max_bad_images
        raise SetupError(str(e)) from None

    initial_bad = len(source.report.bad_images)
    bad_counter = BadImageLogger(
        lambda: initial_bad + sum(p.tracker.num_bad_images for p in pipelines)
    )
    throughput = ImagesPerSecond(train_cfg.batch_size)
    callbacks = [
        StopAtStep(train_cfg.steps),
        MallocTuning(),
        LearningRateLogger(),
        throughput,
        bad_counter,
    ]
    tensorboard = chief and _tensorboard_available()
    if tensorboard:
        callbacks.append(
            StepTensorBoard(
                os.path.join(model_dir, "logs"),
                update_freq=train_cfg.log_every,
                write_graph=False,
                profile_batch=0,
            )
        )
    callbacks.append(CheckpointEvery(state.manager, train_cfg.checkpoint_every))
    evaluation = None
    if evaluate_fn is not None and train_cfg.eval_every > 0:
        evaluation = PeriodicEvaluation(
            evaluate_fn,
            train_cfg.eval_every,
            os.path.join(model_dir, "logs", "eval") if tensorboard else None,
        )
        callbacks.append(evaluation)

    steps_per_epoch = min(train_cfg.checkpoint_every, train_cfg.steps)
    epochs = math.ceil(train_cfg.steps / steps_per_epoch)
    if start < train_cfg.steps:
        try:
            model.fit(
                dataset,
                epochs=epochs,
                initial_epoch=start // steps_per_epoch,
                steps_per_epoch=steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose if chief else 0,
                shuffle=False,
            )
        except tf.errors.InvalidArgumentError as e:
            if "max_bad_images" not in str(e):
                raise
            message = _assertion_message(str(e))
            raise BadDataError(
                f"{message} (training stopped at step {_step(model)}; the last checkpoint is in "
                f"{checkpoint_dir})"
            ) from None
    else:
        logger.info("already trained for %d steps (train.steps=%d)", start, train_cfg.steps)
    step = _step(model)

    bad = bad_counter.count()
    for data in pipelines:
        data.tracker.log_summary(logger)
    logger.info(
        "bad images skipped: %d (limit data.max_bad_images=%d)", bad, config.data.max_bad_images
    )

    # Every worker saves (reading synchronised variables may be collective);
    # only the chief's file lands in model_dir.
    model_path = os.path.join(model_dir, "model.keras")
    target = model_path if chief else os.path.join(scratch, "model.keras")
    save_model_atomic(model, target)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = TrainResult(
        step=step,
        start_step=start,
        bad_samples=bad,
        images_per_sec=throughput.overall,
        replicas=replicas,
        global_batch=train_cfg.batch_size,
        learning_rate=lr,
        model_path=model_path if chief else None,
        peak_memory_mb=peak_mb,
        evaluations=list(evaluation.history) if evaluation else [],
    )
    if chief:
        atomic_write_text(
            os.path.join(model_dir, "summary.json"),
            json.dumps(dataclasses.asdict(result), indent=2) + "\n",
        )
        logger.info(
            "done: step %d, %.1f images/s, peak memory %.0f MB; model written to %s",
            step,
            result.images_per_sec,
            peak_mb,
            model_path,
        )
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    if _multi_worker(strategy):
        _barrier(strategy)  # no worker leaves while another still needs it
    return result


def _jit_compile(requested: bool, strategy: tf.distribute.Strategy) -> bool:
    """XLA unless the replicas are CPU devices.

    An XLA-compiled step across several CPU replicas (logical CPU devices or
    CPU-only workers) fails in TF 2.21 with "trying to access resource ...
    located in device ... from device ..."; such runs fall back to graph mode.
    """
    if not requested or strategy.num_replicas_in_sync == 1:
        return requested
    if tf.config.list_logical_devices("GPU"):
        return True
    logger.warning(
        "train.jit_compile: XLA is off for %d CPU replicas.", strategy.num_replicas_in_sync
    )
    return False


def _barrier(strategy: tf.distribute.Strategy) -> None:
    """Blocks until every worker of `strategy` gets here (an all-reduce of ones)."""

    @tf.function
    def count():
        return strategy.reduce("SUM", strategy.run(lambda: tf.ones([])), axis=None)

    count()


def default_evaluate_fn(config: Config, data_dir: str | os.PathLike) -> EvaluateFn | None:
    """The evaluation hook `scripts/train.py` passes to `train`.

    COCO AP on `data.val_split` from `cornernet_tf.evaluation.make_evaluate_fn`
    (the inference package), or None when `train.eval_every` is 0 or that
    module is not installed.

    Args:
        config: the experiment config.
        data_dir: dataset root.

    Returns:
        `model -> {metric: value}`, or None.
    """
    if config.train.eval_every <= 0:
        return None
    try:
        from cornernet_tf import evaluation
    except ImportError:
        logger.warning(
            "train.eval_every=%d but cornernet_tf.evaluation is not available; training "
            "without periodic evaluation.",
            config.train.eval_every,
        )
        return None
    return evaluation.make_evaluate_fn(os.fspath(data_dir), config.data.val_split)


def save_model_atomic(model: keras.Model, path: str) -> None:
    """Saves `model` as a `.keras` file via a temporary file and `os.replace`.

    Args:
        model: the model.
        path: destination ending in ".keras"; it is either the previous file or
            the complete new one at every moment.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".model.", suffix=".keras")
    os.close(fd)
    try:
        model.save(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _tensorboard_available() -> bool:
    if importlib.util.find_spec("tensorboard") is None:
        logger.warning(
            "TensorBoard scalars are off: the `tensorboard` package is not installed "
            "(pip install tensorboard)."
        )
        return False
    return True


def _assertion_message(text: str) -> str:
    """The data of a `tf.debugging.Assert` failure, as one line: "[a] [b]" -> "a b"."""
    match = re.search(r"assertion failed: (.*?)(?:\n|$)", text)
    if match is None:
        return _first_line(text)
    return " ".join(re.sub(r"\[|\]|\"", " ", match.group(1)).split())


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def configure_logging() -> None:
    """Sends this module's log lines to stdout, one plain line each (for the script)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
