"""`cornernet-predict` and the drawing helpers of `cornernet_tf.visualization`.

The script runs in this process with an untrained, very small CornerNet on
generated shapes images, together with the bad inputs it must survive: a
text file, a missing file, grayscale and RGBA images.
"""

import json
import os
import shutil

import cv2
import numpy as np
import pytest
from harness import save_small_model

from cornernet_tf import visualization
from cornernet_tf.cli import predict as predict_cli

NAMES = ["rectangle", "ellipse", "triangle"]


@pytest.fixture(scope="module")
def predict_script():
    return predict_cli


@pytest.fixture(scope="module")
def small_model_path(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("model"), seed=2)


def test_predict_script_writes_images_and_json_and_reports_bad_files(
    predict_script, shapes_root, small_model_path, tmp_path, capsys
):
    sources = sorted((shapes_root / "val2017").glob("*.png"))
    inputs = tmp_path / "in"
    (inputs / "other").mkdir(parents=True)
    first = inputs / "a.png"
    shutil.copy(sources[0], first)
    second = inputs / "other" / "a.jpg"  # same stem: must not overwrite a.png's results
    cv2.imwrite(str(second), cv2.imread(str(sources[1])))
    gray, rgba = inputs / "gray.png", inputs / "rgba.png"
    cv2.imwrite(str(gray), cv2.imread(str(sources[2]), cv2.IMREAD_GRAYSCALE))
    cv2.imwrite(str(rgba), cv2.cvtColor(cv2.imread(str(sources[3])), cv2.COLOR_BGR2BGRA))
    text, missing = inputs / "notes.txt", inputs / "missing.png"
    text.write_text("not an image")
    out = tmp_path / "out"

    args = [str(p) for p in (first, text, second, missing, gray, rgba)]
    code = predict_script.main(
        ["--model", small_model_path, *args, "--output", str(out), "--score-threshold", "0"]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert f"{text}: cannot read the image" in captured.err
    assert f"{missing}: not found" in captured.err
    assert "2 of 6 inputs failed" in captured.err

    summary = json.loads((out / "detections.json").read_text())
    # Arguments naming nothing are found before the model loads, unreadable files after.
    assert [e["file"] for e in summary["errors"]] == [str(missing), str(text)]
    stems = ["a", "a_2", "gray", "rgba"]
    assert [os.path.basename(e["annotated"]) for e in summary["images"]] == [
        f"{s}.png" for s in stems
    ]
    for stem, source, entry in zip(
        stems, (first, second, gray, rgba), summary["images"], strict=True
    ):
        assert entry["file"] == str(source)
        assert json.loads((out / f"{stem}.json").read_text()) == entry
        annotated = cv2.imread(str(out / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        height, width = cv2.imread(str(source), cv2.IMREAD_UNCHANGED).shape[:2]
        assert annotated.shape == (height, width, 3)  # grayscale and RGBA became RGB
        assert (entry["height"], entry["width"]) == (height, width)
        detections = entry["detections"]
        assert 0 < len(detections) <= 100  # threshold 0: every valid slot
        for d in detections:
            x1, y1, x2, y2 = d["box"]
            assert 0 <= x1 <= x2 <= width and 0 <= y1 <= y2 <= height
            assert d["class_name"] == NAMES[d["class_id"]] and 0 <= d["score"] <= 1
        assert f"{entry['file']}: {len(detections)} objects" in captured.out


def test_detections_at_keeps_confident_valid_detections(predict_script):
    outputs = {
        "boxes": np.array([[[1, 2, 3, 4], [5, 6, 7, 8], [-1, -1, -1, -1]]], np.float32),
        "confidence": np.array([[0.9, 0.2, -1.0]], np.float32),
        "classes": np.array([[2, 0, -1]], np.int32),
        "num_detections": np.array([2], np.int32),
    }
    kept = predict_script.detections_at(outputs, 0, 0.3, NAMES)
    assert kept == [
        {"box": [1.0, 2.0, 3.0, 4.0], "class_id": 2, "class_name": "triangle", "score": 0.9}
    ]
    everything = predict_script.detections_at(outputs, 0, 0.0, NAMES)
    assert [d["class_id"] for d in everything] == [2, 0]


def test_predict_script_bad_arguments_exit_2(predict_script, tmp_path, capsys):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), np.zeros((8, 8, 3), np.uint8))
    code = predict_script.main(["--model", str(tmp_path / "m.keras"), str(image), "--output", "o"])
    assert code == 2 and "m.keras: model file not found" in capsys.readouterr().err
    model = tmp_path / "m.keras"
    model.write_bytes(b"junk")
    code = predict_script.main(
        ["--model", str(model), str(image), "--output", "o", "--score-threshold", "1.5"]
    )
    assert code == 2 and "--score-threshold must be in [0, 1]" in capsys.readouterr().err
    code = predict_script.main(["--model", str(model), str(image), "--output", str(image)])
    assert code == 2 and "--output must be a folder" in capsys.readouterr().err
    for size in ("0", "-3"):
        code = predict_script.main(
            ["--model", str(model), str(image), "--output", "o", "--batch-size", size]
        )
        assert code == 2 and f"--batch-size must be a positive integer, got {size}" in (
            capsys.readouterr().err
        )
    for seconds in ("-1", "nan"):
        code = predict_script.main(
            ["--model", str(model), str(image), "--output", "o", "--progress-interval", seconds]
        )
        assert code == 2 and "--progress-interval must be a number of seconds" in (
            capsys.readouterr().err
        )
    with pytest.raises(SystemExit) as exit_info:  # no inputs at all: argparse usage error
        predict_script.main(["--model", str(model), "--output", "o"])
    assert exit_info.value.code == 2
    assert "INPUT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # no abbreviations of options
        predict_script.main(["--model", str(model), str(image), "--output", "o", "--score", "1"])
    assert exit_info.value.code == 2 and "--score" in capsys.readouterr().err


def test_draw_detections_draws_each_class_in_its_colour():
    image = np.full((80, 200, 3), 7, np.uint8)
    boxes = np.array([[5, 26, 40, 60], [100, 30, 140, 70], [0, 0, 199, 79]], np.float32)
    classes = np.array([1, 2, -1])
    drawn = visualization.draw_detections(
        image, boxes, classes, np.array([0.5, 0.25, -1.0]), class_names=NAMES, line_thickness=1
    )
    palette = visualization.class_colors(3)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    np.testing.assert_array_equal(drawn[26, 5:41], np.tile(palette[1], (36, 1)))  # top edge
    np.testing.assert_array_equal(drawn[26:61, 40], np.tile(palette[1], (35, 1)))  # right
    np.testing.assert_array_equal(drawn[70, 100:141], np.tile(palette[2], (41, 1)))  # bottom
    assert np.all(drawn[28:59, 7:39] == 7)  # inside the box: untouched (the label is above)
    label = drawn[10:26, 5:41]  # above box 1: its label, on a band of its colour
    assert np.mean(np.all(label == palette[1], axis=-1)) > 0.4
    assert np.all(drawn[79, :] == 7)  # the padding slot (-1) is not drawn
    assert np.all(image == 7)  # the input is not modified
    assert len(set(palette)) == 3
    single = visualization.draw_detections(image, boxes, classes, color=(0, 255, 0))
    assert tuple(single[26, 10]) == (0, 255, 0) and tuple(single[50, 140]) == (0, 255, 0)
    with pytest.raises(ValueError, match="grayscale"):
        visualization.draw_detections(image[..., :1], boxes, classes)
    with pytest.raises(ValueError, match="one class per box"):
        visualization.draw_detections(image, boxes, classes[:2])


@pytest.mark.parametrize("size", [(64, 96), (128, 128), (1024, 1536)])
def test_labels_sit_on_a_filled_band_inside_the_image_at_any_size(size):
    """A box at each corner and one filling the image: every label is on a band of the
    box's colour, whole inside the image, with text about 2.5% of the shorter side."""
    height, width = size
    image = np.full((height, width, 3), 128, np.uint8)
    s = min(size) / 4
    boxes = np.array(
        [
            [0, 0, s, s],
            [width - s, 0, width - 1, s],
            [0, height - s, s, height - 1],
            [width - s, height - s, width - 1, height - 1],
        ],
        np.float32,
    )
    style = visualization.label_style(height, width)
    for k, box in enumerate(boxes):
        drawn = visualization.draw_detections(
            image,
            box[None],
            [k],
            [0.87],
            class_names=["a long class name"] * 4,
            color=(0, 0, 255),
        )
        band = np.all(drawn == (0, 0, 255), axis=-1)  # box lines and the label's band
        text = np.any(drawn != drawn[0, 0], axis=-1) & ~band & np.any(drawn != 128, axis=-1)
        rows, cols = np.nonzero(text)  # text pixels: neither grey background nor blue
        assert len(rows) > 0, f"box {k}: no label text drawn"
        text_height = rows.max() - rows.min() + 1
        assert text_height >= 8 and text_height >= 0.02 * min(size)
        # The text's bounding rectangle is filled: band or text, no grey image pixel.
        around = drawn[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert np.all(np.any(around != 128, axis=-1)), f"box {k}: text not on a filled band"
    ink = drawn[text]
    assert np.all(ink.max(axis=-1) > 200)  # white on the dark blue band
    assert style["font_scale"] > 0 and style["line_thickness"] >= 1


def test_labels_without_names_show_the_class_id_and_long_names_are_shortened():
    image = np.zeros((40, 40, 3), np.uint8)
    ids = visualization.draw_detections(image, [[2, 2, 30, 30]], [7], [0.5])
    assert np.any(ids != 0)
    long = visualization.draw_detections(
        image, [[2, 2, 30, 30]], [0], [0.5], class_names=["an extremely long name indeed"]
    )
    colour = visualization.class_colors(1)[0]
    ink = np.any(long != 0, axis=-1) & np.any(long != colour, axis=-1)  # the text's pixels
    assert ink.any() and not ink[:, 0].any() and not ink[:, -1].any()  # shortened, not cut
    accented = visualization.draw_detections(
        image, [[2, 2, 30, 30]], [0], [0.5], class_names=["café"]
    )
    marked = visualization.draw_detections(
        image, [[2, 2, 30, 30]], [0], [0.5], class_names=["caf?"]
    )
    np.testing.assert_array_equal(accented, marked)  # one "?" for the character
