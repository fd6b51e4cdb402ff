"""CornerNet: Detecting Objects as Paired Keypoints, in TensorFlow 2 / Keras 3.

The package root loads neither TensorFlow nor Keras, so the command-line tools
parse their arguments and check their configs at once. The detector is in
`cornernet_tf.models`:

    from cornernet_tf.models import CornerNet, load_model

Importing `cornernet_tf.models` registers CornerNet's Keras classes, so
`keras.saving.load_model` reads this project's `.keras` files after it (as
keras-hub's files need `import keras_hub`). The package runs on the TensorFlow
backend of Keras only; `cornernet_tf.models` refuses another one at import.
"""

__version__ = "0.1.0"
