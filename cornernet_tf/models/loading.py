"""Loading a trained CornerNet from a `.keras` file, with errors that name the fix.

The exporters, `scripts/predict.py`, `scripts/evaluate.py` and the benchmarks
load models through `load_model` (also `cornernet_tf.load_model`), so a missing
file, a weights-only file or another kind of model fails the same way
everywhere.
"""

import os
from pathlib import Path

import keras

# Importing the model module registers CornerNet's layers for deserialisation.
from cornernet_tf.models.cornernet import CornerNet

__all__ = ["load_model"]


def load_model(path: str | os.PathLike) -> keras.Model:
    """Loads a trained CornerNet from a `.keras` file, checking the path first.

    Args:
        path: a `.keras` file written by `model.save` / `scripts/train.py`.

    Returns:
        The `CornerNet`, uncompiled.

    Raises:
        ValueError: the file is missing, not a `.keras` file, or holds
            another kind of model.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"model file {str(path)!r} does not exist; pass the .keras file saved by "
            "scripts/train.py (or `model.save('model.keras')`)."
        )
    if path.suffix != ".keras":
        raise ValueError(
            f"model file {str(path)!r} is not a .keras file; save the model with "
            "`model.save('model.keras')` (checkpoints and weight files cannot be exported)."
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
