"""The CornerNet detector and loading it from `.keras` files.

Importing this package imports Keras and registers every CornerNet class for
`keras.saving.load_model`. The network uses TensorFlow ops directly, so Keras
must run on its TensorFlow backend; another one is refused here, once, before
Keras loads it.
"""

import os

_BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if _BACKEND == "tensorflow":
    import keras

    _BACKEND = keras.backend.backend()  # ~/.keras/keras.json can name another
if _BACKEND != "tensorflow":
    raise ImportError(
        f"cornernet_tf needs the TensorFlow backend of Keras, but Keras is set to {_BACKEND!r}; "
        "unset KERAS_BACKEND (or set it to tensorflow) and check ~/.keras/keras.json."
    )

from cornernet_tf.models.cornernet import CornerNet  # noqa: E402
from cornernet_tf.models.loading import load_model  # noqa: E402

__all__ = ["CornerNet", "load_model"]
