"""Distributed, resumable CornerNet training with `keras.Model.fit`.

`train(config, data_dir, model_dir)` is what `scripts/train.py` runs:

* a `tf.distribute` strategy (`strategy.make_strategy`): one device,
  `MirroredStrategy` over the local GPUs, or `MultiWorkerMirroredStrategy`
  from `TF_CONFIG`; the global batch (`train.batch_size`) is split over the
  replicas, the learning rate follows it linearly
  (`schedule.scaled_learning_rate`), and the input pipelines are built per
  worker by `strategy.distribute_datasets_from_function` (`inputs`);
* Adam with a `PiecewiseConstantDecay` schedule driven by the optimizer's
  iteration counter (official `train.py`: the rate is divided by
  `decay_rate` after iteration `stepsize`), derived once per run
  (`schedule.LearningRate`);
* checkpoints every `train.checkpoint_every` iterations with
  `tf.train.CheckpointManager`, restored automatically on restart (`state`);
* a Keras progress bar with the loss parts, the learning rate and images/s,
  TensorBoard scalars, and an optional periodic evaluation hook (`callbacks`);
* the final model written atomically as `model.keras`, with `classes.json`
  and the resolved `config.yaml` (`loop`).

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

Modules: `loop` (`train`), `strategy` (devices, cluster, chief, XLA choice),
`schedule` (learning rate), `state` (model, optimizer, checkpoints), `finetune`
(`model.init_from`, `train.freeze_backbone_steps`), `inputs`
(dataset checks, input pipelines), `callbacks`, `errors`, and `keras_compat`
(every workaround that reaches private Keras/TensorFlow APIs).
"""

from cornernet_tf.training.callbacks import (
    BadImageLogger,
    CheckpointEvery,
    EvaluateFn,
    ImagesPerSecond,
    LearningRateLogger,
    MallocTuning,
    PeriodicEvaluation,
    StepTensorBoard,
    StopAtStep,
)
from cornernet_tf.training.errors import BadDataError, SetupError
from cornernet_tf.training.inputs import make_train_pipeline, validate_data_dir
from cornernet_tf.training.loop import (
    TrainResult,
    configure_logging,
    default_evaluate_fn,
    save_model_atomic,
    train,
)
from cornernet_tf.training.schedule import (
    LearningRate,
    learning_rate_schedule,
    scaled_learning_rate,
)
from cornernet_tf.training.state import TrainingState, build_training_state
from cornernet_tf.training.strategy import STRATEGIES, is_chief, make_strategy

__all__ = [
    "STRATEGIES",
    "BadDataError",
    "BadImageLogger",
    "CheckpointEvery",
    "EvaluateFn",
    "ImagesPerSecond",
    "LearningRate",
    "LearningRateLogger",
    "MallocTuning",
    "PeriodicEvaluation",
    "SetupError",
    "StepTensorBoard",
    "StopAtStep",
    "TrainResult",
    "TrainingState",
    "build_training_state",
    "configure_logging",
    "default_evaluate_fn",
    "is_chief",
    "learning_rate_schedule",
    "make_strategy",
    "make_train_pipeline",
    "save_model_atomic",
    "scaled_learning_rate",
    "train",
    "validate_data_dir",
]
