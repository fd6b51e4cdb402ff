"""Argument checks shared by the SavedModel and TFLite exporters."""

import re

import keras

# A served model name or file prefix: no path separators, no hidden names.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_model(model, caller: str) -> None:
    """Raises unless `model` is a built CornerNet.

    Args:
        model: the object to export.
        caller: the public function's name, for the error message.

    Raises:
        TypeError: not a keras.Model with `detect`.
        ValueError: the model has no weights yet, or has attention heads.
    """
    if not isinstance(model, keras.Model) or not hasattr(model, "detect"):
        raise TypeError(
            f"{caller}: `model` must be a CornerNet (a keras.Model with `detect`), got "
            f"{type(model).__name__}."
        )
    if not model.variables:
        raise ValueError(
            f"{caller}: `model` has no weights yet; call it once on an image batch or load a "
            "trained model before exporting."
        )
    if getattr(model, "attention", False):
        # Its crops are chosen on the host (cornernet_tf.inference.saccade).
        raise ValueError(
            f"{caller}: CornerNet-Saccade (a model with attention heads) picks its crops on the "
            "host, which an exported graph cannot do; run it with `predict`/`detect` in Python."
        )


def check_name(name, caller: str) -> None:
    """Raises unless `name` is a safe model name or file prefix.

    Args:
        name: the served model name or `.tflite` file prefix.
        caller: the public function's name, for the error message.

    Raises:
        ValueError: not letters, digits, '_', '.' or '-', or starting with '.' or '-'.
    """
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"{caller}: `name` must be letters, digits, '_', '.' or '-' (not starting "
            f"with '.' or '-'), got {name!r}."
        )
