"""The training input: the dataset checks, and the input pipelines of each worker.

The annotations are read and checked once (`open_training_source`); every
input pipeline of this worker shares the opened `CocoDataset`. The pipelines
are `cornernet_tf.data.pipeline.make_train_dataset` on `config.data`, one per
input pipeline of `strategy.distribute_datasets_from_function`, each reading
its shard of the files.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow as tf

from cornernet_tf.data import pipeline
from cornernet_tf.data.coco import CocoDataset, layout_problem
from cornernet_tf.spec.config import Config, ConfigError
from cornernet_tf.training.errors import SetupError

__all__ = [
    "TrainInput",
    "check_batch_fits_dataset",
    "data_seed",
    "distribute_train_input",
    "make_train_pipeline",
    "open_training_source",
    "validate_data_dir",
]


def validate_data_dir(config: Config, data_dir: str | os.PathLike) -> None:
    """Checks, before any work, that the training split exists in COCO layout.

    Args:
        config: the experiment config (`data.train_split`).
        data_dir: dataset root with `annotations/instances_<split>.json` and
            the image folder `<split>/`.

    Raises:
        SetupError: naming the missing path and how to fix it.
    """
    problem = layout_problem(data_dir, config.data.train_split, "data.train_split")
    if problem is not None:
        raise SetupError(problem)


def open_training_source(config: Config, data_dir: str | os.PathLike) -> CocoDataset:
    """Reads and checks the annotations of `data.train_split` (once per run).

    Args:
        config: the experiment config.
        data_dir: dataset root (checked by `validate_data_dir`).

    Returns:
        The opened `CocoDataset`, shared by every input pipeline of the worker.

    Raises:
        SetupError: the annotation file cannot be read or is invalid.
    """
    try:
        return CocoDataset.open(os.fspath(data_dir), config.data.train_split)
    except (FileNotFoundError, ValueError) as e:
        raise SetupError(str(e)) from None


def check_batch_fits_dataset(config: Config, source: CocoDataset) -> None:
    """Refuses a global batch larger than the training set, before any memory is taken.

    A batch holds `train.batch_size` decoded, augmented images and their
    targets at once; a batch larger than the dataset only repeats images and
    grows with the number given (a mistyped batch size would fill the memory
    before the first step).

    Args:
        config: the experiment config (`train.batch_size`).
        source: the opened training annotations.

    Raises:
        ConfigError: naming `train.batch_size`, the dataset's size and file.
    """
    images = len(source)
    if config.train.batch_size > images:
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} is larger than the training set "
            f"({images} usable images in {source.annotation_file}); set train.batch_size to at "
            f"most {images} (e.g. --set train.batch_size={min(images, 8)}) or add images.",
            key="train.batch_size",
        )


def batch_bytes(config: Config, num_classes: int) -> int:
    """Host memory of one training batch: float32 images and their heatmap targets.

    Args:
        config: the experiment config (`train.batch_size`, `data.input_size`,
            `data.output_size`).
        num_classes: heatmap channels.

    Returns:
        The bytes of one batch's images and two corner heatmaps; the other
        targets (tags, offsets, masks) are of `max_objects`, negligible.
    """
    data = config.data
    image = data.input_size**2 * 3 * 4
    heatmaps = 2 * data.output_size**2 * num_classes * 4
    return config.train.batch_size * (image + heatmaps)


def check_batch_fits_memory(config: Config, num_classes: int, memory: int | None = None) -> None:
    """Refuses a batch whose images and targets alone outgrow this machine's memory.

    The input pipeline holds a few batches at once (the one being built, the
    prefetched ones), so a batch larger than the physical memory can never
    run: it is refused before any work, where it would otherwise be killed by
    the system after minutes of filling the memory.

    Args:
        config: the experiment config.
        num_classes: heatmap channels.
        memory: the machine's physical memory in bytes (default: read from
            the system; the check is skipped where it cannot be read).

    Raises:
        ConfigError: naming `train.batch_size`, the estimate and the memory.
    """
    if memory is None:
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (AttributeError, ValueError, OSError):
            return
    needed = batch_bytes(config, num_classes)
    if needed > memory:
        per_image = needed // config.train.batch_size
        fits = max(1, memory // (4 * per_image))
        raise ConfigError(
            f"train.batch_size={config.train.batch_size} needs {needed / 2**30:.1f} GiB of host "
            f"memory for one batch of {config.data.input_size}x{config.data.input_size} images "
            f"and their {num_classes}-class heatmaps, more than this machine's "
            f"{memory / 2**30:.1f} GiB; set train.batch_size to at most {fits} here "
            "(the global batch is split over the replicas of a multi-worker run).",
            key="train.batch_size",
        )


def make_train_pipeline(
    config: Config,
    source: CocoDataset | str | os.PathLike,
    *,
    seed: int,
    input_context: tf.distribute.InputContext | None = None,
) -> pipeline.PipelineData:
    """The training input of `config.data` (`pipeline.make_train_dataset`).

    Args:
        config: the experiment config (`data` section, `train.batch_size`).
        source: the opened `CocoDataset` (or a dataset root).
        seed: data seed (shuffle order and augmentation draws).
        input_context: from `distribute_datasets_from_function`.

    Returns:
        The `PipelineData` (dataset of `(images, targets)`, per-replica
        batches when `input_context` is given, and its bad-image tracker).
        Images are RGB in 0-255: `CornerNet` normalises inside the model.
    """
    return pipeline.make_train_dataset(
        source,
        config.data,
        batch_size=config.train.batch_size,
        seed=seed,
        input_context=input_context,
    )


def data_seed(seed: int, step: int) -> int:
    """The data seed of a run starting at `step`: `train.seed` mixed with the step.

    A resumed run draws its images and augmentations from a seed mixed with
    the restored step, so it is reproducible without replaying the images the
    interrupted run had already trained on.

    Args:
        seed: `train.seed`.
        step: the iteration the run starts at (0 when fresh).

    Returns:
        A seed in [0, 2**31).
    """
    return int(np.random.SeedSequence([seed, step]).generate_state(1)[0] >> 1)


@dataclasses.dataclass
class TrainInput:
    """The distributed training dataset of this worker and what it has skipped.

    Attributes:
        dataset: the distributed dataset `fit` reads.
        source: the opened annotations.
        pipelines: this worker's input pipelines (one per input context),
            filled when the strategy calls the dataset function.
    """

    dataset: tf.distribute.DistributedDataset
    source: CocoDataset
    pipelines: list[pipeline.PipelineData]

    def bad_images(self) -> int:
        """Training images skipped as unusable so far.

        Those excluded when the annotations were opened plus those this
        worker's pipelines found bad while reading (each worker reads its own
        shard).
        """
        opened = len(self.source.report.bad_images)
        return opened + sum(p.tracker.num_bad_images for p in self.pipelines)


def distribute_train_input(
    strategy: tf.distribute.Strategy, config: Config, source: CocoDataset, *, seed: int
) -> TrainInput:
    """Builds this worker's input pipelines with `distribute_datasets_from_function`.

    Args:
        strategy: the distribution strategy.
        config: the experiment config.
        source: the opened annotations (`open_training_source`).
        seed: the data seed (`data_seed`).

    Returns:
        The `TrainInput`.

    Raises:
        SetupError: the pipeline refuses the dataset, e.g. more images were
            excluded when it was opened than `data.max_bad_images`.
    """
    pipelines: list[pipeline.PipelineData] = []

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        data = make_train_pipeline(config, source, seed=seed, input_context=context)
        pipelines.append(data)
        return data.dataset

    try:
        dataset = strategy.distribute_datasets_from_function(dataset_fn)
    except ValueError as e:
        raise SetupError(str(e)) from None
    return TrainInput(dataset, source, pipelines)
