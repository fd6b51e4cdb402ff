"""The tf.data training input pipeline: the official training samplers.

Training (`make_train_dataset`), per image, all TensorFlow ops in parallel
`map`s: read the file → check its header (format, pixel count) → decode to
3-channel uint8 → the official augmentation of `cornernet_tf.data.augment`
(random scale + border-aware crop, resize, clip, flip, colour jitter, PCA
lighting) → `cornernet_tf.targets.encode_targets` → batch → prefetch. It
replaces princeton-vl/CornerNet `sample/coco.py` (`kp_detection`) run in the
official trainer's prefetch processes. With `data.sampler: saccade` the crop
is CornerNet-Saccade's (`cornernet_tf.data.saccade_augment`, official
CornerNet-Lite `core/sample/cornernet_saccade.py`): object-centred, with the
corner-heatmap ignore masks and the attention targets
(`cornernet_tf.saccade_targets`).

Bad images never stop training silently, nor fatally unless there are too
many: files that cannot be read or decoded (missing, empty, truncated, corrupt,
unsupported format, more pixels than `data.max_pixels`, checked from the header
before decoding) are skipped, logged by name and counted by a
`BadSampleTracker` that the trainer can read; once more than
`data.max_bad_images` distinct images have been found bad (those excluded when
the annotations were opened included) the pipeline fails with an error naming
the last one. Images found bad are not read again in later epochs.

Determinism: with a `seed`, every random draw of an image comes from a
stateless seed derived from (seed, input pipeline, position in the stream), the
shuffle is seeded and parallel maps keep their order, so the same seed gives the
same batches; `seed=None` draws a seed and lets the maps run unordered.
Memory is bounded: a bounded shuffle buffer of file records, AUTOTUNE
prefetch, and no cache of decoded images unless `data.cache_images` asks for
one (small datasets: the images are then read once, shuffled from memory).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import numbers
import os
import secrets
from collections.abc import Sequence

import tensorflow as tf

from cornernet_tf import images
from cornernet_tf import targets as targets_lib
from cornernet_tf.data import augment, saccade_augment
from cornernet_tf.data.coco import CategoryMap, CocoDataset
from cornernet_tf.spec.config import DATA_SAMPLERS, DataConfig

logger = logging.getLogger(__name__)

DEFAULT_MAX_BAD_IMAGES = 100
# The map functions use TF control flow explicitly; skipping AutoGraph's source
# conversion makes building a pipeline several times faster.
_no_autograph = tf.autograph.experimental.do_not_convert


def element_seed(seed, position, pipeline_id=0) -> tf.Tensor:
    """The stateless seed of the sample at `position` of a training stream.

    Args:
        seed: the pipeline's seed.
        position: index of the sample in the shuffled, repeated record stream
            (counted before bad images are skipped, so a skip does not shift
            the draws of the samples after it).
        pipeline_id: input pipeline (`InputContext.input_pipeline_id`).

    Returns:
        [2] int64 seed for `augment.draw_train_params`.
    """
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(pipeline_id, tf.int64)])  # [2]
    return tf.random.experimental.stateless_fold_in(key, tf.cast(position, tf.int64))


class BadSampleTracker:
    """Counts the images an input pipeline skipped, and enforces the limit.

    The state lives in TF hash tables updated inside the pipeline's `map`
    (tables rather than variables, so that a `tf.distribute` strategy scope
    does not turn them into mirrored variables), and the trainer reads it at
    any time: `num_bad_images` (distinct images found bad at run time),
    `num_skipped` (skips, every pass over the data included), `bad_images()`
    and `log_summary()`. Each image found bad is also logged when it happens
    (TF warning log, with the file name and reason).

    Args:
        paths: file path of each record index.
        max_bad_images: fail once more than this many distinct images are bad
            (including `initial_bad` found when the dataset was opened); None
            means no limit.
        initial_bad: bad images already excluded when the dataset was opened.
    """

    def __init__(
        self,
        paths: Sequence[str | bytes],
        *,
        max_bad_images: int | None = DEFAULT_MAX_BAD_IMAGES,
        initial_bad: int = 0,
    ):
        if max_bad_images is not None and (
            isinstance(max_bad_images, bool)
            or not isinstance(max_bad_images, numbers.Integral)
            or max_bad_images < 0
        ):
            raise ValueError(
                f"BadSampleTracker: `max_bad_images` must be None or an int >= 0, got "
                f"{max_bad_images!r}."
            )
        self.paths = [os.fsdecode(p) for p in paths]
        self.max_bad_images = max_bad_images
        self.initial_bad = int(initial_bad)
        with tf.init_scope():
            # record index -> status code (only bad ones are stored)
            self._codes = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int32, images.OK)
            # record index -> times skipped
            self._skips = tf.lookup.experimental.MutableHashTable(tf.int64, tf.int64, 0)

    @property
    def num_bad_images(self) -> int:
        """Distinct images found bad while reading (not counting `initial_bad`)."""
        return int(self._codes.size())

    @property
    def num_skipped(self) -> int:
        """Times an image was skipped (a bad image counts once per pass over the data)."""
        return int(tf.reduce_sum(self._skips.export()[1]))

    def bad_images(self) -> list[tuple[str, str]]:
        """(path, reason) of every image found bad while reading, in record order."""
        keys, codes = (t.numpy() for t in self._codes.export())
        return [
            (self.paths[k], images.REASONS[c]) for k, c in sorted(zip(keys, codes, strict=True))
        ]

    def log_summary(self, log: logging.Logger = logger) -> None:
        """Logs the counts (WARNING when anything was skipped, else INFO)."""
        bad = self.bad_images()
        if not bad and not self.initial_bad:
            log.info("Input pipeline: no bad images.")
            return
        log.warning(
            "Input pipeline: %d bad images skipped while reading (%d skips in all), %d excluded "
            "when the dataset was opened%s%s",
            len(bad),
            self.num_skipped,
            self.initial_bad,
            ": " if bad else ".",
            "; ".join(f"{path} ({reason})" for path, reason in bad[:20]),
        )

    def is_known_bad(self, index: tf.Tensor) -> tf.Tensor:
        """Graph: whether record `index` was already found bad (bool scalar)."""
        return self._codes.lookup(tf.cast(index, tf.int64)) != images.OK

    def count_skip(self, index: tf.Tensor) -> tf.Tensor:
        """Graph: counts one skip of record `index`."""
        index = tf.cast(index, tf.int64)
        return self._skips.insert(index, self._skips.lookup(index) + 1)

    def record(self, index: tf.Tensor, code: tf.Tensor, path: tf.Tensor) -> tf.Tensor:
        """Graph: notes the outcome of reading record `index`; returns `code == images.OK`.

        A bad image is marked, counted and logged; past the limit this raises
        InvalidArgumentError naming the file, the reason and the fix.
        """

        def mark():
            marked = self._codes.insert(tf.cast(index, tf.int64), code)
            with tf.control_dependencies([marked, self.count_skip(index)]):
                total = self._codes.size() + self.initial_bad
            reason = tf.gather(tf.constant(images.REASONS), code)
            checks = [
                tf.print(
                    "cornernet_tf.data: skipping bad image",
                    path,
                    "(",
                    reason,
                    "); bad images so far:",
                    total,
                    output_stream=tf.compat.v1.logging.warning,
                )
            ]
            if self.max_bad_images is not None:
                checks.append(
                    tf.debugging.Assert(
                        total <= self.max_bad_images,
                        [
                            f"cornernet_tf.data: more than max_bad_images={self.max_bad_images} "
                            "bad images; the last one is",
                            path,
                            reason,
                            "- fix or remove the bad files, or raise `max_bad_images`.",
                        ],
                    )
                )
            with tf.control_dependencies(checks):
                return tf.constant(False)

        return tf.cond(code == images.OK, lambda: tf.constant(True), mark)


@dataclasses.dataclass(frozen=True)
class PipelineData:
    """A dataset together with what the trainer or evaluator needs beside it.

    Attributes:
        dataset: the `tf.data.Dataset`.
        source: the `CocoDataset` read.
        tracker: the `BadSampleTracker` counting skipped images.
        steps_per_epoch: batches per pass over this pipeline's shard.
    """

    dataset: tf.data.Dataset
    source: CocoDataset
    tracker: BadSampleTracker
    steps_per_epoch: int

    @property
    def num_classes(self) -> int:
        return self.source.num_classes

    @property
    def categories(self) -> CategoryMap:
        return self.source.categories


def _check_int(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"`{name}` must be an int >= {minimum}, got {value!r}.")
    return int(value)


def open_source(source, split: str, caller: str) -> CocoDataset:
    """A `CocoDataset` from a dataset root or an opened dataset; errors name `caller`."""
    if isinstance(source, CocoDataset):
        dataset = source
    elif isinstance(source, str | os.PathLike):
        dataset = CocoDataset.open(source, split)
    else:
        raise TypeError(
            f"{caller}: `source` must be a dataset root (str or path) or a CocoDataset, got "
            f"{type(source).__name__}."
        )
    if not dataset.records:
        raise ValueError(
            f"{caller}: {dataset.annotation_file!r} has no usable images (see the log for what "
            "was excluded); point `source`/`split` at a dataset with images."
        )
    return dataset


def _tracker_for(dataset: CocoDataset, max_bad_images: int | None, caller: str):
    """The pipeline's `BadSampleTracker`, once the images excluded at opening are within the limit.

    This is the only place the limit is checked against the images excluded
    when the annotations were opened (missing or empty files, unsafe names);
    images found bad while reading are checked by the tracker inside the
    pipeline.
    """
    bad = dataset.report.bad_images
    if max_bad_images is not None and len(bad) > max_bad_images:
        raise ValueError(
            f"{caller}: {len(bad)} images of {dataset.annotation_file!r} are unusable (missing, "
            f"empty or unsafe file names), more than max_bad_images={max_bad_images}, e.g. "
            f"{'; '.join(str(p) for p in bad[:5])}. Fix the annotation file or the image folder, "
            "or raise data.max_bad_images."
        )
    return BadSampleTracker(
        [r.path for r in dataset.records], max_bad_images=max_bad_images, initial_bad=len(bad)
    )


def _check_cache_fits(dataset: CocoDataset, caller: str) -> None:
    """Refuses `data.cache_images` when the decoded images need over half of the memory.

    The size is width x height x 3 bytes per image from the annotation file;
    images without a size there count as the mean of the others.
    """
    sizes = [r.width * r.height for r in dataset.records if r.width and r.height]
    if not sizes:
        logger.info("data.cache_images: no image sizes in the annotations; size not checked.")
        return
    needed = 3 * sum(sizes) / len(sizes) * len(dataset.records)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows)
        memory = None
    logger.info(
        "data.cache_images: about %.2f GB of decoded images of %d files will be kept in memory.",
        needed / 1e9,
        len(dataset.records),
    )
    if memory is not None and needed > memory / 2:
        raise ValueError(
            f"{caller}: data.cache_images would keep about {needed / 1e9:.1f} GB of decoded "
            f"images ({len(dataset.records)} files of {dataset.annotation_file!r}) in memory, "
            f"more than half of this machine's {memory / 1e9:.1f} GB; set data.cache_images "
            "to false."
        )


def _records_dataset(dataset: CocoDataset, input_context, caller: str):
    """Dataset of per-image records {index, path, image_id, boxes, labels}, sharded."""
    arrays = dataset.as_arrays()
    boxes = tf.RaggedTensor.from_row_splits(arrays["boxes"], arrays["row_splits"])
    labels = tf.RaggedTensor.from_row_splits(arrays["labels"], arrays["row_splits"])
    records = tf.data.Dataset.from_tensor_slices(
        {
            "index": tf.range(len(dataset.records), dtype=tf.int64),
            "path": arrays["path"],
            "image_id": arrays["image_id"],
            "size": arrays["size"],
            "boxes": boxes,
            "labels": labels,
        }
    )
    num_records, pipelines, pipeline_id = len(dataset.records), 1, 0
    if input_context is not None:
        if not isinstance(input_context, tf.distribute.InputContext):
            raise TypeError(
                f"{caller}: `input_context` must be a tf.distribute.InputContext (the argument "
                f"of the dataset_fn of distribute_datasets_from_function), got "
                f"{type(input_context).__name__}."
            )
        pipelines, pipeline_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        if pipelines > 1:
            if num_records < pipelines:
                raise ValueError(
                    f"{caller}: {num_records} images cannot be sharded over {pipelines} input "
                    "pipelines; use a larger dataset or fewer workers."
                )
            records = records.shard(pipelines, pipeline_id)
            num_records = len(range(pipeline_id, num_records, pipelines))
    return records, num_records, pipelines, pipeline_id


def _per_replica_batch(batch_size: int, input_context) -> int:
    if input_context is None:
        return batch_size
    return input_context.get_per_replica_batch_size(batch_size)


@functools.cache
def _photometric_fn(color: bool, lighting: bool, normalize: bool, jit: bool):
    """`augment.photometric` as a (cached) tf.function, XLA-compiled when `jit`.

    XLA fuses the per-channel colour arithmetic into one pass, several times
    faster on CPU than TF's broadcasting kernels; the values are the same up to
    float rounding. Caching keeps XLA's compiled code across pipelines.
    """

    def photometric(pixels, draws):
        return augment.photometric(
            pixels, draws, color=color, lighting=lighting, normalize_output=normalize
        )

    return tf.function(photometric, jit_compile=jit)


def _read_stage(tracker: BadSampleTracker, max_pixels: int):
    """Map fn: record → record + decoded image + validity."""

    @_no_autograph
    def read(record):
        def attempt():
            image, code = images.read_image(record["path"], max_pixels=max_pixels)
            code = images.check_annotated_size(image, code, record["size"])
            return image, tracker.record(record["index"], code, record["path"])

        def skip():  # found bad in an earlier epoch: do not read it again
            with tf.control_dependencies([tracker.count_skip(record["index"])]):
                return tf.zeros([1, 1, 3], tf.uint8), tf.constant(False)

        image, valid = tf.cond(tracker.is_known_bad(record["index"]), skip, attempt)
        return {**record, "image": image, "valid": valid}

    return read


@dataclasses.dataclass(frozen=True)
class _SampleSettings:
    """The `data` settings one training sample is made with, checked."""

    input_size: tuple[int, int]
    output_size: tuple[int, int]
    num_classes: int
    max_objects: int
    shuffle_buffer: int
    max_pixels: int
    border: int
    scales: tuple[float, ...]
    gaussian_iou: float
    flip: bool
    sampler: str

    @classmethod
    def of(cls, config: DataConfig, num_classes: int) -> _SampleSettings:
        """Raises ValueError naming the `data.` field that is out of range."""
        in_size = augment.size_pair(config.input_size, "data.input_size")
        scales = config.rand_scales
        if not scales or not all(isinstance(s, numbers.Real) and s > 0 for s in scales):
            raise ValueError(f"`data.rand_scales` must be positive numbers, got {scales!r}.")
        if min(int(in_size[0] * min(scales)), int(in_size[1] * min(scales))) < 1:
            raise ValueError(
                f"`data.rand_scales` {scales!r} give empty crops for data.input_size {in_size}."
            )
        if config.sampler not in DATA_SAMPLERS:
            raise ValueError(
                f"`data.sampler` must be one of {', '.join(DATA_SAMPLERS)}, got {config.sampler!r}."
            )
        return cls(
            input_size=in_size,
            output_size=augment.size_pair(config.output_size, "data.output_size"),
            num_classes=num_classes,
            max_objects=_check_int("data.max_objects", config.max_objects),
            shuffle_buffer=_check_int("data.shuffle_buffer", config.shuffle_buffer),
            max_pixels=_check_int("data.max_pixels", config.max_pixels),
            border=_check_int("data.border", config.border, minimum=0),
            scales=tuple(scales),
            gaussian_iou=config.gaussian_iou,
            flip=config.flip,
            sampler=config.sampler,
        )


def _sample_fn(settings: _SampleSettings, photometric):
    """`(image, record, element seed) -> (pixels, boxes, labels, targets)` of the sampler."""
    in_size, out_size = settings.input_size, settings.output_size
    flip_probability = 0.5 if settings.flip else 0.0
    target_settings = {
        "input_size": in_size,
        "output_size": out_size,
        "num_classes": settings.num_classes,
        "max_objects": settings.max_objects,
        "gaussian_iou": settings.gaussian_iou,
    }

    def cornernet_sample(image, record, element):
        draws = augment.draw_train_params(
            element,
            tf.shape(image)[:2],
            input_size=in_size,
            scales=settings.scales,
            border=settings.border,
            flip_probability=flip_probability,
        )
        pixels, boxes, labels = augment.train_geometry(
            image, record["boxes"], record["labels"], draws, input_size=in_size
        )
        target = targets_lib.encode_targets(boxes, labels, **target_settings)
        return photometric(pixels, draws), boxes, labels, target

    def saccade_sample(image, record, element):
        draws = saccade_augment.draw_saccade_params(
            element, num_scales=len(settings.scales), flip_probability=flip_probability
        )
        crop = saccade_augment.saccade_geometry(
            image,
            record["boxes"],
            record["labels"],
            draws,
            input_size=in_size,
            scales=settings.scales,
        )
        boxes, labels = crop["boxes"], crop["labels"]
        target = saccade_augment.encode_saccade_targets(
            boxes, labels, crop["kept_area"], **target_settings
        )
        return photometric(crop["image"], draws), boxes, labels, target

    return saccade_sample if settings.sampler == "saccade" else cornernet_sample


def _augment_and_encode_fn(settings, photometric, seed, pipeline_id, include_boxes):
    """The map from `(position, record)` to `(pixels, targets)`: one training sample."""
    sample = _sample_fn(settings, photometric)
    max_objects = settings.max_objects

    @_no_autograph
    def augment_and_encode(position, record):
        image = record["image"]  # [H, W, 3] uint8
        element = element_seed(seed, position, pipeline_id)
        pixels, boxes, labels, target = sample(image, record, element)
        warned = tf.cond(
            target["num_dropped"] > 0,
            lambda: tf.print(
                "cornernet_tf.data:",
                record["path"],
                "has",
                target["num_dropped"],
                f"objects beyond max_objects={max_objects}; they were left out of the targets.",
                output_stream=tf.compat.v1.logging.warning,
            ),
            tf.no_op,
        )
        with tf.control_dependencies([warned]):
            pixels = tf.identity(pixels)
        if include_boxes:
            kept = tf.minimum(tf.shape(labels)[0], max_objects)
            pad = max_objects - kept
            target["boxes"] = tf.ensure_shape(
                tf.pad(boxes[:kept], [[0, pad], [0, 0]]), [max_objects, 4]
            )  # [M, 4]
            target["labels"] = tf.ensure_shape(
                tf.pad(labels[:kept], [[0, pad]], constant_values=-1), [max_objects]
            )  # [M]
        return pixels, target

    return augment_and_encode


def make_train_dataset(
    source: str | os.PathLike | CocoDataset,
    config: DataConfig,
    *,
    batch_size: int,
    seed: int | None = None,
    input_context: tf.distribute.InputContext | None = None,
    normalize: bool = False,
    include_boxes: bool = False,
    repeat: bool = True,
    num_parallel_calls: int = tf.data.AUTOTUNE,
    jit_photometric: bool = True,
) -> PipelineData:
    """The official CornerNet training sampler as a `tf.data` pipeline.

    princeton-vl/CornerNet `sample/coco.py` `kp_detection` with the
    `config/CornerNet.json` settings: random scale from `config.rand_scales`
    and a crop of `int(input·scale)` centred `config.border` (halved until it
    fits) from the image edges on a zero canvas, resize to `config.input_size`,
    clip and drop empty boxes, flip with p = 0.5, colour jitter and PCA
    lighting, then `encode_targets`. See `cornernet_tf.data.augment` for every
    step.

    What the experiment config fixes (split, sizes, augmentation, target
    settings, shuffle buffer, bad-image limits) comes from `config`; the
    arguments are what a caller chooses per run.

    Args:
        source: dataset root in the COCO 2017 layout, or an opened `CocoDataset`.
        config: the `data` section of the experiment config: `train_split`
            (annotation file `instances_<split>.json`), `input_size`,
            `output_size`, `rand_scales`, `border`, `flip`, `color_jitter`,
            `lighting` (applied with the colour jitter, as officially),
            `max_objects` (tag slots per image), `gaussian_iou`,
            `shuffle_buffer` (records, i.e. file names and boxes, not
            images), `max_pixels` (images with more pixels, read from the
            header, are skipped undecoded), `max_bad_images` (fail once
            more bad images than this are found, at opening and while
            reading) and `cache_images` (decode each image once and keep it).
        batch_size: the global batch size; with `input_context`, each replica
            gets `input_context.get_per_replica_batch_size(batch_size)`.
        seed: makes the pipeline deterministic (same seed, same batches).
        input_context: from `distribute_datasets_from_function`; shards the
            files per input pipeline and sets the per-replica batch.
        normalize: output `(x - mean) / std` (official network input);
            False outputs RGB in 0-255 after jitter/lighting, what
            `cornernet_tf.models.CornerNet` expects (it normalises inside).
        include_boxes: add the augmented boxes to the targets, `boxes`
            [B, M, 4] (x1, y1, x2, y2 input pixels) and `labels` [B, M] int32,
            padded with 0 / -1 past the image's objects (for inspection and tests).
        repeat: repeat forever (training); False stops after one pass.
        num_parallel_calls: parallelism of the maps.
        jit_photometric: compile the colour jitter / lighting / normalisation
            step with XLA (same values up to float rounding, faster).

    With `config.sampler == "saccade"` the crop is CornerNet-Saccade's
    (`saccade_augment.saccade_geometry`: rescaled by a random object's size,
    cropped around it; `border` is not used, `rand_scales` only for images
    without objects), and the targets also hold `tl_valid`, `br_valid`
    [B, out_h, out_w, C] (0 around the corners of objects that are not
    targets, which the loss ignores) and the attention maps
    `attention_large`, `attention_medium`, `attention_small`.

    Returns:
        `PipelineData` whose dataset yields `(images, targets)`: images
        [B, in_h, in_w, 3] float32 RGB; targets the `encode_targets` dict
        batched (`tl_heatmap` [B, out_h, out_w, C], `tl_index` [B, M], ...).

    Raises:
        FileNotFoundError, ValueError, TypeError: bad arguments, config or
            dataset, with the argument, config field or file named.
    """
    if not isinstance(config, DataConfig):
        raise TypeError(
            "make_train_dataset: `config` must be a cornernet_tf.spec.config.DataConfig (the "
            f"`data` section of the experiment config), got {type(config).__name__}."
        )
    caller = "make_train_dataset"
    dataset = open_source(source, config.train_split, caller)
    if dataset.report.num_annotations == 0:
        # Every target would be background: the run would "succeed" and learn nothing.
        raise ValueError(
            f"{caller}: {dataset.annotation_file!r} has no usable annotations (see the log for "
            "what was excluded); training needs boxes, so point `source`/`split` at the "
            "annotated split."
        )
    batch_size = _check_int("batch_size", batch_size)
    if seed is not None:
        _check_int("seed", seed, minimum=0)
    settings = _SampleSettings.of(config, dataset.num_classes)

    tracker = _tracker_for(dataset, config.max_bad_images, caller)
    records, num_records, pipelines, pipeline_id = _records_dataset(dataset, input_context, caller)
    per_replica = _per_replica_batch(batch_size, input_context)
    deterministic = seed is not None
    if seed is None:
        seed = secrets.randbelow(2**31)
    photometric = _photometric_fn(
        config.color_jitter, config.lighting and config.color_jitter, normalize, jit_photometric
    )
    augment_and_encode = _augment_and_encode_fn(
        settings, photometric, seed, pipeline_id, include_boxes
    )

    read = _read_stage(tracker, settings.max_pixels)
    buffer = min(settings.shuffle_buffer, num_records)
    if config.cache_images:
        _check_cache_fits(dataset, caller)
        # Read once in record order and cache; then the same shuffle, repeat
        # and positions as below, so without bad images the same batches.
        ds = records.map(read, num_parallel_calls=num_parallel_calls, deterministic=deterministic)
        ds = ds.filter(_no_autograph(lambda record: record["valid"])).cache()
        ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = (ds.repeat() if repeat else ds).enumerate()
    else:
        ds = records.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        ds = ds.repeat() if repeat else ds
        # The stream position (before any skipping) keys each sample's random draws.
        ds = ds.enumerate()
        ds = ds.map(
            _no_autograph(lambda position, record: (position, read(record))),
            num_parallel_calls=num_parallel_calls,
            deterministic=deterministic,
        )
        ds = ds.filter(_no_autograph(lambda position, record: record["valid"]))
    ds = ds.map(
        augment_and_encode, num_parallel_calls=num_parallel_calls, deterministic=deterministic
    )
    ds = ds.batch(per_replica, drop_remainder=True)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = deterministic
    ds = ds.with_options(options)
    return PipelineData(ds, dataset, tracker, num_records // per_replica)
