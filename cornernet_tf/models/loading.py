"""Loading a trained CornerNet from a `.keras` file, with errors that name the fix.

The command-line tools, the exporters and the benchmarks load models through
`load_model`, so a missing file, a weights-only file or another kind of model
fails the same way everywhere. `load_model(path, precision="bfloat16")` (and `with_precision`)
give the same network computing in bfloat16, for CPUs with AVX512-BF16 or AMX.
"""

import os
import zipfile
from pathlib import Path

import keras

# Importing the model module registers CornerNet's layers for deserialisation.
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.spec.precision import check_precision
from cornernet_tf.utils.fs import not_a_file

__all__ = ["load_model", "with_precision"]


def load_model(path: str | os.PathLike, precision: str = "float32") -> keras.Model:
    """Loads a trained CornerNet from a `.keras` file, checking the path first.

    Args:
        path: a `.keras` file written by `model.save` / `scripts/train.py`.
        precision: "float32", or "bfloat16" for the network computing in
            bfloat16 (see `with_precision`).

    Returns:
        The `CornerNet`, uncompiled.

    Raises:
        ValueError: the file is missing, not a regular file, not a `.keras`
            file, truncated or corrupt, or holds another kind of model; or
            `precision` is not supported.
    """
    check_precision(precision)
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
    return with_precision(model, precision)


def with_precision(model: CornerNet, precision: str) -> CornerNet:
    """The same CornerNet computing in `precision`, its weights copied.

    The network is rebuilt from its config under the Keras dtype policy of
    `precision` ("mixed_bfloat16" for "bfloat16"): every layer takes its
    policy when it is created (some in `build`), so a built model cannot be
    switched in place.
    Variables stay float32 (batch-norm statistics included), the heads are
    cast back to float32, and decoding and soft-NMS run in float32.

    Args:
        model: a built CornerNet.
        precision: "float32" or "bfloat16".

    Returns:
        `model` itself when it already computes in `precision`, else a new
        CornerNet.

    Raises:
        ValueError: `precision` is not supported.
    """
    policy = check_precision(precision)
    if model.dtype_policy.name == policy:
        return model
    config = model.get_config() | {"dtype": policy}
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        twin = type(model).from_config(config)
        twin.build()
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin
