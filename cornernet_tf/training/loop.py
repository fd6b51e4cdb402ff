"""`train`: one training run (or its resumption), phase by phase.

`train` reads as its phases: check the data and the cluster, open the
annotations, build or restore the model, wire the input pipelines and the
callbacks, `fit`, then write the model and the run summary. Each phase is a
short helper below; what they use lives in the sibling modules (`strategy`,
`schedule`, `state`, `inputs`, `callbacks`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence

import keras
import tensorflow as tf

from cornernet_tf.data.coco import CategoryMap, CocoDataset
from cornernet_tf.spec.config import Config, ConfigError, TrainConfig, save_config
from cornernet_tf.spec.presets import config_size_problem
from cornernet_tf.training import callbacks as cb
from cornernet_tf.training import finetune
from cornernet_tf.training.errors import (
    BadDataError,
    CheckpointWriteError,
    SetupError,
    TrainingInterrupted,
    assertion_message,
    io_error_reason,
)
from cornernet_tf.training.inputs import (
    TrainInput,
    check_batch_fits_dataset,
    check_batch_fits_memory,
    data_seed,
    distribute_train_input,
    open_training_source,
    validate_data_dir,
)
from cornernet_tf.training.model_dir import (
    ModelDirLock,
    local_model_dir_problem,
    move_previous_run,
)
from cornernet_tf.training.schedule import LearningRate
from cornernet_tf.training.state import (
    TrainingState,
    build_training_state,
    global_step,
    holds_checkpoints,
    remove_partial_checkpoints,
)
from cornernet_tf.training.strategy import (
    barrier,
    check_global_batch,
    is_chief,
    is_multi_worker,
    make_strategy,
    task,
)
from cornernet_tf.utils.console import CurrentStreamHandler
from cornernet_tf.utils.fs import atomic_path, atomic_write_json

logger = logging.getLogger(__name__)

__all__ = [
    "TrainResult",
    "configure_logging",
    "default_evaluate_fn",
    "save_model_atomic",
    "train",
]


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
        best: the best model by evaluated AP, `{"step", "metric", "value",
            "path"}` (`best.keras`), or None without evaluations.
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
    best: dict | None = None


def train(
    config: Config,
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    strategy: str | tf.distribute.Strategy = "auto",
    evaluate_fn: cb.EvaluateFn | None = None,
    verbose: int | str = "auto",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    restart: bool = False,
) -> TrainResult:
    """Trains (or resumes training) CornerNet as configured.

    Args:
        config: the experiment config (`load_config`).
        data_dir: COCO-layout dataset root.
        model_dir: output directory (checkpoints, logs, final model), a local
            or mounted folder; a directory with checkpoints is resumed from
            the newest complete one. One run at a time writes into it
            (`model_dir.ModelDirLock`).
        strategy: a strategy name for `make_strategy` or a strategy instance.
            A strategy must be created before any other TensorFlow work;
            `train` resolves a name right after its (TensorFlow-free) data
            check, so callers doing TensorFlow work first pass an instance.
        evaluate_fn: optional `model -> {metric: value}` run every
            `train.eval_every` iterations and at the end (not when
            `eval_every` is 0); whenever its "AP" improves, the model is
            written to `best.keras`.
        verbose: Keras `fit` verbosity on the chief ("auto": progress bar).
        callbacks: Keras callbacks of the caller, run after the trainer's own
            (so their logs hold the losses and the `val_` results). They see
            the optimizer's iteration count in `model.optimizer.iterations`;
            `fit`'s epochs are checkpoint intervals.
        restart: start from scratch even though `model_dir` holds an earlier
            run: its files are moved into `model_dir/replaced-<UTC time>/`.

    Returns:
        The `TrainResult`.

    Raises:
        ConfigError, SetupError: invalid config, data, model directory or
            cluster, raised before any training step; another run holds the
            model directory; its checkpoints are of other classes, or none is
            complete (pass `restart=True` to start again).
        BadDataError: the input pipeline found more bad images than
            `data.max_bad_images`.
        CheckpointWriteError: a checkpoint or model file could not be written.
        TrainingInterrupted: SIGINT or SIGTERM stopped training after a
            checkpoint of the current step was saved.
    """
    problem = config_size_problem(config)  # a `Config` built in Python was not loaded
    if problem is not None:
        raise ConfigError(problem[1], key=problem[0])
    problem = local_model_dir_problem(model_dir)
    if problem is not None:
        raise SetupError(problem)
    validate_data_dir(config, data_dir)
    if isinstance(strategy, str):
        strategy = make_strategy(strategy)
    check_global_batch(config.train.batch_size, strategy.num_replicas_in_sync)
    _set_global_policies(config.train)
    source = open_training_source(config, data_dir)
    check_batch_fits_dataset(config, source)
    check_batch_fits_memory(config, source.num_classes)
    paths = _RunPaths.create(os.fspath(model_dir), strategy)
    stop = cb.StopOnSignal()
    with paths.lock(), stop.catching():
        if paths.chief:
            _prepare_model_dir(paths, source, restart)
        learning_rate = LearningRate.from_config(config.train)
        state = build_training_state(
            config,
            list(source.categories.names),
            paths.checkpoint_dir,
            learning_rate=learning_rate,
            strategy=strategy,
            write_dir=paths.write_dir,
        )
        if paths.chief:
            _write_run_config(config, source, paths.model_dir)
        _log_start(config.train, strategy, learning_rate, state, paths.checkpoint_dir)
        # A finished run started again trains nothing: its summary keeps what was
        # measured when it trained (this run would report 0 images/s).
        previous = None
        if state.step >= config.train.steps:
            logger.info(
                "already trained for %d steps (train.steps=%d)", state.step, config.train.steps
            )
            previous = _read_summary(paths.model_dir) or {}
            bad = int(previous.get("bad_samples", 0))
            images_per_sec = float(previous.get("images_per_sec", 0.0))
            evaluations = list(previous.get("evaluations", []))
            best = previous.get("best")
        else:
            inputs = distribute_train_input(
                strategy, config, source, seed=data_seed(config.train.seed, state.step)
            )
            run_callbacks = _RunCallbacks.create(
                config.train, state, inputs, evaluate_fn, paths, stop, callbacks
            )
            if stop.received is None:
                _fit(state, inputs, run_callbacks.all, config.train, paths, verbose=verbose)
            if stop.received is not None:
                raise TrainingInterrupted(
                    stop.received,
                    global_step(state.model),
                    state.manager.latest_checkpoint if paths.chief else None,
                )
            bad = _log_bad_images(inputs, config.data.max_bad_images)
            images_per_sec = run_callbacks.throughput.overall
            evaluations = list(run_callbacks.evaluation.history) if run_callbacks.evaluation else []
            best = run_callbacks.best.best if run_callbacks.best else None
        _save_model(state.model, paths.save_path)
        result = TrainResult(
            step=global_step(state.model),
            start_step=state.step,
            bad_samples=bad,
            images_per_sec=images_per_sec,
            replicas=strategy.num_replicas_in_sync,
            global_batch=config.train.batch_size,
            learning_rate=learning_rate.initial,
            model_path=paths.model_path if paths.chief else None,
            peak_memory_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            evaluations=evaluations,
            best=best,
        )
        if paths.chief and not previous:
            _write_summary(result, paths.model_dir)
    paths.remove_scratch()
    if is_multi_worker(strategy):
        barrier(strategy)  # no worker leaves while another still needs it
    return result


# ------------------------------------------------------------------- phases


def _set_global_policies(train_cfg: TrainConfig) -> None:
    """Dtype policy and seeds: process-wide Keras state, set before the model exists."""
    keras.mixed_precision.set_dtype_policy(
        "mixed_float16" if train_cfg.mixed_precision else "float32"
    )
    keras.utils.set_random_seed(train_cfg.seed)


@dataclasses.dataclass(frozen=True)
class _RunPaths:
    """Where this worker reads and writes.

    Attributes:
        model_dir: the run's output directory.
        chief: whether this worker writes into `model_dir`.
        checkpoint_dir: the chief's checkpoints, restored by every worker.
        write_dir: where this worker saves checkpoints (`checkpoint_dir` on
            the chief, a temporary folder elsewhere: every worker must save,
            saving synchronised variables may need all of them).
        scratch: the non-chief's temporary folder, removed at the end.

    The chief's `checkpoints/` folder is created under the model directory's
    lock (`lock`).
    """

    model_dir: str
    chief: bool
    checkpoint_dir: str
    write_dir: str
    scratch: str | None

    @classmethod
    def create(cls, model_dir: str, strategy: tf.distribute.Strategy) -> _RunPaths:
        checkpoint_dir = os.path.join(model_dir, "checkpoints")
        if is_chief(strategy):
            return cls(model_dir, True, checkpoint_dir, checkpoint_dir, None)
        task_type, task_id = task(strategy)
        scratch = tempfile.mkdtemp(prefix=f"cornernet_{task_type}{task_id}_")
        return cls(model_dir, False, checkpoint_dir, os.path.join(scratch, "checkpoints"), scratch)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the model directory's lock (the chief's) and creates `checkpoints/`."""
        if not self.chief:
            yield
            return
        with ModelDirLock(self.model_dir):
            try:
                os.makedirs(self.checkpoint_dir, exist_ok=True)
            except OSError as e:
                raise SetupError(
                    f"{self.checkpoint_dir}: cannot create the folder ({e.strerror or e}); pass "
                    "a writable --model-dir."
                ) from None
            yield

    @property
    def model_path(self) -> str:
        """The final model of the run."""
        return os.path.join(self.model_dir, "model.keras")

    @property
    def best_path(self) -> str:
        """The best model of the run by evaluated AP."""
        return os.path.join(self.model_dir, "best.keras")

    @property
    def best_save_path(self) -> str:
        """Where this worker saves the best model (only the chief's lands in `model_dir`)."""
        return self.best_path if self.chief else os.path.join(self.scratch, "best.keras")

    @property
    def save_path(self) -> str:
        """Where this worker saves the final model (only the chief's lands in `model_dir`)."""
        return self.model_path if self.chief else os.path.join(self.scratch, "model.keras")

    def remove_scratch(self) -> None:
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)


def _prepare_model_dir(paths: _RunPaths, source: CocoDataset, restart: bool) -> None:
    """Moves an earlier run aside (`restart`), or clears and checks it for a resume.

    A resume removes the folders of unfinished checkpoint saves and checks the
    classes: a resumed run must train the classes it was trained on. The class
    count is in the checkpoint's shapes, but renamed or renumbered classes with
    the same count would restore silently and mislabel every detection.
    """
    if restart:
        move_previous_run(paths.model_dir)
        os.makedirs(paths.checkpoint_dir, exist_ok=True)
        return
    for path in remove_partial_checkpoints(paths.checkpoint_dir):
        logger.info("removed %s, a checkpoint whose save never finished", path)
    classes_file = os.path.join(paths.model_dir, "classes.json")
    if not holds_checkpoints(paths.checkpoint_dir) or not os.path.exists(classes_file):
        return
    try:
        trained = CategoryMap.from_json(classes_file)
    except (OSError, ValueError) as e:
        raise SetupError(
            f"{classes_file}: cannot read the class mapping of the checkpoints ({e}); restore "
            "it, or run with --restart to start from scratch."
        ) from None
    if trained != source.categories:

        def listed(categories: CategoryMap) -> str:
            pairs = zip(categories.category_ids, categories.names, strict=True)
            return ", ".join(f"{i}:{n}" for i, n in pairs)

        raise SetupError(
            f"{classes_file}: the checkpoints were trained on the classes [{listed(trained)}] "
            f"(id:name), but {source.annotation_file} has [{listed(source.categories)}]; "
            "resume with the dataset they were trained on, use a new --model-dir, or run with "
            "--restart to start from scratch (the previous run's files are moved aside)."
        )


def _write_run_config(config: Config, source: CocoDataset, model_dir: str) -> None:
    """The resolved config and the class mapping, next to the checkpoints."""
    save_config(config, os.path.join(model_dir, "config.yaml"))
    source.categories.to_json(os.path.join(model_dir, "classes.json"))


def _log_start(
    train_cfg: TrainConfig,
    strategy: tf.distribute.Strategy,
    learning_rate: LearningRate,
    state: TrainingState,
    checkpoint_dir: str,
) -> None:
    replicas = strategy.num_replicas_in_sync
    logger.info(
        "strategy %s: %d replica(s), global batch %d (%d per replica), learning rate %.3g "
        "(%.3g x %d / %d)",
        type(strategy).__name__,
        replicas,
        train_cfg.batch_size,
        train_cfg.batch_size // replicas,
        learning_rate.initial,
        train_cfg.learning_rate,
        train_cfg.batch_size,
        train_cfg.base_batch,
    )
    for prefix, reason in state.skipped:
        logger.warning("skipped checkpoint %s: %s", prefix, reason)
    if state.restored_from:
        logger.info("resumed from %s at step %d", state.restored_from, state.step)
    else:
        logger.info("starting a new run (no checkpoint in %s)", checkpoint_dir)


@dataclasses.dataclass
class _RunCallbacks:
    """The callbacks of `fit`, in order, and those read after it.

    Attributes:
        all: every callback, in the order `fit` runs them.
        throughput: the `ImagesPerSecond` callback (for the summary).
        evaluation: the `PeriodicEvaluation` callback, when there is one.
        best: the `BestModel` callback, with the evaluation.
    """

    all: list[keras.callbacks.Callback]
    throughput: cb.ImagesPerSecond
    evaluation: cb.PeriodicEvaluation | None
    best: cb.BestModel | None

    @classmethod
    def create(
        cls,
        train_cfg: TrainConfig,
        state: TrainingState,
        inputs: TrainInput,
        evaluate_fn: cb.EvaluateFn | None,
        paths: _RunPaths,
        stop: cb.StopOnSignal,
        user_callbacks: Sequence[keras.callbacks.Callback] = (),
    ) -> _RunCallbacks:
        throughput = cb.ImagesPerSecond(train_cfg.batch_size)
        # Log producers come before TensorBoard, which writes the logs they add.
        callbacks = [
            cb.StopAtStep(train_cfg.steps),
            stop,
            cb.MallocTuning(),
            cb.LearningRateLogger(),
            throughput,
            cb.BadImageLogger(inputs.bad_images),
        ]
        tensorboard = paths.chief and _tensorboard_available()
        log_dir = os.path.join(paths.model_dir, "logs")
        if tensorboard:
            callbacks.append(
                cb.StepTensorBoard(
                    log_dir, update_freq=train_cfg.log_every, write_graph=False, profile_batch=0
                )
            )
        callbacks.append(cb.CheckpointEvery(state.manager, train_cfg.checkpoint_every))
        if train_cfg.freeze_backbone_steps:
            callbacks.append(finetune.FreezeBackbone(train_cfg.freeze_backbone_steps))
        evaluation = best = None
        if evaluate_fn is not None and train_cfg.eval_every > 0:
            eval_dir = os.path.join(log_dir, "eval") if tensorboard else None
            evaluation = cb.PeriodicEvaluation(
                evaluate_fn,
                train_cfg.eval_every,
                eval_dir,
                skip_final=lambda: stop.received is not None,
            )
            # Every worker decides alike: the chief's record of the best so far.
            best = cb.BestModel(
                evaluation,
                paths.best_save_path,
                "AP",
                _save_model,
                previous=cb.BestModel.read(paths.best_path),
            )
            callbacks += [evaluation, best]
        return cls([*callbacks, *user_callbacks], throughput, evaluation, best)


def _tensorboard_available() -> bool:
    # Keras' TensorBoard callback needs the `tensorboard` package, which an
    # install without dependencies may lack; training goes on without scalars.
    if importlib.util.find_spec("tensorboard") is None:
        logger.warning(
            "TensorBoard scalars are off: the `tensorboard` package is not installed "
            "(pip install tensorboard)."
        )
        return False
    return True


def _fit(
    state: TrainingState,
    inputs: TrainInput,
    callbacks: list[keras.callbacks.Callback],
    train_cfg: TrainConfig,
    paths: _RunPaths,
    *,
    verbose: int | str,
) -> None:
    """`model.fit` from the restored step to `train.steps`, one epoch per checkpoint interval."""
    steps_per_epoch = min(train_cfg.checkpoint_every, train_cfg.steps)
    try:
        state.model.fit(
            inputs.dataset,
            epochs=math.ceil(train_cfg.steps / steps_per_epoch),
            initial_epoch=state.step // steps_per_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            verbose=verbose if paths.chief else 0,
            shuffle=False,
        )
    except tf.errors.InvalidArgumentError as e:
        # The input pipeline's bad-image limit is a tf.debugging.Assert: it
        # surfaces as an InvalidArgumentError whose text names the limit.
        if "max_bad_images" not in str(e):
            raise
        raise BadDataError(
            f"{assertion_message(str(e))} (training stopped at step {global_step(state.model)}; "
            f"the last checkpoint is in {paths.checkpoint_dir})"
        ) from None


def _log_bad_images(inputs: TrainInput, max_bad_images: int) -> int:
    """Logs what the input pipelines skipped; returns the number of bad images."""
    bad = inputs.bad_images()
    for data in inputs.pipelines:
        data.tracker.log_summary(logger)
    logger.info("bad images skipped: %d (limit data.max_bad_images=%d)", bad, max_bad_images)
    return bad


def _read_summary(model_dir: str) -> dict | None:
    """The `summary.json` of an earlier run in `model_dir`, or None."""
    try:
        with open(os.path.join(model_dir, "summary.json"), encoding="utf-8") as f:
            summary = json.load(f)
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


def _write_summary(result: TrainResult, model_dir: str) -> None:
    atomic_write_json(os.path.join(model_dir, "summary.json"), dataclasses.asdict(result))
    logger.info(
        "done: step %d, %.1f images/s, peak memory %.0f MB; model written to %s",
        result.step,
        result.images_per_sec,
        result.peak_memory_mb,
        result.model_path,
    )


# ------------------------------------------------------------- entry points


def save_model_atomic(model: keras.Model, path: str | os.PathLike) -> None:
    """Saves `model` as a `.keras` file; `path` is the old file or the whole new one.

    Every worker saves (reading synchronised variables may be collective),
    each to its own path.

    Args:
        model: the model.
        path: destination ending in ".keras".
    """
    with atomic_path(path, suffix=".keras") as tmp:  # Keras saves only to ".keras" names
        model.save(tmp)


def _save_model(model: keras.Model, path: str) -> None:
    """`save_model_atomic`, a write failure (disk full, read-only folder) as one message."""
    try:
        save_model_atomic(model, path)
    except OSError as e:
        raise CheckpointWriteError(
            f"{path}: cannot write the model ({io_error_reason(e)}); free disk space or "
            f"make {os.path.dirname(os.path.abspath(path))} writable, then run the same command "
            "again (it resumes from the last checkpoint)."
        ) from None


def default_evaluate_fn(config: Config, data_dir: str | os.PathLike) -> cb.EvaluateFn | None:
    """The evaluation hook `scripts/train.py` passes to `train`.

    COCO AP on `data.val_split` (`cornernet_tf.evaluation.make_evaluate_fn`),
    or None when `train.eval_every` is 0.

    Args:
        config: the experiment config.
        data_dir: dataset root.

    Returns:
        `model -> {metric: value}`, or None.
    """
    if config.train.eval_every <= 0:
        return None
    # The only use of the evaluation package by training (`train` takes any
    # hook); importing it here keeps it off the import path of `train` itself.
    from cornernet_tf import evaluation

    return evaluation.make_evaluate_fn(os.fspath(data_dir), config.data.val_split)


def configure_logging() -> None:
    """Sends the training log lines to stdout, one line each, timestamped in a file or pipe."""
    package_logger = logging.getLogger("cornernet_tf.training")
    handler = CurrentStreamHandler("stdout")
    terminal = hasattr(sys.stdout, "isatty") and sys.stdout.isatty()
    handler.setFormatter(
        logging.Formatter(
            "%(message)s" if terminal else "%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"
        )
    )
    package_logger.handlers[:] = [handler]
    package_logger.setLevel(logging.INFO)
    package_logger.propagate = False
