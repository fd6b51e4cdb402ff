"""Every use of a private Keras, TensorFlow or LiteRT API in the package.

The rest of `cornernet_tf` uses public APIs only; what they cannot do is done
here, one function per workaround, each saying which private name it touches,
why the package needs it and which public API is missing. When Keras,
TensorFlow or LiteRT is upgraded, check these first: all were checked against
Keras 3.15, TensorFlow 2.21 and ai-edge-litert 2.1. `tests/test_train.py`
exercises the training ones (its resume test checks the TensorBoard step after a
restart and runs `fit` with `skip_symbolic_build`; its multi-worker test needs
the others), `tests/test_corner_pooling.py` the XLA test and
`tests/test_tflite.py` the operator listing.
"""

from __future__ import annotations

import keras
import tensorflow as tf

__all__ = [
    "graph_in_xla_context",
    "in_multi_worker_mode",
    "prepare_for_fit",
    "set_tensorboard_train_step",
    "skip_symbolic_build",
    "tflite_operator_names",
    "update_loss_tracker",
    "vector_logs",
]


def in_multi_worker_mode(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` spanning more than one worker.

    Private API: `strategy.extended._in_multi_worker_mode()`. Keras 3's
    TensorFlow trainer takes its multi-worker code path (the log reduction that
    `vector_logs` works around) exactly when this returns True
    (`_collective_all_reduce_multi_worker` in
    `keras/src/backend/tensorflow/trainer.py`), so the workaround must use the
    very same test; the trainer also needs it to know that its workers must
    meet at a barrier before they exit. There is no public
    `Strategy.is_multi_worker`: counting the tasks of `cluster_resolver` would
    duplicate TensorFlow's rules (chief, evaluator, sparse cluster specs)
    rather than follow them.

    Args:
        strategy: any strategy.

    Returns:
        True under multi-worker training.
    """
    return (
        isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
        and strategy.extended._in_multi_worker_mode()
    )


def vector_logs(model: keras.Model) -> None:
    """Makes `fit` work under multi-worker `MultiWorkerMirroredStrategy`.

    Public API only (it replaces `model.train_step`), but it exists because of
    a Keras bug and depends on the private test of `in_multi_worker_mode`.
    Keras 3's TF trainer reduces each replica's logs with
    `strategy.reduce("MEAN", value, axis=0)` in multi-worker mode, which fails
    on the scalar losses and metrics a train step returns ("Invalid reduction
    dimension 0 for input with 0 dimensions"; keras-team/keras#20585). Giving
    every log a leading axis of 1 makes that reduce the mean over all replicas
    of all workers, a scalar again. Missing public API: a scalar-safe log
    reduction in `fit`.

    Args:
        model: the compiled model; its `train_step` is wrapped in place.
    """
    train_step = model.train_step

    def vector_train_step(data):
        logs = train_step(data)
        return {name: tf.reshape(value, [1]) for name, value in logs.items()}

    model.train_step = vector_train_step


def skip_symbolic_build(model: keras.Model) -> None:
    """Stops `fit` from peeking at a batch to build a model that is already built.

    Private API: `model._compile_metrics`, `model._compile_loss` (read) and
    `model._maybe_symbolic_build` (replaced by a no-op). Keras 3's TF trainer,
    when the model was created under a strategy, takes one batch of the
    distributed dataset and `strategy.reduce`s the whole (nested) batch before
    checking whether anything needs building; under
    `MultiWorkerMirroredStrategy` that reduce fails on nested structures
    (keras-team/keras#20585, "Attempt to convert a value (PerReplica...)"),
    and elsewhere it costs a batch of the input pipeline. The trainer builds
    the model, the optimizer and the (metric-free, loss-free) compile state
    itself, so the step is a no-op there and is skipped. Missing public API: a
    `fit` option, or a `Model` method, saying "already built".

    Args:
        model: the compiled model, with its variables and optimizer slots
            created; when anything is still unbuilt, `fit` keeps its own step.
    """
    compiled = getattr(model, "_compile_metrics", None), getattr(model, "_compile_loss", None)
    if model.built and model.optimizer.built and all(c is None or c.built for c in compiled):
        model._maybe_symbolic_build = lambda *args, **kwargs: None


def prepare_for_fit(model: keras.Model, strategy: tf.distribute.Strategy) -> None:
    """Applies the `fit` workarounds a built, compiled model needs under `strategy`.

    Args:
        model: the compiled model, variables and optimizer slots created.
        strategy: the strategy the model was built under.
    """
    skip_symbolic_build(model)
    if in_multi_worker_mode(strategy):
        vector_logs(model)


def set_tensorboard_train_step(callback: keras.callbacks.TensorBoard, step: int) -> None:
    """Makes `callback` number its next batch summaries from `step` on.

    Private API: `TensorBoard._global_train_batch`, the step of the batch
    summaries, which `on_train_begin` resets to 0 at every `fit`. After a
    resume that would write the new curves over the interrupted run's, so the
    trainer sets it to the restored iteration count right after
    `on_train_begin`. Missing public API: an initial step for the batch
    summaries (`fit(initial_epoch=...)` only moves the epoch summaries).

    Args:
        callback: a `keras.callbacks.TensorBoard`, after its `on_train_begin`.
        step: the optimizer's iteration count.
    """
    callback._global_train_batch = step


def graph_in_xla_context() -> bool:
    """Whether the graph being traced is compiled by XLA (`tf.function(jit_compile=True)`).

    Private API: `tensorflow.python.ops.control_flow_util.GraphOrParentsInXlaContext`,
    which TensorFlow's own control flow asks. Corner pooling builds a
    `while_loop` for XLA and chains of maxima elsewhere (XLA compiles the chains
    slowly). Missing public API: a way to ask whether a trace is for XLA.

    Returns:
        True inside an XLA-compiled function; False when the helper is gone.
    """
    try:
        from tensorflow.python.ops import control_flow_util
    except ImportError:
        return False
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def update_loss_tracker(model: keras.Model, loss, sample_weight) -> None:
    """Adds `loss` to the `loss` metric `fit` and `evaluate` report.

    Private API: `model._loss_tracker`, the mean metric Keras' own `train_step`
    and `test_step` update. CornerNet's `test_step` computes the loss of every
    stack and must report it under the same name. Missing public API: access to
    the compiled loss metric.

    Args:
        model: a compiled Keras model.
        loss: the batch's loss.
        sample_weight: the batch's weight in the mean (its size).
    """
    model._loss_tracker.update_state(loss, sample_weight=sample_weight)


def tflite_operator_names(interpreter) -> list[str]:
    """The operator names of a LiteRT interpreter's model, sorted and unique.

    Private API: `Interpreter._get_ops_details()`. The export checks that a file
    holds builtin operators only. Missing public API: listing a model's
    operators (the flatbuffer schema would need a parser of its own).

    Args:
        interpreter: an `ai_edge_litert.interpreter.Interpreter`.
    """
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})
