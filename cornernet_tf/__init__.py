"""CornerNet: Detecting Objects as Paired Keypoints, in TensorFlow 2 / Keras 3.

`import cornernet_tf` is cheap: TensorFlow and Keras load on first use of
`CornerNet` or `load_model`, so the command-line tools answer `--help` at once.
`keras.saving.load_model("model.keras")` still finds the CornerNet classes after
`import cornernet_tf`: they are registered as soon as Keras is imported (at once
if it already is).

The package runs on the TensorFlow backend of Keras only (its layers use
TensorFlow ops directly); another `KERAS_BACKEND` fails here, at import.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.1.0"

__all__ = ["CornerNet", "__version__", "load_model"]

_BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
if _BACKEND != "tensorflow":
    raise ImportError(
        f"cornernet_tf needs the TensorFlow backend of Keras, but KERAS_BACKEND={_BACKEND!r}; "
        "unset it or set KERAS_BACKEND=tensorflow."
    )

_LAZY = {
    "CornerNet": "cornernet_tf.models.cornernet",
    "load_model": "cornernet_tf.models.loading",
}


_MODEL_MODULE = "cornernet_tf.models.cornernet"  # registers the Keras classes


class _RegisterWithKeras(importlib.abc.MetaPathFinder):
    """Imports the model module right after `keras` itself is imported.

    Keras resolves the classes of a `.keras` file through its registry only,
    so they must be registered before `keras.saving.load_model` runs, but
    importing them here eagerly would load TensorFlow on every
    `import cornernet_tf`.
    """

    def find_spec(self, name, path=None, target=None):
        if name != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            importlib.import_module(_MODEL_MODULE)

        spec.loader.exec_module = exec_then_register
        return spec


if "keras" in sys.modules:
    importlib.import_module(_MODEL_MODULE)
elif not any(isinstance(finder, _RegisterWithKeras) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterWithKeras())


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'cornernet_tf' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_LAZY])
