"""The embedded synthetic shapes dataset and its command line."""

import filecmp
import json
import os

import numpy as np
import pytest
from pycocotools.coco import COCO

from cornernet_tf.cli import make_shapes as make_shapes_cli
from cornernet_tf.data import shapes
from cornernet_tf.data.coco import CocoDataset


def test_layout_and_pycocotools(shapes_root):
    for split, count in (("train2017", 8), ("val2017", 4)):
        ann = shapes_root / "annotations" / f"instances_{split}.json"
        coco = COCO(str(ann))
        assert len(coco.getImgIds()) == count
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(shapes.CLASSES)
        for image in coco.loadImgs(coco.getImgIds()):
            assert (shapes_root / split / image["file_name"]).is_file()
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            assert 1 <= len(anns) <= 4
            for a in anns:
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and x + w <= 96 and y + h <= 80
                assert 0 < a["area"] <= w * h and a["iscrowd"] == 0
    assert CocoDataset.open(shapes_root, "val2017").report.counts == {}


def test_boxes_are_the_visible_extents_and_occlusion_is_bounded():
    config = shapes.ShapesConfig(height=64, width=64, min_objects=6, max_objects=8)
    occluded = 0
    for index in range(12):
        drawn = shapes.render_image(np.random.default_rng([3, index]), config)
        owner = drawn["owner"]
        assert drawn["image"].shape == (64, 64, 3) and drawn["image"].dtype == np.uint8
        assert 1 <= len(drawn["labels"]) <= 8
        for k, (x, y, w, h) in enumerate(drawn["boxes"]):
            ys, xs = np.nonzero(owner == k)
            assert (x, y, w, h) == (xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1)
            assert drawn["areas"][k] == len(xs)
            assert drawn["areas"][k] >= config.min_visible_fraction * drawn["full_areas"][k]
            occluded += drawn["areas"][k] < drawn["full_areas"][k]
    assert occluded > 0  # the images do have partial occlusion


def test_object_sizes_span_the_configured_range():
    config = shapes.ShapesConfig(height=128, width=128)
    sides = []
    for index in range(40):
        drawn = shapes.render_image(np.random.default_rng([5, index]), config)
        sides.extend(np.maximum(drawn["boxes"][:, 2], drawn["boxes"][:, 3]))
        assert set(drawn["labels"]) <= {0, 1, 2}
    sides = np.array(sides)
    assert sides.max() <= 0.6 * 128 + 1
    assert sides.min() < 16 and sides.max() > 50  # small and large objects


def test_same_seed_same_files_different_seed_different(tmp_path):
    config = shapes.ShapesConfig(height=48, width=40)
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        shapes.make_shapes_dataset(
            tmp_path / name, num_train=3, num_val=1, seed=seed, config=config
        )
    match, mismatch, _ = filecmp.cmpfiles(
        tmp_path / "a" / "train2017",
        tmp_path / "b" / "train2017",
        os.listdir(tmp_path / "a" / "train2017"),
    )
    assert len(match) == 3 and not mismatch
    ann = "annotations/instances_train2017.json"
    assert (tmp_path / "a" / ann).read_text() == (tmp_path / "b" / ann).read_text()
    assert (tmp_path / "a" / ann).read_text() != (tmp_path / "c" / ann).read_text()
    # val images are not copies of train images
    train = (tmp_path / "a" / "train2017" / "000000000001.jpg").read_bytes()
    assert train != (tmp_path / "a" / "val2017" / "000000000001.jpg").read_bytes()


def test_images_are_independent_of_the_count(tmp_path):
    config = shapes.ShapesConfig(height=32, width=32, image_format="png")
    shapes.write_split(tmp_path / "few", "train2017", 2, seed=4, config=config)
    shapes.write_split(tmp_path / "many", "train2017", 5, seed=4, config=config)
    name = "train2017/000000000002.png"
    assert (tmp_path / "few" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"height": 0}, "height"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"image_format": "gif"}, "image_format"),
        ({"height": 10, "width": 10, "min_object_size": 8}, "min_object_size"),
        ({"max_object_fraction": 1.5}, "max_object_fraction"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        shapes.ShapesConfig(**kwargs)


def test_cli_writes_the_dataset(tmp_path, capsys):
    cli = make_shapes_cli
    out = tmp_path / "cli"
    args = ["--output", str(out), "--train", "2", "--val", "1", "--size", "40", "--format", "png"]
    assert cli.main(args) == 0
    assert "wrote 2 + 1 images" in capsys.readouterr().out
    data = json.loads((out / "annotations" / "instances_train2017.json").read_text())
    assert len(data["images"]) == 2 and data["images"][0]["width"] == 40
    assert (out / "val2017" / "000000000001.png").is_file()
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--output", str(out), "--train", "-1"])
    assert exit_info.value.code == 2 and "--train" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--output", str(out), "--size", "8"])  # objects cannot fit
    assert "min_object_size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # no abbreviations: --out is not --output
        cli.main(["--out", str(out)])
    assert exit_info.value.code == 2 and "--out" in capsys.readouterr().err
