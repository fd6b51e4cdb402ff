"""Where training runs: the `tf.distribute` strategy, the cluster, and what depends on it.

One device, `MirroredStrategy` over the local GPUs (or logical CPUs), or
`MultiWorkerMirroredStrategy` over the cluster named by `TF_CONFIG`. The
global batch (`train.batch_size`) is split over the replicas of all workers;
the chief writes checkpoints, logs and the final model; workers meet at a
`barrier` before they exit.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping

import tensorflow as tf

from cornernet_tf.spec.config import ConfigError
from cornernet_tf.training.errors import SetupError
from cornernet_tf.utils import private_api

logger = logging.getLogger(__name__)

__all__ = [
    "STRATEGIES",
    "barrier",
    "check_global_batch",
    "is_chief",
    "is_multi_worker",
    "make_strategy",
    "task",
    "use_jit_compile",
]

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


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
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        logger.info(
            "Strategy: MultiWorkerMirroredStrategy, %d workers, %d replicas in sync.",
            _cluster_size(tf_config),
            strategy.num_replicas_in_sync,
        )
        return strategy
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    _check_requested_gpus(gpus)
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        devices = gpus or [d.name for d in tf.config.list_logical_devices("CPU")]
        if not gpus:
            logger.warning(
                "--strategy mirrored: TensorFlow sees no GPU (%s); mirroring over the %d "
                "logical CPU device(s) instead.",
                _why_no_gpu(),
                len(devices),
            )
        strategy = tf.distribute.MirroredStrategy(devices)
    else:
        device = gpus[0] if gpus else "/cpu:0"
        if name == "auto" and not gpus:
            logger.warning(
                "--strategy auto: TensorFlow sees no GPU (%s); training on the CPU.",
                _why_no_gpu(),
            )
        strategy = tf.distribute.OneDeviceStrategy(device)
        devices = [device]
    logger.info(
        "Strategy: %s over %s, %d replica(s) in sync.",
        type(strategy).__name__,
        ", ".join(devices),
        strategy.num_replicas_in_sync,
    )
    return strategy


def _why_no_gpu() -> str:
    if not tf.test.is_built_with_cuda():
        return (
            "this TensorFlow is a CPU-only build; on Linux with NVIDIA GPUs install "
            '`pip install "cornernet_tf[gpu]"`'
        )
    return "no NVIDIA GPU or driver found; `nvidia-smi` should list the GPUs"


def _check_requested_gpus(gpus: list[str]) -> None:
    """Refuses to train on the CPU when `CUDA_VISIBLE_DEVICES` asks for GPUs that TF lacks.

    Raises:
        SetupError: GPUs were asked for, none is visible; says what is missing.
    """
    requested = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if gpus or not requested or requested == "-1":
        return
    if tf.test.is_built_with_cuda():
        cause = (
            "the CUDA libraries or the NVIDIA driver are missing; install them with "
            '`pip install "cornernet_tf[gpu]"` (tensorflow[and-cuda]) and check `nvidia-smi`'
        )
    else:
        cause = (
            "this TensorFlow is a CPU-only build (e.g. tensorflow-cpu); install "
            '`pip install "cornernet_tf[gpu]"`'
        )
    raise SetupError(
        f"CUDA_VISIBLE_DEVICES={requested} asks for GPUs, but TensorFlow sees none: {cause}. "
        'Check with: python -c "import tensorflow as tf; '
        "print(tf.config.list_physical_devices('GPU'))\"; unset CUDA_VISIBLE_DEVICES to "
        "train on the CPU."
    )


def _tf_config() -> dict | None:
    """`TF_CONFIG` parsed, or None when unset; SetupError when it is malformed."""
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
    """Tasks of every job in `TF_CONFIG`'s cluster."""
    return sum(len(v) for v in tf_config["cluster"].values() if isinstance(v, list))


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
    """This process's `(task type, task index)` in the cluster.

    Args:
        strategy: the strategy.

    Returns:
        `(None, 0)` when the strategy has no cluster (one machine).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None, 0
    return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints, logs and the final model.

    Args:
        strategy: the strategy.

    Returns:
        True for the "chief" task, or "worker" 0 when the cluster has no chief,
        or when there is no cluster.
    """
    task_type, task_id = task(strategy)
    if task_type is None:
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """True when `strategy` spans several worker processes (see `cornernet_tf.utils.private_api`).

    Args:
        strategy: the strategy.

    Returns:
        Whether the workers must synchronise (e.g. at `barrier`).
    """
    return private_api.in_multi_worker_mode(strategy)


def check_global_batch(batch_size: int, replicas: int) -> None:
    """Checks that the global batch splits evenly over the replicas.

    Args:
        batch_size: `train.batch_size`, the global batch.
        replicas: `strategy.num_replicas_in_sync`.

    Raises:
        ConfigError: naming the nearest batch size that divides.
    """
    if batch_size % replicas:
        raise ConfigError(
            f"train.batch_size={batch_size} is the global batch and must be divisible by "
            f"the {replicas} replicas; use e.g. --set train.batch_size="
            f"{max(replicas, batch_size // replicas * replicas)}."
        )


def use_jit_compile(requested: bool | str, strategy: tf.distribute.Strategy) -> bool:
    """Whether to XLA-compile the train step.

    `train.jit_compile: auto` compiles on GPUs and TPUs and runs the step as a
    graph on CPUs, as Keras' own `jit_compile="auto"` does on a machine without
    accelerators. On CPUs TensorFlow's oneDNN kernels (convolutions, the fused
    BatchNorm) beat XLA's CPU backend, and nothing has to be compiled before
    the first step: the `tiny` preset's 300 steps on 2 cores took 56-57 s as a
    graph and 78-79 s with XLA (docs/performance.md). `true` compiles on one
    CPU replica too; across several CPU replicas (logical CPU devices or
    CPU-only workers) an XLA-compiled step fails in TF 2.21 with "trying to
    access resource ... located in device ... from device ...", so such runs
    stay in graph mode with a warning.

    Args:
        requested: `train.jit_compile`: True, False or "auto".
        strategy: the strategy the model is compiled under.

    Returns:
        The `jit_compile` value for `model.compile`.
    """
    if requested is False:
        return False
    accelerated = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU")
    if accelerated or (requested is True and strategy.num_replicas_in_sync == 1):
        logger.info("train.jit_compile=%s: the train step is XLA-compiled.", requested)
        return True
    if requested is True:
        logger.warning(
            "train.jit_compile=true: XLA is off for %d CPU replicas (XLA across CPU replicas "
            "fails in TensorFlow 2.21); the train step runs as a graph.",
            strategy.num_replicas_in_sync,
        )
        return False
    logger.info(
        "train.jit_compile=auto: the train step runs as a graph on the CPU (faster there than "
        "XLA's CPU backend); set train.jit_compile=true to compile it."
    )
    return False


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Blocks until every worker of `strategy` gets here (an all-reduce of ones).

    Args:
        strategy: the strategy whose workers synchronise.
    """

    @tf.function
    def count():
        return strategy.reduce("SUM", strategy.run(lambda: tf.ones([])), axis=None)

    count()
