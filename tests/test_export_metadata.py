"""`cornernet_tf.export.tflite_metadata` read back by MediaPipe Tasks' ObjectDetector.

A stand-in detector (constant box, score = mean input / 255) converts in
seconds and shows what MediaPipe does with the metadata: it finds the outputs
by their metadata names, reads the box layout and labels, feeds float32 inputs
0-255 with the identity normalisation, and maps the normalised box to the
frame's pixels by stretching the frame to the input (no letterbox).
"""

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.export.tflite_metadata import add_detector_metadata, read_detector_metadata

SIDE = 32


@pytest.fixture(scope="module")
def stand_in(tmp_path_factory):
    @tf.function(input_signature=[tf.TensorSpec([1, SIDE, SIDE, 3], tf.float32, name="images")])
    def detect(images):
        return {
            "detection_locations": tf.constant([[[0.25, 0.125, 0.75, 0.5]]]),  # ymin xmin ymax xmax
            "detection_classes": tf.constant([[1.0]]),
            "detection_scores": tf.reshape(tf.reduce_mean(images) / 255.0, [1, 1]),
            "num_detections": tf.constant([1.0]),
        }

    saved = tmp_path_factory.mktemp("stand_in")
    tf.saved_model.save(tf.Module(), str(saved), signatures={"serving_default": detect})
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    path = saved / "stand_in.tflite"
    path.write_bytes(add_detector_metadata(flatbuffer, labels=["circle", "square"]))
    return path


def test_float_input_gets_identity_normalisation(stand_in):
    metadata = read_detector_metadata(stand_in.read_bytes())
    assert metadata["normalization"] == ([0.0], [1.0])
    assert metadata["labels"] == ["circle", "square"]
    assert sorted(metadata["outputs"]) == ["category", "location", "number of detections", "score"]


@pytest.mark.parametrize(("height", "width"), [(SIDE, SIDE), (64, 128), (128, 64)])
def test_mediapipe_reads_the_metadata(stand_in, height, width):
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ObjectDetectorOptions(base_options=BaseOptions(model_asset_path=str(stand_in)))
    with vision.ObjectDetector.create_from_options(options) as detector:
        image = np.full((height, width, 3), 128, np.uint8)
        (detection,) = detector.detect(
            mp.Image(image_format=mp.ImageFormat.SRGB, data=image)
        ).detections
    (category,) = detection.categories
    assert category.category_name == "square"
    assert category.score == pytest.approx(128 / 255, abs=1e-6)  # 0-255 reached the model
    box = detection.bounding_box
    # Normalised to the frame's own width and height: the frame was stretched, not letterboxed.
    assert (box.origin_x, box.origin_y) == (width // 8, height // 4)
    assert (box.width, box.height) == (3 * width // 8, height // 2)


def test_metadata_needs_the_four_outputs_and_labels(stand_in, tmp_path):
    flatbuffer = stand_in.read_bytes()
    with pytest.raises(ValueError, match="non-empty single-line class names"):
        add_detector_metadata(flatbuffer, labels=[])
    with pytest.raises(ValueError, match="non-empty single-line class names"):
        add_detector_metadata(flatbuffer, labels=["a\nb", "c"])

    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32, name="images")])
    def heads(images):
        return {"tl_heatmap": images}

    converter = tf.lite.TFLiteConverter.from_concrete_functions([heads.get_concrete_function()])
    with pytest.raises(ValueError, match="must have one signature"):
        add_detector_metadata(converter.convert(), labels=["a"])
    tf.saved_model.save(tf.Module(), str(tmp_path), signatures={"serving_default": heads})
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path))
    with pytest.raises(ValueError, match="must have one input and the outputs"):
        add_detector_metadata(converter.convert(), labels=["a"])
