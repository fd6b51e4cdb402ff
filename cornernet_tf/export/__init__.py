"""Exporting CornerNet for serving: TF Serving SavedModels and TFLite/LiteRT files.

- `cornernet_tf.export.saved_model`: `export_saved_model` writes
  `<output>/<name>/<version>/` for TensorFlow Serving (two signatures: encoded
  image files of any size, and uint8 pixel batches).
- `cornernet_tf.export.tflite`: `export_tflite` writes fixed-size
  `.tflite` files (float32, float16, int8) with builtin ops only: detector
  files with metadata for the TFLite Task Library and MediaPipe Tasks, or
  debug files with the raw heads.

Loading a trained model is `cornernet_tf.models.load_model`; running a `.tflite` file
is `cornernet_tf.runtime.TFLiteDetector`.
"""

from cornernet_tf.export.saved_model import (
    CLASSES_ASSET,
    CONFIG_ASSET,
    DEFAULT_MAX_IMAGE_SIDE,
    DETECTION_OUTPUTS,
    INPUT_NAME,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    ServingModule,
    export_saved_model,
    next_version,
    serving_functions,
)
from cornernet_tf.export.tflite import (
    DETECTOR_OUTPUTS,
    INPUT_TYPES,
    QUANTIZATIONS,
    check_builtin_ops,
    convert_detector_variants,
    convert_tflite,
    convert_tflite_variants,
    detector_function,
    export_tflite,
    representative_images,
    tflite_classes_file_name,
    tflite_file_name,
    tflite_function,
    tflite_ops,
)

__all__ = [
    "CLASSES_ASSET",
    "CONFIG_ASSET",
    "DEFAULT_MAX_IMAGE_SIDE",
    "DETECTION_OUTPUTS",
    "DETECTOR_OUTPUTS",
    "INPUT_NAME",
    "INPUT_TYPES",
    "QUANTIZATIONS",
    "SIGNATURE_IMAGES",
    "SIGNATURE_UINT8",
    "ServingModule",
    "check_builtin_ops",
    "convert_detector_variants",
    "convert_tflite",
    "convert_tflite_variants",
    "detector_function",
    "export_saved_model",
    "export_tflite",
    "next_version",
    "representative_images",
    "serving_functions",
    "tflite_classes_file_name",
    "tflite_file_name",
    "tflite_function",
    "tflite_ops",
]
