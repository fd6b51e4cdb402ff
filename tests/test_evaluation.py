"""COCO evaluation (`cornernet_tf.evaluation`) and `cornernet-evaluate`: scores and bad input.

The numbers are checked with a stand-in detector whose `detect` returns each
image's ground truth (looked up by its pixels): perfect detections must give
AP 1, and an image without detections lowers each class's AP to the closed
form of COCO's 101-point interpolation. The script runs end to end (in this
process) with an untrained, very small CornerNet for the plumbing.
"""

import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import tensorflow as tf
from harness import save_small_model

from cornernet_tf import evaluation, images
from cornernet_tf.cli import evaluate as evaluate_cli
from cornernet_tf.data.coco import CategoryMap, CocoDataset

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "shapes_tiny.yaml")
MAX_DETECTIONS = 100
RECALL_THRESHOLDS = np.linspace(0.0, 1.0, 101)  # COCOeval.params.recThrs


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(image.tobytes() + str(image.shape).encode()).hexdigest()


class GroundTruthDetector:
    """Stands in for CornerNet: `detect` returns the image's ground-truth boxes (score 1)."""

    def __init__(self, dataset, num_classes=None):
        self.num_classes = num_classes or dataset.num_classes
        self.class_names = list(dataset.categories.names)
        self.test_config = {"flip_test": True, "top_k": 100}
        self.traced_configs = []
        self.table = {}
        for record in dataset.records:  # PNG: OpenCV decodes the same pixels as TF
            image = cv2.cvtColor(cv2.imread(record.path), cv2.COLOR_BGR2RGB)
            self.table[_key(image)] = (record.boxes, record.labels)

    def _lookup(self, images):
        boxes, labels = self.table[_key(images[0])]
        n = len(labels)
        out_boxes = np.full([1, MAX_DETECTIONS, 4], -1.0, np.float32)
        out_scores = np.full([1, MAX_DETECTIONS], -1.0, np.float32)
        out_classes = np.full([1, MAX_DETECTIONS], -1, np.int32)
        out_boxes[0, :n], out_scores[0, :n], out_classes[0, :n] = boxes, 1.0, labels
        return out_boxes, out_scores, out_classes

    def detect(self, images, test_config=None):
        self.traced_configs.append(test_config)
        boxes, scores, classes = tf.numpy_function(
            self._lookup, [images], [tf.float32, tf.float32, tf.int32]
        )
        return {
            "boxes": boxes,
            "confidence": scores,
            "classes": classes,
            "num_detections": tf.reduce_sum(tf.cast(classes >= 0, tf.int32), 1),
        }


def _class_counts(records, num_classes):
    labels = np.concatenate([r.labels for r in records])
    return np.bincount(labels, minlength=num_classes)


def _expected_ap(found, total):
    """COCO AP of classes whose every detection is right, `found` of `total` objects found.

    Precision is 1 up to recall found/total and 0 beyond, so AP is the share of
    the 101 recall thresholds at or below that recall; classes without
    objects are undefined (-1) and left out of the mean.
    """
    per_class = np.array(
        [
            np.mean(RECALL_THRESHOLDS <= f / t + 1e-12) if t else -1.0
            for f, t in zip(found, total, strict=True)
        ]
    )
    return per_class, float(np.mean(per_class[per_class > -1]))


@pytest.fixture(scope="module")
def val_set(shapes_root):
    return CocoDataset.open(shapes_root, "val2017")


def test_detections_to_coco_converts_boxes_ids_and_rounding():
    categories = CategoryMap((3, 7, 11), ("a", "b", "c"))
    boxes = np.array([[10.0, 20.0, 30.5, 60.25], [1.234, 2.345, 5.0, 9.0], [-1, -1, -1, -1]])
    results = evaluation.detections_to_coco(
        42, boxes, np.array([0.91234, 0.5, -1.0]), np.array([2, 0, -1]), categories
    )
    assert results == [
        {"image_id": 42, "category_id": 11, "bbox": [10.0, 20.0, 20.5, 40.25], "score": 0.91},
        {"image_id": 42, "category_id": 3, "bbox": [1.23, 2.35, 3.77, 6.65], "score": 0.5},
    ]
    exact = evaluation.detections_to_coco(
        1, boxes[1:2], np.array([0.91234]), np.array([1]), categories, decimals=None
    )
    np.testing.assert_allclose(exact[0]["bbox"], [1.234, 2.345, 5.0 - 1.234, 9.0 - 2.345])
    assert exact[0]["category_id"] == 7 and exact[0]["score"] == pytest.approx(0.91234)
    with pytest.raises(ValueError, match="outside the dataset's 3 classes"):
        evaluation.detections_to_coco(1, boxes[:1], [0.5], [3], categories)
    with pytest.raises(ValueError, match="same length"):
        evaluation.detections_to_coco(1, boxes, [0.5], [0, 1, 2], categories)


def test_ground_truth_as_detections_gives_ap_one(val_set):
    model = GroundTruthDetector(val_set)
    metrics = evaluation.evaluate_coco(model, val_set, verbose=0)
    assert set(evaluation.STAT_NAMES) <= set(metrics)
    for name in ("AP", "AP50", "AP75", "AR10", "AR100"):
        assert metrics[name] == pytest.approx(1.0), name
    counts = _class_counts(val_set.records, val_set.num_classes)
    for name, count in zip(val_set.categories.names, counts, strict=True):
        assert metrics[f"AP/{name}"] == (pytest.approx(1.0) if count else -1.0)
    assert all(isinstance(v, float) for v in metrics.values())


def test_unreadable_image_counts_as_missed_with_the_closed_form_ap(shapes_root, tmp_path, caplog):
    root = tmp_path / "shapes"
    shutil.copytree(shapes_root, root)
    dataset = CocoDataset.open(root, "val2017")
    bad = max(dataset.records, key=lambda r: len(r.labels))
    model = GroundTruthDetector(dataset)  # indexed before the file is broken
    with open(bad.path, "rb") as f:
        truncated = f.read()[:60]
    with open(bad.path, "wb") as f:
        f.write(truncated)
    with caplog.at_level(logging.WARNING, logger="cornernet_tf.evaluation"):
        result = evaluation.run_coco_evaluation(model, dataset, verbose=0)
    assert [path for path, _ in result.bad_images] == [bad.path]
    assert bad.path in caplog.text and "no detections" in caplog.text
    total = _class_counts(dataset.records, dataset.num_classes)
    found = total - np.bincount(bad.labels, minlength=dataset.num_classes)
    per_class, ap = _expected_ap(found, total)
    assert ap < 1.0
    assert result.stats["AP"] == pytest.approx(ap)
    assert result.stats["AP50"] == pytest.approx(ap)
    np.testing.assert_allclose(list(result.per_class_ap.values()), per_class)
    missed = evaluation.missed_objects(result.coco_eval)
    assert missed == {r.image_id: (len(r.labels) if r is bad else 0) for r in dataset.records}


def test_missed_objects_ignores_detections_below_the_score_threshold(val_set):
    ids = [r.image_id for r in val_set.records]
    low = val_set.records[0]
    results = []
    for r in val_set.records:
        score = np.full(len(r.labels), 0.1 if r is low else 0.9)
        results += evaluation.detections_to_coco(
            r.image_id, r.boxes, score, r.labels, val_set.categories
        )
    result = evaluation.evaluate_detections(val_set.coco, results, ids, val_set.categories)
    assert result.stats["AP"] == pytest.approx(1.0)
    assert set(evaluation.missed_objects(result.coco_eval, score_threshold=0.05).values()) == {0}
    missed = evaluation.missed_objects(result.coco_eval, score_threshold=0.3)
    assert missed == {r.image_id: (len(r.labels) if r is low else 0) for r in val_set.records}
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluation.missed_objects(result.coco_eval, iou_threshold=0.6001)


def test_no_detections_at_all_give_zero_ap_and_a_warning(val_set, caplog):
    ids = [r.image_id for r in val_set.records]
    with caplog.at_level(logging.WARNING, logger="cornernet_tf.evaluation"):
        result = evaluation.evaluate_detections(val_set.coco, [], ids, val_set.categories)
    assert "no detections" in caplog.text
    assert result.stats["AP"] == 0.0 and result.stats["AR100"] == 0.0
    counts = _class_counts(val_set.records, val_set.num_classes)
    assert list(result.per_class_ap.values()) == [0.0 if c else -1.0 for c in counts]
    assert "Average Precision" in result.summary
    with pytest.raises(ValueError, match="not in `image_ids`"):
        evaluation.evaluate_detections(
            val_set.coco, [{"image_id": 999, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 1}],
            ids, val_set.categories,
        )  # fmt: skip


def test_test_config_is_passed_for_the_run_and_the_model_is_untouched(val_set):
    model = GroundTruthDetector(val_set)
    result = evaluation.run_coco_evaluation(
        model, val_set, max_images=2, test_config={"flip_test": False}, verbose=0
    )
    assert len(result.image_ids) == 2
    assert result.image_ids == [r.image_id for r in val_set.records[:2]]
    assert model.traced_configs == [{"flip_test": False}]  # traced once
    assert model.test_config == {"flip_test": True, "top_k": 100}
    with pytest.raises(ValueError, match="unknown `test_config` keys \\['flip'\\]"):
        evaluation.run_coco_evaluation(model, val_set, test_config={"flip": False}, verbose=0)
    assert model.traced_configs == [{"flip_test": False}]
    evaluation.run_coco_evaluation(model, val_set, max_images=1, verbose=0)
    assert model.traced_configs[-1] is None  # no settings given: the model's own


def test_bad_arguments_are_named(val_set, shapes_root):
    with pytest.raises(ValueError, match="predicts 5 classes"):
        evaluation.evaluate_coco(GroundTruthDetector(val_set, num_classes=5), val_set, verbose=0)
    with pytest.raises(ValueError, match="max_images"):
        evaluation.evaluate_coco(GroundTruthDetector(val_set), val_set, max_images=0)
    with pytest.raises(FileNotFoundError, match="instances_val2071.json"):
        evaluation.evaluate_coco(GroundTruthDetector(val_set), shapes_root, "val2071")
    with pytest.raises(TypeError, match="dataset root"):
        evaluation.evaluate_coco(GroundTruthDetector(val_set), 3)


def test_make_evaluate_fn_returns_float_metrics(shapes_root, val_set):
    evaluate_fn = evaluation.make_evaluate_fn(str(shapes_root), "val2017", max_images=2)
    metrics = evaluate_fn(GroundTruthDetector(val_set))
    assert metrics["AP"] == pytest.approx(1.0)
    assert all(isinstance(v, float) for v in metrics.values())


# ---------------------------------------------------------------- the script


@pytest.fixture(scope="module")
def small_model_path(tmp_path_factory):
    return save_small_model(tmp_path_factory.mktemp("model"), seed=1)


def test_evaluate_script_end_to_end(shapes_root, small_model_path, tmp_path, capsys):
    script = evaluate_cli
    output, dets, plots = tmp_path / "m.json", tmp_path / "d.json", tmp_path / "plots"
    code = script.main(
        [
            "--config", CONFIG, "--data-dir", str(shapes_root), "--model", small_model_path,
            "--output", str(output), "--detections", str(dets), "--plots", str(plots),
            "--max-images", "3", "--verbose", "0", "--set", "test.flip_test=false",
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("Average Precision") == 6 and out.count("Average Recall") == 6
    assert "triangle" in out
    metrics = json.loads(output.read_text())
    assert {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR100"} <= set(metrics)
    assert list(metrics["per_class_AP"]) == ["rectangle", "ellipse", "triangle"]
    assert metrics["num_images"] == 3 and metrics["split"] == "val2017"
    assert metrics["test_config"]["flip_test"] is False  # the config's test section wins
    results = json.loads(dets.read_text())
    assert metrics["num_detections"] == len(results) > 0
    first_ids = {r.image_id for r in CocoDataset.open(shapes_root, "val2017").records[:3]}
    for r in results:
        assert set(r) == {"image_id", "category_id", "bbox", "score"}
        assert r["image_id"] in first_ids and r["category_id"] in (1, 2, 3)
        assert len(r["bbox"]) == 4 and r["bbox"][2] >= 0 and r["bbox"][3] >= 0
    for name in ("pr_curves.png", "missed.png"):
        with open(plots / name, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_evaluate_script_errors_name_the_file_and_exit_2(shapes_root, tmp_path, capsys):
    script = evaluate_cli
    fake_model = tmp_path / "model.keras"
    fake_model.write_bytes(b"not a keras zip")
    base = ["--config", CONFIG, "--data-dir", str(shapes_root), "--model", str(fake_model)]

    def run(*args):
        code = script.main(list(args))
        return code, capsys.readouterr().err

    code, err = run(*base[:5], str(tmp_path / "missing.keras"))
    assert code == 2 and "missing.keras: model file not found" in err
    code, err = run(*base[:2], "--data-dir", str(tmp_path / "nowhere"), *base[4:])
    assert code == 2 and "nowhere: --data-dir not found" in err
    code, err = run(*base, "--split", "val2071")
    assert code == 2 and "instances_val2071.json" in err
    assert "available splits: train2017, val2017" in err
    code, err = run(*base, "--set", "test.flip=false")
    assert code == 2 and "unknown key 'flip'" in err
    code, err = run(*base, "--max-images", "0")
    assert code == 2 and "--max-images" in err
    with pytest.raises(SystemExit) as exit_info:  # no abbreviations: --max is not --max-images
        run(*base, "--max", "1")
    assert exit_info.value.code == 2 and "unrecognized arguments: --max" in capsys.readouterr().err
    code, err = run(*base)
    assert code == 2 and "model.keras' is truncated or corrupt" in err


def test_non_ascii_paths_evaluate_and_a_wrongly_sized_image_is_named(shapes_root, tmp_path):
    root = tmp_path / "données"
    shutil.copytree(shapes_root, root)
    annotation_file = root / "annotations" / "instances_val2017.json"
    data = json.loads(annotation_file.read_text())
    renamed, resized = data["images"][0], data["images"][1]
    os.rename(root / "val2017" / renamed["file_name"], root / "val2017" / "ü bild 0 写真.png")
    renamed["file_name"] = "ü bild 0 写真.png"
    resized["width"] += 1  # the file is one pixel narrower than annotated
    annotation_file.write_text(json.dumps(data))
    dataset = CocoDataset.open(root, "val2017")
    result = evaluation.run_coco_evaluation(GroundTruthDetector(dataset), dataset, verbose=0)
    [wrong] = [r for r in dataset.records if r.image_id == resized["id"]]
    assert result.bad_images == [(wrong.path, images.REASONS[images.SIZE_MISMATCH])]
    missed = evaluation.missed_objects(result.coco_eval)
    assert missed == {r.image_id: (len(r.labels) if r is wrong else 0) for r in dataset.records}


# TensorFlow's C++ start-up lines (absl's "I0000 00:00:..." prefix among them).
TF_NOISE = re.compile(
    r"oneDNN|cuInit|cuda drivers|cpu_feature_guard|rebuild TensorFlow|Compiled cluster|"
    r"absl::InitializeLog|^[IWEF]\d{4} \d\d:\d\d:\d\d",
    re.MULTILINE,
)


def test_evaluate_prints_no_tensorflow_noise_and_plain_timestamped_logs(
    shapes_root, small_model_path, tmp_path
):
    # As users run it: a fresh process, stdout and stderr to pipes (as to a log file).
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    result = subprocess.run(
        [
            sys.executable, "-m", "cornernet_tf.cli.evaluate", "--config", CONFIG,
            "--data-dir", str(shapes_root), "--model", small_model_path, "--max-images", "1",
            "--output", str(tmp_path / "m.json"), "--detections", str(tmp_path / "d.json"),
            "--set", "test.flip_test=false",
        ],
        capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": REPO},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert TF_NOISE.findall(result.stderr) == [], result.stderr
    # One plain line per event, with the time; no progress bar in the file.
    assert re.search(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO: .*instances_val2017", result.stderr, re.M
    )
    assert "\r" not in result.stdout and "\x1b" not in result.stdout
    assert "Average Precision" in result.stdout


def test_verbose_output_shows_what_the_quiet_one_hides():
    probe = (
        "import sys\n"
        "from cornernet_tf.utils.console import setup_output\n"
        "setup_output(verbose=sys.argv[1] == 'verbose')\n"
        "import tensorflow as tf\n"
        "tf.constant(1.0) + 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP_")}
    stderr = {}
    for mode in ("quiet", "verbose"):
        stderr[mode] = subprocess.run(
            [sys.executable, "-c", probe, mode],
            capture_output=True, text=True, timeout=300, env={**env, "PYTHONPATH": REPO},
            check=True,
        ).stderr  # fmt: skip
    assert TF_NOISE.findall(stderr["quiet"]) == [], stderr["quiet"]
    assert TF_NOISE.findall(stderr["verbose"]), "TensorFlow printed nothing to hide"
