"""`cornernet_tf.runtime`: letterboxing, host soft-NMS and `TFLiteDetector`.

The TFLite files are the session fixture `tflite_models` (conftest.py).
"""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import REPO, SIZE, random_image

from cornernet_tf.runtime import TFLiteDetector, host_soft_nms, letterbox


def test_runtime_does_not_import_the_converter():
    # A fresh interpreter: this test session has imported cornernet_tf.export already.
    code = (
        "import sys, cornernet_tf, cornernet_tf.runtime\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['cornernet_tf', 'export']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_letterbox_keeps_the_aspect_ratio():
    canvas, scale = letterbox(np.full((50, 100, 3), 200, np.uint8), (SIZE, SIZE))
    assert canvas.shape == (1, SIZE, SIZE, 3) and scale == pytest.approx(1.27)
    assert canvas[0, :63].min() == 200 and canvas[0, 64:].max() == 0  # 50 * 1.27 = 63.5 rows


def test_host_soft_nms_refuses_other_outputs():
    with pytest.raises(ValueError, match="must come from a CornerNet TFLite file"):
        host_soft_nms({"logits": np.zeros((1, 4), np.float32)})


def test_tflite_detector_refuses_a_missing_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        TFLiteDetector(tmp_path / "missing.tflite")


def test_tflite_detector_maps_boxes_to_any_image_size(tflite_models, export_model):
    image = random_image(15, 60, 100)  # letterboxed by 1.27 into 127x127
    for quantization in ("none", "int8"):
        detector = TFLiteDetector(tflite_models[quantization], test_config=export_model.test_config)
        result = tf.function(detector.detect)(tf.constant(image[None]))
        count = int(result["num_detections"][0])
        boxes = result["boxes"][0].numpy()
        assert count > 0 and np.all(boxes[count:] == -1)
        assert boxes[:count, 0::2].max() <= 100 and boxes[:count, 1::2].max() <= 60
        canvas, scale = letterbox(image, (SIZE, SIZE))
        raw = host_soft_nms(detector.run(canvas), export_model.test_config)
        np.testing.assert_allclose(
            boxes[:count],
            np.clip(raw["detection_boxes"][0, :count] / scale, 0, [100, 60, 100, 60]),
            rtol=1e-6,
        )
