"""Shared pytest fixtures."""

import collections
import os

import corpus
import numpy as np
import pytest
import tensorflow as tf
from export_helpers import CLASS_NAMES, SIZE
from seeding import seed_weights

from cornernet_tf import export
from cornernet_tf.cli import evaluate as evaluate_cli
from cornernet_tf.cli import export as export_cli
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.data import shapes
from cornernet_tf.models.cornernet import CornerNet

# `make test` runs the suite in two processes (pytest-xdist, `--dist loadgroup`):
# most of its time is single-threaded graph tracing. Each test file stays in one
# process, so its module fixtures are built once; the files sharing the exported
# model's session fixtures (building and converting it takes a minute) form one
# group; the long training tests spread one by one, except those sharing a
# module fixture of their file (one traced training step), which form a group.
_EXPORT_GROUP = {
    "test_runtime.py",
    "test_saved_model.py",
    "test_saved_model_warmup.py",
    "test_serving_client.py",
    "test_serving_grpc.py",
    "test_tflite.py",
}


_EACH_TEST = {"test_train.py", "test_train_step.py", "test_imports.py"}
_SHARED_STEPS = ("adam_model", "sgd_model")  # test_train_step.py's compiled models
# Files of few tests whose module fixtures take most of a minute (models built,
# converted, exported): handed out with the long training tests, not by their
# number of tests, so that they do not end the run on one process.
_LONG_FILES = {
    *("test_convert.py", "test_finetune.py", "test_model.py", "test_onnx.py"),
    "test_saccade_training.py",
    "test_squeeze.py",
    "test_squeeze_pipeline.py",
}


# First among the plugins' hooks: pytest-xdist reads the groups in its own
# `pytest_collection_modifyitems` (it appends them to the test ids); run after it,
# the markers would be ignored and every test sent out on its own.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        name = item.path.name
        if name in _EXPORT_GROUP:
            group = "export"
        elif name in _EACH_TEST:
            shared = [f for f in _SHARED_STEPS if f in item.fixturenames]
            group = f"{name}::{shared[0]}" if shared else item.nodeid
        else:
            group = name
        item.add_marker(pytest.mark.xdist_group(group))
        groups[item] = group
    # Longest work first (`make test` passes --no-loadscope-reorder, so xdist
    # hands out the groups in this order): the export group, then the training
    # tests, one or a few per group, and the long files, then the other files,
    # those of more tests first. xdist's own order (most tests first) would
    # leave the long training tests for the end, where one worker runs them
    # while the other has nothing left.
    # A group's tests stay together (a worker runs its tests in this order):
    # a test of another group in between may set TensorFlow's global seed
    # (`training.train` does), which makes the group's traced functions be
    # instantiated and optimised again.
    size = collections.Counter(groups.values())
    seen = {}
    for index, item in enumerate(items):
        seen.setdefault(groups[item], index)

    def rank(item):
        name = item.path.name
        first = 0 if name in _EXPORT_GROUP else 1 if name in _EACH_TEST | _LONG_FILES else 2
        return first, -size[groups[item]] if first == 2 else 0, seen[groups[item]]

    items.sort(key=rank)


@pytest.fixture(scope="session")
def shapes_root(tmp_path_factory):
    """A tiny embedded shapes dataset (COCO 2017 layout, PNG, 96x80 px).

    8 train and 4 val images, 1-4 shapes each; lossless PNG so tests can
    compare decoded pixels exactly. Session-scoped: do not modify its files
    (copy them into your own tmp_path first).
    """
    root = tmp_path_factory.mktemp("shapes")
    config = shapes.ShapesConfig(
        height=80, width=96, max_objects=4, min_object_size=8, image_format="png"
    )
    shapes.make_shapes_dataset(root, num_train=8, num_val=4, seed=7, config=config)
    return root


# --- export, runtime and serving: one tiny model, its SavedModel and TFLite files.
# Session-scoped because building and converting take most of those tests' time;
# do not modify them (the model's weights, the files) in a test.


@pytest.fixture(scope="session")
def export_model():
    """Tiny CornerNet with spread-out heatmap logits (fewer near-tied scores)."""
    seed_weights(1)
    net = CornerNet.from_preset("tiny", class_names=CLASS_NAMES)
    net(np.zeros((1, SIZE, SIZE, 3), np.float32), training=False)
    for corner in ("tl", "br"):
        heat = net.heads[f"{corner}_heatmap"][-1].out
        heat.kernel.assign(heat.kernel * 40.0)
        embedding = net.heads[f"{corner}_embedding"][-1].out
        embedding.kernel.assign(embedding.kernel * 0.0)  # every pair passes the AE test
    return net


@pytest.fixture(scope="session")
def export_detect(export_model):
    """`export_model.detect` as a `tf.function` over uint8 batches of any size."""
    spec = tf.TensorSpec([None, None, None, 3], tf.uint8)
    return tf.function(export_model.detect, input_signature=[spec], autograph=False)


@pytest.fixture(scope="session")
def saved_model_root(export_model, tmp_path_factory):
    """Export root holding `cornernet/1/`, the SavedModel of `export_model`."""
    root = tmp_path_factory.mktemp("exports")
    assert export.export_saved_model(export_model, root) == root / "cornernet" / "1"
    return root


@pytest.fixture(scope="session")
def saved_model(saved_model_root):
    """`saved_model_root`'s SavedModel, loaded with `tf.saved_model.load`."""
    return tf.saved_model.load(str(saved_model_root / "cornernet" / "1"))


@pytest.fixture(scope="session")
def calibration_images(shapes_root):
    """Eight shapes images letterboxed to the TFLite input, for int8 calibration."""
    return export.representative_images(shapes_root / "train2017", (SIZE, SIZE), max_images=8)


@pytest.fixture(scope="session")
def tflite_models(export_model, calibration_images):
    """`{"none" | "float16" | "int8": flatbuffer}` of `export_model` at 127x127."""
    return export.convert_tflite_variants(
        export_model, input_size=(SIZE, SIZE), representative_data=calibration_images
    )


# --- the hostile-input corpus (tests/corpus.py, tests/test_corpus_*.py)


@pytest.fixture(scope="module")
def corpus_inputs(export_model, shapes_root, tmp_path_factory):
    """The shared tiny model as a .keras file, and a copy of the shapes dataset."""
    root = tmp_path_factory.mktemp("corpus")
    model = root / "model.keras"
    export_model.save(model)
    return model, shapes_root


@pytest.fixture
def workspace(corpus_inputs, tmp_path, monkeypatch, export_model):
    model, data = corpus_inputs
    original = predict_cli.load_model

    def load_shared(path, precision="float32"):
        # The shared model without reloading it; other files and precisions load for real.
        if precision == "float32" and os.path.samefile(path, model):
            return export_model
        return original(path, precision)

    for module in (predict_cli, evaluate_cli, export_cli):
        monkeypatch.setattr(module, "load_model", load_shared)
    ws_root = tmp_path / "ws"
    ws_root.mkdir()
    monkeypatch.chdir(ws_root)
    return corpus.Workspace(ws_root, model, data)
