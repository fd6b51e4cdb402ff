"""The input and output names of an exported CornerNet, and its input size bound.

SavedModel signatures (`cornernet_tf.export.saved_model`), TFLite files
(`cornernet_tf.export.tflite`) and the TFLite runtime (`cornernet_tf.runtime`)
share this interface. It lives apart from all three so that the runtime reads
the files without importing the converter, and the converter does not import
the runtime's names back through the export package.
"""

from collections.abc import Sequence

import numpy as np

INPUT_NAME = "images"
# The SavedModel's signatures: encoded image files of any size, and uint8 pixel batches.
SIGNATURE_IMAGES = "serving_default"
SIGNATURE_UINT8 = "detect_uint8"
# The SavedModel's assets: the class names (a JSON list) and the model's config.
CLASSES_ASSET = "classes.json"
CONFIG_ASSET = "model_config.json"
# `CornerNet.detect` keys → exported output names (TF object-detection names).
DETECTION_OUTPUTS = {
    "boxes": "detection_boxes",
    "confidence": "detection_scores",
    "classes": "detection_classes",
    "num_detections": "num_detections",
}
# The outputs of a TFLite detector file (the object-detector contract of the
# TFLite Task Library and MediaPipe Tasks), in their documented order, with the
# tensor metadata name by which those readers find each one.
DETECTOR_OUTPUTS = {
    "detection_locations": "location",
    "detection_classes": "category",
    "detection_scores": "score",
    "num_detections": "number of detections",
}
# Largest image side accepted by default on every detection path: the SavedModel
# signatures (read from the file header before decoding), `CornerNet.predict`,
# `predict_images`, `cornernet-predict` and COCO evaluation; also the bound on a
# TFLite file's fixed input size. Detection memory grows with the pixels: at
# 2048 a side, Hourglass-104 peaks near 3 GB per image (docs/input.md).
DEFAULT_MAX_IMAGE_SIDE = 2048


def check_input_size(input_size, caller: str) -> tuple[int, int]:
    """Checks a fixed TFLite input size.

    Args:
        input_size: (height, width), or one int for a square input.
        caller: the public function's name, for the error message.

    Returns:
        `(height, width)` as Python ints.

    Raises:
        ValueError: not two integers in [1, `DEFAULT_MAX_IMAGE_SIDE`].
    """
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (
        not isinstance(input_size, Sequence)
        or len(input_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in input_size)
        or not all(1 <= v <= DEFAULT_MAX_IMAGE_SIDE for v in input_size)
    ):
        raise ValueError(
            f"{caller}: `input_size` must be (height, width), positive integers up to "
            f"{DEFAULT_MAX_IMAGE_SIDE}, got {input_size!r}."
        )
    return int(input_size[0]), int(input_size[1])


def detection_outputs(detections: dict) -> dict:
    """Names detections (`CornerNet.detect` keys) with the exported output names.

    Args:
        detections: `boxes`, `confidence`, `classes` and `num_detections`.

    Returns:
        The same values as `detection_boxes`, `detection_scores`,
        `detection_classes` and `num_detections`.
    """
    return {name: detections[key] for key, name in DETECTION_OUTPUTS.items()}
