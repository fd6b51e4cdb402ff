"""Corner pooling as Keras layers: the `CornerPool` layer and the prediction module.

`cornernet_tf.ops.corner_pool` is the operation (a directional cumulative max);
`CornerPool` wraps it as a layer, and `CornerPoolModule` is the official corner
pooling module built on it (paper Fig. 7).
"""

import keras

from cornernet_tf.layers.conv_bn import ConvBN
from cornernet_tf.ops import corner_pool
from cornernet_tf.ops.corner_pool import DIRECTIONS

_CORNERS = {"tl": ("top", "left"), "br": ("bottom", "right")}


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerPool(keras.layers.Layer):
    """Directional corner pooling (a cumulative max along H or W), NHWC.

    Wraps `cornernet_tf.ops.corner_pool`, which follows princeton-vl/CornerNet
    `models/py_utils/_cpools` (`TopPool`, `LeftPool`, `BottomPool`,
    `RightPool`); see that function for the formulas and the gradient's tie
    rule. No weights; the output has the input's shape and dtype.

    Args:
        direction: one of "top", "left", "bottom", "right".
        **kwargs: passed to `keras.layers.Layer`.
    """

    def __init__(self, direction, **kwargs):
        super().__init__(**kwargs)
        if direction not in DIRECTIONS:
            raise ValueError(
                f"CornerPool: `direction` must be one of {list(DIRECTIONS)}, got {direction!r}."
            )
        self.direction = direction

    def call(self, inputs):
        return corner_pool(inputs, self.direction)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(direction=self.direction)
        return config


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerPoolModule(keras.layers.Layer):
    """Two pooled branches summed, plus a 1x1 skip (paper Fig. 7).

    princeton-vl/CornerNet `models/py_utils/kp_utils.py` `pool`: each branch is
    conv3x3(`pool_dim`)-BN-ReLU followed by one directional corner pool (tl:
    top and left, br: bottom and right); the sum goes through conv3x3 (no
    bias)-BN, is added to conv1x1 (no bias)-BN of the input, then ReLU and a
    conv3x3-BN-ReLU.

    Args:
        corner: "tl" or "br".
        dim: channels in and out (the official `cnv_dim`, 256).
        pool_dim: channels of the pooled branches (128 officially).
    """

    def __init__(self, corner, dim, pool_dim=128, **kwargs):
        super().__init__(**kwargs)
        if corner not in _CORNERS:
            raise ValueError(f"CornerPoolModule: `corner` must be 'tl' or 'br', got {corner!r}.")
        self.corner = corner
        self.dim = dim
        self.pool_dim = pool_dim
        self.p1_conv1 = ConvBN(pool_dim, 3, name="p1_conv1")
        self.p2_conv1 = ConvBN(pool_dim, 3, name="p2_conv1")
        self.p_conv1 = ConvBN(dim, 3, use_relu=False, name="p_conv1")
        self.conv1 = ConvBN(dim, 1, use_relu=False, name="conv1")
        self.conv2 = ConvBN(dim, 3, name="conv2")

    def build(self, input_shape):
        shape = tuple(input_shape)
        self.p1_conv1.build(shape)
        self.p2_conv1.build(shape)
        self.p_conv1.build(shape[:-1] + (self.pool_dim,))  # the pooled branches' sum
        self.conv1.build(shape)
        self.conv2.build(shape[:-1] + (self.dim,))

    def call(self, x, training=None):
        first, second = _CORNERS[self.corner]
        pool1 = corner_pool(self.p1_conv1(x, training=training), first)
        pool2 = corner_pool(self.p2_conv1(x, training=training), second)
        p_bn1 = self.p_conv1(pool1 + pool2, training=training)
        bn1 = self.conv1(x, training=training)
        return self.conv2(keras.ops.relu(p_bn1 + bn1), training=training)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.dim,)

    def get_config(self):
        config = super().get_config()
        config.update(corner=self.corner, dim=self.dim, pool_dim=self.pool_dim)
        return config
