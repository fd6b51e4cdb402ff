"""The recursive hourglass module (official `kp_module`)."""

import keras

from cornernet_tf.layers.conv_bn import torch_default_kernel_initializer
from cornernet_tf.layers.fire import FireModule
from cornernet_tf.layers.residual import Residual

BLOCKS = {"residual": Residual, "fire": FireModule}
UPSAMPLING = ("nearest", "transposed")


@keras.saving.register_keras_serializable(package="cornernet_tf")
class HourglassModule(keras.layers.Layer):
    """One hourglass of depth `len(dims) - 1`, built recursively.

    As princeton-vl/CornerNet `models/py_utils/kp.py` `kp_module` with the
    CornerNet factories of `models/CornerNet.py`:

    - `up1`: `modules[0]` residuals at `dims[0]`;
    - `low1`: `modules[0]` residuals to `dims[1]`, the first one with stride 2
      (CornerNet downsamples with strided residuals, no max-pool);
    - `low2`: the next module, or `modules[-1]` residuals at the bottom;
    - `low3`: `modules[0]` residuals back to `dims[0]`, the last one changing
      the width;
    - output `up1 + upsample_x2(low3)`: nearest-neighbour, or (CornerNet-Squeeze)
      a 4x4 stride-2 transposed convolution with bias (PyTorch `padding=1`).

    CornerNet-Squeeze (princeton-vl/CornerNet-Lite
    `core/models/CornerNet_Squeeze.py` with `core/models/py_utils/modules.py`
    `hg_module`) has the same tree with fire modules instead of residuals and
    transposed-convolution upsampling.

    With `return_merges=True`, `call` returns `(output, merges)`: the output
    (`up1 + up2`) of every level, deepest first (the last one is `output`),
    as princeton-vl/CornerNet-Lite `saccade_module` hands them to
    CornerNet-Saccade's attention heads. Level k (0 the outermost) has
    `dims[k]` channels at 1/2**k of the input size.

    Args:
        dims: channel widths per level, outermost first, e.g.
            `[256, 256, 384, 384, 384, 512]` for Hourglass-104.
        modules: blocks per level, e.g. `[2, 2, 2, 2, 2, 4]`.
        block: "residual" (`Residual`) or "fire" (`FireModule`).
        upsample: "nearest" or "transposed".
    """

    def __init__(self, dims, modules, block="residual", upsample="nearest", **kwargs):
        super().__init__(**kwargs)
        if len(dims) != len(modules) or len(dims) < 2:
            raise ValueError(
                f"HourglassModule: `dims` ({dims}) and `modules` ({modules}) must have the "
                "same length, at least 2 (one per level plus the bottom)."
            )
        if block not in BLOCKS:
            raise ValueError(
                f"HourglassModule: `block` must be one of {list(BLOCKS)}, got {block!r}."
            )
        if upsample not in UPSAMPLING:
            raise ValueError(
                f"HourglassModule: `upsample` must be one of {list(UPSAMPLING)}, got {upsample!r}."
            )
        self.dims = list(dims)
        self.modules = list(modules)
        self.block = block
        self.upsample = upsample
        make = BLOCKS[block]
        curr_dim, next_dim = dims[0], dims[1]
        curr_mod = modules[0]
        self.up1 = [make(curr_dim, name=f"up1_{i}") for i in range(curr_mod)]
        self.low1 = [
            make(next_dim, strides=2 if i == 0 else 1, name=f"low1_{i}") for i in range(curr_mod)
        ]
        if len(dims) > 2:
            self.low2 = HourglassModule(dims[1:], modules[1:], block, upsample, name="low2")
        else:
            self.low2 = [make(next_dim, name=f"low2_{i}") for i in range(modules[1])]
        self.low3 = [
            make(curr_dim if i == curr_mod - 1 else next_dim, name=f"low3_{i}")
            for i in range(curr_mod)
        ]
        if upsample == "nearest":
            self.up2 = keras.layers.UpSampling2D(2, interpolation="nearest", name="up2")
        else:
            # TF "same" padding of a 4x4 stride-2 transposed convolution is PyTorch's
            # `padding=1`: output 2x the input, the same taps.
            self.up2 = keras.layers.Conv2DTranspose(
                curr_dim,
                4,
                strides=2,
                padding="same",
                kernel_initializer=torch_default_kernel_initializer(),
                name="up2",
            )

    @staticmethod
    def _run(blocks, x, training):
        if isinstance(blocks, list):
            for block in blocks:
                x = block(x, training=training)
            return x
        return blocks(x, training=training)

    @staticmethod
    def _build_blocks(blocks, shape):
        """Builds `blocks` from the input shape alone; returns their output shape."""
        for block in blocks if isinstance(blocks, list) else [blocks]:
            block.build(shape)
            shape = block.compute_output_shape(shape)
        return shape

    def build(self, input_shape):
        shape = tuple(input_shape)
        self._build_blocks(self.up1, shape)
        low = self._build_blocks(self.low1, shape)
        low = self._build_blocks(self.low2, low)
        low = self._build_blocks(self.low3, low)
        if self.upsample == "transposed":
            self.up2.build(low)

    def call(self, x, training=None, return_merges=False):
        up1 = self._run(self.up1, x, training)
        low = self._run(self.low1, x, training)
        merges = []
        if return_merges and not isinstance(self.low2, list):
            low, merges = self.low2(low, training=training, return_merges=True)
        else:
            low = self._run(self.low2, low, training)
        low = self._run(self.low3, low, training)
        merged = up1 + self.up2(low)
        if return_merges:
            return merged, [*merges, merged]
        return merged

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dims[0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            dims=self.dims, modules=self.modules, block=self.block, upsample=self.upsample
        )
        return config
