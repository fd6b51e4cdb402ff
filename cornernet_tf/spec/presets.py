"""Constructor arguments of the named CornerNet configurations.

Plain data (no TensorFlow): the command-line tools check preset names and
output strides before TensorFlow loads.
"""

# The test procedure of princeton-vl/CornerNet-Lite `configs/CornerNet_Squeeze.json`
# (single scale, no flip, 20 corners, 100 pairs); the other settings are
# `TestConfig`'s defaults (ae_threshold 0.5, Gaussian soft-NMS sigma 0.5, 100
# detections per image). Its `nms_threshold` 0.5 is unused by the Gaussian
# method, as in the official code.
SQUEEZE_TEST_CONFIG = {"top_k": 20, "num_dets": 100, "flip_test": False}

# The test settings of princeton-vl/CornerNet-Lite `configs/CornerNet_Saccade.json`
# and `core/test/cornernet_saccade.py` that the Saccade procedure
# (`cornernet_tf.inference.saccade`) reads from `TestConfig`: 12 corners per
# map, embedding distance 0.3, no flipped copy, Gaussian soft-NMS with the
# sigma 0.7 of that script. Its per-canvas `num_dets` 12 is
# `SaccadeConfig.num_dets`; `num_dets` here (all 12 x 12 pairs) only has to
# satisfy `TestConfig`'s `max_detections <= num_dets`.
SACCADE_TEST_CONFIG = {
    "top_k": 12,
    "num_dets": 144,
    "ae_threshold": 0.3,
    "flip_test": False,
    "soft_nms_sigma": 0.7,
}

PRESETS = {
    # The official network (princeton-vl/CornerNet `models/CornerNet.py`):
    # 201,035,212 trainable parameters; 511x511 input → 128x128 maps.
    "hourglass104": {
        "num_classes": 80,
        "num_stacks": 2,
        "dims": [256, 256, 384, 384, 384, 512],
        "modules": [2, 2, 2, 2, 2, 4],
        "pre_dim": 128,
        "cnv_dim": 256,
        "pool_dim": 128,
    },
    # CornerNet-Squeeze (princeton-vl/CornerNet-Lite `core/models/CornerNet_Squeeze.py`):
    # fire modules, transposed-convolution upsampling, a stem with two
    # stride-2 residuals and 1x1 prediction heads; 31,771,852 trainable
    # parameters; 511x511 input → 64x64 maps.
    "squeeze": {
        "num_classes": 80,
        "num_stacks": 2,
        "dims": [256, 256, 384, 384, 512],
        "modules": [2, 2, 2, 2, 4],
        "pre_dim": 128,
        "cnv_dim": 256,
        "pool_dim": 128,
        "block": "fire",
        "upsample": "transposed",
        "stem_residuals": 2,
        "head_kernel": 1,
        "test_config": SQUEEZE_TEST_CONFIG,
    },
    # A small hourglass for CPU demos and tests: same topology (two stacks,
    # intermediate supervision, strided residual downsampling, corner pooling),
    # three levels and narrow widths (about 1M parameters). 127x127 input
    # → 32x32 maps.
    "tiny": {
        "num_classes": 3,
        "num_stacks": 2,
        "dims": [32, 32, 48, 64],
        "modules": [1, 1, 1, 1],
        "pre_dim": 16,
        "cnv_dim": 32,
        "pool_dim": 16,
        "head_dim": 32,
    },
    # CornerNet-Saccade (princeton-vl/CornerNet-Lite `core/models/CornerNet_Saccade.py`):
    # Hourglass-54, three stacks of three levels with one residual each, and
    # per stack three attention heads on the hourglass's level outputs;
    # 116,969,339 trainable parameters; 255x255 input → 64x64 maps.
    "saccade": {
        "num_classes": 80,
        "num_stacks": 3,
        "dims": [256, 384, 384, 512],
        "modules": [1, 1, 1, 1],
        "pre_dim": 128,
        "cnv_dim": 256,
        "pool_dim": 128,
        "attention": True,
        "test_config": SACCADE_TEST_CONFIG,
    },
}

# `saccade` narrowed for CPU tests: three stacks, three levels, attention
# heads, the Saccade test settings. 127x127 input → 32x32 maps.
PRESETS["tiny_saccade"] = {
    **PRESETS["saccade"],
    "num_classes": 3,
    "dims": [32, 48, 48, 64],
    "pre_dim": 16,
    "cnv_dim": 32,
    "pool_dim": 16,
    "head_dim": 32,
}

# `tiny` built like CornerNet-Squeeze (fire modules, transposed convolutions,
# stride 8, 1x1 heads, its test procedure). 127x127 input → 16x16 maps.
PRESETS["tiny_squeeze"] = {
    **PRESETS["tiny"],
    **{k: v for k, v in PRESETS["squeeze"].items() if k not in PRESETS["hourglass104"]},
}


def output_stride(stem_residuals: int = 1) -> int:
    """Input pixels per output-map pixel: the stem's 7x7/2 convolution, then
    `stem_residuals` stride-2 residuals (the hourglasses keep the size)."""
    return 2 * 2**stem_residuals


def preset_output_stride(name: str, overrides=None) -> int:
    """`output_stride` of a preset with constructor `overrides` applied.

    Raises:
        ValueError: unknown preset, naming the existing ones.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
    arguments = {**PRESETS[name], **(overrides or {})}
    return output_stride(arguments.get("stem_residuals", 1))


def input_size_granule(output_stride: int, levels: int) -> int:
    """The step between valid input sides: `output_stride * 2**levels`."""
    return output_stride * 2**levels


def input_size_problem(size: int, output_stride: int, levels: int) -> str | None:
    """Why a network cannot take a `size`-pixel side, or None when it can.

    Each stride-2 layer rounds up (PyTorch-style padding), so the first
    hourglass sees `ceil(size / output_stride)` rows; its `levels` halvings
    and upsamplings meet again only if that is a multiple of `2**levels`.
    The official sizes are one less than a multiple of the granule (511 for
    Hourglass-104, 127 for the tiny preset).

    Args:
        size: the input side in pixels.
        output_stride: the stem's stride (input pixels per output pixel).
        levels: hourglass levels (`len(dims) - 1`).

    Returns:
        None, or a sentence naming the rule and the nearest valid sizes.
    """
    multiple = 2**levels
    if size > 0 and -(-size // output_stride) % multiple == 0:
        return None
    granule = input_size_granule(output_stride, levels)
    k = max((size + 1) // granule, 0)
    nearest = [n for n in (k * granule - 1, (k + 1) * granule - 1) if n > 0 and n != size]
    return (
        f"{size} does not fit the network: its stride-{output_stride} stem and {levels} "
        f"hourglass levels need ceil(size / {output_stride}) to be a multiple of {multiple} "
        f"(sides {granule}k-{output_stride - 1} to {granule}k); nearest sizes of the official "
        f"form {granule}k-1: " + " or ".join(str(n) for n in nearest)
    )


def config_size_problem(config) -> tuple[str, str] | None:
    """The size rule of a config: `data.input_size` fits `model`, `data.output_size` follows.

    The one check of an experiment's sizes: config loading, the trainer and
    the command-line tools all call it.

    Args:
        config: a `cornernet_tf.spec.config.Config`.

    Returns:
        None, or `(key, sentence)`: the offending `section.key` and what is
        wrong, naming the preset, the rule, the nearest valid sizes and the fix.
    """
    name, overrides = config.model.preset, config.model.overrides
    if name not in PRESETS:
        return "model.preset", (
            f"model.preset {name!r} is not a preset; choose one of {sorted(PRESETS)}."
        )
    dims = {**PRESETS[name], **overrides}.get("dims")
    if not isinstance(dims, list | tuple) or len(dims) < 2:
        return None  # the model's constructor names the bad override
    size = config.data.input_size
    stride = preset_output_stride(name, overrides)
    problem = input_size_problem(size, stride, len(dims) - 1)
    if problem is not None:
        return "data.input_size", (
            f"data.input_size {problem} (preset {name!r}); set data.input_size to one of "
            f"them and data.output_size to ceil(input_size / {stride})."
        )
    expected = -(-size // stride)
    if config.data.output_size != expected:
        return "data.output_size", (
            f"data.output_size must be ceil(input_size / {stride}) = {expected} for input_size "
            f"{size} (the output stride of preset {name!r} is {stride}), got "
            f"{config.data.output_size}."
        )
    return None
