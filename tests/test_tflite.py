"""`cornernet_tf.export.tflite`: fixed-size TFLite files with builtin ops only.

The three conversions (float32, float16, int8) of the tiny preset at 127x127
are the session fixture `tflite_models` (conftest.py).
"""

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from export_helpers import SIZE, png, random_image

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

    monkeypatch.setattr(tflite, "convert_tflite_variants", fake_conversion)
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
