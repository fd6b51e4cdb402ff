"""Experiment configuration: YAML files mapped onto frozen dataclasses.

A config file has five sections, each a frozen dataclass whose defaults are the
official CornerNet settings (princeton-vl/CornerNet `config/CornerNet.json`,
`config.py` and `db/detection.py`):

    model:  preset name + constructor overrides (`CornerNet.from_preset`)
    data:   input/output sizes, target and augmentation settings
    train:  global batch, schedule, checkpointing, precision, logging
    test:   the test procedure (`TestConfig`), stored in the trained model
    saccade: CornerNet-Saccade's crop settings (`SaccadeConfig`), stored too

Unknown keys and values of the wrong type are errors naming the key and the
file. `--set section.key=value` overrides are parsed like the file (YAML's safe
subset) and checked like the file's own values. Files are read with limits that
a config never needs: a key given twice in one mapping, nesting deeper than
`MAX_YAML_DEPTH` and aliases expanding to more than `MAX_YAML_NODES` values
(the "billion laughs") are errors, raised before anything is expanded.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, NoReturn, Self

import numpy as np
import yaml

from cornernet_tf.spec.presets import config_size_problem
from cornernet_tf.utils.fs import atomic_write_text

__all__ = [
    "Config",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "SaccadeConfig",
    "TestConfig",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "save_config",
]


class ConfigError(ValueError):
    """A config file or override is malformed; the message names file, key and fix.

    Args:
        message: what is wrong and how to fix it.
        key: the offending `section.key`, when one is to blame.
    """

    def __init__(self, message: str, key: str | None = None):
        super().__init__(message)
        self.key = key


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network to build.

    Attributes:
        preset: a `CornerNet.from_preset` name ("hourglass104", "tiny").
        overrides: constructor arguments replacing the preset's. `num_classes`
            and `class_names` default to the training set's categories.
        init_from: weights a new run starts from (fine-tuning): a `.keras`
            file of this project, or an official `.pkl`/`.pth`/`.npz`
            checkpoint converted on the fly. Every weight is loaded except
            the class-dependent heatmap outputs, which start as the official
            code initialises them; the architecture must be the preset's
            (`cornernet_tf.training.finetune`). Not read by a resumed run.
    """

    preset: str = "hourglass104"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    init_from: str | None = None


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Dataset, targets and training augmentation (official `db` section).

    Attributes:
        train_split: COCO split trained on (`annotations/instances_<split>.json`
            and the image folder `<split>/`); official `trainval2014` is
            `train2017`.
        val_split: split used for periodic evaluation (official `minival2014`
            is `val2017`).
        input_size: square training crop (511 officially); it must fit the
            preset's stride and depth.
        output_size: heatmap size, `ceil(input_size / s)` for the network's
            output stride s (128 officially: stride 4; CornerNet-Squeeze 64:
            stride 8). Both sizes are checked when a config is loaded, by
            `spec.presets.config_size_problem`.
        gaussian_iou: IoU kept by corners within the Gaussian radius.
        max_objects: objects per image kept in the targets (128 officially).
        rand_scales: crop scales sampled uniformly (official
            `np.arange(0.6, 1.4, 0.1)`).
        border: minimum distance of the crop centre from the image edges,
            halved until it fits (128 officially).
        flip: random horizontal flip, p = 0.5.
        color_jitter: brightness/contrast/saturation jitter (`rand_color`).
        lighting: PCA lighting noise (alphastd 0.1); officially part of
            `rand_color`, so it needs `color_jitter`.
        shuffle_buffer: image records (names and boxes) in the shuffle buffer.
        max_bad_images: unreadable or invalid images skipped (and counted)
            before training stops with an error; 0 means none allowed.
        max_pixels: images with more pixels (read from the file header) are
            skipped as bad, undecoded (guards memory).
        sampler: the training crop: `cornernet` (princeton-vl/CornerNet
            `kp_detection`: random scale, crop away from the borders) or
            `saccade` (CornerNet-Lite `cornernet_saccade`: rescaled by a
            random object's size and cropped around it, with the attention
            targets a model with attention heads needs).
        cache_images: keep the training split's decoded images in memory
            after the first pass (`tf.data` cache), so later epochs skip
            reading and decoding; for small datasets (their decoded size,
            width x height x 3 bytes from the annotations, is checked against
            the machine's memory before training). The same seed gives the
            same batches with or without it when no image is bad.
    """

    train_split: str = "train2017"
    val_split: str = "val2017"
    input_size: int = 511
    output_size: int = 128
    gaussian_iou: float = 0.3
    max_objects: int = 128
    rand_scales: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3)
    border: int = 128
    flip: bool = True
    color_jitter: bool = True
    lighting: bool = True
    shuffle_buffer: int = 10_000
    max_bad_images: int = 100
    max_pixels: int = 1 << 26
    cache_images: bool = False
    sampler: str = "cornernet"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation schedule and training-loop settings (official `system`).

    The learning rate follows the global batch linearly:
    `lr = learning_rate * batch_size / base_batch`, then drops by
    `lr_decay_factor` after each of `lr_decay_steps` iterations.

    Attributes:
        batch_size: global batch over all replicas and workers (49 officially).
        steps: training iterations (500k officially).
        learning_rate: Adam learning rate at `base_batch` (2.5e-4).
        base_batch: batch the learning rate was tuned for (49).
        lr_decay_steps: iterations after which the rate is divided (450k).
        lr_decay_factor: divisor at each decay step (10).
        pull_weight: embedding pull loss weight (0.1).
        push_weight: embedding push loss weight (0.1).
        offset_weight: offset loss weight (1.0).
        seed: seed of the weights' initialisation and of the data order.
        checkpoint_every: iterations between checkpoints (5000 officially).
        keep_checkpoints: checkpoints kept on disk (oldest deleted first).
        mixed_precision: train with the "mixed_float16" dtype policy.
        recompute_stacks: recompute each hourglass stack but the last (with
            its corner modules and heads) in the backward pass instead of
            keeping its activations (`tf.recompute_grad`): less memory per
            image, one more forward pass of those stacks per step, the same
            gradients.
        jit_compile: XLA-compile the train step: true, false, or "auto" (on
            GPUs and TPUs; on CPUs the graph is faster than XLA's CPU
            backend, and XLA across several CPU replicas fails in TF 2.21,
            so `true` there runs as a graph too).
        log_every: iterations between TensorBoard scalar writes.
        eval_every: iterations between evaluations; 0 evaluates only at the end
            when an evaluation function is given, never in between.
        freeze_backbone_steps: iterations during which the backbone (stem,
            hourglasses and the layers between them; not the corner-pooling
            modules and heads) is not trained, its BatchNorm layers using
            their moving statistics: 0 never, -1 for the whole run.
    """

    batch_size: int = 49
    steps: int = 500_000
    learning_rate: float = 2.5e-4
    base_batch: int = 49
    lr_decay_steps: tuple[int, ...] = (450_000,)
    lr_decay_factor: float = 10.0
    pull_weight: float = 0.1
    push_weight: float = 0.1
    offset_weight: float = 1.0
    seed: int = 317
    checkpoint_every: int = 5000
    keep_checkpoints: int = 3
    mixed_precision: bool = False
    recompute_stacks: bool = False
    jit_compile: bool | str = "auto"
    log_every: int = 100
    eval_every: int = 0
    freeze_backbone_steps: int = 0


# The decoder holds [top_k, top_k] pair tensors per image and test input:
# 1000 keeps them to tens of MB, ten times the official K.
MAX_TOP_K = 1000


class _Section:
    """`from_dict`, `coerce`, `replace` and `to_dict` of a settings section that
    the model stores (`test`, `saccade`); errors name `<SECTION>.<key>`."""

    SECTION: ClassVar[str]

    def _check_types(self) -> None:
        """Each field of the type its annotation says (coerced where `_check_type` allows)."""
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            key = f"{self.SECTION}.{field.name}"
            try:
                value = _check_type(getattr(self, field.name), hints[field.name], key)
            except ConfigError as error:
                raise ConfigError(str(error), key=key) from None
            object.__setattr__(self, field.name, value)

    def _fail(self, key: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.SECTION}.{key} {message}", key=f"{self.SECTION}.{key}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> Self:
        """Builds the section from a mapping; missing keys take the defaults.

        Raises:
            ConfigError: an unknown key or an invalid value, named as `<section>.<key>`.
        """
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ConfigError(
                f"unknown {cls.SECTION} setting {unknown[0]!r}; valid settings: "
                f"{', '.join(names)}.",
                key=f"{cls.SECTION}.{unknown[0]}",
            )
        return cls(**values)

    @classmethod
    def coerce(cls, value: Self | Mapping[str, Any] | None) -> Self:
        """`value` itself if it is of this class, else `from_dict(value)`."""
        return value if isinstance(value, cls) else cls.from_dict(value)

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` applied (validated)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-able values (tuples become lists)."""
        return _plain(dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class TestConfig(_Section):
    """The test procedure's settings: one schema for YAML, the model and every export.

    Defaults are the official single-scale procedure (princeton-vl/CornerNet
    `config/CornerNet.json` and `test/coco.py`); `config/CornerNet-multi_scale.json`
    is `scales: [0.5, 0.75, 1, 1.25, 1.5]`, `merge_bbox: true`, `weight_exp: 10`.
    A `CornerNet` holds one (`model.test_config`, saved in `.keras` files and in
    the SavedModel's `assets/model_config.json`); `CornerNet.detect`, COCO
    evaluation, the SavedModel signatures, the TFLite graphs and the host-side
    soft-NMS of int8 TFLite files all run `cornernet_tf.inference.CornerNetDecoder`
    built from it. A new option is one field here and its use in the decoder.

    Attributes:
        top_k: corners kept per heatmap (K), at most `MAX_TOP_K` (1000).
        ae_threshold: largest embedding distance of a corner pair.
        num_dets: corner pairs kept after scoring, per image and test input.
        nms_kernel: max-pool window of the heatmap NMS (odd).
        max_detections: detections kept per image (`max_per_image`); the
            size of every exported output.
        soft_nms_sigma: Gaussian soft-NMS sigma.
        score_threshold: soft-NMS score floor.
        flip_test: also run the mirrored image and pool both detections.
        scales: test scales (multi-scale testing with more than one).
        merge_bbox: merge overlapping boxes in soft-NMS (official `soft_nms_merge`).
        weight_exp: exponent of the merge weights.
    """

    __test__ = False  # not a pytest test class despite the name
    SECTION: ClassVar[str] = "test"

    top_k: int = 100
    ae_threshold: float = 0.5
    num_dets: int = 1000
    nms_kernel: int = 3
    max_detections: int = 100
    soft_nms_sigma: float = 0.5
    score_threshold: float = 0.001
    flip_test: bool = True
    scales: tuple[float, ...] = (1.0,)
    merge_bbox: bool = False
    weight_exp: float = 8.0

    def __post_init__(self):
        self._check_types()
        for key in ("top_k", "num_dets", "nms_kernel", "max_detections", "soft_nms_sigma"):
            if getattr(self, key) <= 0:
                self._fail(key, f"must be > 0, got {getattr(self, key)!r}.")
        for key in ("ae_threshold", "score_threshold", "weight_exp"):
            if getattr(self, key) < 0:
                self._fail(key, f"must be >= 0, got {getattr(self, key)!r}.")
        if self.top_k > MAX_TOP_K:
            self._fail(
                "top_k",
                f"must be <= {MAX_TOP_K}, got {self.top_k}: every image scores all top_k**2 "
                "corner pairs at once (tens of bytes each), so memory grows with its square; "
                "the official value is 100.",
            )
        if self.nms_kernel % 2 != 1:
            self._fail(
                "nms_kernel", f"must be odd (the NMS window is centred), got {self.nms_kernel}."
            )
        if self.num_dets > self.top_k**2:
            self._fail(
                "num_dets",
                f"({self.num_dets}) exceeds the top_k**2 = {self.top_k**2} corner pairs; lower "
                "test.num_dets or raise test.top_k.",
            )
        if self.max_detections > self.num_dets:
            self._fail("max_detections", f"must be <= test.num_dets ({self.num_dets}).")
        if not self.scales or any(s <= 0 for s in self.scales):
            self._fail(
                "scales", f"must be a non-empty list of scales > 0, got {list(self.scales)}."
            )


# Crops of one image run through the network as one batch.
MAX_SACCADE_CROPS = 256


@dataclasses.dataclass(frozen=True)
class SaccadeConfig(_Section):
    """CornerNet-Saccade's test settings (princeton-vl/CornerNet-Lite `CornerNet_Saccade.json`).

    A model with attention heads holds one (`model.saccade_config`, saved in
    `.keras` files); its procedure (`cornernet_tf.inference.saccade`) reads
    the corner decoding and merge settings from `TestConfig` and these.

    Attributes:
        init_sizes: longer side of the whole image in the coarse passes, each
            at most `crop_size`.
        crop_size: side of every canvas (the network's input).
        num_dets: corner pairs kept per canvas (official `num_dets`).
        att_threshold: attention peaks above it become crops.
        att_scales: zoom of the crops from the large, medium and small
            objects' map, relative to the coarse pass.
        att_max_crops: most crops per image (0 to `MAX_SACCADE_CROPS`).
        att_nms_kernel: max-pool window of the attention-map NMS (odd).
        ref_dets: also crop around confident coarse detections.
    """

    SECTION: ClassVar[str] = "saccade"

    init_sizes: tuple[int, ...] = (192, 255)
    crop_size: int = 255
    num_dets: int = 12
    att_threshold: float = 0.3
    att_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    att_max_crops: int = 30
    att_nms_kernel: int = 3
    ref_dets: bool = True

    def __post_init__(self):
        self._check_types()
        for key in ("crop_size", "num_dets", "att_nms_kernel"):
            if getattr(self, key) <= 0:
                self._fail(key, f"must be > 0, got {getattr(self, key)!r}.")
        if not 0 <= self.att_max_crops <= MAX_SACCADE_CROPS:
            self._fail(
                "att_max_crops",
                f"must be in [0, {MAX_SACCADE_CROPS}] (the crops run as one batch), got "
                f"{self.att_max_crops}; the official value is 30.",
            )
        if self.att_nms_kernel % 2 != 1:
            self._fail(
                "att_nms_kernel",
                f"must be odd (the NMS window is centred), got {self.att_nms_kernel}.",
            )
        if not self.init_sizes or not all(0 < s <= self.crop_size for s in self.init_sizes):
            self._fail(
                "init_sizes",
                f"must list sizes in [1, crop_size={self.crop_size}], e.g. [192, 255], got "
                f"{list(self.init_sizes)}.",
            )
        if len(self.att_scales) != 3 or not all(s > 0 for s in self.att_scales):
            self._fail(
                "att_scales",
                "must be 3 zooms > 0 (large, medium, small objects), e.g. [1, 2, 4], got "
                f"{list(self.att_scales)}.",
            )
        if not 0 <= self.att_threshold < 1:
            self._fail("att_threshold", f"must be in [0, 1), got {self.att_threshold!r}.")


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment: `model`, `data`, `train`, `test` and `saccade` sections."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    test: TestConfig = dataclasses.field(default_factory=TestConfig)
    saccade: SaccadeConfig = dataclasses.field(default_factory=SaccadeConfig)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML-able data (tuples become lists)."""
        return _plain(dataclasses.asdict(self))


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "train": TrainConfig,
    "test": TestConfig,
    "saccade": SaccadeConfig,
}

# `data.sampler` values: the training crops of CornerNet and CornerNet-Saccade.
DATA_SAMPLERS = ("cornernet", "saccade")

# Fields that must be > 0 / >= 0; checked after the types.
_POSITIVE = {
    "data": ("input_size", "output_size", "max_objects", "shuffle_buffer", "max_pixels"),
    "train": (
        "batch_size",
        "steps",
        "learning_rate",
        "base_batch",
        "lr_decay_factor",
        "checkpoint_every",
        "keep_checkpoints",
        "log_every",
    ),
}
_NON_NEGATIVE = {
    "data": ("border", "max_bad_images"),
    "train": ("pull_weight", "push_weight", "offset_weight", "seed", "eval_every"),
}


def load_config(path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """Reads a YAML config file and applies `--set` overrides.

    Args:
        path: the YAML file (sections `model`, `data`, `train`, `test`,
            `saccade`; every key optional, defaults are the official settings).
        overrides: strings `section.key=value` (e.g. `train.steps=100`); the
            value is parsed with `yaml.safe_load`.

    Returns:
        The validated, frozen `Config`.

    Raises:
        ConfigError: missing or unreadable file, invalid YAML, unknown keys,
            values of the wrong type or out of range; the message names the
            file (or the override), the key and the fix.
    """
    source = os.fspath(path)
    if not os.path.isfile(source):
        raise ConfigError(
            f"{source}: config file not found; pass an existing YAML file with --config "
            "(see configs/)."
        )
    try:
        with open(source, encoding="utf-8") as f:
            raw = _safe_load(f)
    except _LimitError as e:
        raise ConfigError(f"{source}: {e}.") from None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{source}: not valid YAML ({_one_line(e)}); fix the syntax at that line."
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{source}: cannot read the config file ({e}).") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(
            f"{source}: the top level must be a mapping of sections {sorted(SECTIONS)}, "
            f"got {type(raw).__name__}."
        )
    raw, key_sources = _apply_overrides(raw, overrides)
    return config_from_dict(raw, source=source, key_sources=key_sources)


def _apply_overrides(
    raw: Mapping[str, Any], overrides: Sequence[str]
) -> tuple[dict[str, Any], dict[str, str]]:
    """Applies `section.key=value` overrides to a raw config mapping.

    Args:
        raw: the parsed YAML (not modified).
        overrides: strings `section.key=value`; `model.overrides.<arg>=value`
            sets a model constructor argument. Values are parsed with
            `yaml.safe_load` (`10` is an int, `0.001` a float, `[1, 2]` a list).

    Returns:
        A new nested dict with the overrides applied, and for each overridden
        `section.key` the override text, so that type errors can name it.

    Raises:
        ConfigError: an override without `=`, or with an unknown section/key.
    """
    result = _plain(raw)
    key_sources = {}
    for item in overrides:
        where = f"--set {item}"
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{where}: expected section.key=value, e.g. train.steps=1000.")
        path = key.split(".")
        if len(path) < 2 or path[0] not in SECTIONS:
            raise ConfigError(
                f"{where}: {key!r} must start with a section name, one of {sorted(SECTIONS)} "
                "(e.g. train.steps=1000)."
            )
        section_cls = SECTIONS[path[0]]
        names = [f.name for f in dataclasses.fields(section_cls)]
        if path[1] not in names:
            raise ConfigError(
                f"{where}: unknown key {path[1]!r} in section {path[0]!r}; valid keys: "
                f"{', '.join(names)}."
            )
        if len(path) > 2 and path[:2] != ["model", "overrides"]:
            raise ConfigError(
                f"{where}: {path[0]}.{path[1]} has no sub-keys; use {path[0]}.{path[1]}=value."
            )
        try:
            value = _safe_load(text)
        except _LimitError as e:
            raise ConfigError(f"{where}: {e}.") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{where}: the value is not valid YAML ({_one_line(e)}).") from None
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"{where}: {part!r} is not a mapping in the config file.")
            node = child
        node[path[-1]] = value
        key_sources[".".join(path[:2])] = where
    return result, key_sources


def config_from_dict(
    raw: Mapping[str, Any],
    source: str = "<config>",
    key_sources: Mapping[str, str] | None = None,
) -> Config:
    """Validates a nested mapping and builds the frozen `Config`.

    Args:
        raw: `{section: {key: value}}`, e.g. parsed YAML.
        source: the file name used in error messages.
        key_sources: optional `{"section.key": origin}` naming, in error
            messages, where a value came from instead of `source` (an override).

    Returns:
        The `Config`.

    Raises:
        ConfigError: unknown sections or keys, wrong types, out-of-range values.
    """
    overridden = dict(key_sources or {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: expected a mapping of sections, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}."
        )
    sections = {}
    for name, cls in SECTIONS.items():
        values = raw.get(name) or {}
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"{source}: section {name!r} must be a mapping of keys, got "
                f"{type(values).__name__} {values!r}."
            )
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs = {}
        for key, value in values.items():
            where = overridden.get(f"{name}.{key}", source)
            if key not in names:
                raise ConfigError(
                    f"{where}: unknown key {key!r} in section {name!r}; valid keys: "
                    f"{', '.join(names)}."
                )
            kwargs[key] = _check_type(value, hints[key], f"{where}: {name}.{key}")
        try:
            sections[name] = cls(**kwargs)
        except ConfigError as error:  # a section's own cross-field checks
            # Blame the overrides of the keys involved, else the file.
            involved = [
                origin
                for key, origin in overridden.items()
                if key == error.key or re.search(rf"\b{re.escape(key)}\b", str(error))
            ]
            where = ", ".join(involved) or source
            raise ConfigError(f"{where}: {error}", key=error.key) from None
    config = Config(**sections)
    _check_ranges(config, source, overridden)
    return config


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Writes the resolved config as YAML, atomically (temp file + `os.replace`).

    Args:
        config: the config to write.
        path: destination file; loading it with `load_config` gives `config` back.
    """
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=False)
    atomic_write_text(path, text)


# --------------------------------------------------------------------- helpers


# A config is a few dozen values a few levels deep; these bounds are far
# above any real one and keep hostile files from exhausting memory or the stack.
MAX_YAML_DEPTH = 50
MAX_YAML_NODES = 100_000


class _LimitError(yaml.YAMLError):
    """Valid YAML that no config needs: a duplicate key, deep nesting, an alias bomb."""


class _ConfigLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` refusing duplicate keys, deep nesting and alias bombs."""

    def __init__(self, stream):
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent, index):
        # The composer recurses once per level; stop long before Python's limit.
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                mark = self.peek_event().start_mark
                raise _LimitError(
                    f"nesting deeper than {MAX_YAML_DEPTH} levels at line {mark.line + 1}; a "
                    "config is sections of keys with short lists"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *base` keys may be overridden; that is their purpose
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, typing.Hashable):
                continue  # the base class reports unhashable keys
            if key in seen:
                raise _LimitError(
                    f"duplicate key {key!r} at line {key_node.start_mark.line + 1} (first at "
                    f"line {seen[key] + 1}); keep one of them"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Values in `node` once every alias is expanded (aliases share their node)."""
    done = sizes.get(id(node))
    if done is not None:
        return done
    sizes[id(node)] = MAX_YAML_NODES + 1  # a node inside itself never ends
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [child for pair in node.value for child in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_size(child, sizes)
        if total > MAX_YAML_NODES:
            break
    sizes[id(node)] = total
    return total


def _safe_load(stream) -> Any:
    """`yaml.safe_load` with the config's limits (see the module docstring)."""
    loader = _ConfigLoader(stream)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise _LimitError(
                f"aliases expand to more than {MAX_YAML_NODES} values; a config needs far "
                "fewer, so write the values out or use fewer nested aliases"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _check_type(value: Any, hint: Any, where: str) -> Any:
    """Returns `value` converted to the field type `hint`, or raises ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as e:
                errors.append(e)
        raise errors[0]
    if hint is bool:
        if isinstance(value, bool | np.bool_):
            return bool(value)
        raise ConfigError(f"{where} must be true or false, got {value!r}.")
    if hint is int:
        if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
            if not -(2**63) <= value < 2**63:  # TensorFlow and NumPy hold 64-bit integers
                raise ConfigError(f"{where} must be a 64-bit integer (below 2**63), got {value}.")
            return int(value)
        raise ConfigError(f"{where} must be an integer, got {value!r}.")
    if hint is float:
        if isinstance(value, str) and _FLOAT_LITERAL.fullmatch(value.strip()):
            # YAML 1.1 reads `1e-3` (no dot) as a string; it is plainly a number.
            value = float(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_):
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be a finite number, got {value!r}.")
            return float(value)
        raise ConfigError(f"{where} must be a number, got {value!r}.")
    if hint is str:
        if isinstance(value, str) and value:
            return value
        raise ConfigError(f"{where} must be a non-empty string, got {value!r}.")
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list, got {value!r}.")
        return tuple(_check_type(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where} must be a mapping with string keys, got {value!r}.")
        return dict(value)
    raise TypeError(f"config field type {hint!r} is not supported")  # a bug in this module


def _check_ranges(config: Config, source: str, overridden: Mapping[str, str]) -> None:
    def fail(section: str, key: str, message: str) -> None:
        where = overridden.get(f"{section}.{key}", source)
        raise ConfigError(f"{where}: {section}.{key} {message}")

    for section, keys in _POSITIVE.items():
        for key in keys:
            value = getattr(getattr(config, section), key)
            if value <= 0:
                fail(section, key, f"must be > 0, got {value!r}.")
    for section, keys in _NON_NEGATIVE.items():
        for key in keys:
            value = getattr(getattr(config, section), key)
            if value < 0:
                fail(section, key, f"must be >= 0, got {value!r}.")
    data, train = config.data, config.train
    if not 0.0 < data.gaussian_iou < 1.0:
        fail("data", "gaussian_iou", f"must be in (0, 1), got {data.gaussian_iou!r}.")
    if not data.rand_scales or any(s <= 0 for s in data.rand_scales):
        fail(
            "data",
            "rand_scales",
            f"must be a non-empty list of scales > 0, got {list(data.rand_scales)}.",
        )
    if data.sampler not in DATA_SAMPLERS:
        fail("data", "sampler", f"must be one of {', '.join(DATA_SAMPLERS)}, got {data.sampler!r}.")
    if data.lighting and not data.color_jitter:
        fail(
            "data",
            "lighting",
            "needs data.color_jitter: true (officially the PCA lighting is part of rand_color); "
            "set both to false to turn the photometric augmentation off.",
        )
    if isinstance(train.jit_compile, str) and train.jit_compile != "auto":
        fail("train", "jit_compile", f"must be true, false or auto, got {train.jit_compile!r}.")
    decay = train.lr_decay_steps
    if any(s <= 0 for s in decay) or list(decay) != sorted(set(decay)):
        fail("train", "lr_decay_steps", f"must be increasing positive steps, got {list(decay)}.")
    if not isinstance(config.model.preset, str):
        fail("model", "preset", "must be a preset name.")
    if train.freeze_backbone_steps < -1:
        fail(
            "train",
            "freeze_backbone_steps",
            f"must be >= 0 steps, or -1 for the whole run, got {train.freeze_backbone_steps!r}.",
        )
    size_problem = config_size_problem(config)
    if size_problem is not None:
        key, message = size_problem
        where = [overridden[k] for k in ("data.input_size", "data.output_size") if k in overridden]
        where += [v for k, v in overridden.items() if k.startswith("model.")]
        raise ConfigError(f"{', '.join(dict.fromkeys([source, *where]))}: {message}", key=key)


_FLOAT_LITERAL = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _plain(value: Any) -> Any:
    """A new tree of dicts and lists (tuples become lists): YAML-able, and a deep copy."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
