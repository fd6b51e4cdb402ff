"""`cornernet_tf.runtime`: letterboxing, host soft-NMS and `TFLiteDetector`.

The TFLite files are the session fixture `tflite_models` (conftest.py).
"""

import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import REPO, SIZE, random_image

from cornernet_tf.inference.image_input import letterbox
from cornernet_tf.runtime import TFLiteDetector, host_soft_nms, soft_nms_numpy


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


def test_tflite_detector_maps_canvas_boxes_to_image_pixels(tflite_models):
    """Hand-derived: a 60x100 image letterboxed into 127x127 is scaled by 127 / 100 = 1.27."""
    detector = TFLiteDetector(tflite_models["none"])
    canvases = []

    def run(canvas):  # interpreter outputs in canvas pixels, as a file with soft-NMS gives
        canvases.append(canvas)
        return {
            "detection_boxes": np.array(
                [
                    [
                        [12.7, 25.4, 63.5, 50.8],  # inside the image
                        [-6.35, 0.0, 139.7, 127.0],  # beyond every border: clipped
                        [-1.0, -1.0, -1.0, -1.0],  # padding
                    ]
                ],
                np.float32,
            ),
            "detection_scores": np.array([[0.9, 0.5, -1.0]], np.float32),
            "detection_classes": np.array([[2, 0, -1]], np.int32),
            "num_detections": np.array([2], np.int32),
        }

    detector.run = run
    result = detector.detect_image(np.zeros((60, 100, 3), np.uint8))
    assert canvases[0].shape == (1, SIZE, SIZE, 3)
    np.testing.assert_allclose(
        result["boxes"],
        [[[10.0, 20.0, 50.0, 40.0], [0.0, 0.0, 100.0, 60.0], [-1.0, -1.0, -1.0, -1.0]]],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(result["confidence"], np.float32([[0.9, 0.5, -1.0]]))
    np.testing.assert_array_equal(result["classes"], [[2, 0, -1]])
    np.testing.assert_array_equal(result["num_detections"], [2])
    assert result["boxes"].dtype == np.float32 and result["classes"].dtype == np.int32


def test_tflite_detector_maps_boxes_to_any_image_size(tflite_models, export_model):
    image = random_image(15, 60, 100)  # letterboxed by 1.27 into 127x127
    for quantization in ("none", "int8"):
        detector = TFLiteDetector(tflite_models[quantization], test_config=export_model.test_config)
        result = tf.function(detector.detect)(tf.constant(image[None]))
        count = int(result["num_detections"][0])
        boxes = result["boxes"][0].numpy()
        assert count > 0 and np.all(boxes[count:] == -1)
        assert boxes[:count, 0::2].max() <= 100 and boxes[:count, 1::2].max() <= 60
        # `detect` (a tf.py_function inside tf.function) returns `detect_image`'s values.
        direct = detector.detect_image(image)
        for key, value in direct.items():
            np.testing.assert_array_equal(result[key].numpy(), value, err_msg=key)


def test_numpy_soft_nms_edge_cases():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    nothing = soft_nms_numpy(boxes, np.array([-1.0, np.nan, -1.0]), np.zeros(3), max_detections=4)
    assert int(nothing["num_detections"][0]) == 0
    assert np.all(nothing["detection_scores"] == -1) and np.all(nothing["detection_classes"] == -1)
    # Two identical boxes: the second decays by exp(-1 / 0.5); another class never decays.
    found = soft_nms_numpy(boxes, np.array([0.9, 0.8, 0.7]), np.array([0, 0, 1]))
    assert int(found["num_detections"][0]) == 3
    np.testing.assert_allclose(
        found["detection_scores"][0, :3], [0.9, 0.7, 0.8 * np.exp(-2.0)], rtol=1e-6
    )
    np.testing.assert_array_equal(found["detection_classes"][0, :3], [0, 1, 0])
