"""`cornernet_tf.training.strategy`: strategy selection, cluster errors, replica checks."""

import pytest
import tensorflow as tf

from cornernet_tf.spec.config import ConfigError
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


def test_devices_are_logged_and_a_missing_gpu_is_said(monkeypatch, caplog):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    caplog.set_level("INFO", logger="cornernet_tf.training.strategy")
    strategy_lib.make_strategy("one_device")
    assert "Strategy: OneDeviceStrategy over /cpu:0, 1 replica(s) in sync." in caplog.text
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible: the CPU fallback cannot happen here")
    caplog.clear()
    mirrored = strategy_lib.make_strategy("mirrored")
    assert isinstance(mirrored, tf.distribute.MirroredStrategy)
    assert "--strategy mirrored: TensorFlow sees no GPU" in caplog.text
    assert "mirroring over the 1 logical CPU device(s) instead" in caplog.text
    caplog.clear()
    strategy_lib.make_strategy("auto")
    assert "--strategy auto: TensorFlow sees no GPU" in caplog.text
    assert "training on the CPU" in caplog.text


def test_gpus_asked_for_but_missing_is_an_error(monkeypatch):
    if tf.config.list_logical_devices("GPU"):
        pytest.skip("a GPU is visible")
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(
        SetupError, match=r"CUDA_VISIBLE_DEVICES=0,1 asks for GPUs.*cornernet_tf\[gpu\]"
    ):
        strategy_lib.make_strategy("mirrored")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # the usual way to hide GPUs
    strategy_lib.make_strategy("one_device")


def test_jit_compile_auto_compiles_on_accelerators_only(caplog):
    caplog.set_level("INFO", logger="cornernet_tf.training.strategy")
    one = tf.distribute.OneDeviceStrategy("/cpu:0")

    class TwoCpuReplicas:  # `use_jit_compile` reads only the replica count
        num_replicas_in_sync = 2

    if tf.config.list_logical_devices("GPU"):
        assert strategy_lib.use_jit_compile("auto", one) is True
        pytest.skip("a GPU is visible: XLA stays on")
    assert strategy_lib.use_jit_compile("auto", one) is False
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "runs as a graph on the CPU" in caplog.text
    caplog.clear()
    assert strategy_lib.use_jit_compile("auto", TwoCpuReplicas()) is False
    assert [r.levelname for r in caplog.records] == ["INFO"]
    caplog.clear()
    assert strategy_lib.use_jit_compile(True, one) is True
    assert "the train step is XLA-compiled" in caplog.text
    caplog.clear()
    assert strategy_lib.use_jit_compile(True, TwoCpuReplicas()) is False
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "XLA across CPU replicas fails" in caplog.text
    assert strategy_lib.use_jit_compile(False, TwoCpuReplicas()) is False
