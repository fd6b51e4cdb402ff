"""CornerNet: Detecting Objects as Paired Keypoints, in TensorFlow 2 / Keras 3."""

from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.models.loading import load_model

__version__ = "0.1.0"

__all__ = ["CornerNet", "__version__", "load_model"]
