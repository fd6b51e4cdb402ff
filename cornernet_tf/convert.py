"""Loading the official CornerNet weights (a PyTorch state dict) into Keras.

The official trainer (princeton-vl/CornerNet `nnet/py_factory.py`,
`save_params`) pickles `model.state_dict()` of the network wrapped in a
`DummyModule`, so every key starts with `module.`; the published
`CornerNet_500000.pkl` is such a file. The names follow the PyTorch module tree
of `models/CornerNet.py` (`pre`, `kps`, `cnvs`, `inters`, `inters_`, `cnvs_`,
`tl_cnvs`, `br_cnvs`, `tl_heats`, `br_heats`, `tl_tags`, `br_tags`,
`tl_regrs`, `br_regrs`), which `CornerNet`'s attributes mirror.

princeton-vl/CornerNet-Lite saves the same way with its own module tree
(`core/models/py_utils/modules.py`: `hg.pre`, `hg.hgs`, `hg.cnvs`, `hg.inters`,
`hg.inters_`, `hg.cnvs_`, `tl_modules`, `br_modules`, `tl_heats`, ...,
`tl_offs`, `br_offs`): its `CornerNet_Squeeze_500000.pkl` (preset "squeeze")
and its re-released Hourglass-104 `CornerNet_500000.pkl` (preset
"hourglass104", the same network and weights layout under the other names).
Its `CornerNet_Saccade_500000.pkl` (preset "saccade") has the same names plus
the attention heads, `att_modules.{stack}.{level}` (`CornerNet_Saccade.py`).
The naming is read from the keys, and so is the architecture unless a preset
is named: attention keys (`att_modules`) are CornerNet-Saccade, fire-module
keys (`conv_3x3`) CornerNet-Squeeze, anything else Hourglass-104.

The conversion is strict: every source tensor is used exactly once, every Keras
weight is assigned exactly once, and all shapes are checked before anything is
assigned. Convolution kernels go from PyTorch's OIHW to Keras' HWIO; BatchNorm
`weight`/`bias`/`running_mean`/`running_var` become
`gamma`/`beta`/`moving_mean`/`moving_variance`. CornerNet-Squeeze adds grouped
(depthwise) kernels, `(C·m, 1, kh, kw)` → Keras `(kh, kw, C, m)`, and
`ConvTranspose2d` kernels, `(in, out, kh, kw)` → Keras `(kh, kw, out, in)`.
`num_batches_tracked` has no Keras counterpart and only counts training
steps: it is consumed and checked but not assigned; it is optional because
PyTorch < 0.4.1 (the official environment pins 0.4.0) did not save it.

The official network was trained on BGR images normalised with the official
mean/std, so a converted model is always built with `channel_order="bgr"` and
the official constants (recorded in its config); it still takes RGB [0, 255]
images like every `CornerNet`.
"""

import os
from collections.abc import Mapping

import numpy as np

from cornernet_tf.layers.fire import FireModule
from cornernet_tf.models.cornernet import (
    HEAD_NAMES,
    OFFICIAL_MEAN_RGB,
    OFFICIAL_STD_RGB,
    CornerNet,
)
from cornernet_tf.spec.coco_classes import COCO_CLASS_NAMES
from cornernet_tf.spec.presets import PRESETS

OFFICIAL_PREFIX = "module."
# Official module names per part of `CornerNet`, in the two official code bases:
# "cornernet" (princeton-vl/CornerNet) and "lite" (princeton-vl/CornerNet-Lite).
NAMINGS = {
    "cornernet": {
        "pre": "pre",
        "kps": "kps",
        "cnvs": "cnvs",
        "inters": "inters",
        "inters_": "inters_",
        "cnvs_": "cnvs_",
        "pool": "{corner}_cnvs",
        "heatmap": "heats",
        "embedding": "tags",
        "offset": "regrs",
    },
    "lite": {
        "pre": "hg.pre",
        "kps": "hg.hgs",
        "cnvs": "hg.cnvs",
        "inters": "hg.inters",
        "inters_": "hg.inters_",
        "cnvs_": "hg.cnvs_",
        "pool": "{corner}_modules",
        "heatmap": "heats",
        "embedding": "tags",
        "offset": "offs",
    },
}
# Top-level modules of the official networks, for telling a CornerNet state dict
# from something else before the model build.
OFFICIAL_TOP_LEVEL = (
    *("pre", "kps", "cnvs", "inters", "inters_", "cnvs_"),
    *("tl_cnvs", "br_cnvs", "tl_heats", "br_heats", "tl_tags", "br_tags", "tl_regrs", "br_regrs"),
    *("hg", "tl_modules", "br_modules", "tl_offs", "br_offs"),
    "att_modules",
)
# CornerNet-Saccade's attention heads: `att_modules.{stack}.{j}`, j in the
# order of `ATTENTION_NAMES` (a `Sequential` of `convolution` and a 1x1 conv).
ATTENTION_MODULES = "att_modules"
# Constructor arguments a converted model must not change: the official weights
# were trained on BGR images normalised with the official mean/std.
_FIXED_ARGUMENTS = {
    "channel_order": "bgr",
    "image_mean": OFFICIAL_MEAN_RGB,
    "image_std": OFFICIAL_STD_RGB,
}
_MAX_LISTED = 20
_CONV = "conv"  # OIHW → HWIO
_DEPTHWISE = "depthwise"  # (C·m, 1, kh, kw) → (kh, kw, C, m)
_TRANSPOSED = "transposed"  # ConvTranspose2d (in, out, kh, kw) → (kh, kw, out, in)
_SAME = "same"  # copied as is


class StateDictMismatchError(ValueError):
    """A state dict does not fit the requested CornerNet architecture.

    Attributes:
        missing: `(key, expected_shape)` for Keras weights with no source.
        unexpected: `(key, shape)` for source tensors with no Keras weight.
        misshapen: `(key, expected_shape, got_shape)`; shapes in the PyTorch
            layout.
        invalid: `(key, reason)` for non-float or non-finite tensors.
    """

    def __init__(self, message, missing=(), unexpected=(), misshapen=(), invalid=()):
        super().__init__(message)
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.misshapen = list(misshapen)
        self.invalid = list(invalid)


def official_weight_map(model: CornerNet, naming: str = "cornernet") -> tuple[dict, list[str]]:
    """Pairs every weight of a built `CornerNet` with its official name.

    Follows the module tree of princeton-vl/CornerNet `models/CornerNet.py`,
    `models/py_utils/kp.py` (`kp`, `kp_module`), `utils.py` (`convolution`,
    `residual`) and `kp_utils.py` (`make_kp_layer`), or with `naming="lite"`
    that of princeton-vl/CornerNet-Lite `core/models/py_utils/modules.py`
    (`hg_net`, `hg`, `hg_module`) and `core/models/CornerNet_Squeeze.py`
    (`fire_module`, the transposed-convolution `up2`); a model with
    attention heads adds CornerNet-Saccade's `att_modules`
    (`core/models/CornerNet_Saccade.py`).

    Args:
        model: a built `CornerNet` whose heads of every stack exist (call it
            once with `all_stacks=True`).
        naming: "cornernet" or "lite" (see `NAMINGS`).

    Returns:
        `(targets, counters)`: `targets` maps each official key (without the
        `module.` prefix) to `(variable, layout)` with layout "conv" (a Keras
        HWIO kernel filled from an OIHW tensor), "depthwise", "transposed" or
        "same"; `counters` lists the official `num_batches_tracked` keys, which
        have no Keras weight.
    """
    if naming not in NAMINGS:
        raise ValueError(f"official_weight_map: `naming` must be one of {list(NAMINGS)}.")
    names = NAMINGS[naming]
    targets = {}
    counters = []

    def add(key, variable, layout):
        if key in targets:
            raise RuntimeError(f"official_weight_map: {key!r} mapped twice.")
        targets[key] = (variable, layout)

    def conv(key, layer, layout=_CONV):
        add(f"{key}.weight", layer.kernel, layout)
        if layer.use_bias:
            add(f"{key}.bias", layer.bias, _SAME)

    def batch_norm(key, layer):
        add(f"{key}.weight", layer.gamma, _SAME)
        add(f"{key}.bias", layer.beta, _SAME)
        add(f"{key}.running_mean", layer.moving_mean, _SAME)
        add(f"{key}.running_var", layer.moving_variance, _SAME)
        counters.append(f"{key}.num_batches_tracked")

    def conv_bn(conv_key, bn_key, layer):
        conv(conv_key, layer.conv)
        if layer.bn is not None:
            batch_norm(bn_key, layer.bn)

    def convolution(key, layer):  # official `convolution`: .conv, .bn
        conv_bn(f"{key}.conv", f"{key}.bn", layer)

    def residual(key, layer):  # official `residual`: conv1/bn1, conv2/bn2, skip.0/.1
        conv_bn(f"{key}.conv1", f"{key}.bn1", layer.conv1)
        conv_bn(f"{key}.conv2", f"{key}.bn2", layer.conv2)
        if layer.skip is not None:
            conv_bn(f"{key}.skip.0", f"{key}.skip.1", layer.skip)

    def fire(key, layer):  # official `fire_module`: conv1/bn1, conv_1x1 ‖ conv_3x3, bn2
        conv(f"{key}.conv1", layer.conv1)
        batch_norm(f"{key}.bn1", layer.bn1)
        conv(f"{key}.conv_1x1", layer.conv_1x1)
        add(f"{key}.conv_3x3.weight", layer.conv_3x3.kernel, _DEPTHWISE)
        batch_norm(f"{key}.bn2", layer.bn2)

    def blocks(key, layers):
        for j, block in enumerate(layers):
            (fire if isinstance(block, FireModule) else residual)(f"{key}.{j}", block)

    def hourglass(key, layer):  # official `kp_module` / `hg_module`
        blocks(f"{key}.up1", layer.up1)
        blocks(f"{key}.low1", layer.low1)
        if isinstance(layer.low2, list):
            blocks(f"{key}.low2", layer.low2)
        else:
            hourglass(f"{key}.low2", layer.low2)
        blocks(f"{key}.low3", layer.low3)
        if layer.upsample == "transposed":
            conv(f"{key}.up2", layer.up2, _TRANSPOSED)

    convolution(f"{names['pre']}.0", model.pre[0])
    for j, layer in enumerate(model.pre[1:], start=1):
        residual(f"{names['pre']}.{j}", layer)
    for i in range(model.num_stacks):
        hourglass(f"{names['kps']}.{i}", model.kps[i])
        convolution(f"{names['cnvs']}.{i}", model.cnvs[i])
        for corner, modules in model.corner_modules.items():
            pool = modules[i]
            key = f"{names['pool'].format(corner=corner)}.{i}"
            convolution(f"{key}.p1_conv1", pool.p1_conv1)
            convolution(f"{key}.p2_conv1", pool.p2_conv1)
            conv_bn(f"{key}.p_conv1", f"{key}.p_bn1", pool.p_conv1)
            conv_bn(f"{key}.conv1", f"{key}.bn1", pool.conv1)
            convolution(f"{key}.conv2", pool.conv2)
            for head in HEAD_NAMES:
                layer = model.heads[f"{corner}_{head}"][i]
                official = f"{corner}_{names[head]}.{i}"
                convolution(f"{official}.0", layer.conv)  # with bias, no BN
                conv(f"{official}.1", layer.out)
    for i in range(model.num_stacks - 1):
        residual(f"{names['inters']}.{i}", model.inters[i])
        conv(f"{names['inters_']}.{i}.0", model.inters_[i][0])
        batch_norm(f"{names['inters_']}.{i}.1", model.inters_[i][1])
        conv(f"{names['cnvs_']}.{i}.0", model.cnvs_[i][0])
        batch_norm(f"{names['cnvs_']}.{i}.1", model.cnvs_[i][1])
    for i in range(model.num_stacks):
        for j, heads in enumerate(model.attention_heads.values()):
            convolution(f"{ATTENTION_MODULES}.{i}.{j}.0", heads[i].conv)  # with bias, no BN
            conv(f"{ATTENTION_MODULES}.{i}.{j}.1", heads[i].out)

    mapped = {id(variable) for variable, _ in targets.values()}
    if len(mapped) != len(targets):
        raise RuntimeError("official_weight_map: a Keras weight is mapped to two official keys.")
    unmapped = [w.path for w in model.weights if id(w) not in mapped]
    if unmapped or len(mapped) != len(model.weights):
        raise RuntimeError(
            "official_weight_map: Keras weights without an official name (is the model built "
            f"with every stack's heads?): {unmapped[:_MAX_LISTED]}"
        )
    return targets, counters


def detect_naming(state_dict) -> str:
    """The code base a state dict's keys come from: "lite" (`hg.…` keys) or "cornernet"."""
    keys = _strip_prefix(state_dict)
    return "lite" if any(key.startswith("hg.") for key in keys) else "cornernet"


def detect_preset(state_dict) -> str:
    """The official preset a state dict's keys describe: "saccade", "squeeze" or "hourglass104".

    Attention keys (`att_modules.…`, only in CornerNet-Saccade) and fire-module
    keys (`….conv_3x3.weight`, only in CornerNet-Squeeze) decide; the small
    presets ("tiny", "tiny_squeeze", "tiny_saccade") are never guessed.
    """
    keys = _strip_prefix(state_dict)
    if any(key.startswith(f"{ATTENTION_MODULES}.") for key in keys):
        return "saccade"
    return "squeeze" if any(key.endswith(".conv_3x3.weight") for key in keys) else "hourglass104"


def official_num_classes(state_dict) -> int:
    """The classes of an official state dict: the channels of its first heatmap output.

    Args:
        state_dict: as for `from_official_state_dict`.

    Returns:
        The output channels of `tl_heats.0.1` (both official namings).

    Raises:
        StateDictMismatchError: no such tensor, or not a convolution bias.
    """
    source = _strip_prefix(state_dict)
    _check_looks_official(source)
    key = "tl_heats.0.1.bias"
    shape = tuple(np.shape(source[key])) if key in source else ()
    if len(shape) != 1:
        raise StateDictMismatchError(
            f"this state dict has no heatmap output bias {key!r} of one dimension "
            f"(got {shape or 'none'}); it is not a whole CornerNet checkpoint.",
            missing=[] if key in source else [(key, ("C",))],
        )
    return shape[0]


def from_official_state_dict(state_dict, *, preset=None, **overrides) -> CornerNet:
    """Builds a `CornerNet` holding the weights of an official state dict.

    Args:
        state_dict: mapping from official parameter name to array (numpy, or
            anything `np.asarray` reads, e.g. CPU torch tensors), keys with or
            without the `module.` prefix of the official trainer; shapes in
            PyTorch layout (conv OIHW).
        preset: `CornerNet` preset describing the architecture; `None` reads
            it from the keys (`detect_preset`: "hourglass104" for both
            published Hourglass-104 checkpoints, "squeeze" for
            `CornerNet_Squeeze_500000.pkl`, "saccade" for
            `CornerNet_Saccade_500000.pkl`).
        **overrides: constructor arguments replacing the preset's (e.g.
            `num_classes`, `class_names`, `test_config`); `channel_order`,
            `image_mean` and `image_std` are fixed to the official BGR values.
            An 80-class model is named with `COCO_CLASS_NAMES` unless
            `class_names` is given.

    Returns:
        A built `CornerNet` (heads of every stack) with `channel_order="bgr"`
        and the official mean/std.

    Raises:
        TypeError: `state_dict` is not a mapping with string keys.
        ValueError: a fixed argument is overridden, or the preset is unknown;
            `StateDictMismatchError` (a ValueError) as `load_official_weights`.
    """
    for name, value in _FIXED_ARGUMENTS.items():
        if name in overrides:
            raise ValueError(
                f"from_official_state_dict: `{name}` cannot be overridden; official weights expect "
                f"{name}={value!r} (set by the converter)."
            )
    source = _strip_prefix(state_dict)
    _check_looks_official(source)  # before the model build
    named = preset is not None
    if not named:
        preset = detect_preset(source)
    elif preset not in PRESETS:
        raise ValueError(
            f"from_official_state_dict: unknown preset {preset!r}; choose one of {sorted(PRESETS)}."
        )
    # The official heads are as wide as dims[0] (`head_dim=None`), whatever the
    # preset says (the CPU `tiny` presets narrow them).
    arguments = {"head_dim": None, **overrides, **_FIXED_ARGUMENTS}
    num_classes = arguments.get("num_classes", PRESETS[preset]["num_classes"])
    if num_classes == len(COCO_CLASS_NAMES):  # the published checkpoints: COCO's classes
        arguments.setdefault("class_names", list(COCO_CLASS_NAMES))
    model = CornerNet.from_preset(preset, **arguments)
    try:
        _assign(model, source, f"preset {preset!r}")
    except StateDictMismatchError as error:
        fitting = _fitting_presets(source, exclude=preset) if named else []
        if not fitting:
            raise
        raise StateDictMismatchError(
            f"{error}\nits keys are those of preset {fitting[0]!r}: convert with "
            f"preset={fitting[0]!r} (script: --preset {fitting[0]}, or no --preset to detect it).",
            error.missing,
            error.unexpected,
            error.misshapen,
            error.invalid,
        ) from None
    return model


def load_official_weights(model: CornerNet, state_dict) -> CornerNet:
    """Assigns an official state dict to an existing `CornerNet`, all or nothing.

    Use it to load into a model created under a `tf.distribute` strategy
    scope (call it inside that scope, or build the model there first, so the
    variables are created by the strategy); `from_official_state_dict` builds
    the model for you.

    Args:
        model: a `CornerNet` with `channel_order="bgr"` and the official
            mean/std (the architecture must match the state dict); built here
            with every stack's heads if it is not yet.
        state_dict: as for `from_official_state_dict`.

    Returns:
        `model`, its weights replaced.

    Raises:
        TypeError: `model` is not a CornerNet, or `state_dict` is not a
            mapping with string keys.
        ValueError: the model does not normalise like the official network;
            `StateDictMismatchError` (a ValueError) when keys are missing,
            unexpected, misshapen, non-float or non-finite: each is named with
            expected and actual shapes, and no weight is changed.
    """
    if not isinstance(model, CornerNet):
        raise TypeError(
            f"load_official_weights: `model` must be a CornerNet, got {type(model).__name__}."
        )
    for name, value in _FIXED_ARGUMENTS.items():
        current = getattr(model, name)
        if current != (value if isinstance(value, str) else [float(v) for v in value]):
            raise ValueError(
                f"load_official_weights: the model has {name}={current!r} but the official weights "
                f"expect {name}={value!r}; create it with that value (or use "
                "from_official_state_dict)."
            )
    source = _strip_prefix(state_dict)
    _check_looks_official(source)
    _assign(model, source, "the model")
    return model


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Reads a state dict from a PyTorch checkpoint or an `.npz` archive.

    `.npz` files are read with numpy alone (`allow_pickle=False`). Anything
    else is read with `torch.load(path, map_location="cpu",
    weights_only=True)` (torch is the optional `convert` extra), which reads
    both the legacy format of the official `CornerNet_500000.pkl` and the zip
    format of current PyTorch. A checkpoint holding `{"state_dict": ...}` is
    unwrapped.

    Args:
        path: checkpoint file.

    Returns:
        Mapping from key to numpy array (floating tensors as float32).

    Raises:
        FileNotFoundError: no such file.
        ImportError: a PyTorch checkpoint without torch installed.
        ValueError: the file is not a readable checkpoint or holds no state
            dict of tensors.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load_state_dict: `path` must be a file path, got {type(path).__name__}.")
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"load_state_dict: checkpoint {path!r} does not exist (or is not a file)."
        )
    if path.lower().endswith(".npz"):
        return _load_npz(path)
    return _load_torch(path)


def from_official_checkpoint(path, *, preset=None, **overrides) -> CornerNet:
    """Builds a `CornerNet` from an official checkpoint file.

    Args:
        path: PyTorch checkpoint (e.g. `CornerNet_500000.pkl`) or `.npz`, read
            with `load_state_dict`.
        preset: as for `from_official_state_dict`.
        **overrides: as for `from_official_state_dict`.

    Returns:
        The built `CornerNet` of `from_official_state_dict`.
    """
    return from_official_state_dict(load_state_dict(path), preset=preset, **overrides)


# ----------------------------------------------------------------- internals


def _strip_prefix(state_dict):
    if not isinstance(state_dict, Mapping):
        raise TypeError(
            "official state dict: `state_dict` must be a mapping from parameter name to "
            f"array, got {type(state_dict).__name__}."
        )
    source = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"official state dict: keys must be strings, got {key!r}.")
        name = key[len(OFFICIAL_PREFIX) :] if key.startswith(OFFICIAL_PREFIX) else key
        if name in source:
            raise ValueError(
                f"official state dict: {name!r} appears both with and without the "
                f"{OFFICIAL_PREFIX!r} prefix; keep one."
            )
        source[name] = value
    return source


def _check_looks_official(source):
    top_level = {key.split(".", 1)[0] for key in source}
    if not top_level & set(OFFICIAL_TOP_LEVEL):
        sample = sorted(source)[:5]
        raise StateDictMismatchError(
            "this is not an official CornerNet state dict: none of its "
            f"{len(source)} keys (e.g. {sample}) starts with an official module name "
            f"({', '.join(OFFICIAL_TOP_LEVEL)}). Presets: {', '.join(sorted(PRESETS))}.",
            unexpected=[(key, tuple(np.shape(source[key]))) for key in sorted(source)],
        )


def _fitting_presets(source, exclude):
    """Presets (other than `exclude`) whose official key names are exactly `source`'s.

    Builds each candidate of the same block type (fire modules or residuals)
    and with attention heads exactly when `source` has them, narrowed: the
    names depend on the module tree and on which widths are equal (skip
    connections), so a copy whose widths are 2, 4, 6, ... in the same order
    has the same names at a fraction of the size. Only run to
    explain a failed conversion.
    """
    detected = detect_preset(source)
    fire = detected == "squeeze"
    naming = detect_naming(source)
    fitting = []
    for name in sorted(PRESETS, key=lambda n: (n != detected, n)):  # the detected one first
        if name == exclude or (PRESETS[name].get("block") == "fire") != fire:
            continue
        if PRESETS[name].get("attention", False) != (detected == "saccade"):
            continue  # attention keys or not: the same cut as the block type
        arguments = PRESETS[name]
        keys = ("pre_dim", "cnv_dim", "pool_dim")
        rank = {
            w: 2 * (i + 1)
            for i, w in enumerate(sorted({*arguments["dims"], *map(arguments.get, keys)}))
        }
        narrow = {key: rank[arguments[key]] for key in keys}
        dims = [rank[w] for w in arguments["dims"]]
        model = CornerNet.from_preset(name, dims=dims, head_dim=None, num_classes=2, **narrow)
        targets, counters = official_weight_map(model, naming)
        if set(targets) <= set(source) <= set(targets) | set(counters):
            fitting.append(name)
    return fitting


def _assign(model, source, described):
    heads = [layer for layers in model.heads.values() for layer in layers]
    if not model.built or not all(layer.built for layer in heads):
        model.build((None, None, None, 3))  # every stack's heads, whatever the input size
    targets, counters = official_weight_map(model, detect_naming(source))
    assignments = _match(source, targets, counters, model, described)
    for variable, value in assignments:  # only after every check passed
        variable.assign(value)


def _as_array(value):
    try:
        return np.asarray(value)
    except Exception as exc:  # e.g. a torch tensor that requires grad
        raise TypeError(
            f"official state dict: cannot read a {type(value).__name__} as an array ({exc})."
        ) from exc


def _match(source, targets, counters, model, described):
    missing, misshapen, invalid, assignments = [], [], [], []
    for key, (variable, layout) in targets.items():
        keras_shape = tuple(variable.shape)
        expected = _torch_shape(keras_shape, layout)
        if key not in source:
            missing.append((key, expected))
            continue
        array = _as_array(source[key])
        if array.shape != expected:
            misshapen.append((key, expected, array.shape))
        elif not np.issubdtype(array.dtype, np.floating):
            invalid.append((key, f"dtype {array.dtype}, expected floating point"))
        elif not np.all(np.isfinite(array)):
            invalid.append((key, "contains NaN or infinity"))
        elif key.endswith(".running_var") and np.any(array < 0):
            # A variance is >= 0: the square root of a negative one makes every output NaN.
            invalid.append(
                (key, f"negative variance (minimum {array.min():g}); the checkpoint is damaged")
            )
        else:
            array = _to_keras(array, layout, keras_shape)
            assignments.append((variable, np.ascontiguousarray(array, dtype=variable.dtype)))

    present = [key for key in counters if key in source]
    if present:  # optional as a whole (PyTorch < 0.4.1 did not save them), never partly
        missing.extend((key, ()) for key in counters if key not in source)
    for key in present:
        array = _as_array(source[key])
        if array.size != 1:
            misshapen.append((key, (), array.shape))
        elif not np.issubdtype(array.dtype, np.integer):
            invalid.append((key, f"dtype {array.dtype}, expected an integer step count"))

    known = set(targets) | set(counters)
    unexpected = [(key, tuple(np.shape(source[key]))) for key in sorted(source) if key not in known]
    if missing or unexpected or misshapen or invalid:
        raise StateDictMismatchError(
            _mismatch_message(model, described, missing, unexpected, misshapen, invalid),
            missing,
            unexpected,
            misshapen,
            invalid,
        )
    return assignments


def _torch_shape(keras_shape, layout):
    if layout == _CONV:
        kh, kw, cin, cout = keras_shape
        return (cout, cin, kh, kw)
    if layout == _DEPTHWISE:
        kh, kw, channels, multiplier = keras_shape
        return (channels * multiplier, 1, kh, kw)
    if layout == _TRANSPOSED:
        kh, kw, cout, cin = keras_shape
        return (cin, cout, kh, kw)
    return keras_shape


def _to_keras(array, layout, keras_shape):
    """A PyTorch-layout array (shape already checked) in the Keras layout."""
    if layout == _CONV:
        return np.transpose(array, (2, 3, 1, 0))  # OIHW → HWIO
    if layout == _DEPTHWISE:  # output channel c·m + j is input channel c's j-th filter
        kh, kw, channels, multiplier = keras_shape
        return np.transpose(array.reshape(channels, multiplier, kh, kw), (2, 3, 0, 1))
    if layout == _TRANSPOSED:
        return np.transpose(array, (2, 3, 1, 0))  # (in, out, kh, kw) → (kh, kw, out, in)
    return array


def _listing(title, rows, fmt):
    if not rows:
        return []
    lines = [f"{title} ({len(rows)}):"]
    lines += [f"  {fmt(row)}" for row in rows[:_MAX_LISTED]]
    if len(rows) > _MAX_LISTED:
        lines.append(f"  ... and {len(rows) - _MAX_LISTED} more")
    return lines


def _mismatch_message(model, described, missing, unexpected, misshapen, invalid):
    arch = (
        f"num_classes={model.num_classes}, num_stacks={model.num_stacks}, dims={model.dims}, "
        f"modules={model.modules}, pre_dim={model.pre_dim}, cnv_dim={model.cnv_dim}, "
        f"pool_dim={model.pool_dim}, block={model.block!r}, upsample={model.upsample!r}, "
        f"stem_residuals={model.stem_residuals}, head_kernel={model.head_kernel}"
    ) + (", attention=True" if model.attention else "")
    lines = [
        f"the state dict does not fit CornerNet {described} ({arch}): {len(missing)} missing, "
        f"{len(unexpected)} unexpected, {len(misshapen)} misshapen, {len(invalid)} invalid; "
        "nothing was loaded. Shapes are PyTorch layouts (conv OIHW)."
    ]
    lines += _listing("missing", missing, lambda r: f"{r[0]} (expected {r[1]})")
    lines += _listing("unexpected", unexpected, lambda r: f"{r[0]} (shape {r[1]})")
    lines += _listing("misshapen", misshapen, lambda r: f"{r[0]}: expected {r[1]}, got {r[2]}")
    lines += _listing("invalid", invalid, lambda r: f"{r[0]}: {r[1]}")
    classes = {got[0] for key, _, got in misshapen if key.endswith("_heats.0.1.weight") and got}
    if len(classes) == 1 and not missing and not unexpected:
        count = classes.pop()
        lines.append(
            f"hint: the checkpoint's heatmaps have {count} classes; pass num_classes={count} "
            f"(script: --num-classes {count})."
        )
    elif missing or unexpected or misshapen:
        lines.append(
            "hint: a different architecture; choose the matching preset (presets: "
            f"{', '.join(sorted(PRESETS))}) or override its arguments (dims, modules, "
            "num_stacks, ...)."
        )
    return "\n".join(lines)


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except Exception as exc:  # zipfile.BadZipFile, ValueError (pickled object arrays), ...
        raise ValueError(
            f"load_state_dict: {path!r} is not a readable .npz archive of arrays ({exc})."
        ) from exc


def _load_torch(path):
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"load_state_dict: reading the PyTorch checkpoint {path!r} needs torch; install it "
            "with `pip install .[convert]`, or save the state dict as .npz with numpy elsewhere "
            "and pass that file."
        ) from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"load_state_dict: {path!r} is not a PyTorch checkpoint that "
            f"torch.load(weights_only=True) can read ({type(exc).__name__}: {exc})."
        ) from exc
    if isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f"load_state_dict: {path!r} holds a {type(obj).__name__}, not a state dict "
            "(a mapping from parameter name to tensor)."
        )
    state = {}
    for key, value in obj.items():
        if not isinstance(value, torch.Tensor):
            raise ValueError(
                f"load_state_dict: {path!r} is not a state dict: entry {key!r} is a "
                f"{type(value).__name__}, not a tensor."
            )
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        state[key] = value.numpy()
    return state
