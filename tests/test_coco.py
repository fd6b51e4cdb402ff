"""Reading COCO-format datasets: layout, class mapping, boxes, bad annotations."""

import json
import logging
import math
import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.data import coco
from cornernet_tf.data.coco import CategoryMap, CocoDataset
from cornernet_tf.evaluation import run_coco_evaluation


def write_dataset(root, images, annotations, categories, split="train2017", files=None):
    """Writes a COCO 2017 layout; `files` maps file names to bytes (default: a tiny PNG)."""
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    os.makedirs(os.path.join(root, split), exist_ok=True)
    png = cv2.imencode(".png", np.zeros((4, 6, 3), np.uint8))[1].tobytes()
    for img in images:
        name = img["file_name"]
        if files is not None and name in files:
            if files[name] is None:
                continue
            content = files[name]
        else:
            content = png
        path = os.path.join(root, split, name)
        if os.path.dirname(name) == "" and not os.path.isabs(name):
            with open(path, "wb") as f:
                f.write(content)
    data = {"images": images, "annotations": annotations, "categories": categories}
    with open(os.path.join(root, "annotations", f"instances_{split}.json"), "w") as f:
        json.dump(data, f)  # NaN is written as the (non-standard) NaN token COCO tools accept


CATEGORIES = [
    {"id": 90, "name": "toothbrush"},
    {"id": 1, "name": "person"},
    {"id": 18, "name": "dog"},
]


def test_shapes_dataset_reads(shapes_root):
    dataset = CocoDataset.open(shapes_root, "train2017")
    assert len(dataset) == 8
    assert dataset.num_classes == 3
    assert dataset.categories.names == ("rectangle", "ellipse", "triangle")
    assert dataset.report.counts == {}
    with open(shapes_root / "annotations" / "instances_train2017.json") as f:
        raw = json.load(f)
    first = dataset.records[0]
    anns = [a for a in raw["annotations"] if a["image_id"] == first.image_id]
    want = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)])
    np.testing.assert_allclose(first.boxes, want)  # official: x2 = x + w
    np.testing.assert_array_equal(first.labels, [a["category_id"] - 1 for a in anns])
    assert os.path.isfile(first.path) and first.height == 80 and first.width == 96
    assert dataset.coco.getImgIds() == [img["id"] for img in raw["images"]]


def test_category_map_is_sorted_contiguous_and_round_trips(tmp_path):
    cats = CategoryMap.from_coco_categories(CATEGORIES)
    assert cats.category_ids == (1, 18, 90)
    assert cats.names == ("person", "dog", "toothbrush")
    assert [cats.to_contiguous(i) for i in (1, 18, 90)] == [0, 1, 2]
    assert [cats.to_category_id(k) for k in range(3)] == [1, 18, 90]
    assert cats.name(2) == "toothbrush"
    cats.to_json(tmp_path / "classes.json")
    assert CategoryMap.from_json(tmp_path / "classes.json") == cats
    assert json.loads((tmp_path / "classes.json").read_text())["categories"][1] == {
        "class_id": 1,
        "category_id": 18,
        "name": "dog",
    }
    with pytest.raises(ValueError, match="unknown category id 2"):
        cats.to_contiguous(2)
    with pytest.raises(ValueError, match="class id 3"):
        cats.to_category_id(3)
    with pytest.raises(ValueError, match="duplicate"):
        CategoryMap((1, 1), ("a", "b"))
    with pytest.raises(ValueError, match="without gaps"):
        CategoryMap.from_dict({"categories": [{"class_id": 1, "category_id": 3, "name": "x"}]})


@pytest.mark.parametrize(
    "name,safe",
    [
        ("a.jpg", True),
        ("sub/a.jpg", True),
        ("sub/../a.jpg", True),
        ("../a.jpg", False),
        ("sub/../../a.jpg", False),
        ("/etc/passwd", False),
        ("\\\\server\\x.jpg", False),
        ("", False),
        (".", False),
        ("a\x00.jpg", False),
    ],
)
def test_safe_join(name, safe):
    joined = coco.safe_join("/data/images", name)
    assert (joined is not None) == safe
    if safe:
        assert joined.startswith("/data/images/")


def _bad_dataset(root):
    images = [
        {"id": 1, "file_name": "ok.png", "height": 100, "width": 200},
        {"id": 2, "file_name": "../escape.png", "height": 100, "width": 200},
        {"id": 3, "file_name": "/abs/path.png", "height": 100, "width": 200},
        {"id": 4, "file_name": "missing.png", "height": 100, "width": 200},
        {"id": 5, "file_name": "empty.png", "height": 100, "width": 200},
        {"id": 6, "file_name": "size.png", "height": -3, "width": 200},
        {"id": 7, "file_name": "no_annotations.png", "height": 10, "width": 10},
    ]
    good = {"image_id": 1, "category_id": 18, "iscrowd": 0}
    annotations = [
        {**good, "id": 10, "bbox": [10, 20, 30, 40]},
        {**good, "id": 11, "bbox": [0, 0, 5, 5], "category_id": 7},  # unknown category
        {**good, "id": 12, "bbox": [1, 2, math.nan, 4]},
        {**good, "id": 13, "bbox": [1, 2, -3, 4]},
        {**good, "id": 14, "bbox": [1, 2, 0, 4]},
        {**good, "id": 15, "bbox": [250, 20, 10, 10]},  # right of the 200-wide image
        {**good, "id": 16, "bbox": [-30, 5, 20, 10]},  # left of it
        {**good, "id": 17, "bbox": [0, 0, 50, 50], "iscrowd": 1},
        {**good, "id": 18, "bbox": [1, 2, 3]},
        {**good, "id": 19, "bbox": [190, 90, 30, 30], "category_id": 90},  # partly outside: kept
        {**good, "id": 20, "image_id": 99, "bbox": [1, 1, 2, 2]},  # unknown image
        {**good, "id": 21, "image_id": 2, "bbox": [1, 1, 2, 2]},  # of an excluded image
    ]
    write_dataset(
        root, images, annotations, CATEGORIES, files={"missing.png": None, "empty.png": b""}
    )


def test_bad_annotations_are_excluded_and_reported_by_id(tmp_path, caplog):
    _bad_dataset(tmp_path)
    with caplog.at_level(logging.INFO, logger="cornernet_tf.data.coco"):
        dataset = CocoDataset.open(tmp_path, "train2017")
    assert [r.image_id for r in dataset.records] == [1, 7]
    ok, empty = dataset.records
    np.testing.assert_allclose(ok.boxes, [[10, 20, 40, 60], [190, 90, 220, 120]])
    np.testing.assert_array_equal(ok.labels, [1, 2])  # dog -> 1, toothbrush -> 2
    assert empty.boxes.shape == (0, 4) and empty.labels.shape == (0,)  # valid, no objects

    by_kind = {}
    for p in dataset.report.problems:
        by_kind.setdefault(p.kind, []).append(
            p.annotation_id if p.annotation_id is not None else p.image_id
        )
    assert by_kind == {
        coco.UNSAFE_FILE_NAME: [2, 3],
        coco.MISSING_FILE: [4],
        coco.EMPTY_FILE: [5],
        coco.BAD_IMAGE_SIZE: [6],
        coco.UNKNOWN_CATEGORY: [11],
        coco.NON_FINITE_BBOX: [12],
        coco.NEGATIVE_SIZE: [13],
        coco.EMPTY_BOX: [14],
        coco.OUTSIDE_IMAGE: [15, 16],
        coco.CROWD: [17],
        coco.MALFORMED_BBOX: [18],
        coco.UNKNOWN_IMAGE: [20],
    }
    assert {p.image_id for p in dataset.report.bad_images} == {2, 3, 4, 5, 6}
    assert dataset.report.num_annotations == 2
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "outside_image=2" in warning and "unknown_category=1" in warning
    assert "annotation 11 (image 1)" in warning and "image 2: unsafe_file_name" in warning
    info = "\n".join(r.getMessage() for r in caplog.records if r.levelno == logging.INFO)
    assert "1 crowd annotations excluded" in info
    # The evaluation index keeps crowd annotations (COCOeval handles them itself).
    assert 17 in dataset.coco.anns


def test_check_files_false_keeps_missing_files(tmp_path):
    _bad_dataset(tmp_path)
    dataset = CocoDataset.open(tmp_path, "train2017", check_files=False)
    assert [r.image_id for r in dataset.records] == [1, 4, 5, 7]


def test_as_arrays_flattens_records(tmp_path):
    _bad_dataset(tmp_path)
    arrays = CocoDataset.open(tmp_path, "train2017").as_arrays()
    np.testing.assert_array_equal(arrays["row_splits"], [0, 2, 2])
    np.testing.assert_array_equal(arrays["image_id"], [1, 7])
    assert arrays["boxes"].shape == (2, 4) and arrays["labels"].dtype == np.int32
    assert arrays["path"][0].decode().endswith(os.path.join("train2017", "ok.png"))


def test_as_arrays_keeps_non_ascii_paths(tmp_path):
    root = tmp_path / "données"
    images = [
        {"id": 1, "file_name": "ü bild 0 写真.png", "height": 4, "width": 6},
        {"id": 2, "file_name": "plain.png"},
    ]
    write_dataset(root, images, [], CATEGORIES)
    dataset = CocoDataset.open(root, "train2017")
    arrays = dataset.as_arrays()
    assert [os.fsdecode(p) for p in arrays["path"]] == [r.path for r in dataset.records]
    assert dataset.records[0].path.endswith("ü bild 0 写真.png")
    np.testing.assert_array_equal(arrays["size"], [[4, 6], [0, 0]])


def test_implausible_annotated_sizes_exclude_the_image(tmp_path):
    images = [
        {"id": 1, "file_name": "a.png", "height": 1e40, "width": 6},
        {"id": 2, "file_name": "b.png", "height": 1e12, "width": 6},
        {"id": 3, "file_name": "c.png", "height": 40000, "width": 6},  # checked when read
    ]
    write_dataset(tmp_path, images, [], CATEGORIES)
    dataset = CocoDataset.open(tmp_path, "train2017")
    assert [(p.kind, p.image_id) for p in dataset.report.problems] == [
        (coco.BAD_IMAGE_SIZE, 1),
        (coco.BAD_IMAGE_SIZE, 2),
    ]
    assert [r.height for r in dataset.records] == [40000]


def test_missing_annotation_file_names_path_and_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"instances_val2017\.json.*make_shapes"):
        CocoDataset.open(tmp_path, "val2017")


def test_missing_image_folder_names_path(tmp_path):
    write_dataset(tmp_path, [], [], CATEGORIES)
    os.rmdir(tmp_path / "train2017")
    with pytest.raises(FileNotFoundError, match="image folder .*train2017"):
        CocoDataset.open(tmp_path, "train2017")


@pytest.mark.parametrize(
    "content,match",
    [
        ("{not json", "not valid JSON"),
        ("[]", "JSON object"),
        ('{"images": [], "annotations": []}', "'categories'"),
        ('{"images": [{"file_name": "a.png"}], "categories": [{"id": 1}]}', "integer 'id'"),
        ('{"images": [], "categories": []}', r"train2017.json'? has an empty 'categories'"),
        ('{"images": [], "categories": [{"name": "x"}]}', "category without"),
    ],
)
def test_malformed_annotation_files(tmp_path, content, match):
    write_dataset(tmp_path, [], [], CATEGORIES)
    (tmp_path / "annotations" / "instances_train2017.json").write_text(content)
    with pytest.raises(ValueError, match=match):
        CocoDataset.open(tmp_path, "train2017")


def test_bad_split_argument(tmp_path):
    with pytest.raises(ValueError, match="split"):
        CocoDataset.open(tmp_path, "")


def test_duplicate_image_ids_are_refused_naming_the_file(tmp_path):
    # Before: the second file took the first file's boxes and the first was dropped.
    images = [
        {"id": 7, "file_name": "a.png", "height": 4, "width": 6},
        {"id": 7, "file_name": "b.png", "height": 4, "width": 6},
        {"id": 8, "file_name": "c.png", "height": 4, "width": 6},
    ]
    annotations = [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2]}]
    write_dataset(tmp_path, images, annotations, CATEGORIES)
    with pytest.raises(ValueError, match=r"instances_train2017.json'?: duplicate image ids \[7\]"):
        CocoDataset.open(tmp_path, "train2017")


def test_duplicate_category_ids_are_refused_naming_the_file(tmp_path):
    categories = [*CATEGORIES, {"id": 18, "name": "cat"}]
    write_dataset(tmp_path, [], [], categories)
    with pytest.raises(
        ValueError, match=r"instances_train2017.json'?: duplicate category ids \[18\]"
    ):
        CocoDataset.open(tmp_path, "train2017")


# ------------------------------------------- the ground truth training keeps


def _coco(tmp_path, extra_annotations=(), **changes):
    """Two 64x48 images with three good boxes, plus `extra_annotations`."""
    image_dir = tmp_path / "val"
    image_dir.mkdir(exist_ok=True)
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "height": 48, "width": 64},
            {"id": 2, "file_name": "b.png", "height": 48, "width": 64},
        ],
        "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 5, 20, 18], "area": 360},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [30, 10, 25, 30], "area": 750},
            {"id": 3, "image_id": 2, "category_id": 1, "bbox": [10, 8, 40, 30], "area": 1200},
            *extra_annotations,
        ],
    }
    data.update(changes)
    for k, image in enumerate(data["images"]):
        if isinstance(image, dict) and "file_name" in image:
            cv2.imwrite(str(image_dir / image["file_name"]), np.full((48, 64, 3), k, np.uint8))
    return data, str(tmp_path / "instances_val.json"), str(image_dir)


class _GroundTruthDetector:
    """Detects exactly the boxes training keeps: image k is filled with the value k."""

    def __init__(self, dataset):
        rows = [(r.boxes, r.labels) for r in dataset.records]
        width = max(len(b) for b, _ in rows)
        self.boxes = np.full((len(rows), width, 4), -1, np.float32)
        self.classes = np.full((len(rows), width), -1, np.int32)
        for k, (boxes, labels) in enumerate(rows):
            self.boxes[k, : len(boxes)], self.classes[k, : len(labels)] = boxes, labels

    def detect(self, image):
        k = tf.cast(image[0, 0, 0, 0], tf.int32)
        classes = tf.gather(tf.constant(self.classes), k)[None]
        return {
            "boxes": tf.gather(tf.constant(self.boxes), k)[None],
            "confidence": tf.where(classes >= 0, 1.0, -1.0),
            "classes": classes,
        }


def _ann(ann_id, bbox, image_id=1, category_id=1, **extra):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": bbox, **extra}


GROUND_TRUTH_CASES = [
    # (id, extra annotations, excluded kinds {kind: count})
    ("nan-box", [_ann(10, [float("nan"), 3, 10, 10])], {"non_finite_bbox": 1}),
    ("negative-size", [_ann(11, [5, 5, -10, 10])], {"negative_size": 1}),
    ("zero-size", [_ann(12, [5, 5, 0, 10], image_id=2)], {"empty_box": 1}),
    ("outside-image", [_ann(13, [70, 5, 10, 10])], {"outside_image": 1}),
    ("unknown-category", [_ann(14, [1, 1, 8, 8], category_id=9)], {"unknown_category": 1}),
    ("malformed-bbox", [_ann(15, [1, 1, 8])], {"malformed_bbox": 1}),
    ("duplicate-annotation-id", [_ann(2, [40, 30, 12, 12], image_id=2)], {}),
    ("missing-area", [_ann(16, [40, 2, 12, 12], category_id=2)], {}),
    ("crowd-region", [_ann(17, [0, 0, 64, 48], iscrowd=1, area=3072)], {}),
]


@pytest.mark.parametrize(
    ("extra", "excluded"),
    [pytest.param(extra, excluded, id=name) for name, extra, excluded in GROUND_TRUTH_CASES],
)
def test_the_ground_truth_itself_scores_ap_one(tmp_path, extra, excluded):
    # Evaluation scores against the boxes training keeps: the ground truth scores AP 1.
    data, ann_file, image_dir = _coco(tmp_path, extra)
    dataset = CocoDataset.from_dict(data, ann_file, image_dir)
    evaluation = run_coco_evaluation(_GroundTruthDetector(dataset), dataset, verbose=0)
    assert evaluation.stats["AP"] == pytest.approx(1.0)
    assert evaluation.excluded_annotations == excluded


@pytest.mark.parametrize(
    ("section", "entry", "message"),
    [
        ("images", {"id": 1, "file_name": "b.png", "height": 48, "width": 64}, "image ids \\[1\\]"),
        ("categories", {"id": 2, "name": "again"}, "category ids \\[2\\]"),
    ],
)
def test_duplicate_ids_are_refused_naming_the_file(tmp_path, section, entry, message):
    data, ann_file, image_dir = _coco(tmp_path)
    data[section].append(entry)
    with pytest.raises(ValueError, match=f"instances_val.json.*duplicate {message}"):
        CocoDataset.from_dict(data, ann_file, image_dir)


def test_a_dataset_image_that_is_no_regular_file_is_excluded_by_name(tmp_path):
    data, ann_file, image_dir = _coco(tmp_path)
    os.remove(os.path.join(image_dir, "b.png"))
    os.mkfifo(os.path.join(image_dir, "b.png"))  # reading it would block for ever
    dataset = CocoDataset.from_dict(data, ann_file, image_dir)
    assert [r.image_id for r in dataset.records] == [1]
    assert dataset.report.counts == {"not_a_file": 1}
