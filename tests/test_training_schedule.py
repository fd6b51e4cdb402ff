"""`cornernet_tf.training.schedule`: linear scaling and the official step decay."""

import keras
import numpy as np
import pytest

from cornernet_tf.spec.config import TrainConfig
from cornernet_tf.training import schedule


def test_learning_rate_scales_linearly_with_the_global_batch():
    assert schedule.scaled_learning_rate(2.5e-4, 49, 49) == 2.5e-4
    assert schedule.scaled_learning_rate(2.5e-4, 98, 49) == pytest.approx(5e-4)
    assert schedule.scaled_learning_rate(2.5e-4, 7, 49) == pytest.approx(2.5e-4 / 7)
    with pytest.raises(ValueError, match="batch sizes must be > 0"):
        schedule.scaled_learning_rate(2.5e-4, 0, 49)


def test_schedule_matches_the_official_step_decay():
    # Official train.py: iterations 1..450000 at lr, from 450001 on lr / 10; Keras
    # evaluates the schedule at optimizer.iterations = iteration - 1.
    decay = schedule.learning_rate_schedule(2.5e-4, (450_000,), 10.0)
    for iteration, expected in [
        (1, 2.5e-4),
        (450_000, 2.5e-4),
        (450_001, 2.5e-5),
        (500_000, 2.5e-5),
    ]:
        assert float(decay(iteration - 1)) == pytest.approx(expected), iteration
    two = schedule.learning_rate_schedule(1.0, (10, 20), 2.0)
    assert [float(two(s)) for s in (0, 9, 10, 19, 20)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    flat = schedule.learning_rate_schedule(0.1, (), 10.0)
    assert float(flat(10**9)) == pytest.approx(0.1)


def test_schedule_follows_a_restored_iteration_counter():
    optimizer = keras.optimizers.Adam(schedule.learning_rate_schedule(1.0, (5,), 10.0))
    optimizer.build([keras.Variable(np.zeros(2, "float32"))])
    assert float(optimizer.learning_rate) == 1.0
    optimizer.iterations.assign(5)  # what a restore of step 5 does
    assert float(optimizer.learning_rate) == pytest.approx(0.1)


def test_learning_rate_from_config_scales_then_decays():
    train = TrainConfig(
        learning_rate=2.5e-4,
        batch_size=98,
        base_batch=49,
        lr_decay_steps=(10,),
        lr_decay_factor=4.0,
    )
    rate = schedule.LearningRate.from_config(train)
    assert rate.initial == pytest.approx(5e-4)
    assert float(rate.schedule(0)) == pytest.approx(5e-4)
    assert float(rate.schedule(9)) == pytest.approx(5e-4)  # iteration 10
    assert float(rate.schedule(10)) == pytest.approx(1.25e-4)  # iteration 11
