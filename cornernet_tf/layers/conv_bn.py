"""The official `convolution` block: conv with PyTorch-style padding, BN, ReLU."""

import keras
import tensorflow as tf

# PyTorch's BatchNorm2d defaults (eps 1e-5, running-stat momentum 0.1): official
# weights only reproduce the official outputs with the same epsilon.
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9


def torch_default_kernel_initializer():
    """PyTorch's default conv init (kaiming_uniform, a=sqrt(5)): U(±1/sqrt(fan_in))."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, mode="fan_in", distribution="uniform")


def batch_norm(name=None):
    return BatchNorm(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name)


@keras.saving.register_keras_serializable(package="cornernet_tf")
class BatchNorm(keras.layers.BatchNormalization):
    """Keras BatchNormalization whose moving variance moves as PyTorch's `BatchNorm2d`'s.

    Both normalise a training batch with its biased variance. PyTorch moves the
    running variance toward the unbiased one (Bessel's correction, times
    n / (n - 1) for the n values of a channel in the batch); Keras' layer moves
    it toward the biased one. The two differ most at the hourglasses' deepest
    level (4x4 at 511x511: n = 32 at batch 2, a 3% smaller variance). Training
    here follows PyTorch; inference and any other case (a mask, a frozen or
    synchronised layer, inputs other than [N, H, W, C] of 16 or 32 bits) are
    Keras' own.

    A training batch goes through TensorFlow's fused kernel
    (`FusedBatchNormV3`: oneDNN's on CPUs, cuDNN's on GPUs), which returns
    the Bessel-corrected batch variance; Keras' layer builds the same
    arithmetic from about twenty small operations forward and backward, which
    makes a train step markedly slower (docs/performance.md, "Why it is built
    this way").
    """

    def call(self, inputs, training=None, mask=None):
        keras_own = mask is not None or self.synchronized or self.renorm
        fused = (
            len(inputs.shape) == 4
            and self.axis in (-1, 3)
            and inputs.dtype in (tf.float32, tf.float16, tf.bfloat16)
        )
        if keras_own or not fused or not (training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        # The fused kernel's documented Python entry (besides tf.raw_ops); it
        # returns the batch mean and the Bessel-corrected batch variance.
        outputs, mean, unbiased = tf.compat.v1.nn.fused_batch_norm(
            inputs,
            self.gamma if self.scale else tf.ones([channels]),
            self.beta if self.center else tf.zeros([channels]),
            epsilon=self.epsilon,
            data_format="NHWC",
            is_training=True,
        )
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(self.moving_variance * m + unbiased * (1.0 - m))
        return keras.ops.cast(outputs, self.compute_dtype)


def conv2d(filters, kernel_size, strides=1, use_bias=False, bias_initializer="zeros", name=None):
    """A Conv2D whose padding is PyTorch's symmetric `kernel_size // 2`.

    For stride 1 and an odd kernel, TF "same" padding is symmetric and identical
    to PyTorch's; for stride 2 it is not (TF pads one more row at the bottom on
    even inputs), so stride-2 convolutions get an explicit `ZeroPadding2D`, and
    strided 1x1 convolutions subsample first (see below).

    Returns:
        `[conv]`, or `[before, conv]` where `before` (the padding or the
        subsampling) runs first; only `conv` has weights.
    """
    layers = []
    pad = kernel_size // 2
    if strides == 1:
        padding = "same" if pad else "valid"
    elif pad == 0:
        # A strided 1x1 convolution reads every `strides`-th pixel: take those
        # (a 1x1 max-pool is a copy), then convolve at stride 1, which gives the
        # same outputs. TensorFlow 2.21's oneDNN kernel for the filter gradient
        # of a strided 1x1 convolution writes past its scratch buffer at batch 1
        # on AVX-512 CPUs (the process aborts: "free(): invalid size"; seen
        # with 8 -> 16 channels on 32x32 inputs); the unit-stride kernel does not.
        layers.append(
            keras.layers.MaxPooling2D(
                1, strides, name=None if name is None else name + "_subsample"
            )
        )
        padding, strides = "valid", 1
    else:
        layers.append(keras.layers.ZeroPadding2D(pad, name=None if name is None else name + "_pad"))
        padding = "valid"
    layers.append(
        keras.layers.Conv2D(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            use_bias=use_bias,
            kernel_initializer=torch_default_kernel_initializer(),
            bias_initializer=bias_initializer,
            name=name,
        )
    )
    return layers


@keras.saving.register_keras_serializable(package="cornernet_tf")
class ConvBN(keras.layers.Layer):
    """Conv2D → BatchNorm (optional) → ReLU (optional), PyTorch padding.

    With the defaults this is the official `convolution(k, inp, out)` module of
    princeton-vl/CornerNet `models/py_utils/utils.py`: the convolution has a
    bias only when there is no BatchNorm.

    Args:
        filters: output channels.
        kernel_size: odd square kernel size.
        strides: 1 or 2.
        use_bn: follow the convolution with BatchNorm (epsilon 1e-5).
        use_relu: end with a ReLU.
    """

    def __init__(self, filters, kernel_size=3, strides=1, use_bn=True, use_relu=True, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.kernel_size = kernel_size
        self.strides = strides
        self.use_bn = use_bn
        self.use_relu = use_relu
        conv_layers = conv2d(filters, kernel_size, strides, use_bias=not use_bn, name="conv")
        # The layer `conv2d` puts before the convolution (padding, or the
        # subsampling of a strided 1x1), or None.
        self.pad = conv_layers[0] if len(conv_layers) == 2 else None
        self.conv = conv_layers[-1]
        self.bn = batch_norm(name="bn") if use_bn else None

    def build(self, input_shape):
        shape = input_shape
        if self.pad is not None:
            self.pad.build(shape)
            shape = self.pad.compute_output_shape(shape)
        self.conv.build(shape)
        if self.bn is not None:
            self.bn.build(self.conv.compute_output_shape(shape))

    def call(self, x, training=None):
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x, training=training)
        if self.use_relu:
            x = keras.ops.relu(x)
        return x

    def compute_output_shape(self, input_shape):
        b, h, w, _ = input_shape
        pad = self.kernel_size // 2

        def out(n):
            return None if n is None else (n + 2 * pad - self.kernel_size) // self.strides + 1

        return (b, out(h), out(w), self.filters)

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            use_bn=self.use_bn,
            use_relu=self.use_relu,
        )
        return config
