"""Fine-tuning: a run that starts from other weights, and a backbone frozen for its first steps.

`model.init_from` names the weights a new run starts from: a `.keras` file of
this project, or an official checkpoint (`.pkl`, `.pth`, `.pt` or `.npz`,
converted on the fly by `cornernet_tf.convert`). The run's model is built as
usual, with the training set's classes, and every weight is copied from the
source except the class-dependent ones: the last convolution of the heatmap
heads (`tl_heats.<i>.1` and `br_heats.<i>.1` officially, one channel per
class), which is initialised again as the official code initialises it
(PyTorch's default kernel, bias -2.19) unless the source has exactly the
run's class names. The architecture must be the same (preset and
`model.overrides`, apart from the classes), and the input normalisation is
the source's (BGR and the official mean/std for official weights), so the
copied weights see the inputs they were trained on. A run that finds a
checkpoint in its model directory resumes from it and never reads the
source's weights.

`train.freeze_backbone_steps` keeps the backbone as it is for the first N
iterations (-1: the whole run). The backbone is the hourglass network of
CornerNet-Lite's `hg_net`: the stem (`pre`), the hourglasses (`kps`), the
convolutions after them (`cnvs`) and the layers joining the stacks
(`inters`, `inters_`, `cnvs_`); the corner-pooling modules and the heads are
trained. A frozen layer is `trainable = False`, Keras' own mechanism: it gets
no gradient (the backward pass stops at the corner modules) and its BatchNorm
layers normalise with their moving statistics and do not update them, so
every backbone weight stays exactly as loaded. `FreezeBackbone` sets this at
the start of `fit` from the restored step, so a resumed run freezes exactly
the steps an uninterrupted one would, and makes the train step again at
step N; the optimizer, its slots and the checkpoint cover every weight in
both phases.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import re
import zipfile

import keras
import numpy as np

from cornernet_tf import convert
from cornernet_tf.models.cornernet import CORNERS, OFFICIAL_MEAN_RGB, OFFICIAL_STD_RGB, CornerNet
from cornernet_tf.models.loading import load_model
from cornernet_tf.spec.config import Config, ConfigError
from cornernet_tf.spec.presets import PRESETS

logger = logging.getLogger(__name__)

__all__ = [
    "ARCHITECTURE_ARGUMENTS",
    "FreezeBackbone",
    "InitReport",
    "backbone_layers",
    "init_from_arguments",
    "load_init_weights",
    "set_backbone_trainable",
]

KEY = "model.init_from"
OFFICIAL_SUFFIXES = (".pkl", ".pth", ".pt", ".npz")
# Constructor arguments that fix the weights' shapes apart from the classes.
ARCHITECTURE_ARGUMENTS = (
    *("num_stacks", "dims", "modules", "pre_dim", "cnv_dim", "pool_dim", "head_dim"),
    *("block", "upsample", "stem_residuals", "head_kernel"),
)
# Constructor arguments the copied weights expect unchanged: how images are normalised.
NORMALIZATION_ARGUMENTS = ("channel_order", "image_mean", "image_std")
_OFFICIAL_NORMALIZATION = {
    "channel_order": "bgr",
    "image_mean": [float(v) for v in OFFICIAL_MEAN_RGB],
    "image_std": [float(v) for v in OFFICIAL_STD_RGB],
}
# The model's attributes holding the backbone's layers (lists, `inters_`/`cnvs_` of pairs).
_BACKBONE_ATTRIBUTES = ("pre", "kps", "cnvs", "inters", "inters_", "cnvs_")


@dataclasses.dataclass(frozen=True)
class InitReport:
    """What `load_init_weights` did.

    Attributes:
        source: the file read.
        loaded: paths of the run's weights copied from it.
        reinitialised: `(path, source shape, run's shape)` of the heatmap
            outputs initialised again.
    """

    source: str
    loaded: tuple[str, ...]
    reinitialised: tuple[tuple[str, tuple, tuple], ...]


def init_from_arguments(config: Config) -> dict:
    """The constructor arguments a run takes from `model.init_from`: its input normalisation.

    Read without loading any weight (a `.keras` file's `config.json`; the
    official values for an official checkpoint), so a resumed run builds
    the same model without reading the weights again.

    Args:
        config: the experiment config.

    Returns:
        `{channel_order, image_mean, image_std}` of the source, or `{}` when
        `model.init_from` is not set.

    Raises:
        ConfigError: the file is missing or of an unknown kind, or
            `model.overrides` sets a different normalisation.
    """
    path = config.model.init_from
    if path is None:
        return {}
    if _is_official(path):
        _check_file(path)
        values = dict(_OFFICIAL_NORMALIZATION)
    else:
        arguments = _keras_file_arguments(path)
        values = {name: arguments[name] for name in NORMALIZATION_ARGUMENTS if name in arguments}
    for name, value in values.items():
        given = config.model.overrides.get(name)
        if given is not None and _plain(given) != _plain(value):
            raise ConfigError(
                f"model.overrides.{name}={given!r} but {KEY}={path} was trained with "
                f"{name}={value!r}; remove the override (the weights expect their own "
                "normalisation).",
                key=f"model.overrides.{name}",
            )
    return values


def load_init_weights(model: CornerNet, config: Config) -> InitReport:
    """Copies the weights of `model.init_from` into a built model of the run.

    Args:
        model: the run's built `CornerNet` (every stack's heads), its
            classes those of the training set; under a distribution
            strategy, its variables created in the strategy's scope.
        config: the experiment config (`model.init_from` set).

    Returns:
        The `InitReport` (also logged, in one line).

    Raises:
        ConfigError: the file cannot be read, is not a CornerNet, or its
            architecture is not the run's; nothing is assigned then.
    """
    path = config.model.init_from
    source = _read_source(path, config)
    _check_architecture(source, model, config)
    heatmap_outputs = _heatmap_outputs(model)
    # The same names for the same place in both networks, whatever the Keras names.
    source_map, _ = convert.official_weight_map(source)
    target_map, _ = convert.official_weight_map(model)
    same_classes = bool(source.class_names) and source.class_names == model.class_names
    loaded, reinitialised, assignments = [], [], []
    for key, (variable, _) in target_map.items():
        value = source_map[key][0].numpy()
        if id(variable) in heatmap_outputs and not same_classes:
            reinitialised.append((variable.path, value.shape, tuple(variable.shape)))
            continue
        if value.shape != tuple(variable.shape):  # the architecture check rules this out
            raise ConfigError(
                f"{KEY}={path}: weight {key} has shape {value.shape}, the run's "
                f"{tuple(variable.shape)}; set model.preset and model.overrides to the source's."
            )
        assignments.append((variable, value))
        loaded.append(variable.path)
    for variable, value in assignments:
        variable.assign(value)
    if not same_classes:
        for layer in _heatmap_output_layers(model):  # the layer's own (the official) initialisers
            layer.kernel.assign(layer.kernel_initializer(layer.kernel.shape, layer.kernel.dtype))
            layer.bias.assign(layer.bias_initializer(layer.bias.shape, layer.bias.dtype))
    report = InitReport(path, tuple(loaded), tuple(reinitialised))
    _log_report(report, source, model)
    return report


# -------------------------------------------------------------------- freeze


def backbone_layers(model: CornerNet) -> list[keras.layers.Layer]:
    """The backbone's layers: stem, hourglasses, `cnvs` and the layers between the stacks.

    Args:
        model: a `CornerNet`.

    Returns:
        The layers (not the corner-pooling modules or heads).
    """
    layers = []
    for name in _BACKBONE_ATTRIBUTES:
        for item in getattr(model, name):
            layers.extend(item if isinstance(item, list | tuple) else [item])
    return layers


def set_backbone_trainable(model: CornerNet, trainable: bool) -> None:
    """Freezes (`trainable=False`) or unfreezes the backbone's layers.

    A train function made before the change still trains the old set: make
    it again (`model.make_train_function(force=True)`) when training.

    Args:
        model: a `CornerNet`.
        trainable: whether the backbone is trained.
    """
    for layer in backbone_layers(model):
        layer.trainable = trainable


class FreezeBackbone(keras.callbacks.Callback):
    """Trains the backbone only from iteration `steps` on (`train.freeze_backbone_steps`).

    Follows the optimizer's iteration count: a run resumed before `steps`
    starts frozen, one resumed after starts unfrozen. At the end of `fit`
    the backbone is trainable again, so the saved model is as any other.

    Args:
        steps: iterations with a frozen backbone; -1 for the whole run.
    """

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps

    def _frozen_at(self, step: int) -> bool:
        return self.steps < 0 or step < self.steps

    def on_train_begin(self, logs=None):
        step = _step(self.model)
        if self._frozen_at(step):
            set_backbone_trainable(self.model, False)
            # `fit` made its train function already; it is traced at its first call.
            self.model.make_train_function(force=True)
            until = "the whole run" if self.steps < 0 else f"until step {self.steps}"
            logger.info("backbone frozen %s (train.freeze_backbone_steps)", until)

    def on_train_batch_end(self, batch, logs=None):
        if self.steps > 0 and _step(self.model) == self.steps:
            set_backbone_trainable(self.model, True)
            self.model.make_train_function(force=True)
            logger.info("backbone trained from step %d on", self.steps)

    def on_train_end(self, logs=None):
        set_backbone_trainable(self.model, True)


# ----------------------------------------------------------------- internals


def _step(model: keras.Model) -> int:
    # `state.global_step`, which imports this module to build the run's model.
    return int(model.optimizer.iterations.numpy())


def _is_official(path: str) -> bool:
    return path.lower().endswith(OFFICIAL_SUFFIXES)


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise ConfigError(
            f"{KEY}={path}: no such file; pass a .keras file of this project or an official "
            f"checkpoint ({', '.join(OFFICIAL_SUFFIXES)}), or remove {KEY}.",
            key=KEY,
        )
    if not (path.endswith(".keras") or _is_official(path)):
        raise ConfigError(
            f"{KEY}={path}: not a .keras file nor an official checkpoint "
            f"({', '.join(OFFICIAL_SUFFIXES)}); pass one of those (cornernet-convert converts "
            "official checkpoints).",
            key=KEY,
        )


def _keras_file_arguments(path: str) -> dict:
    """The constructor arguments in a `.keras` file's `config.json` (the format's own record)."""
    _check_file(path)
    try:
        with zipfile.ZipFile(path) as archive:
            saved = json.loads(archive.read("config.json"))
        arguments = saved["config"]
        if saved.get("class_name") != "CornerNet" or not isinstance(arguments, dict):
            raise ValueError(f"it holds a {saved.get('class_name')!r}, not a CornerNet")
    except (OSError, KeyError, TypeError, ValueError, zipfile.BadZipFile) as e:
        raise ConfigError(
            f"{KEY}={path}: not a readable CornerNet .keras file ({e}); pass a model.keras "
            "written by cornernet-train or cornernet-convert.",
            key=KEY,
        ) from None
    return arguments


def _read_source(path: str, config: Config) -> CornerNet:
    """The source `CornerNet`; official weights are converted with the run's architecture."""
    _check_file(path)
    if not _is_official(path):
        try:
            return load_model(path)
        except ValueError as e:
            raise ConfigError(f"{KEY}={path}: {e}", key=KEY) from None
    overrides = config.model.overrides
    architecture = {name: overrides[name] for name in ARCHITECTURE_ARGUMENTS if name in overrides}
    preset = config.model.preset
    try:
        state_dict = convert.load_state_dict(path)
        return convert.from_official_state_dict(
            state_dict,
            preset=preset,
            num_classes=convert.official_num_classes(state_dict),
            **architecture,
        )
    except ImportError as e:  # the message says how to install torch or use an .npz
        raise ConfigError(f"{KEY}={path}: {e}", key=KEY) from None
    except (TypeError, ValueError) as e:
        lines = str(e).splitlines() or [type(e).__name__]
        # The converter's advice is for its own arguments; the run's are config keys.
        fitting = re.search(r"its keys are those of preset '(\w+)'", str(e))
        if fitting:
            fix = f"set model.preset: {fitting.group(1)} (and no architecture in model.overrides)"
        else:
            fix = "set model.preset and model.overrides to the checkpoint's architecture"
        raise ConfigError(
            f"{KEY}={path} does not fit model.preset {preset!r} with model.overrides: "
            f"{lines[0]} Fix: {fix}.",
            key=KEY,
        ) from None


def _check_architecture(source: CornerNet, model: CornerNet, config: Config) -> None:
    differences = [
        f"{name}={getattr(source, name)!r} (the run's {getattr(model, name)!r})"
        for name in ARCHITECTURE_ARGUMENTS
        if _plain(getattr(source, name)) != _plain(getattr(model, name))
    ]
    if not differences:
        return
    presets = [
        name
        for name, arguments in PRESETS.items()
        if all(
            _plain(arguments.get(n, _DEFAULTS[n])) == _plain(getattr(source, n))
            for n in ARCHITECTURE_ARGUMENTS
        )
    ]
    fix = (
        f"set model.preset: {presets[0]} (and no architecture in model.overrides)"
        if presets
        else "set model.preset and model.overrides to the source's architecture"
    )
    raise ConfigError(
        f"{KEY}={config.model.init_from} is another architecture than model.preset "
        f"{config.model.preset!r} with model.overrides: {', '.join(differences)}; {fix}.",
        key=KEY,
    )


# CornerNet's constructor defaults, which a preset does not repeat.
_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(CornerNet.__init__).parameters.items()
}


def _heatmap_output_layers(model: CornerNet) -> list[keras.layers.Layer]:
    """The last convolution of every heatmap head: one output channel per class."""
    return [head.out for corner in CORNERS for head in model.heads[f"{corner}_heatmap"]]


def _heatmap_outputs(model: CornerNet) -> set[int]:
    """`id`s of the class-dependent variables: the heatmap heads' last kernels and biases."""
    return {id(v) for layer in _heatmap_output_layers(model) for v in (layer.kernel, layer.bias)}


def _log_report(report: InitReport, source: CornerNet, model: CornerNet) -> None:
    if report.reinitialised:
        listed = ", ".join(
            f"{path} {tuple(old)}->{tuple(new)}" for path, old, new in report.reinitialised
        )
        classes = (
            f"{source.num_classes} classes -> the training set's {model.num_classes}; "
            f"re-initialised (bias {model.heads['tl_heatmap'][0].bias_value}): {listed}"
        )
    else:
        classes = "the same class names: heatmap heads kept"
    logger.info(
        "%s: loaded %d of %d weights from %s; %s",
        KEY,
        len(report.loaded),
        len(report.loaded) + len(report.reinitialised),
        report.source,
        classes,
    )


def _plain(value):
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value)
    return value
