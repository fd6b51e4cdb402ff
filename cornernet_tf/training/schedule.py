"""The learning rate: linear scaling with the global batch, and the official step decay.

`LearningRate.from_config` derives the run's rate once from `config.train`;
the trainer passes that object to whoever needs the rate (the optimizer, the
start-up log line, the run summary), so they cannot disagree.
"""

from __future__ import annotations

import dataclasses

import keras

from cornernet_tf.spec.config import TrainConfig

__all__ = ["LearningRate", "learning_rate_schedule", "scaled_learning_rate"]


def scaled_learning_rate(learning_rate: float, batch_size: int, base_batch: int) -> float:
    """Linear learning-rate scaling: `learning_rate * batch_size / base_batch`.

    Args:
        learning_rate: the rate tuned at `base_batch` (official: 2.5e-4 at 49).
        batch_size: the global batch actually trained with.
        base_batch: the batch `learning_rate` belongs to.

    Returns:
        The scaled rate (Goyal et al. 2017, "linear scaling rule").

    Raises:
        ValueError: a batch size is not positive.
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


@dataclasses.dataclass(frozen=True)
class LearningRate:
    """The learning rate of a run.

    Attributes:
        initial: the configured rate scaled to the global batch
            (`scaled_learning_rate`); the rate of the first iteration.
        schedule: what the optimizer is given: `initial`, divided by
            `train.lr_decay_factor` after each of `train.lr_decay_steps`.
    """

    initial: float
    schedule: keras.optimizers.schedules.LearningRateSchedule

    @classmethod
    def from_config(cls, train: TrainConfig) -> LearningRate:
        """The rate of `train` (`learning_rate`, `batch_size`, `base_batch`, decay).

        Args:
            train: the `train` section of the experiment config.

        Returns:
            The `LearningRate`.
        """
        initial = scaled_learning_rate(train.learning_rate, train.batch_size, train.base_batch)
        schedule = learning_rate_schedule(initial, train.lr_decay_steps, train.lr_decay_factor)
        return cls(initial, schedule)
