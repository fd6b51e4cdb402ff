"""The fire module of CornerNet-Squeeze (official `fire_module`)."""

import keras

from cornernet_tf.layers.conv_bn import batch_norm, conv2d


def depthwise_kernel_initializer(channels):
    """PyTorch's default init of a depthwise conv, U(±1/sqrt(kh·kw)).

    PyTorch's fan-in of a grouped convolution counts one group's input channels
    (here one); Keras' `VarianceScaling` counts every input channel of a
    depthwise kernel, so the scale is multiplied by `channels` to match.
    """
    return keras.initializers.VarianceScaling(channels / 3.0, mode="fan_in", distribution="uniform")


@keras.saving.register_keras_serializable(package="cornernet_tf")
class FireModule(keras.layers.Layer):
    """1x1 squeeze conv-BN → [1x1 expand ‖ depthwise 3x3 expand] → BN (+ skip) → ReLU.

    princeton-vl/CornerNet-Lite `core/models/CornerNet_Squeeze.py`
    `fire_module` with its squeeze ratio 2: the squeeze convolution has
    `filters // 2` channels and no ReLU after its BatchNorm; the two expand
    branches have `filters // 2` channels each, both with the module's stride
    (the 3x3 one depthwise, `groups = filters // 2`); their concatenation goes
    through BatchNorm, plus the input when the stride is 1 and the width does
    not change, then ReLU. No convolution has a bias.

    Args:
        filters: output channels (even).
        strides: 1 or 2 (the hourglass downsamples with stride-2 fire modules).
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        if filters % 2:
            raise ValueError(f"FireModule: `filters` must be even, got {filters}.")
        self.filters = filters
        self.strides = strides
        half = filters // 2
        self.conv1 = conv2d(half, 1, name="conv1")[0]
        self.bn1 = batch_norm("bn1")
        *before, self.conv_1x1 = conv2d(half, 1, strides=strides, name="conv_1x1")
        self.subsample_1x1 = before[0] if before else None  # see `conv2d`
        self.pad_3x3 = keras.layers.ZeroPadding2D(1, name="pad_3x3") if strides != 1 else None
        self.conv_3x3 = keras.layers.DepthwiseConv2D(
            3,
            strides=strides,
            padding="same" if strides == 1 else "valid",
            use_bias=False,
            depthwise_initializer=depthwise_kernel_initializer(half),
            name="conv_3x3",
        )
        self.bn2 = batch_norm("bn2")
        self.skip = False

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.skip = self.strides == 1 and shape[-1] == self.filters
        half = shape[:-1] + (self.filters // 2,)
        self.conv1.build(shape)
        self.bn1.build(half)
        if self.subsample_1x1 is not None:
            self.subsample_1x1.build(half)
        self.conv_1x1.build(
            half if self.subsample_1x1 is None else self.subsample_1x1.compute_output_shape(half)
        )
        if self.pad_3x3 is not None:
            self.pad_3x3.build(half)
            half = self.pad_3x3.compute_output_shape(half)
        self.conv_3x3.build(half)
        self.bn2.build(shape[:-1] + (self.filters,))

    def call(self, x, training=None):
        squeezed = self.bn1(self.conv1(x), training=training)
        depthwise = squeezed if self.pad_3x3 is None else self.pad_3x3(squeezed)
        pointwise = squeezed if self.subsample_1x1 is None else self.subsample_1x1(squeezed)
        expanded = keras.ops.concatenate(
            [self.conv_1x1(pointwise), self.conv_3x3(depthwise)], axis=-1
        )
        y = self.bn2(expanded, training=training)
        if self.skip:
            y = y + x
        return keras.ops.relu(y)

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape

        def out(n):  # 1x1 without padding and 3x3 with padding 1 agree
            return None if n is None else (n - 1) // self.strides + 1

        return (b, out(h), out(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config
