"""Prediction heads (official `make_kp_layer`)."""

import keras

from cornernet_tf.layers.conv_bn import ConvBN, conv2d

# Focal-loss prior: sigmoid(-2.19) ~= 0.1 (official `tl_heats[-1].bias.fill_(-2.19)`).
HEATMAP_BIAS = -2.19


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerHead(keras.layers.Layer):
    """conv3x3 (with bias, no BN) → ReLU → conv1x1 to `out_dim` channels.

    CornerNet-Squeeze's `_pred_mod` is the same with a 1x1 first convolution
    (`kernel_size=1`).

    Args:
        hidden_dim: channels of the first convolution (the official `curr_dim`).
        out_dim: output channels (classes for heatmaps, 1 for embeddings, 2 for
            offsets).
        bias_value: initial bias of the 1x1 convolution (-2.19 for heatmaps).
        kernel_size: kernel of the first convolution (3, or 1 in CornerNet-Squeeze).
    """

    def __init__(self, hidden_dim, out_dim, bias_value=0.0, kernel_size=3, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.out_dim = out_dim
        self.bias_value = bias_value
        self.kernel_size = kernel_size
        self.conv = ConvBN(hidden_dim, kernel_size, use_bn=False, name="conv")
        self.out = conv2d(
            out_dim,
            1,
            use_bias=True,
            bias_initializer=keras.initializers.Constant(bias_value),
            name="out",
        )[0]

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.conv.build(shape)
        self.out.build(shape[:-1] + (self.hidden_dim,))

    def call(self, x, training=None):
        return self.out(self.conv(x, training=training))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.out_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(
            hidden_dim=self.hidden_dim,
            out_dim=self.out_dim,
            bias_value=self.bias_value,
            kernel_size=self.kernel_size,
        )
        return config
