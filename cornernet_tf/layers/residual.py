"""The hourglass residual block (official `residual`)."""

import keras

from cornernet_tf.layers.conv_bn import ConvBN


@keras.saving.register_keras_serializable(package="cornernet_tf")
class Residual(keras.layers.Layer):
    """conv3x3(stride)-BN-ReLU-conv3x3-BN plus a skip, ReLU after the add.

    The skip is conv1x1(stride)-BN when the stride or the width changes, the
    identity otherwise (princeton-vl/CornerNet `models/py_utils/utils.py`).

    Args:
        filters: output channels.
        strides: 1 or 2 (the hourglass downsamples with stride-2 residuals).
    """

    def __init__(self, filters, strides=1, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.conv1 = ConvBN(filters, 3, strides=strides, name="conv1")
        self.conv2 = ConvBN(filters, 3, use_relu=False, name="conv2")
        self.skip = None

    def build(self, input_shape):
        if self.strides != 1 or input_shape[-1] != self.filters:
            self.skip = ConvBN(self.filters, 1, strides=self.strides, use_relu=False, name="skip")
            self.skip.build(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build(self.conv1.compute_output_shape(input_shape))

    def call(self, x, training=None):
        y = self.conv2(self.conv1(x, training=training), training=training)
        skip = x if self.skip is None else self.skip(x, training=training)
        return keras.ops.relu(y + skip)

    def compute_output_shape(self, input_shape):
        return self.conv1.compute_output_shape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, strides=self.strides)
        return config
