"""Loading a trained CornerNet from a `.keras` file, with errors that name the fix.

The exporters, `scripts/predict.py`, `scripts/evaluate.py` and the benchmarks
load models through `load_model` (also `cornernet_tf.load_model`), so a missing
file, a weights-only file or another kind of model fails the same way
everywhere.
"""

import os
import zipfile
from pathlib import Path

import keras

# Importing the model module registers CornerNet's layers for deserialisation.
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.utils.fs import not_a_file

__all__ = ["load_model"]


def load_model(path: str | os.PathLike) -> keras.Model:
    """Loads a trained CornerNet from a `.keras` file, checking the path first.

    Args:
        path: a `.keras` file written by `model.save` / `scripts/train.py`.

    Returns:
        The `CornerNet`, uncompiled.

    Raises:
        ValueError: the file is missing, not a regular file, not a `.keras`
            file, truncated or corrupt, or holds another kind of model.
    """
    path = Path(path)
    reason = not_a_file(path)
    if reason is not None:
        raise ValueError(
            f"model file {str(path)!r} {reason}; pass the .keras file saved by "
            "scripts/train.py (or `model.save('model.keras')`)."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"model file {str(path)!r} is not a .keras file; save the model with "
            "`model.save('model.keras')` (checkpoints and weight files cannot be exported)."
        )
    if not zipfile.is_zipfile(path):  # Keras would call this "File not found"
        raise ValueError(
            f"model file {str(path)!r} is truncated or corrupt (a .keras file is a zip archive, "
            "and this one has no readable directory); copy or save it again."
        )
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as error:  # noqa: BLE001 - any loader failure means a bad file
        raise ValueError(
            f"model file {str(path)!r} could not be loaded ({type(error).__name__}: {error})."
        ) from error
    if not isinstance(model, CornerNet):
        raise ValueError(
            f"model file {str(path)!r} holds a {type(model).__name__}, not a CornerNet."
        )
    return model
