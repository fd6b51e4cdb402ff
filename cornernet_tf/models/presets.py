"""Constructor arguments of the named CornerNet configurations."""

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
}

# The stem (conv 7x7/2, then a stride-2 residual) divides the input by 4 before
# the first hourglass; each of its `len(dims) - 1` levels halves it again.
STEM_STRIDE = 4


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


def config_input_size_problem(config) -> str | None:
    """Whether `config.data.input_size` fits `config.model` (a `config.Config`).

    Returns:
        None, or one sentence naming the preset, the rule, the nearest valid
        sizes and the fix (for a `ConfigError`).
    """
    name, overrides = config.model.preset, config.model.overrides
    if name not in PRESETS:
        return f"model.preset {name!r} is not a preset; choose one of {sorted(PRESETS)}."
    dims = {**PRESETS[name], **overrides}.get("dims")
    if not isinstance(dims, list | tuple) or len(dims) < 2:
        return None  # the model's constructor names the bad override
    size = config.data.input_size
    problem = input_size_problem(size, STEM_STRIDE, len(dims) - 1)
    if problem is None:
        return None
    return (
        f"data.input_size {problem} (preset {name!r}); set data.input_size to one of "
        f"them and data.output_size to ceil(input_size / {STEM_STRIDE})."
    )
