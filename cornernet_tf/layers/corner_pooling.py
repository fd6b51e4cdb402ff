"""The corner pooling layer: `cornernet_tf.ops.corner_pool` as a Keras layer."""

import keras

from cornernet_tf.ops import corner_pool
from cornernet_tf.ops.corner_pool import DIRECTIONS


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
