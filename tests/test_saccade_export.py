"""CornerNet-Saccade exported: the whole procedure in a SavedModel, the canvas graph in TFLite.

A small saccade model whose every attention peak counts (`att_threshold` 0,
so random weights choose crops) is exported by `cornernet-export` and loaded
by `tf.saved_model.load` in a fresh process; its `detect_uint8` signature
must give the Keras model's `detect` detections, and so must the TFLite
canvas graph run by LiteRT inside the host step.
"""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from harness import SMALL_NETWORK
from seeding import seed_weights

from cornernet_tf.models import CornerNet, load_model

BIN = Path(sys.executable).parent

# Loads the SavedModel and runs both signatures (pixels, and the image as a
# PNG file): argv[1] the version directory, argv[2] the image (.npy), argv[3]
# the result (.npz).
LOAD = """
import sys
import numpy as np
import tensorflow as tf

loaded = tf.saved_model.load(sys.argv[1])
image = np.load(sys.argv[2])
result = loaded.signatures["detect_uint8"](images=tf.constant(image[None]))
encoded = loaded.signatures["serving_default"](images=tf.io.encode_png(image)[None])
result |= {"encoded_" + key: value for key, value in encoded.items()}
np.savez(sys.argv[3], **{key: value.numpy() for key, value in result.items()})
"""


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    seed_weights(11)
    model = CornerNet.from_preset(
        "tiny_saccade",
        **SMALL_NETWORK,
        head_dim=16,
        class_names=["rectangle", "ellipse", "triangle"],
        saccade_config={"att_threshold": 0.0, "att_max_crops": 8},
    )
    path = tmp_path_factory.mktemp("saccade") / "model.keras"
    model.save(path)
    return path


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def keras_model(model_file):
    return load_model(model_file)


@pytest.fixture(scope="module")
def expected(keras_model, image):
    """The Keras model's detections of `image`, after checking that crops ran."""
    locations = keras_model.saccade_procedure().candidates(image)["locations"]
    assert len(locations) == 8  # as many crops as the budget
    detections = {key: value.numpy() for key, value in keras_model.detect(image[None]).items()}
    assert detections["num_detections"][0] > 0
    return detections


def test_saved_model_runs_the_whole_procedure(model_file, image, expected, tmp_path):
    version = tmp_path / "exports" / "cornernet" / "1"
    subprocess.run(
        [
            str(BIN / "cornernet-export"),
            "--model",
            str(model_file),
            "--output",
            str(tmp_path / "exports"),
            "--format",
            "saved_model",
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    assert (version / "saved_model.pb").is_file()
    assert (version / "assets.extra" / "tf_serving_warmup_requests").is_file()
    config = json.loads((version / "assets" / "model_config.json").read_text())
    assert config["config"]["saccade_config"]["att_max_crops"] == 8

    np.save(tmp_path / "image.npy", image)
    subprocess.run(
        [
            sys.executable,
            "-c",
            LOAD,
            str(version),
            str(tmp_path / "image.npy"),
            str(tmp_path / "r"),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = np.load(tmp_path / "r.npz")
    assert int(result["num_detections"][0]) == expected["num_detections"][0]
    np.testing.assert_allclose(result["detection_boxes"], expected["boxes"], atol=1e-3)
    np.testing.assert_allclose(result["detection_scores"], expected["confidence"], atol=1e-5)
    np.testing.assert_array_equal(result["detection_classes"], expected["classes"])
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(result[f"encoded_{key}"], result[key], atol=1e-5)


def test_tflite_canvas_graph_with_the_host_step(model_file, keras_model, image, expected, tmp_path):
    from cornernet_tf.export import export_tflite
    from cornernet_tf.export.saccade_tflite import (
        LiteRTCanvasDetector,
        export_saccade_tflite,
        tflite_saccade_procedure,
    )

    command = [str(BIN / "cornernet-export"), "--model", str(model_file)]
    command += ["--output", str(tmp_path), "--format", "tflite"]
    wrong = subprocess.run([*command, "--quantize", "float16"], capture_output=True, text=True)
    assert wrong.returncode == 2 and "--quantize do not apply to CornerNet-Saccade" in wrong.stderr
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    paths = {
        "tflite": tmp_path / "cornernet_canvas.tflite",
        "settings": tmp_path / "cornernet_saccade.json",
    }
    # The file's outputs against the Keras canvas graph.
    canvases = np.random.default_rng(1).uniform(0, 255, (3, 255, 255, 3)).astype(np.float32)
    litert = LiteRTCanvasDetector(paths["tflite"]).run(canvases)
    keras_outputs = keras_model.saccade_procedure().run_canvases(canvases)
    for key, value in keras_outputs.items():
        np.testing.assert_allclose(litert[key], value.numpy(), atol=1e-4, err_msg=key)
    # The host step around the file: the detections of `detect`.
    procedure = tflite_saccade_procedure(paths["tflite"], paths["settings"])
    result = {key: value.numpy() for key, value in procedure(image[None]).items()}
    assert result["num_detections"][0] == expected["num_detections"][0]
    np.testing.assert_allclose(result["boxes"], expected["boxes"], atol=1e-3)
    np.testing.assert_allclose(result["confidence"], expected["confidence"], atol=1e-4)
    np.testing.assert_array_equal(result["classes"], expected["classes"])
    with pytest.raises(ValueError, match="already exist"):
        export_saccade_tflite(keras_model, tmp_path, name="cornernet")
    # The fixed-size detector files cannot hold the crops: refused, naming this export.
    with pytest.raises(
        ValueError, match="export_tflite: CornerNet-Saccade .*export_saccade_tflite"
    ):
        export_tflite(keras_model, tmp_path / "detector")
