"""What a resume restores: the compiled model, its optimizer, and their checkpoints.

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
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil

import keras
import tensorflow as tf

from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.spec.config import Config, ConfigError
from cornernet_tf.training import finetune
from cornernet_tf.training.errors import SetupError, first_line
from cornernet_tf.training.schedule import LearningRate
from cornernet_tf.training.strategy import use_jit_compile
from cornernet_tf.utils import private_api

__all__ = [
    "TrainingState",
    "build_training_state",
    "global_step",
    "holds_checkpoints",
    "list_checkpoints",
    "make_checkpoint",
    "make_checkpoint_manager",
    "remove_partial_checkpoints",
    "restore_newest_complete",
]


def global_step(model: keras.Model) -> int:
    """The optimizer's iteration count: the training step every other counter follows.

    Args:
        model: a compiled model.

    Returns:
        Iterations done (restored ones included).
    """
    return int(model.optimizer.iterations.numpy())


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
        skipped: newer checkpoints skipped as incomplete, `(prefix, reason)`.
    """

    model: keras.Model
    checkpoint: tf.train.Checkpoint
    manager: tf.train.CheckpointManager
    step: int
    restored_from: str | None
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def build_training_state(
    config: Config,
    class_names: list[str],
    checkpoint_dir: str,
    *,
    learning_rate: LearningRate,
    strategy: tf.distribute.Strategy | None = None,
    write_dir: str | None = None,
) -> TrainingState:
    """Builds the compiled model and restores the latest checkpoint, if any.

    Args:
        config: the experiment config.
        class_names: one name per class (sets `num_classes` and `class_names`
            unless `model.overrides` gives them).
        checkpoint_dir: directory holding the checkpoints to resume from.
        learning_rate: the run's rate (`LearningRate.from_config(config.train)`).
        strategy: the distribution strategy (default: the current one).
        write_dir: directory this worker writes checkpoints to (default
            `checkpoint_dir`; non-chief workers pass a temporary one).

    Returns:
        The `TrainingState`; `step` is the restored iteration count (0 when
        starting fresh), `skipped` the incomplete checkpoints passed over.

    Raises:
        ConfigError: the model cannot be built as configured.
        SetupError: the checkpoint does not match the configured model, or
            `checkpoint_dir` holds no complete checkpoint
            (`restore_newest_complete`).
    """
    strategy = strategy or tf.distribute.get_strategy()
    model = _build_model(config, class_names, learning_rate, strategy)
    checkpoint = make_checkpoint(model)
    manager = make_checkpoint_manager(
        checkpoint, write_dir or checkpoint_dir, config.train.keep_checkpoints
    )
    restored_from, skipped = restore_newest_complete(checkpoint, checkpoint_dir)
    if restored_from is None and config.model.init_from is not None:
        finetune.load_init_weights(model, config)  # a fresh run only: a resume keeps its own
    private_api.prepare_for_fit(model, strategy)
    return TrainingState(model, checkpoint, manager, global_step(model), restored_from, skipped)


def _model_overrides(config: Config, class_names: list[str]) -> dict:
    """`CornerNet.from_preset` arguments: `model.overrides` + the dataset's classes + `test`."""
    overrides = dict(config.model.overrides)
    overrides.setdefault("num_classes", len(class_names))
    if overrides["num_classes"] != len(class_names):
        raise ConfigError(
            f"model.overrides.num_classes={overrides['num_classes']} but the training set has "
            f"{len(class_names)} categories; remove the override or fix the dataset."
        )
    overrides.setdefault("class_names", list(class_names))
    overrides.update(finetune.init_from_arguments(config))  # the normalisation its weights expect
    overrides.setdefault("test_config", dataclasses.asdict(config.test))
    overrides.setdefault("saccade_config", dataclasses.asdict(config.saccade))
    return overrides


def _build_model(
    config: Config,
    class_names: list[str],
    learning_rate: LearningRate,
    strategy: tf.distribute.Strategy,
) -> keras.Model:
    """The compiled model with every variable and optimizer slot created under `strategy`."""
    overrides = _model_overrides(config, class_names)
    train_cfg = config.train
    with strategy.scope():
        try:
            model = CornerNet.from_preset(config.model.preset, **overrides)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"model: cannot build preset {config.model.preset!r}: {e}") from None
        if model.attention and config.data.sampler != "saccade":
            raise ConfigError(
                f"model.preset {config.model.preset!r} has attention heads (CornerNet-Saccade), "
                f"whose targets only the saccade sampler makes; set data.sampler: saccade "
                f"(got {config.data.sampler!r}).",
                key="data.sampler",
            )
        size = config.data.input_size
        # Creates every variable: both stacks' heads, as training uses them.
        model(tf.zeros([1, size, size, 3]), training=False, all_stacks=True)
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate.schedule),
            pull_weight=train_cfg.pull_weight,
            push_weight=train_cfg.push_weight,
            offset_weight=train_cfg.offset_weight,
            recompute_stacks=train_cfg.recompute_stacks,
            jit_compile=use_jit_compile(train_cfg.jit_compile, strategy),
        )  # builds the optimizer's slots: a restore fills them
    return model


def make_checkpoint(model: keras.Model) -> tf.train.Checkpoint:
    """A checkpoint of every model weight and optimizer variable.

    Keras 3 layers keep sub-layers in Keras-tracked lists and dicts that
    TensorFlow's object graph does not see, so `Checkpoint(model=model)` would
    silently drop e.g. the BatchNorm statistics. The variables are listed
    explicitly instead, in their (deterministic) creation order.

    Args:
        model: the compiled model with its optimizer built.

    Returns:
        The `tf.train.Checkpoint`.
    """
    return tf.train.Checkpoint(
        model_weights=list(model.weights), optimizer_variables=list(model.optimizer.variables)
    )


def make_checkpoint_manager(
    checkpoint: tf.train.Checkpoint, directory: str, max_to_keep: int
) -> tf.train.CheckpointManager:
    """The manager writing `directory/ckpt-<step>` (`save(checkpoint_number=step)`).

    Args:
        checkpoint: what to save.
        directory: where to save it.
        max_to_keep: checkpoints kept, the oldest deleted first
            (`train.keep_checkpoints`).

    Returns:
        The `tf.train.CheckpointManager`.
    """
    return tf.train.CheckpointManager(
        checkpoint, directory, max_to_keep=max_to_keep, checkpoint_name="ckpt"
    )


_CHECKPOINT = re.compile(r"ckpt-(\d+)")
_PARTIAL = re.compile(r"ckpt-\d+_temp")
_LISTED = re.compile(r'^all_model_checkpoint_paths: "(.*)"$', re.MULTILINE)


def list_checkpoints(checkpoint_dir: str) -> list[str]:
    """Every checkpoint `checkpoint_dir` holds or names, newest (highest step) first.

    The `checkpoint` index file is not needed: the checkpoints are found by
    their files (`ckpt-<step>.index`, `ckpt-<step>.data-*`), so a lost or
    damaged index file does not hide them. Those the index names whose files
    are gone are listed too, for `restore_newest_complete` to report.

    Args:
        checkpoint_dir: the run's `checkpoints/` folder.

    Returns:
        Checkpoint prefixes (`<dir>/ckpt-<step>`).
    """
    steps = set()
    try:
        names = os.listdir(checkpoint_dir)
    except OSError:
        names = []
    for name in names:
        match = _CHECKPOINT.match(name)
        if match and name[match.end() :].startswith((".index", ".data-")):
            steps.add(int(match.group(1)))
    # The index file is a text proto; read here for the names only, so that a
    # damaged one is not an error (the files decide).
    try:
        with open(os.path.join(checkpoint_dir, "checkpoint"), encoding="utf-8") as f:
            listed = _LISTED.findall(f.read())
    except (OSError, UnicodeDecodeError):
        listed = []
    for path in listed:
        match = _CHECKPOINT.fullmatch(os.path.basename(path))
        if match:
            steps.add(int(match.group(1)))
    return [os.path.join(checkpoint_dir, f"ckpt-{step}") for step in sorted(steps, reverse=True)]


def remove_partial_checkpoints(checkpoint_dir: str) -> list[str]:
    """Removes the `ckpt-<step>_temp` folders of saves that never finished.

    TensorFlow writes a checkpoint's shards into `<prefix>_temp/` and merges
    them into `<prefix>.index` / `.data-*`; a save killed or failed before the
    merge leaves the folder, which no reader uses. Called by the only writer
    of the folder (the chief, holding the model directory's lock).

    Args:
        checkpoint_dir: the run's `checkpoints/` folder.

    Returns:
        The folders removed.
    """
    removed = []
    try:
        names = os.listdir(checkpoint_dir)
    except OSError:
        return removed
    for name in names:
        path = os.path.join(checkpoint_dir, name)
        if _PARTIAL.fullmatch(name) and os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def holds_checkpoints(checkpoint_dir: str) -> bool:
    """Whether `checkpoint_dir` holds any checkpoint file or a `checkpoint` index file."""
    return bool(list_checkpoints(checkpoint_dir)) or os.path.exists(
        os.path.join(checkpoint_dir, "checkpoint")
    )


def _missing_files(prefix: str) -> str | None:
    """What is missing of the checkpoint `prefix` (its index, a data shard), or None."""
    if not os.path.isfile(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    shards = [
        name
        for name in os.listdir(os.path.dirname(prefix))
        if name.startswith(os.path.basename(prefix) + ".data-")
    ]
    if not shards:
        return f"{os.path.basename(prefix)}.data-* is missing"
    total = int(shards[0].rsplit("-of-", 1)[-1]) if "-of-" in shards[0] else 1
    for shard in range(total):
        name = f"{os.path.basename(prefix)}.data-{shard:05d}-of-{total:05d}"
        if name not in shards:
            return f"{name} is missing"
    return None


def restore_newest_complete(
    checkpoint: tf.train.Checkpoint, checkpoint_dir: str
) -> tuple[str | None, list[tuple[str, str]]]:
    """Restores the newest complete checkpoint of `checkpoint_dir`.

    A checkpoint is complete when its index and all its data shards are there
    and every variable reads back. Incomplete ones (a write killed by a full
    disk, a file deleted or truncated) are skipped for the next older one;
    restoring that sets every variable again, so nothing of a skipped one
    remains.

    Args:
        checkpoint: the run's checkpoint object.
        checkpoint_dir: the folder to resume from.

    Returns:
        `(restored prefix or None, [(skipped prefix, reason), ...])`.

    Raises:
        SetupError: a checkpoint does not match the configured model, or the
            folder holds checkpoints of which none is complete (a fresh start
            would overwrite them).
    """
    skipped: list[tuple[str, str]] = []
    for prefix in list_checkpoints(checkpoint_dir):
        reason = _missing_files(prefix)
        if reason is None:
            try:
                checkpoint.restore(prefix).assert_consumed()
                return prefix, skipped
            except (AssertionError, ValueError) as e:
                raise SetupError(
                    f"{prefix}: this checkpoint does not match the configured model "
                    f"({first_line(e)}); use a new --model-dir, or the config it was trained with."
                ) from None
            except (tf.errors.OpError, IndexError) as e:
                # A data file shorter or other than its index says: TensorFlow
                # raises IndexError ("Read less bytes than requested") or DataLoss.
                data = f"{os.path.basename(prefix)}.data-*"
                reason = f"{data} is damaged or truncated ({first_line(e)})"
        skipped.append((prefix, reason))
    if skipped or os.path.exists(os.path.join(checkpoint_dir, "checkpoint")):
        listed = "; ".join(f"{os.path.basename(p)}: {r}" for p, r in skipped) or "none listed"
        raise SetupError(
            f"{checkpoint_dir}: no complete checkpoint to resume from ({listed}); restore the "
            "missing or damaged files, or run with --restart to start from scratch (the "
            "previous run's files are moved aside, not deleted)."
        )
    return None, skipped
