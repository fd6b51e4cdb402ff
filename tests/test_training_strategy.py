"""`cornernet_tf.training.strategy`: strategy selection, cluster errors, replica checks."""

import pytest
import tensorflow as tf

from cornernet_tf.config import ConfigError
from cornernet_tf.training import strategy as strategy_lib
from cornernet_tf.training.errors import SetupError


def test_strategy_selection_and_errors(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    strategy = strategy_lib.make_strategy("auto")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert strategy.num_replicas_in_sync == 1
    assert strategy_lib.is_chief(strategy)
    assert not strategy_lib.is_multi_worker(strategy)
    assert strategy_lib.task(strategy) == (None, 0)
    with pytest.raises(SetupError, match="unknown strategy; choose one of auto"):
        strategy_lib.make_strategy("horovod")
    with pytest.raises(SetupError, match="TF_CONFIG environment variable is not set"):
        strategy_lib.make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(SetupError, match="TF_CONFIG is not valid JSON"):
        strategy_lib.make_strategy("auto")
    monkeypatch.setenv("TF_CONFIG", '{"task": {}}')
    with pytest.raises(SetupError, match='"cluster" mapping'):
        strategy_lib.make_strategy("multi_worker")


def test_global_batch_must_divide_over_the_replicas():
    strategy_lib.check_global_batch(8, 4)
    with pytest.raises(ConfigError, match="must be divisible by the 2 replicas.*batch_size=4"):
        strategy_lib.check_global_batch(5, 2)
    with pytest.raises(ConfigError, match="batch_size=3"):
        strategy_lib.check_global_batch(2, 3)  # never suggests fewer images than replicas


def test_jit_compile_as_requested_on_one_replica():
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    assert strategy_lib.use_jit_compile(True, one) is True
    assert strategy_lib.use_jit_compile(False, one) is False
