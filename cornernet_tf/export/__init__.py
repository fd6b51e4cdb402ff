"""Exporting CornerNet for serving: TF Serving SavedModels and TFLite/LiteRT files.

- `cornernet_tf.export.saved_model`: `export_saved_model` writes
  `<output>/<name>/<version>/` for TensorFlow Serving (two signatures: encoded
  image files of any size, and uint8 pixel batches).
- `cornernet_tf.export.tflite`: `export_tflite` writes fixed-size
  `.tflite` files (float32, float16, int8) with builtin ops only.

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
    QUANTIZATIONS,
    check_builtin_ops,
    convert_tflite,
    convert_tflite_variants,
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
    "INPUT_NAME",
    "QUANTIZATIONS",
    "SIGNATURE_IMAGES",
    "SIGNATURE_UINT8",
    "ServingModule",
    "check_builtin_ops",
    "convert_tflite",
    "convert_tflite_variants",
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
