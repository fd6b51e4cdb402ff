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
  `tf.train.CheckpointManager`; a restarted run resumes from the newest
  complete one, skipping (and naming) incomplete ones, and refuses to start
  from scratch over checkpoints unless asked to (`restart=True`), or to
  resume with classes other than the checkpoints' (`state`, `loop`);
* one writer per model directory (`model_dir.ModelDirLock`), local or
  mounted folders only (`model_dir`);
* SIGINT / SIGTERM end training after the current step with a checkpoint of
  it (`callbacks.StopOnSignal`, `errors.TrainingInterrupted`);
* a Keras progress bar with the loss parts, the learning rate and images/s,
  TensorBoard scalars, an optional periodic evaluation hook keeping the best
  model by AP (`callbacks`), and the caller's own Keras callbacks;
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
        train.lock         PID and host of the run writing here (while it runs)
        checkpoints/       ckpt-<step>.{index,data-*} + `checkpoint` index
        logs/train/        TensorBoard scalars (losses, learning rate, images/s)
        logs/eval/         evaluation results, when an evaluation hook is given
        best.keras         best model by evaluated AP (with `train.eval_every`)
        best.json          its step and AP
        model.keras        final model (after the last step)
        summary.json       final step, bad-sample count, throughput, memory,
                           evaluations, best model
        replaced-<time>/   an earlier run's files, moved by `restart=True`

Modules: `loop` (`train`), `strategy` (devices, cluster, chief, XLA choice),
`schedule` (learning rate), `state` (model, optimizer, checkpoints), `finetune`
(`model.init_from`, `train.freeze_backbone_steps`), `inputs` (dataset checks,
input pipelines), `model_dir` (lock, remote paths, restart), `callbacks` and
`errors`. The workarounds that reach private Keras/TensorFlow APIs are in
`cornernet_tf.utils.private_api`.
"""

from cornernet_tf.training.callbacks import (
    BadImageLogger,
    BestModel,
    CheckpointEvery,
    EvaluateFn,
    ImagesPerSecond,
    LearningRateLogger,
    MallocTuning,
    PeriodicEvaluation,
    StepTensorBoard,
    StopAtStep,
    StopOnSignal,
)
from cornernet_tf.training.errors import (
    BadDataError,
    CheckpointWriteError,
    SetupError,
    TrainingInterrupted,
)
from cornernet_tf.training.inputs import make_train_pipeline, validate_data_dir
from cornernet_tf.training.loop import (
    TrainResult,
    configure_logging,
    default_evaluate_fn,
    save_model_atomic,
    train,
)
from cornernet_tf.training.model_dir import ModelDirLock, local_model_dir_problem
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
    "BestModel",
    "CheckpointEvery",
    "CheckpointWriteError",
    "EvaluateFn",
    "ImagesPerSecond",
    "LearningRate",
    "LearningRateLogger",
    "MallocTuning",
    "ModelDirLock",
    "PeriodicEvaluation",
    "SetupError",
    "StepTensorBoard",
    "StopAtStep",
    "StopOnSignal",
    "TrainResult",
    "TrainingInterrupted",
    "TrainingState",
    "build_training_state",
    "configure_logging",
    "default_evaluate_fn",
    "is_chief",
    "learning_rate_schedule",
    "local_model_dir_problem",
    "make_strategy",
    "make_train_pipeline",
    "save_model_atomic",
    "scaled_learning_rate",
    "train",
    "validate_data_dir",
]
