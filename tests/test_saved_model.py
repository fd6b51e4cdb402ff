"""`cornernet_tf.export.saved_model`: the TF Serving SavedModel export.

The SavedModel is the session fixture `saved_model_root` (conftest.py): the
tiny preset exported once with the defaults; `saved_model` is it loaded.
"""

import json
import re
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from export_helpers import CLASS_NAMES, png, random_image
from image_files import displayed, jpeg, png_bomb, stored_image

from cornernet_tf import export
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE
from cornernet_tf.spec.presets import PRESETS

DETECTION_KEYS = dict(export.DETECTION_OUTPUTS)  # detect key → exported name


def test_saved_model_layout_and_assets(saved_model_root):
    base = saved_model_root / "cornernet"
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


def test_saved_model_cli_shows_batched_signatures(saved_model_root):
    cli = Path(sys.executable).parent / "saved_model_cli"
    result = subprocess.run(
        [str(cli), "show", "--dir", str(saved_model_root / "cornernet" / "1"), "--all"],
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


def test_uint8_signature_matches_detect(saved_model, export_detect):
    images = np.stack([random_image(0), random_image(1)])
    outputs = saved_model.signatures["detect_uint8"](images=tf.constant(images))
    expected = export_detect(images)
    assert int(expected["num_detections"][0]) > 0
    for key, name in DETECTION_KEYS.items():
        np.testing.assert_allclose(outputs[name].numpy(), expected[key].numpy(), atol=1e-4)


def test_encoded_signature_runs_each_image_at_its_own_size(saved_model):
    images = [random_image(2), random_image(3, height=90, width=150)]
    batch = tf.constant([png(image) for image in images])
    outputs = saved_model.signatures["serving_default"](images=batch)
    assert outputs["detection_boxes"].shape == (2, 100, 4)
    for i, image in enumerate(images):
        # detect_uint8 equals `CornerNet.detect` (test above); one image, its own size.
        expected = saved_model.signatures["detect_uint8"](images=tf.constant(image[None]))
        for name in DETECTION_KEYS.values():
            np.testing.assert_allclose(outputs[name][i].numpy(), expected[name][0].numpy())
    boxes = outputs["detection_boxes"][1].numpy()[: int(outputs["num_detections"][1])]
    assert len(boxes) > 0
    assert boxes[:, 2].max() <= 150 and boxes[:, 3].max() <= 90  # pixels of image 1


@pytest.mark.parametrize("payload", [b"not an image", b""])
def test_undecodable_image_is_an_invalid_argument(saved_model, payload):
    batch = tf.constant([png(random_image(4, 32, 32)), payload])
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"image\] \[1\] \[of the batch is not"
    ):
        saved_model.signatures["serving_default"](images=batch)


@pytest.mark.parametrize(
    "shape", [(1, 0, 0, 3), (0, 32, 32, 3), (1, 32, 32, 4), (32, 32, 3), (1, 32, 32, 3, 2)]
)
def test_uint8_signature_refuses_other_shapes_naming_the_input(saved_model, shape):
    # Before: 9 detections for the empty image, internal errors (`paddings`,
    # `Incompatible shapes`) for the others.
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"detect_uint8: `images` must be a non-empty batch \(B, H, W, 3\) of RGB images",
    ):
        saved_model.signatures["detect_uint8"](images=tf.zeros(shape, tf.uint8))


@pytest.mark.parametrize("value", [[], b"x", [[b"x", b"y"]]], ids=["empty", "scalar", "rank-2"])
def test_encoded_signature_refuses_other_shapes_naming_the_input(saved_model, value):
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"serving_default: `images` must be a non-empty list of encoded image files",
    ):
        saved_model.signatures["serving_default"](images=tf.constant(value, tf.string))


def test_truncated_png_is_an_invalid_argument(saved_model):
    truncated = png(random_image(5, 32, 32))[:60]
    with pytest.raises(tf.errors.InvalidArgumentError):
        saved_model.signatures["serving_default"](images=tf.constant([truncated]))


def test_existing_version_is_refused(export_model, saved_model_root):
    with pytest.raises(ValueError, match="already exists.*next free: 2"):
        export.export_saved_model(export_model, saved_model_root, version=1)


def test_failed_save_leaves_no_version_directory(export_model, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        export.export_saved_model(export_model, tmp_path, version=7)
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
def test_export_saved_model_rejects_bad_arguments(export_model, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export.export_saved_model(export_model, tmp_path, **kwargs)


def test_output_that_is_a_file_is_refused(export_model, tmp_path):
    output = tmp_path / "exports"
    output.write_text("not a folder")
    with pytest.raises(ValueError, match="exports' exists and is not a directory; pass a folder"):
        export.export_saved_model(export_model, output)


def test_export_rejects_non_models(tmp_path):
    with pytest.raises(TypeError, match="must be a CornerNet"):
        export.export_saved_model(object(), tmp_path)
    with pytest.raises(ValueError, match="no weights yet"):
        export.export_saved_model(CornerNet(**PRESETS["tiny"]), tmp_path)  # never built


def test_signatures_hold_the_model_s_max_detections(export_model):
    """The output size follows `test_config.max_detections` (no fixed 100)."""
    model = CornerNet.from_config(
        {**export_model.get_config(), "test_config": {"max_detections": 7, "flip_test": False}}
    )
    model.build((None, None, None, 3))
    model.set_weights(export_model.get_weights())
    functions = export.serving_functions(model)
    encoded = functions["serving_default"](tf.constant([png(random_image(3, 40, 56))]))
    raw = functions["detect_uint8"](tf.constant(random_image(3, 40, 56)[None]))
    for outputs in (encoded, raw):
        assert outputs["detection_boxes"].shape == (1, 7, 4)
        assert outputs["detection_scores"].shape == (1, 7)
        assert outputs["detection_classes"].shape == (1, 7)
    np.testing.assert_allclose(encoded["detection_scores"], raw["detection_scores"], atol=1e-6)


# ------------------------------------------------- what the signatures accept


def test_serving_default_detects_on_the_displayed_image(saved_model):
    contents = jpeg(stored_image(128, 64), 6)
    served = saved_model.signatures["serving_default"](images=tf.constant([contents]))
    pixels = saved_model.signatures["detect_uint8"](images=tf.constant(displayed(contents)[None]))
    assert int(served["num_detections"][0]) > 0
    for key in ("detection_boxes", "detection_scores", "detection_classes", "num_detections"):
        np.testing.assert_allclose(served[key].numpy(), pixels[key].numpy(), atol=1e-4)
    boxes = served["detection_boxes"].numpy()[0, : int(served["num_detections"][0])]
    assert boxes[:, 2].max() <= 128 and boxes[:, 3].max() <= 64  # x within the 128 displayed


def test_savedmodel_takes_no_float_pixels(saved_model):
    # Non-finite pixels cannot reach the SavedModel: its inputs are uint8 or encoded files.
    signature = saved_model.signatures["detect_uint8"]
    image = np.full((1, 40, 48, 3), 100.0, np.float32)
    image[0, 3, 4, 0] = np.inf
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        signature(images=tf.constant(image))
    assert signature.structured_input_signature[1]["images"].dtype == tf.uint8


def test_serving_default_refuses_a_bomb_from_its_header(saved_model):
    # A 20000x20000 PNG of under 200 KB (1.2 GB of pixels): "too large" is the
    # header check's verdict, so the decoder never runs.
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 200_000
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="too large.*read from the file header"
    ):
        saved_model.signatures["serving_default"](images=tf.constant([bomb]))
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 600 * 1024


def test_detect_uint8_refuses_a_side_above_the_limit(saved_model):
    limit = DEFAULT_MAX_IMAGE_SIDE
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"sides above {limit} pixels"):
        saved_model.signatures["detect_uint8"](images=tf.zeros([1, 1, limit + 1, 3], tf.uint8))
