"""`cornernet-export --format onnx`: standard ONNX ops, run with ONNX Runtime against Keras.

The file is written once per module by the console script in a fresh process,
from the session's tiny model saved as a `.keras` file.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import CLASS_NAMES, SIZE, random_image

from cornernet_tf.export.onnx import onnx_op_domains
from cornernet_tf.inference.decode import OUTPUT_KEYS
from cornernet_tf.inference.geometry import prepare_test_image
from cornernet_tf.inference.soft_nms import soft_nms
from cornernet_tf.runtime import OnnxDetector, soft_nms_numpy


def _export(argv, timeout=600):
    script = Path(sys.executable).parent / "cornernet-export"
    return subprocess.run(
        [str(script), *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def model_file(export_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    export_model.save(path)
    return path


@pytest.fixture(scope="module")
def onnx_file(model_file, tmp_path_factory):
    output = tmp_path_factory.mktemp("onnx")
    argv = ["--model", str(model_file), "--output", str(output), "--format", "onnx"]
    result = _export([*argv, "--input-size", str(SIZE), str(SIZE)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ONNX written to" in result.stdout
    return output / "cornernet.onnx"


@pytest.fixture(scope="module")
def detector(onnx_file):
    return OnnxDetector(onnx_file)


def test_onnx_file_uses_standard_ops_only(onnx_file, detector):
    assert onnx_op_domains(onnx_file.read_bytes()) <= {"", "ai.onnx"}
    assert detector.input_size == (SIZE, SIZE) and detector.class_names == CLASS_NAMES
    assert detector.soft_nms == {"sigma": 0.5, "score_threshold": 0.001, "max_detections": 100}


def test_onnx_runtime_heads_match_keras(detector, export_model):
    image = random_image(21)
    canvas, _ = prepare_test_image(image[None])
    heads = export_model(canvas, training=False)
    outputs = detector.run(image[None].astype(np.float32))
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-4, err_msg=key)


def test_numpy_soft_nms_is_the_tensorflow_one(detector):
    # The host step on the file's own candidates: NumPy reference == the graph's loop.
    outputs = detector.run(random_image(22)[None].astype(np.float32))
    boxes, scores, classes = (outputs[f"candidate_{k}"] for k in ("boxes", "scores", "classes"))
    expected = soft_nms(boxes, scores, classes)
    found = soft_nms_numpy(boxes[0], scores[0], classes[0])
    count = int(expected["num_detections"][0])
    assert count > 10 and int(found["num_detections"][0]) == count
    np.testing.assert_allclose(found["detection_scores"], expected["scores"].numpy(), atol=1e-6)
    np.testing.assert_allclose(found["detection_boxes"], expected["boxes"].numpy(), atol=1e-4)
    np.testing.assert_array_equal(found["detection_classes"], expected["classes"].numpy())


def test_onnx_detector_finds_keras_detections_on_a_shapes_image(
    detector, export_detect, shapes_root
):
    path = sorted((shapes_root / "val2017").glob("*.png"))[0]
    shapes_image = tf.io.decode_png(path.read_bytes(), channels=3).numpy()  # 80x96
    image = np.zeros((SIZE, SIZE, 3), np.uint8)  # the file's input size: no resizing
    image[: shapes_image.shape[0], : shapes_image.shape[1]] = shapes_image
    expected = export_detect(image[None])
    found = detector.detect_image(image)
    count = int(expected["num_detections"][0])
    assert int(found["num_detections"][0]) == count > 0
    # Scores equal to float32 rounding; ties among them may come in another order.
    np.testing.assert_allclose(
        found["confidence"][0, :count], expected["confidence"][0, :count].numpy(), atol=1e-5
    )
    keras_boxes = expected["boxes"][0, :count].numpy()
    for box, cls in zip(found["boxes"][0, :count], found["classes"][0, :count], strict=True):
        same = expected["classes"][0, :count].numpy() == cls
        assert np.abs(keras_boxes[same] - box).max(axis=-1).min() < 1e-2


def test_onnx_export_refuses_bad_input(model_file, tmp_path):
    argv = ["--model", str(model_file), "--output", str(tmp_path), "--format", "onnx"]
    result = _export([*argv, "--input-size", "130", "127"])
    assert result.returncode == 2
    assert "input height 130 does not fit the network" in result.stderr
    assert "127 or 159" in result.stderr and "Traceback" not in result.stderr
    result = _export([*argv, "--quantize", "int8"])
    assert result.returncode == 2 and "--quantize applies to --format tflite only" in result.stderr
