"""`cornernet_tf.training.inputs`: dataset checks and the data seed of a (resumed) run."""

import json

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.spec.config import Config, config_from_dict
from cornernet_tf.training import inputs
from cornernet_tf.training.errors import SetupError


def test_validate_data_dir_names_the_missing_path(tmp_path, shapes_root):
    config = Config()
    inputs.validate_data_dir(config, shapes_root)  # a complete dataset passes
    with pytest.raises(SetupError, match="no such directory.*make_shapes.py"):
        inputs.validate_data_dir(config, tmp_path / "nope")
    with pytest.raises(SetupError, match="instances_train2017.json: annotation file"):
        inputs.validate_data_dir(config, tmp_path)
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{}")
    with pytest.raises(SetupError, match="train2017: image folder"):
        inputs.validate_data_dir(config, tmp_path)


def test_open_training_source_reports_a_bad_annotation_file(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{not json")
    (tmp_path / "train2017").mkdir()
    with pytest.raises(SetupError, match="instances_train2017.json' is not valid JSON"):
        inputs.open_training_source(Config(), tmp_path)


def test_data_seed_is_reproducible_and_changes_with_the_start_step():
    assert inputs.data_seed(317, 0) == inputs.data_seed(317, 0)
    seeds = {inputs.data_seed(317, step) for step in (0, 2, 4)} | {inputs.data_seed(318, 0)}
    assert len(seeds) == 4
    assert all(0 <= s < 2**31 for s in seeds)


def test_too_many_images_excluded_at_opening_is_a_setup_error(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "train2017").mkdir()
    cv2.imwrite(str(tmp_path / "train2017" / "ok.png"), np.zeros((40, 50, 3), np.uint8))
    names = ["ok.png", "gone1.png", "gone2.png"]  # two files missing: excluded at opening
    data = {
        "images": [
            {"id": i, "file_name": n, "height": 40, "width": 50} for i, n in enumerate(names, 1)
        ],
        "annotations": [
            {"id": i, "image_id": i, "category_id": 1, "bbox": [5, 5, 10, 10], "iscrowd": 0}
            for i in range(1, 4)
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(data))
    config = config_from_dict({"data": {"max_bad_images": 1}, "train": {"batch_size": 1}})
    source = inputs.open_training_source(config, tmp_path)
    assert len(source.report.bad_images) == 2
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with pytest.raises(SetupError, match=r"2 images .* max_bad_images=1.*data\.max_bad_images"):
        inputs.distribute_train_input(strategy, config, source, seed=0)
    allowed = config_from_dict({"data": {"max_bad_images": 2}, "train": {"batch_size": 1}})
    train_input = inputs.distribute_train_input(strategy, allowed, source, seed=0)
    assert train_input.bad_images() == 2 and len(train_input.pipelines) == 1
