"""Argument checks shared by the SavedModel and TFLite exporters."""

import re
import warnings

import keras

from cornernet_tf.spec.presets import input_size_problem

# A served model name or file prefix: no path separators, no hidden names.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_model(model, caller: str, attention: bool = False) -> None:
    """Raises unless `model` is a built CornerNet.

    Args:
        model: the object to export.
        caller: the public function's name, for the error message.
        attention: whether the format carries CornerNet-Saccade's procedure
            (the SavedModel does; the fixed-size TFLite and ONNX graphs do not).

    Raises:
        TypeError: not a keras.Model with `detect`.
        ValueError: the model has no weights yet, or has attention heads the
            format cannot carry.
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
    if getattr(model, "attention", False) and not attention:
        # The fixed-size graph of one image would leave out the crops.
        raise ValueError(
            f"{caller}: CornerNet-Saccade (a model with attention heads) runs crops chosen from "
            "its attention maps, which this fixed-size graph cannot carry; export a SavedModel "
            "(--format saved_model), or its canvas network for TFLite with "
            "cornernet_tf.export.saccade_tflite.export_saccade_tflite."
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


def check_input_fits(model, input_size, caller: str) -> None:
    """Raises unless each side of a fixed input size fits the model's hourglasses.

    A side that does not fit would be padded to the next test canvas inside
    the graph (up to twice the pixels for nothing), so it is refused with the
    nearest sizes that fit (`cornernet_tf.spec.presets.input_size_problem`).

    Args:
        model: a built CornerNet.
        input_size: (height, width), already checked by `check_input_size`.
        caller: the public function's name, for the error message.

    Raises:
        ValueError: a side does not fit, naming the nearest valid sides.
    """
    for axis, side in zip(("height", "width"), input_size, strict=True):
        problem = input_size_problem(int(side), model.output_stride, len(model.dims) - 1)
        if problem is not None:
            raise ValueError(f"{caller}: input {axis} {problem}.")


def class_names_or_numbers(model) -> list[str]:
    """`model.class_names`, or `["0", "1", ...]` when the model has none."""
    names = getattr(model, "class_names", None)
    return list(names) if names else [str(i) for i in range(model.num_classes)]


def check_labels(model, caller: str) -> list[str]:
    """The class names of a model for a label file; numbered names, with a warning, if none.

    Args:
        model: a built CornerNet.
        caller: the public function's name, for the warning.

    Returns:
        `model.class_names`, or `["0", "1", ...]` when the model has none.
    """
    if model.class_names:
        return class_names_or_numbers(model)
    warnings.warn(
        f"{caller}: the model has no class names; the label file numbers the "
        f"{model.num_classes} classes 0-{model.num_classes - 1}. Build or train the model with "
        "`class_names` (the dataset's category names) to name them.",
        UserWarning,
        stacklevel=3,
    )
    return class_names_or_numbers(model)
