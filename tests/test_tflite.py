"""`cornernet_tf.export.tflite`: fixed-size TFLite files with builtin ops only.

The three conversions (float32, float16, int8) of the tiny preset at 127x127
are the session fixture `tflite_models` (conftest.py).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import CLASS_NAMES, SIZE, png, random_image

from cornernet_tf import export
from cornernet_tf.export import tflite
from cornernet_tf.inference.decode import OUTPUT_KEYS
from cornernet_tf.inference.geometry import prepare_test_image
from cornernet_tf.runtime import host_soft_nms
from cornernet_tf.serving.common import load_class_names

DETECTION_KEYS = dict(export.DETECTION_OUTPUTS)  # detect key → exported name


def _run_tflite(flatbuffer, image):
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    return runner(images=image[None].astype(np.float32))


def test_tflite_files_use_builtin_ops_only(tflite_models):
    for quantization, flatbuffer in tflite_models.items():
        ops = export.tflite_ops(flatbuffer)
        assert not [op for op in ops if op.startswith("Flex") or not op.isupper()], quantization
        assert ("WHILE" in ops) == (quantization != "int8")  # on-device soft-NMS
    assert "CONV_2D" in export.tflite_ops(tflite_models["int8"])


def test_tflite_float32_matches_keras_and_detect(export_model, export_detect, tflite_models):
    image = random_image(12)
    outputs = _run_tflite(tflite_models["none"], image)
    canvas, _ = prepare_test_image(image[None])
    heads = export_model(canvas, training=False)
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-4)
    expected = export_detect(image[None])
    for key, name in DETECTION_KEYS.items():
        np.testing.assert_allclose(outputs[name], expected[key].numpy(), atol=1e-4)


def test_tflite_float16_heads_within_1e_2(export_model, tflite_models):
    image = random_image(13)
    outputs = _run_tflite(tflite_models["float16"], image)
    heads = export_model(prepare_test_image(image[None])[0], training=False)
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-2)
    assert outputs["detection_boxes"].shape == (1, 100, 4)


def _peaks(heatmap, count):
    """Flat indices of the `count` best 3x3-NMS peaks of one heatmap (official `_nms`)."""
    heat = tf.sigmoid(heatmap)
    pooled = tf.nn.max_pool2d(heat, 3, 1, "SAME")
    heat = tf.where(pooled == heat, heat, 0.0)
    return set(tf.math.top_k(tf.reshape(heat, [-1]), count).indices.numpy().tolist())


def test_tflite_int8_runs_and_keeps_heatmap_peaks(export_model, tflite_models):
    image = random_image(14)
    outputs = _run_tflite(tflite_models["int8"], image)
    heads = export_model(prepare_test_image(image[None])[0], training=False)
    for key in ("tl_heatmap", "br_heatmap"):
        agree = _peaks(outputs[key], 20) & _peaks(heads[key], 20)
        assert len(agree) >= 10, key
    detections = host_soft_nms(outputs, export_model.test_config)
    assert detections["detection_boxes"].shape == (1, 100, 4)
    count = int(detections["num_detections"][0])
    assert count > 0 and np.all(detections["detection_scores"][0, count:] == -1)


def test_tflite_conversion_fails_loudly_on_flex_ops(monkeypatch):
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32, name="images")])
    def needs_flex(images):  # determinants have no TFLite builtin
        return {"out": tf.linalg.det(tf.reshape(images[..., :2], [1, 2, 4, 4]))}

    monkeypatch.setattr(tflite, "tflite_function", lambda *args, **kwargs: needs_flex)
    monkeypatch.setattr(tflite, "check_model", lambda *args: None)
    monkeypatch.setattr(tflite, "check_input_fits", lambda *args: None)
    weightless = type("Weightless", (), {"variables": []})()
    with pytest.raises(RuntimeError, match="Flex ops .* not allowed"):
        export.convert_tflite(weightless, input_size=(4, 4))


def test_tflite_arguments_are_checked(export_model, tmp_path):
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        export.convert_tflite(export_model, input_size=(SIZE, SIZE), quantize="int4")
    with pytest.raises(ValueError, match="int8 needs `representative_data`"):
        export.convert_tflite(export_model, input_size=(SIZE, SIZE), quantize="int8")
    with pytest.raises(ValueError, match="`input_size` must be"):
        export.convert_tflite(export_model, input_size=(0, 10))
    with pytest.raises(ValueError, match="input height 130 does not fit .* 127 or 159"):
        export.convert_tflite(export_model, input_size=(130, SIZE))
    (tmp_path / "cornernet_float32.tflite").write_bytes(b"x")
    with pytest.raises(ValueError, match="already exist"):
        export.export_tflite(export_model, tmp_path, input_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="holds no .* images"):
        export.representative_images(tmp_path, (SIZE, SIZE))


def test_calibration_skips_unreadable_files_and_counts_them(tmp_path):
    (tmp_path / "good.png").write_bytes(png(random_image(4, 30, 40)))
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        images = export.representative_images(tmp_path, (SIZE, SIZE))
    assert len(images) == 1 and images[0].shape == (1, SIZE, SIZE, 3)


def test_calibration_images(calibration_images):
    assert len(calibration_images) == 8
    assert all(x.shape == (1, SIZE, SIZE, 3) and x.dtype == np.float32 for x in calibration_images)


def test_export_tflite_writes_each_file_in_place(export_model, tmp_path, monkeypatch):
    # The conversion is tested above; here only the files: names, bytes, overwrite.
    def fake_conversion(model, *, quantizations, **kwargs):
        return {q: f"{q} flatbuffer".encode() for q in quantizations}

    monkeypatch.setattr(tflite, "convert_detector_variants", fake_conversion)
    output = tmp_path / "new"  # created by the export
    paths = export.export_tflite(export_model, output, quantizations=["none", "int8"])
    assert paths == {
        "none": output / "cornernet_float32.tflite",
        "int8": output / "cornernet_int8.tflite",
    }
    assert sorted(p.name for p in output.iterdir()) == [
        "cornernet_classes.json",
        "cornernet_float32.tflite",
        "cornernet_int8.tflite",
    ]  # no temporary files left
    # The class names beside the flatbuffers, as the serving client reads them.
    classes = output / export.tflite_classes_file_name("cornernet")
    assert load_class_names(classes) == list(export_model.class_names)
    assert paths["int8"].read_bytes() == b"int8 flatbuffer"
    paths["none"].write_bytes(b"old")
    export.export_tflite(export_model, output, quantizations=["none"], overwrite=True)
    assert paths["none"].read_bytes() == b"none flatbuffer"
    # The debug files (raw heads) have their own names and conversion.
    monkeypatch.setattr(
        tflite,
        "convert_tflite_variants",
        lambda model, *, quantizations, **kwargs: {q: b"debug" for q in quantizations},
    )
    debug = export.export_tflite(export_model, output, quantizations=["none"], debug=True)
    assert debug == {"none": output / "cornernet_float32_debug.tflite"}
    assert debug["none"].read_bytes() == b"debug"


# --- Detector files: the object-detector contract, read by MediaPipe Tasks.


@pytest.fixture(scope="module")
def detector_files(export_model, shapes_root, tmp_path_factory):
    """`{quantization: path}` of `export_model`'s detector files (uint8 input, 127x127).

    Written as users do, by `cornernet-export` in a fresh process from the
    model saved as a `.keras` file, int8 calibrated on the shapes images.
    """
    model_file = tmp_path_factory.mktemp("model") / "tiny.keras"
    export_model.save(model_file)
    output = tmp_path_factory.mktemp("detector")
    argv = ["--model", str(model_file), "--output", str(output), "--format", "tflite"]
    argv += ["--quantize", "all", "--data-dir", str(shapes_root / "train2017")]
    argv += ["--num-calibration", "8", "--input-size", str(SIZE), str(SIZE)]
    script = Path(sys.executable).parent / "cornernet-export"
    result = subprocess.run(
        [str(script), *argv], capture_output=True, text=True, timeout=900, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("TFLite (") == 3
    return {q: output / export.tflite_file_name("cornernet", q) for q in export.QUANTIZATIONS}


def _mediapipe_detections(path, image):
    """(boxes x1, y1, x2, y2 in pixels, class ids, scores) from MediaPipe's ObjectDetector."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ObjectDetectorOptions(
        base_options=BaseOptions(model_asset_path=str(path)), max_results=-1
    )
    with vision.ObjectDetector.create_from_options(options) as detector:
        result = detector.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    boxes, classes, scores = [], [], []
    for detection in result.detections:
        box = detection.bounding_box
        corners = [box.origin_x, box.origin_y, box.origin_x + box.width, box.origin_y + box.height]
        # Detections with the same box arrive as one with several categories.
        for category in detection.categories:
            boxes.append(corners)
            classes.append(CLASS_NAMES.index(category.category_name))
            scores.append(category.score)
    order = np.argsort(-np.asarray(scores), kind="stable")
    return (
        np.asarray(boxes, np.float32).reshape(-1, 4)[order],
        np.asarray(classes)[order],
        np.asarray(scores, np.float32)[order],
    )


def _keras_detections(export_detect, image):
    expected = export_detect(image[None])
    count = int(expected["num_detections"][0])
    boxes = np.clip(expected["boxes"][0, :count].numpy(), 0, SIZE)
    return boxes, expected["classes"][0, :count].numpy(), expected["confidence"][0, :count].numpy()


def _matched(expected, found, score_tolerance, pixel_tolerance):
    """Indices of `expected` detections that `found` has: same class, score and box within."""
    matched = []
    for i, (box, cls, score) in enumerate(zip(*expected, strict=True)):
        close = (
            (found[1] == cls)
            & (np.abs(found[2] - score) <= score_tolerance)
            & np.all(np.abs(found[0] - box) <= pixel_tolerance, axis=-1)
        )
        if close.any():
            matched.append(i)
    return matched


def test_detector_file_has_the_contract_and_its_metadata(detector_files):
    from cornernet_tf.export.tflite_metadata import read_detector_metadata

    for quantization, path in detector_files.items():
        flatbuffer = path.read_bytes()
        interpreter = Interpreter(model_content=flatbuffer)
        (image,) = interpreter.get_input_details()
        assert image["dtype"] == np.uint8 and list(image["shape"]) == [1, SIZE, SIZE, 3]
        assert "WHILE" not in export.tflite_ops(flatbuffer)  # one subgraph, as MediaPipe needs
        runner = interpreter.get_signature_runner()
        outputs = runner.get_output_details()
        assert {k: list(v["shape"]) for k, v in outputs.items()} == {
            "detection_locations": [1, 100, 4],
            "detection_classes": [1, 100],
            "detection_scores": [1, 100],
            "num_detections": [1],
        }
        assert all(v["dtype"] == np.float32 for v in outputs.values()), quantization
        metadata = read_detector_metadata(flatbuffer)
        assert metadata["labels"] == CLASS_NAMES and metadata["box_index"] == [1, 0, 3, 2]
        assert metadata["normalization"] is None  # uint8 input: none needed
        # The tensor metadata follow the converted file's output order, whatever it is.
        by_index = {v["index"]: k for k, v in outputs.items()}
        order = [by_index[d["index"]] for d in interpreter.get_output_details()]
        assert metadata["outputs"] == [export.DETECTOR_OUTPUTS[name] for name in order]


@pytest.mark.parametrize("quantization", ["none", "float16"])
def test_mediapipe_object_detector_matches_keras(detector_files, export_detect, quantization):
    image = random_image(12)
    boxes, classes, scores = _keras_detections(export_detect, image)
    found = _mediapipe_detections(detector_files[quantization], image)
    assert len(found[2]) == len(scores) == 100
    # MediaPipe returns integer pixels (truncated): the far corner is within 2 px.
    tolerance = 1e-4 if quantization == "none" else 2e-3
    matched = _matched((boxes, classes, scores), found, tolerance, 2.0)
    assert len(matched) == len(scores), sorted(set(range(len(scores))) - set(matched))
    # The file's own outputs, read by name, are Keras' detections in the contract.
    runner = Interpreter(model_path=str(detector_files[quantization])).get_signature_runner()
    outputs = runner(images=image[None])
    locations = outputs["detection_locations"][0] * SIZE
    np.testing.assert_allclose(
        locations[:, [1, 0, 3, 2]], boxes, atol=0.05 if tolerance > 1e-4 else 1e-3
    )
    np.testing.assert_allclose(outputs["detection_scores"][0], scores, atol=tolerance)
    np.testing.assert_array_equal(outputs["detection_classes"][0], classes)


def test_mediapipe_object_detector_runs_the_int8_file(detector_files, export_detect):
    # The fair check for int8 on this random-weight model: its top scores are tied
    # within 1e-3 (below the int8 step of the heatmaps), so which boxes come first
    # is not comparable with Keras; the score levels and the count are, and the
    # heatmap peaks are (test_tflite_int8_runs_and_keeps_heatmap_peaks).
    image = random_image(12)
    _, _, scores = _keras_detections(export_detect, image)
    boxes, classes, found_scores = _mediapipe_detections(detector_files["int8"], image)
    assert len(found_scores) == len(scores)
    np.testing.assert_allclose(found_scores[:20], scores[:20], atol=1e-2)
    # MediaPipe reports what the file's outputs say, found by their metadata names;
    # its bundled TFLite rounds int8 differently from LiteRT (scores ~4e-3 apart on
    # these near-ties), so 10 of the top 20 must match within 1e-2 and 4 px.
    runner = Interpreter(model_path=str(detector_files["int8"])).get_signature_runner()
    outputs = runner(images=image[None])
    count = int(outputs["num_detections"][0])
    own = (
        outputs["detection_locations"][0, :count][:, [1, 0, 3, 2]] * SIZE,
        outputs["detection_classes"][0, :count],
        outputs["detection_scores"][0, :count],
    )
    assert count == len(found_scores)
    np.testing.assert_allclose(np.sort(found_scores), np.sort(own[2]), atol=1e-2)
    top = tuple(values[:20] for values in own)
    assert len(_matched(top, (boxes, classes, found_scores), 1e-2, 4.0)) >= 10


def test_models_without_class_names_get_numbered_labels_with_a_warning():
    from cornernet_tf.export._checks import check_labels
    from cornernet_tf.models import CornerNet

    unnamed = CornerNet.from_preset("tiny", num_classes=3)
    with pytest.warns(UserWarning, match="no class names; the label file numbers the 3 classes"):
        assert check_labels(unnamed, "export_tflite") == ["0", "1", "2"]
    named = CornerNet.from_preset("tiny", class_names=CLASS_NAMES)
    assert check_labels(named, "export_tflite") == CLASS_NAMES


def test_detector_files_refuse_input_sizes_that_do_not_fit(export_model):
    with pytest.raises(ValueError, match=r"input width 100 does not fit .* 95 or 127"):
        export.convert_detector_variants(export_model, input_size=(SIZE, 100))
    with pytest.raises(ValueError, match="`input_type` must be one of"):
        export.convert_detector_variants(export_model, input_size=(SIZE, SIZE), input_type="int8")


def test_tflite_detector_runs_detector_files_like_detect(detector_files, export_detect):
    from cornernet_tf.runtime import TFLiteDetector

    image = random_image(15)  # the input size: no resizing
    expected = export_detect(image[None])
    found = TFLiteDetector(detector_files["none"]).detect_image(image)
    count = int(expected["num_detections"][0])
    assert int(found["num_detections"][0]) == count > 0
    np.testing.assert_allclose(found["confidence"], expected["confidence"].numpy(), atol=1e-4)
    np.testing.assert_allclose(found["boxes"][0, :count], expected["boxes"][0, :count], atol=1e-2)
    np.testing.assert_array_equal(found["classes"], expected["classes"].numpy())


def test_float32_input_detector_file_matches_the_uint8_one(export_model, detector_files):
    from cornernet_tf.export.tflite_metadata import read_detector_metadata

    (flatbuffer,) = export.convert_detector_variants(
        export_model, input_size=(SIZE, SIZE), quantizations=["none"], input_type="float32"
    ).values()
    assert read_detector_metadata(flatbuffer)["normalization"] == ([0.0], [1.0])
    image = random_image(16)[None]
    found = Interpreter(model_content=flatbuffer).get_signature_runner()(
        images=image.astype(np.float32)
    )
    runner = Interpreter(model_path=str(detector_files["none"])).get_signature_runner()
    expected = runner(images=image)
    for name in export.DETECTOR_OUTPUTS:
        np.testing.assert_allclose(found[name], expected[name], atol=1e-5, err_msg=name)
