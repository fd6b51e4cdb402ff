"""Export: the TF Serving SavedModel, the REST client contract, and TFLite files.

The expensive artefacts (one SavedModel written by `scripts/export.py`, one
set of TFLite conversions) are module fixtures built from the tiny preset at
127x127. The REST client runs against `tests/serving_double.py`, a test
double of TF Serving's documented REST API (the real server cannot be
installed here).
"""

import base64
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import requests
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from serving_double import ServingDouble

from cornernet_tf import export, postprocess
from cornernet_tf.models.cornernet import CornerNet

REPO = Path(__file__).resolve().parents[1]


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_script = _load("export_script", "scripts/export.py")
client = _load("serving_client", "serving/client.py")
CLASS_NAMES = ["circle", "square", "triangle"]
SIZE = 127
DETECTION_KEYS = dict(export.DETECTION_OUTPUTS)  # detect key → exported name


def _image(seed, height=SIZE, width=SIZE):
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def _png(image):
    return tf.io.encode_png(image).numpy()


@pytest.fixture(scope="module")
def model():
    """Tiny CornerNet with spread-out heatmap logits (fewer near-tied scores)."""
    keras.utils.set_random_seed(1)
    net = CornerNet.from_preset("tiny", class_names=CLASS_NAMES)
    net(np.zeros((1, SIZE, SIZE, 3), np.float32), training=False)
    for corner in ("tl", "br"):
        heat = net.heads[f"{corner}_heatmap"][-1].out
        heat.kernel.assign(heat.kernel * 40.0)
        embedding = net.heads[f"{corner}_embedding"][-1].out
        embedding.kernel.assign(embedding.kernel * 0.0)  # every pair passes the AE test
    return net


@pytest.fixture(scope="module")
def detect(model):
    spec = tf.TensorSpec([None, None, None, 3], tf.uint8)
    return tf.function(model.detect, input_signature=[spec], autograph=False)


@pytest.fixture(scope="module")
def export_root(model, tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    assert export.export_saved_model(model, root) == root / "cornernet" / "1"
    return root


@pytest.fixture(scope="module")
def loaded(export_root):
    return tf.saved_model.load(str(export_root / "cornernet" / "1"))


@pytest.fixture(scope="module")
def calibration(shapes_root):
    return export.representative_images(shapes_root / "train2017", (SIZE, SIZE), max_images=8)


@pytest.fixture(scope="module")
def tflite_models(model, calibration):
    return export.convert_tflite_variants(
        model, input_size=(SIZE, SIZE), representative_data=calibration
    )


def _run_tflite(flatbuffer, image):
    runner = Interpreter(model_content=flatbuffer).get_signature_runner()
    return runner(images=image[None].astype(np.float32))


# ------------------------------------------------------------------ SavedModel


def test_saved_model_layout_and_assets(export_root):
    base = export_root / "cornernet"
    assert sorted(p.name for p in base.iterdir()) == ["1"]  # no staging directory left
    version = base / "1"
    assert (version / "saved_model.pb").is_file()
    assert (version / "variables").is_dir()
    assert json.loads((version / "assets" / "classes.json").read_text()) == CLASS_NAMES
    config = json.loads((version / "assets" / "model_config.json").read_text())
    assert config["config"]["num_classes"] == 3
    assert export.next_version(base) == 2


def _parse_saved_model_cli(text):
    """{signature: {"inputs"|"outputs": {name: (dtype, shape)}, "method": str}}."""
    signatures = {}
    for block in re.split(r"\nsignature_def\['", text)[1:]:
        name, body = block.split("']:", 1)
        entry = {"inputs": {}, "outputs": {}}
        for kind, tensor, dtype, shape in re.findall(
            r"(inputs|outputs)\['(\w+)'\] tensor_info:\s+dtype: (\w+)\s+shape: ([^\n]+)", body
        ):
            entry[kind][tensor] = (dtype, shape.strip())
        entry["method"] = re.search(r"Method name is: ([^\n]*)", body).group(1).strip()
        signatures[name] = entry
    return signatures


def test_saved_model_cli_shows_batched_signatures(export_root):
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [str(cli), "show", "--dir", str(export_root / "cornernet" / "1"), "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    signatures = _parse_saved_model_cli(result.stdout)
    outputs = {
        "detection_boxes": ("DT_FLOAT", "(-1, 100, 4)"),
        "detection_scores": ("DT_FLOAT", "(-1, 100)"),
        "detection_classes": ("DT_INT32", "(-1, 100)"),
        "num_detections": ("DT_INT32", "(-1)"),
    }
    assert signatures["serving_default"] == {
        "inputs": {"images": ("DT_STRING", "(-1)")},
        "outputs": outputs,
        "method": "tensorflow/serving/predict",
    }
    assert signatures["detect_uint8"] == {
        "inputs": {"images": ("DT_UINT8", "(-1, -1, -1, 3)")},
        "outputs": outputs,
        "method": "tensorflow/serving/predict",
    }


def test_uint8_signature_matches_detect(loaded, detect):
    images = np.stack([_image(0), _image(1)])
    outputs = loaded.signatures["detect_uint8"](images=tf.constant(images))
    expected = detect(images)
    assert int(expected["num_detections"][0]) > 0
    for key, name in DETECTION_KEYS.items():
        np.testing.assert_allclose(outputs[name].numpy(), expected[key].numpy(), atol=1e-4)


def test_encoded_signature_runs_each_image_at_its_own_size(loaded):
    images = [_image(2), _image(3, height=90, width=150)]
    batch = tf.constant([_png(image) for image in images])
    outputs = loaded.signatures["serving_default"](images=batch)
    assert outputs["detection_boxes"].shape == (2, 100, 4)
    for i, image in enumerate(images):
        # detect_uint8 equals `CornerNet.detect` (test above); one image, its own size.
        expected = loaded.signatures["detect_uint8"](images=tf.constant(image[None]))
        for name in DETECTION_KEYS.values():
            np.testing.assert_allclose(outputs[name][i].numpy(), expected[name][0].numpy())
    boxes = outputs["detection_boxes"][1].numpy()[: int(outputs["num_detections"][1])]
    assert len(boxes) > 0
    assert boxes[:, 2].max() <= 150 and boxes[:, 3].max() <= 90  # pixels of image 1


@pytest.mark.parametrize("payload", [b"not an image", b""])
def test_undecodable_image_is_an_invalid_argument(loaded, payload):
    batch = tf.constant([_png(_image(4, 32, 32)), payload])
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image\] \[1\] \[of the batch is not"
    ):
        loaded.signatures["serving_default"](images=batch)


def test_truncated_png_is_an_invalid_argument(loaded):
    truncated = _png(_image(5, 32, 32))[:60]
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["serving_default"](images=tf.constant([truncated]))


def test_existing_version_is_refused(model, export_root):
    with pytest.raises(ValueError, match="already exists.*next free: 2"):
        export.export_saved_model(model, export_root, version=1)


def test_failed_save_leaves_no_version_directory(model, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(model, tmp_path, version=7)
    assert list((tmp_path / "cornernet").iterdir()) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "../evil"}, "`name` must be"),
        ({"version": 0}, "`version` must be a positive integer"),
        ({"version": "2"}, "`version` must be a positive integer"),
        ({"max_image_side": 0}, "`max_image_side`"),
    ],
)
def test_export_saved_model_rejects_bad_arguments(model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(model, tmp_path, **kwargs)


def test_export_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="must be a CornerNet"):
        export.export_saved_model(object(), tmp_path)
    with pytest.raises(ValueError, match="no weights yet"):
        export.export_saved_model(CornerNet.from_preset("tiny"), tmp_path)


def test_cli_wires_arguments_to_the_export(model, tmp_path, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(export_script.export, "load_model", lambda path: model)

    def fake_export(*args, **kwargs):
        calls.append((args, kwargs))
        return tmp_path / "cornernet" / "4"

    monkeypatch.setattr(export_script.export, "export_saved_model", fake_export)
    argv = ["--model", "m.keras", "--output", str(tmp_path), "--format", "saved_model"]
    assert export_script.main([*argv, "--version", "4", "--name", "cornernet"]) == 0
    assert calls == [
        ((model, str(tmp_path)), {"name": "cornernet", "version": 4, "max_image_side": 4096})
    ]
    assert "SavedModel written to" in capsys.readouterr().out


def test_cli_reports_bad_input(tmp_path, capsys):
    missing = ["--model", str(tmp_path / "nope.keras"), "--output", str(tmp_path)]
    assert export_script.main([*missing, "--format", "saved_model"]) == 1
    assert "nope.keras' does not exist" in capsys.readouterr().err
    (tmp_path / "weights.h5").write_bytes(b"x")
    wrong = ["--model", str(tmp_path / "weights.h5"), "--output", str(tmp_path)]
    assert export_script.main([*wrong, "--format", "saved_model"]) == 1
    assert "is not a .keras file" in capsys.readouterr().err
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    broken = ["--model", str(tmp_path / "broken.keras"), "--output", str(tmp_path)]
    assert export_script.main([*broken, "--format", "saved_model"]) == 1
    assert "could not be loaded" in capsys.readouterr().err
    for argv, message in [
        ([*missing, "--format", "onnx"], "invalid choice: 'onnx'"),
        ([*missing, "--format", "saved_model", "--quantize", "int8"], "--quantize applies"),
        ([*missing, "--format", "tflite", "--quantize", "int8"], "needs --data-dir"),
    ]:
        with pytest.raises(SystemExit) as exited:
            export_script.main(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


def test_load_model_refuses_other_models(tmp_path):
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="holds a Sequential, not a CornerNet"):
        export.load_model(tmp_path / "other.keras")


# ------------------------------------------------------ REST client vs double


@pytest.fixture(scope="module")
def server(export_root):
    with ServingDouble(export_root / "cornernet", "cornernet", lifetime=300) as double:
        yield double


def _client(server, *args):
    result = subprocess.run(
        [sys.executable, str(REPO / "serving" / "client.py"), "--url", server.url, *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result.returncode, result.stdout, result.stderr


def test_client_status_and_metadata(server):
    code, out, _ = _client(server, "status")
    assert code == 0
    assert json.loads(out)["model_version_status"] == [
        {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
    ]
    metadata = client.model_metadata(server.url, "cornernet")
    assert metadata["model_spec"] == {"name": "cornernet", "signature_name": "", "version": "1"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    images = signatures["serving_default"]["inputs"]["images"]
    assert images["dtype"] == "DT_STRING"
    assert images["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    boxes = signatures["detect_uint8"]["outputs"]["detection_boxes"]
    assert [d["size"] for d in boxes["tensor_shape"]["dim"]] == ["-1", "100", "4"]


def test_client_request_formats_follow_the_rest_api():
    body = client.predict_request_body([b"\x89PNG"], columnar=False)
    assert body == {
        "signature_name": "serving_default",
        "instances": [{"images": {"b64": "iVBORw=="}}],
    }
    body = client.predict_request_body([b"\x89PNG", b"ab"], columnar=True)
    assert body["inputs"] == {"images": [{"b64": "iVBORw=="}, {"b64": "YWI="}]}
    rows = client.parse_predict_response({"outputs": {"a": [1, 2], "b": [[3], [4]]}})
    assert rows == [{"a": 1, "b": [3]}, {"a": 2, "b": [4]}]


def test_client_predict_row_and_columnar_match_the_signature(server, loaded):
    images = [_png(_image(6)), _png(_image(7, 100, 60))]
    expected = loaded.signatures["serving_default"](images=tf.constant(images))
    for columnar in (False, True):
        results = client.predict(images, server.url, "cornernet", columnar=columnar)
        assert len(results) == 2
        for i, result in enumerate(results):
            for name in DETECTION_KEYS.values():
                np.testing.assert_allclose(result[name], expected[name][i].numpy(), atol=1e-5)
    pixels = [_image(8).tolist()]
    result = client.predict(pixels, server.url, "cornernet", signature=client.UINT8_SIGNATURE)
    expected = loaded.signatures["detect_uint8"](images=tf.constant(_image(8)[None]))
    np.testing.assert_allclose(result[0]["detection_scores"], expected["detection_scores"][0])


def test_client_cli_prints_named_detections(server, export_root, tmp_path):
    paths = []
    for i, image in enumerate([_image(9), _image(10, 80, 96)]):
        paths.append(tmp_path / f"image{i}.png")
        paths[-1].write_bytes(_png(image))
    classes = export_root / "cornernet" / "1" / "assets" / "classes.json"
    args = ["predict", *map(str, paths), "--classes", str(classes), "--score-threshold", "0"]
    code, out, err = _client(server, *args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"{paths[0]}: ") and "detections" in lines[0]
    detections = [line for line in lines if line.startswith("  ")]
    assert detections and all(line.split()[0] in CLASS_NAMES for line in detections)
    code, out, _ = _client(server, "predict", str(paths[0]), "--columnar", "--json")
    assert code == 0 and len(json.loads(out)[str(paths[0])]["detection_scores"]) == 100


def test_client_reports_server_errors(server, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    code, _, err = _client(server, "predict", str(bad))
    assert code == 1 and "HTTP 400" in err and "not a JPEG, PNG" in err
    code, _, err = _client(server, "--model", "other", "status")
    assert code == 1 and "HTTP 404" in err and "Servable not found" in err
    code, _, err = _client(server, "predict", str(tmp_path / "missing.png"))
    assert code == 1 and "cannot read image" in err
    with pytest.raises(client.ServingError, match="cannot reach TensorFlow Serving"):
        client.model_status("http://127.0.0.1:9", timeout=2)


def test_double_follows_documented_errors(server):
    address = f"{server.url}/v1/models/cornernet:predict"
    both = {"instances": [{"b64": "eA=="}], "inputs": [{"b64": "eA=="}]}
    response = requests.post(address, data=json.dumps(both), timeout=30)
    assert response.status_code == 400 and "error" in response.json()
    unnamed = {"instances": [{"b64": base64.b64encode(_png(_image(11, 40, 40))).decode()}]}
    response = requests.post(address, data=json.dumps(unnamed), timeout=60)
    assert response.status_code == 200
    assert len(response.json()["predictions"][0]["detection_boxes"]) == 100


# ----------------------------------------------------------------------- TFLite


def test_tflite_files_use_builtin_ops_only(tflite_models):
    for quantization, flatbuffer in tflite_models.items():
        ops = export.tflite_ops(flatbuffer)
        assert not [op for op in ops if op.startswith("Flex") or not op.isupper()], quantization
        assert ("WHILE" in ops) == (quantization != "int8")  # on-device soft-NMS
    assert "CONV_2D" in export.tflite_ops(tflite_models["int8"])


def test_tflite_float32_matches_keras_and_detect(model, detect, tflite_models):
    image = _image(12)
    outputs = _run_tflite(tflite_models["none"], image)
    canvas, _ = postprocess.prepare_test_image(image[None])
    heads = model(canvas, training=False)
    for key in postprocess.OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-4)
    expected = detect(image[None])
    for key, name in DETECTION_KEYS.items():
        np.testing.assert_allclose(outputs[name], expected[key].numpy(), atol=1e-4)


def test_tflite_float16_heads_within_1e_2(model, tflite_models):
    image = _image(13)
    outputs = _run_tflite(tflite_models["float16"], image)
    heads = model(postprocess.prepare_test_image(image[None])[0], training=False)
    for key in postprocess.OUTPUT_KEYS:
        np.testing.assert_allclose(outputs[key], heads[key].numpy(), atol=1e-2)
    assert outputs["detection_boxes"].shape == (1, 100, 4)


def _peaks(heatmap, count):
    """Flat indices of the `count` best 3x3-NMS peaks of one heatmap (official `_nms`)."""
    heat = tf.sigmoid(heatmap)
    pooled = tf.nn.max_pool2d(heat, 3, 1, "SAME")
    heat = tf.where(pooled == heat, heat, 0.0)
    return set(tf.math.top_k(tf.reshape(heat, [-1]), count).indices.numpy().tolist())


def test_tflite_int8_runs_and_keeps_heatmap_peaks(model, tflite_models):
    image = _image(14)
    outputs = _run_tflite(tflite_models["int8"], image)
    heads = model(postprocess.prepare_test_image(image[None])[0], training=False)
    for key in ("tl_heatmap", "br_heatmap"):
        agree = _peaks(outputs[key], 20) & _peaks(heads[key], 20)
        assert len(agree) >= 10, key
    detections = export.host_soft_nms(outputs, model.test_config)
    assert detections["detection_boxes"].shape == (1, 100, 4)
    count = int(detections["num_detections"][0])
    assert count > 0 and np.all(detections["detection_scores"][0, count:] == -1)


def test_tflite_conversion_fails_loudly_on_flex_ops(monkeypatch):
    @tf.function(input_signature=[tf.TensorSpec([1, 4, 4, 3], tf.float32, name="images")])
    def needs_flex(images):  # determinants have no TFLite builtin
        return {"out": tf.linalg.det(tf.reshape(images[..., :2], [1, 2, 4, 4]))}

    monkeypatch.setattr(export, "tflite_function", lambda *args, **kwargs: needs_flex)
    monkeypatch.setattr(export, "_check_model", lambda *args: None)
    weightless = type("Weightless", (), {"variables": []})()
    with pytest.raises(RuntimeError, match="Flex ops .* not allowed"):
        export.convert_tflite(weightless, input_size=(4, 4))


def test_tflite_arguments_are_checked(model, tmp_path):
    with pytest.raises(ValueError, match="`quantize` must be one of"):
        export.convert_tflite(model, input_size=(SIZE, SIZE), quantize="int4")
    with pytest.raises(ValueError, match="int8 needs `representative_data`"):
        export.convert_tflite(model, input_size=(SIZE, SIZE), quantize="int8")
    with pytest.raises(ValueError, match="`input_size` must be"):
        export.convert_tflite(model, input_size=(0, 10))
    (tmp_path / "cornernet_float32.tflite").write_bytes(b"x")
    with pytest.raises(ValueError, match="already exist"):
        export.export_tflite(model, tmp_path, input_size=(SIZE, SIZE))
    with pytest.raises(ValueError, match="holds no .* images"):
        export.representative_images(tmp_path, (SIZE, SIZE))


def test_letterbox_keeps_the_aspect_ratio():
    canvas, scale = export.letterbox(np.full((50, 100, 3), 200, np.uint8), (SIZE, SIZE))
    assert canvas.shape == (1, SIZE, SIZE, 3) and scale == pytest.approx(1.27)
    assert canvas[0, :63].min() == 200 and canvas[0, 64:].max() == 0  # 50 * 1.27 = 63.5 rows


def test_calibration_images(calibration):
    assert len(calibration) == 8
    assert all(x.shape == (1, SIZE, SIZE, 3) and x.dtype == np.float32 for x in calibration)


def test_tflite_detector_maps_boxes_to_any_image_size(tflite_models, model):
    image = _image(15, 60, 100)  # letterboxed by 1.27 into 127x127
    for quantization in ("none", "int8"):
        detector = export.TFLiteDetector(tflite_models[quantization], test_config=model.test_config)
        result = tf.function(detector.detect)(tf.constant(image[None]))
        count = int(result["num_detections"][0])
        boxes = result["boxes"][0].numpy()
        assert count > 0 and np.all(boxes[count:] == -1)
        assert boxes[:count, 0::2].max() <= 100 and boxes[:count, 1::2].max() <= 60
        canvas, scale = export.letterbox(image, (SIZE, SIZE))
        raw = export.host_soft_nms(detector.run(canvas), model.test_config)
        np.testing.assert_allclose(
            boxes[:count],
            np.clip(raw["detection_boxes"][0, :count] / scale, 0, [100, 60, 100, 60]),
            rtol=1e-6,
        )
