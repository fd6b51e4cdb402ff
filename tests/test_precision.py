"""bfloat16 inference: `load_model(precision=...)`, `with_precision` and `--precision`."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from export_helpers import SIZE
from harness import save_small_model
from PIL import Image

from cornernet_tf.models import load_model
from cornernet_tf.models.loading import with_precision

BIN = Path(sys.executable).parent


def _shapes_images(shapes_root, count):
    files = sorted((shapes_root / "val2017").glob("*.png"))[:count]
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="module")
def bfloat16_model(export_model):
    return with_precision(export_model, "bfloat16")


def test_bfloat16_computes_in_bfloat16_with_the_same_float32_weights(export_model, bfloat16_model):
    assert bfloat16_model.dtype_policy.name == "mixed_bfloat16"
    assert bfloat16_model.heads["tl_heatmap"][-1].out.compute_dtype == "bfloat16"
    weights = bfloat16_model.get_weights()
    assert {w.dtype for w in weights} == {np.dtype("float32")}
    for ours, theirs in zip(weights, export_model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert with_precision(export_model, "float32") is export_model


def test_bfloat16_heads_and_detections_are_close_to_float32(
    export_model, bfloat16_model, shapes_root
):
    image = np.zeros((1, SIZE, SIZE, 3), np.float32)
    picture = _shapes_images(shapes_root, 1)[0]
    image[0, : picture.shape[0], : picture.shape[1]] = picture
    heads = export_model(image, training=False)
    low = bfloat16_model(image, training=False)
    for key, expected in heads.items():
        assert low[key].dtype == "float32", key
        # bfloat16 keeps 8 significant bits: ~0.4% of a value, accumulated
        # over the network's ~20 layers, relative to the head's range.
        scale = float(np.abs(expected).max())
        np.testing.assert_allclose(low[key], expected, atol=0.05 * scale, err_msg=key)

    ours = export_model.detect(image)
    theirs = bfloat16_model.detect(image)
    top = 10
    np.testing.assert_allclose(
        theirs["confidence"][0, :top], ours["confidence"][0, :top], atol=0.05
    )
    # Each of the best float32 detections has a bfloat16 match at AP50's IoU:
    # an untrained network's logits nearly tie, so a corner may move to a
    # neighbouring output-map pixel (4 px).
    for box in np.asarray(ours["boxes"][0, :5]):
        assert _iou(box, np.asarray(theirs["boxes"][0, :top])).max() >= 0.5, box


def _iou(box, boxes):
    x1, y1 = np.maximum(box[0], boxes[:, 0]), np.maximum(box[1], boxes[:, 1])
    x2, y2 = np.minimum(box[2], boxes[:, 2]), np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def test_load_model_refuses_an_unknown_precision_before_reading(tmp_path):
    with pytest.raises(ValueError, match=r"precision 'bf16' is not supported; use one of float32"):
        load_model(tmp_path / "missing.keras", precision="bf16")


def test_predict_runs_in_bfloat16_and_refuses_unknown_precisions(tmp_path, shapes_root):
    model = save_small_model(tmp_path, seed=3)
    image = sorted((shapes_root / "val2017").glob("*.png"))[0]
    predict = BIN / "cornernet-predict"
    command = [str(predict), "--model", model, str(image)]
    bad = subprocess.run(
        [*command, "--output", str(tmp_path / "bad"), "--precision", "bf16"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert "argument --precision: invalid choice: 'bf16'" in bad.stderr
    assert "Traceback" not in bad.stderr

    done = subprocess.run(
        [*command, "--output", str(tmp_path / "out"), "--precision", "bfloat16"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "out" / f"{image.stem}.json").is_file(), sorted(
        p.name for p in (tmp_path / "out").iterdir()
    )
