"""Fine-tuning: `model.init_from`, the re-initialised heatmap outputs, resume, frozen backbone.

The sources are small models of this project saved as `.keras` files and an
official-layout state dict from the PyTorch re-implementation of
`tests/test_convert.py` (saved as `.npz`); the models are small hourglasses
at 63x63 input (two stacks where the stacks matter, one elsewhere), the
command runs on the shared shapes dataset (3 classes).
"""

import json
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
from official_torch import SMALL
from seeding import seed_weights

from cornernet_tf import convert
from cornernet_tf.cli import convert as convert_cli
from cornernet_tf.cli import predict as predict_cli
from cornernet_tf.models import load_model
from cornernet_tf.models.cornernet import OFFICIAL_MEAN_RGB, CornerNet
from cornernet_tf.spec.coco_classes import COCO_CLASS_NAMES
from cornernet_tf.spec.config import ConfigError, config_from_dict, load_config
from cornernet_tf.training import finetune
from cornernet_tf.training.schedule import LearningRate
from cornernet_tf.training.state import build_training_state, make_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES = ["rectangle", "ellipse", "triangle"]  # the shapes dataset's
# The official architecture of SMALL, as the run's model overrides (official heads:
# as wide as dims[0]).
ARCHITECTURE = {k: v for k, v in SMALL.items() if k != "num_classes"} | {"head_dim": None}
# One stack of one level, where two stacks are not the point: most of a test's time
# is building the model and tracing its train step.
ONE_STACK = {"num_stacks": 1, "dims": [16, 16], "modules": [1, 1], "pre_dim": 8, "cnv_dim": 16}
ONE_STACK |= {"pool_dim": 8, "head_dim": 16}
DATA = {"input_size": 63, "output_size": 16, "border": 16, "max_objects": 8}


def _config(init_from=None, architecture=ARCHITECTURE, **train):
    return config_from_dict(
        {
            "model": {"preset": "tiny", "overrides": architecture, "init_from": init_from},
            "data": DATA,
            "train": {"batch_size": 2, "jit_compile": False, **train},
        }
    )


def _state(config, checkpoint_dir, class_names=CLASSES):
    return build_training_state(
        config,
        list(class_names),
        str(checkpoint_dir),
        learning_rate=LearningRate.from_config(config.train),
    )


def _source(path, class_names=("a", "b", "c", "d"), seed=3, architecture=ARCHITECTURE):
    """A saved model of the run's architecture with random weights and BN statistics."""
    seed_weights(seed)
    model = CornerNet.from_preset(
        "tiny", **architecture, num_classes=len(class_names), class_names=list(class_names)
    )
    rng = np.random.default_rng(seed)
    draws = {  # BatchNorm statistics and biases away from their initial values too
        "moving_variance": lambda shape: rng.uniform(0.5, 2.0, shape),
        "gamma": lambda shape: rng.uniform(0.5, 1.5, shape),
    }
    for variable in model.weights:
        if not variable.path.endswith("kernel"):
            draw = draws.get(variable.name, lambda shape: rng.normal(0.0, 0.2, shape))
            variable.assign(draw(variable.shape).astype("float32"))
    model.save(path)
    return model


def _heatmap_output_ids(model):
    return {
        id(v)
        for corner in ("tl", "br")
        for head in model.heads[f"{corner}_heatmap"]
        for v in (head.out.kernel, head.out.bias)
    }


def _pairs(source, model):
    """`(key, source variable, model variable)` for every weight, by official name."""
    source_map, _ = convert.official_weight_map(source)
    model_map, _ = convert.official_weight_map(model)
    assert set(source_map) == set(model_map)
    return [(key, source_map[key][0], model_map[key][0]) for key in model_map]


def _check_fine_tuned(source, model):
    """Every weight but the heatmap outputs equals the source's; those are re-initialised."""
    outputs = _heatmap_output_ids(model)
    copied = 0
    for key, source_variable, variable in _pairs(source, model):
        if id(variable) in outputs:
            continue
        np.testing.assert_array_equal(variable.numpy(), source_variable.numpy(), err_msg=key)
        copied += 1
    assert copied == len(model.weights) - 4 * model.num_stacks
    for corner in ("tl", "br"):
        for head in model.heads[f"{corner}_heatmap"]:
            np.testing.assert_array_equal(head.out.bias.numpy(), np.full(len(CLASSES), -2.19, "f"))
            kernel = head.out.kernel.numpy()  # PyTorch's default: U(+-1/sqrt(fan_in))
            assert kernel.shape[-1] == len(CLASSES)
            bound = 1 / np.sqrt(kernel.shape[2])
            assert np.abs(kernel).max() <= bound and kernel.std() > bound / 4


# ---------------------------------------------------------------- init_from


def test_a_keras_source_gives_every_fitting_weight_and_new_heatmap_outputs(tmp_path, caplog):
    source = _source(tmp_path / "source.keras")
    config = _config(str(tmp_path / "source.keras"))
    with caplog.at_level(logging.INFO, logger="cornernet_tf.training"):
        state = _state(config, tmp_path / "run")
    model = state.model
    assert model.class_names == CLASSES and state.restored_from is None
    _check_fine_tuned(source, model)
    lines = [r.getMessage() for r in caplog.records if "model.init_from" in r.getMessage()]
    assert len(lines) == 1, lines
    loaded = len(model.weights) - 8
    assert f"loaded {loaded} of {len(model.weights)} weights" in lines[0]
    assert "4 classes -> the training set's 3" in lines[0]
    assert "tl_heatmaps_1/out/kernel (1, 1, 16, 4)->(1, 1, 16, 3)" in lines[0]


def test_the_same_class_names_keep_the_heatmap_outputs(tmp_path):
    source = _source(tmp_path / "source.keras", class_names=CLASSES, architecture=ONE_STACK)
    state = _state(_config(str(tmp_path / "source.keras"), ONE_STACK), tmp_path / "run")
    for key, source_variable, variable in _pairs(source, state.model):
        np.testing.assert_array_equal(variable.numpy(), source_variable.numpy(), err_msg=key)


def test_an_official_state_dict_is_converted_on_the_fly(tmp_path):
    from test_convert import _torch_net  # the PyTorch re-implementation (skips without torch)

    state_dict = {
        f"module.{k}": v.detach().numpy() for k, v in _torch_net(SMALL, seed=5).state_dict().items()
    }
    np.savez(tmp_path / "official.npz", **state_dict)
    model = _state(_config(str(tmp_path / "official.npz")), tmp_path / "run").model
    reference = convert.from_official_state_dict(state_dict, preset="tiny", **SMALL)
    # The official input normalisation comes with the official weights.
    assert model.channel_order == "bgr" and model.image_mean == list(OFFICIAL_MEAN_RGB)
    outputs = _heatmap_output_ids(model)
    for key, source_variable, variable in _pairs(reference, model):
        if id(variable) not in outputs:
            np.testing.assert_array_equal(variable.numpy(), source_variable.numpy(), err_msg=key)
    # SMALL has 3 classes like the run, but no names: the outputs start anew.
    bias = model.heads["br_heatmap"][0].out.bias.numpy()
    np.testing.assert_array_equal(bias, np.full(3, -2.19, "f"))


def test_a_resumed_run_keeps_its_checkpoint_and_never_reads_the_weights_again(tmp_path):
    _source(tmp_path / "source.keras", architecture=ONE_STACK)
    config = _config(str(tmp_path / "source.keras"), ONE_STACK)
    first = _state(config, tmp_path / "run")
    for variable in first.model.weights:  # what training would have changed
        variable.assign(variable.numpy() + 0.25)
    first.manager.save(checkpoint_number=7)
    saved = [v.numpy() for v in first.model.weights]
    _source(tmp_path / "source.keras", seed=4, architecture=ONE_STACK)  # other weights there
    resumed = _state(config, tmp_path / "run")
    assert resumed.restored_from.endswith("ckpt-7")
    for before, variable in zip(saved, resumed.model.weights, strict=True):
        np.testing.assert_array_equal(variable.numpy(), before, err_msg=variable.path)
    # The source's normalisation is still the run's: it builds the same model.
    assert make_checkpoint(resumed.model) is not None


def test_a_converted_official_model_names_the_coco_classes(tmp_path):
    """`cornernet-convert` of an 80-class checkpoint, then the names `cornernet-predict` prints."""
    model = CornerNet.from_preset("tiny", num_classes=80, head_dim=None)
    target, _ = convert.official_weight_map(model)
    state_dict = {  # the official layout: conv kernels OIHW
        key: (np.transpose(v.numpy(), (3, 2, 0, 1)) if layout == "conv" else v.numpy())
        for key, (v, layout) in target.items()
    }
    assert convert.official_num_classes(state_dict) == 80
    np.savez(tmp_path / "official.npz", **state_dict)
    output = tmp_path / "converted.keras"
    assert (
        convert_cli.main(
            [str(tmp_path / "official.npz"), "--output", str(output)]
            + ["--preset", "tiny", "--num-classes", "80"]
        )
        == 0
    )
    converted = load_model(output)
    names, warning = predict_cli.class_names_for(converted, str(output))
    assert warning is None
    assert names == list(COCO_CLASS_NAMES) and names[0] == "person" and names[-1] == "toothbrush"


# ----------------------------------------------------------------- errors


def test_bad_sources_fail_with_one_line_naming_the_key(tmp_path):
    # The two steps of `build_training_state` that read the source, on one run model.
    run_model = CornerNet.from_preset("tiny", **ONE_STACK, num_classes=3, class_names=CLASSES)
    before = [v.numpy() for v in run_model.weights]

    def error(init_from, **overrides):
        config = _config(init_from, ONE_STACK | overrides)
        with pytest.raises(ConfigError) as info:
            finetune.init_from_arguments(config)
            finetune.load_init_weights(run_model, config)
        message = str(info.value)
        assert "\n" not in message and "model.init_from" in message
        return message

    assert "no such file" in error(str(tmp_path / "missing.keras"))
    (tmp_path / "weights.h5").write_bytes(b"x")
    assert "not a .keras file nor an official checkpoint" in error(str(tmp_path / "weights.h5"))
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    assert "not a readable CornerNet .keras file" in error(str(tmp_path / "broken.keras"))
    (tmp_path / "broken.pkl").write_bytes(b"not a pickle")
    assert "broken.pkl" in error(str(tmp_path / "broken.pkl"))

    _source(tmp_path / "source.keras", architecture=ONE_STACK | {"dims": [16, 24]})
    message = error(str(tmp_path / "source.keras"))
    assert "model.preset 'tiny'" in message and "dims=[16, 24] (the run's [16, 16])" in message
    assert "channel_order" in error(str(tmp_path / "source.keras"), channel_order="bgr")

    np.savez(tmp_path / "other.npz", **{"tl_heats.0.1.bias": np.zeros(3, "f")})
    assert "does not fit model.preset 'tiny'" in error(str(tmp_path / "other.npz"))
    # The names of another preset's state dict: that preset is the fix.
    squeeze, _ = convert.official_weight_map(CornerNet.from_preset("tiny_squeeze"))
    np.savez(
        tmp_path / "squeeze.npz", **{k: np.zeros(v.shape, "f") for k, (v, _) in squeeze.items()}
    )
    assert "set model.preset: tiny_squeeze" in error(str(tmp_path / "squeeze.npz"))
    for value, variable in zip(before, run_model.weights, strict=True):  # nothing assigned
        np.testing.assert_array_equal(variable.numpy(), value)


def test_config_keys_are_validated():
    assert _config().train.freeze_backbone_steps == 0 and _config().model.init_from is None
    with pytest.raises(ConfigError, match="freeze_backbone_steps must be >= 0 steps, or -1"):
        _config(freeze_backbone_steps=-2)
    with pytest.raises(ConfigError, match="init_from must be a non-empty string"):
        _config(init_from=3)


@pytest.mark.parametrize("name", ["finetune_hg104", "finetune_squeeze"])
def test_packaged_fine_tuning_configs_load(name):
    config = load_config(os.path.join(REPO, "configs", f"{name}.yaml"))
    assert config.model.preset in ("hourglass104", "squeeze")
    assert config.model.init_from.endswith(".pkl")
    assert config.train.lr_decay_steps[-1] < config.train.steps


def test_freeze_phases_follow_the_optimizer_step(tmp_path):
    model = _state(_config(architecture=ONE_STACK), tmp_path / "run").model
    backbone = {id(v) for layer in finetune.backbone_layers(model) for v in layer.weights}
    trained = {id(v) for v in model.trainable_weights}
    assert backbone & trained and trained - backbone  # both parts have trainable weights

    def phases(steps, start):
        callback = finetune.FreezeBackbone(steps)
        callback.set_model(model)
        model.optimizer.iterations.assign(start)
        callback.on_train_begin()
        first = {id(v) for v in model.trainable_weights}
        model.optimizer.iterations.assign(start + 1)
        callback.on_train_batch_end(0)
        second = {id(v) for v in model.trainable_weights}
        callback.on_train_end()
        assert {id(v) for v in model.trainable_weights} == trained  # saved trainable
        return first, second

    frozen = trained - backbone
    assert phases(-1, 0) == (frozen, frozen)  # the whole run
    assert phases(-1, 7) == (frozen, frozen)
    assert phases(3, 2) == (frozen, trained)  # resumed one step before N
    assert phases(3, 3) == (trained, trained)  # resumed at N


# ------------------------------------------------------------- the command


@pytest.mark.slow
def test_backbone_frozen_for_n_steps_then_trained_across_a_resume(tmp_path, shapes_root):
    """`cornernet-train` as users run it: 2 frozen steps, then a restart that trains it all."""
    source = _source(tmp_path / "source.keras", architecture=ONE_STACK)
    backbone = {id(v) for layer in finetune.backbone_layers(source) for v in layer.weights}
    assert 0 < len(backbone) < len(source.weights)
    model_dir = tmp_path / "run"

    def run(steps):
        overrides = {
            "model.preset": "tiny",
            "model.overrides": json.dumps(ONE_STACK),
            "model.init_from": str(tmp_path / "source.keras"),
            "data.input_size": 63,
            "data.output_size": 16,
            "data.border": 16,
            "train.batch_size": 2,
            "train.steps": steps,
            "train.checkpoint_every": 2,
            "train.jit_compile": "false",
            "train.freeze_backbone_steps": 2,
        }
        command = [sys.executable, "-m", "cornernet_tf.cli.train", "--config", "shapes_tiny"]
        command += ["--data-dir", str(shapes_root), "--model-dir", str(model_dir), "--verbose", "0"]
        for key, value in overrides.items():
            command += ["--set", f"{key}={value}"]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        model = load_model(model_dir / "model.keras")
        changed = {
            key: not np.array_equal(variable.numpy(), source_variable.numpy())
            for key, source_variable, variable in _pairs(source, model)
            if id(source_variable) in backbone
        }
        return done.stdout, model, changed

    stdout, model, changed = run(2)
    assert "model.init_from: loaded" in stdout and "backbone frozen until step 2" in stdout
    assert not any(changed.values())  # BatchNorm statistics included
    # The heads and corner modules trained; the saved model is trainable throughout.
    assert not np.array_equal(
        model.heads["tl_embedding"][0].out.kernel.numpy(),
        source.heads["tl_embedding"][0].out.kernel.numpy(),
    )
    assert all(layer.trainable for layer in finetune.backbone_layers(model))

    stdout, model, changed = run(3)
    assert "resumed from" in stdout and "model.init_from" not in stdout
    assert "backbone frozen" not in stdout
    assert all(changed.values()), [key for key, value in changed.items() if not value]
