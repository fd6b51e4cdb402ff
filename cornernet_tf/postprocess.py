"""Deprecated: the test-time pieces moved to `cornernet_tf.inference`.

`cornernet_tf.postprocess.<name>` keeps working for one release with a
`DeprecationWarning` naming the new place.
"""

import importlib
import warnings

_MOVED = {
    "test_geometry": "cornernet_tf.inference.geometry",
    "pad_for_test": "cornernet_tf.inference.geometry",
    "prepare_test_image": "cornernet_tf.inference.geometry",
    "rescale_detections": "cornernet_tf.inference.geometry",
    "mirror_boxes": "cornernet_tf.inference.geometry",
    "INPUT_SIZE_MASK": "cornernet_tf.inference.geometry",
    "decode_outputs": "cornernet_tf.inference.decode",
    "OUTPUT_KEYS": "cornernet_tf.inference.decode",
    "soft_nms": "cornernet_tf.inference.soft_nms",
}


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module 'cornernet_tf.postprocess' has no attribute {name!r}")
    module = _MOVED[name]
    warnings.warn(
        f"cornernet_tf.postprocess.{name} moved to {module}.{name}; the old name goes away in "
        "the next release.",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(module), name)
