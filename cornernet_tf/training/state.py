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

import keras
import tensorflow as tf

from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.spec.config import Config, ConfigError
from cornernet_tf.training import keras_compat
from cornernet_tf.training.errors import SetupError, first_line
from cornernet_tf.training.schedule import LearningRate
from cornernet_tf.training.strategy import use_jit_compile

__all__ = [
    "TrainingState",
    "build_training_state",
    "global_step",
    "make_checkpoint",
    "make_checkpoint_manager",
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
        starting fresh).

    Raises:
        ConfigError: the model cannot be built as configured.
        SetupError: the checkpoint does not match the configured model.
    """
    strategy = strategy or tf.distribute.get_strategy()
    model = _build_model(config, class_names, learning_rate, strategy)
    checkpoint = make_checkpoint(model)
    manager = make_checkpoint_manager(
        checkpoint, write_dir or checkpoint_dir, config.train.keep_checkpoints
    )
    restored_from = _restore_latest(checkpoint, checkpoint_dir)
    keras_compat.prepare_for_fit(model, strategy)
    return TrainingState(model, checkpoint, manager, global_step(model), restored_from)


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
    overrides.setdefault("test_config", dataclasses.asdict(config.test))
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


def _restore_latest(checkpoint: tf.train.Checkpoint, checkpoint_dir: str) -> str | None:
    """Restores the newest checkpoint of `checkpoint_dir`; returns its path, or None."""
    latest = tf.train.latest_checkpoint(checkpoint_dir)
    if latest is None:
        return None
    try:
        checkpoint.restore(latest).assert_consumed()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise SetupError(
            f"{latest}: this checkpoint does not match the configured model "
            f"({first_line(e)}); use a new --model-dir, or the config it was trained with."
        ) from None
    return latest
