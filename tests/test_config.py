"""YAML configs → frozen dataclasses: defaults, overrides, and bad input."""

import dataclasses
import os

import pytest
import yaml

from cornernet_tf.spec.config import (
    Config,
    ConfigError,
    DataConfig,
    TrainConfig,
    config_from_dict,
    load_config,
    save_config,
)
from cornernet_tf.spec.presets import config_size_problem

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def _write(tmp_path, data, name="c.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_hg104_config_is_the_official_schedule():
    # princeton-vl/CornerNet config/CornerNet.json + db/detection.py, written out by hand.
    config = load_config(os.path.join(CONFIG_DIR, "cornernet_hg104_coco.yaml"))
    assert config.model.preset == "hourglass104"
    train = config.train
    assert (train.batch_size, train.base_batch, train.learning_rate) == (49, 49, 2.5e-4)
    assert (train.steps, train.lr_decay_steps, train.lr_decay_factor) == (500_000, (450_000,), 10.0)
    assert (train.pull_weight, train.push_weight, train.offset_weight) == (0.1, 0.1, 1.0)
    assert train.checkpoint_every == 5000
    data = config.data
    assert (data.input_size, data.output_size, data.border, data.max_objects) == (
        511,
        128,
        128,
        128,
    )
    assert data.gaussian_iou == 0.3
    # np.arange(0.6, 1.4, 0.1) has 8 values, 0.6 .. 1.3.
    assert data.rand_scales == pytest.approx([0.6 + 0.1 * i for i in range(8)])
    test = config.test
    assert (test.top_k, test.ae_threshold, test.nms_kernel) == (100, 0.5, 3)
    assert (test.max_detections, test.soft_nms_sigma) == (100, 0.5)
    # The dataclass defaults are the official values too.
    assert config.train == dataclasses.replace(TrainConfig(), eval_every=train.eval_every)
    assert config.data == DataConfig()


def test_squeeze_config_is_the_official_schedule():
    # princeton-vl/CornerNet-Lite configs/CornerNet_Squeeze.json, written out by hand.
    config = load_config(os.path.join(CONFIG_DIR, "cornernet_squeeze_coco.yaml"))
    assert config.model.preset == "squeeze"
    data, train, test = config.data, config.train, config.test
    assert (data.input_size, data.output_size, data.gaussian_iou, data.border) == (
        511,
        64,
        0.3,
        128,
    )
    assert (train.batch_size, train.base_batch, train.learning_rate) == (55, 55, 2.5e-4)
    assert (train.steps, train.lr_decay_steps, train.lr_decay_factor) == (500_000, (450_000,), 10.0)
    assert (test.top_k, test.num_dets, test.flip_test, test.scales) == (20, 100, False, (1.0,))
    assert (test.ae_threshold, test.max_detections, test.soft_nms_sigma) == (0.5, 100, 0.5)
    assert config_size_problem(config) is None  # the squeeze preset's stride 8


def test_output_size_follows_the_output_stride(tmp_path):
    path = _write(tmp_path, {"model": {"preset": "squeeze"}, "data": {"input_size": 127}})
    with pytest.raises(ConfigError) as error:
        load_config(path, ["data.output_size=32"])
    assert error.value.key == "data.output_size"
    assert str(error.value).startswith(f"{path}, --set data.output_size=32: data.output_size")
    assert "must be ceil(input_size / 8) = 16 for input_size 127" in str(error.value)
    assert load_config(path, ["data.output_size=16"]).data.output_size == 16


def test_shapes_config_loads_and_uses_the_tiny_preset():
    config = load_config(os.path.join(CONFIG_DIR, "shapes_tiny.yaml"))
    assert config.model.preset == "tiny"
    assert config.data.output_size == -(-config.data.input_size // 4)


def test_empty_file_gives_defaults_and_config_is_frozen(tmp_path):
    config = load_config(_write(tmp_path, ""))
    assert config == Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.train.steps = 3


def test_save_then_load_round_trips(tmp_path):
    config = load_config(
        _write(tmp_path, {"model": {"preset": "tiny", "overrides": {"pre_dim": 16}}}),
        ["train.steps=7", "data.rand_scales=[1.0]", "train.lr_decay_steps=[3, 5]"],
    )
    out = str(tmp_path / "out" / "config.yaml")
    save_config(config, out)
    assert load_config(out) == config
    assert not [f for f in os.listdir(tmp_path / "out") if f != "config.yaml"]  # no temp left


def test_overrides_are_parsed_as_yaml_and_type_checked(tmp_path):
    path = _write(tmp_path, {"train": {"steps": 100}})
    config = load_config(
        path,
        [
            "train.steps=12",
            "train.batch_size=6",
            "train.seed=5",
            "train.learning_rate=1e-3",  # YAML 1.1 reads this as a string; accepted as a number
            "train.mixed_precision=true",
            "model.overrides.num_stacks=1",
            "data.rand_scales=[0.5, 1]",
        ],
    )
    assert (config.train.steps, config.train.batch_size, config.train.seed) == (12, 6, 5)
    assert config.train.learning_rate == 1e-3 and isinstance(config.train.learning_rate, float)
    assert config.train.mixed_precision is True
    assert config.model.overrides == {"num_stacks": 1}
    assert config.data.rand_scales == (0.5, 1.0)


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.stepz=3", "--set train.stepz=3: unknown key 'stepz' in section 'train'"),
        ("trian.steps=3", "must start with a section name"),
        ("train.steps", "expected section.key=value"),
        ("train.steps=ten", "--set train.steps=ten: train.steps must be an integer, got 'ten'"),
        ("train.steps=2.5", "train.steps must be an integer"),
        ("train.jit_compile=1", "train.jit_compile must be true or false"),
        ("train.steps=0", "--set train.steps=0: train.steps must be > 0"),
        ("train.steps.x=1", "has no sub-keys"),
    ],
)
def test_bad_overrides_name_the_override(tmp_path, override, expected):
    with pytest.raises(ConfigError, match=None) as info:
        load_config(_write(tmp_path, ""), [override])
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"train": {"stepz": 3}}, "unknown key 'stepz' in section 'train'; valid keys: batch_size"),
        ({"trainer": {}}, "unknown section 'trainer'"),
        ({"train": {"batch_size": "49"}}, "train.batch_size must be an integer, got '49'"),
        ({"train": {"batch_size": True}}, "train.batch_size must be an integer, got True"),
        ({"train": {"learning_rate": "fast"}}, "train.learning_rate must be a number"),
        ({"train": {"learning_rate": float("nan")}}, "must be a finite number"),
        ({"data": {"rand_scales": 1.0}}, "data.rand_scales must be a list"),
        ({"data": {"rand_scales": [1.0, "x"]}}, "data.rand_scales[1] must be a number"),
        ({"data": {"gaussian_iou": 1.5}}, "data.gaussian_iou must be in (0, 1)"),
        ({"data": {"sampler": "yolo"}}, "data.sampler must be one of cornernet, saccade"),
        ({"train": {"lr_decay_steps": [5, 3]}}, "train.lr_decay_steps must be increasing"),
        ({"test": {"nms_kernel": 4}}, "test.nms_kernel must be odd"),
        ({"model": {"overrides": [1]}}, "model.overrides must be a mapping"),
        ({"model": "tiny"}, "section 'model' must be a mapping"),
        ([1, 2], "the top level must be a mapping"),
    ],
)
def test_bad_files_name_the_file_and_key(tmp_path, data, expected):
    path = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(path), message
    assert expected in message


def test_missing_and_malformed_files(tmp_path):
    missing = str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(missing)
    bad = _write(tmp_path, "train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_from_dict_validates_like_files():
    assert config_from_dict({"train": {"steps": 3}}).train.steps == 3
    with pytest.raises(ConfigError, match="<config>: unknown key 'x' in section 'data'"):
        config_from_dict({"data": {"x": 1}})
    assert issubclass(ConfigError, ValueError)


def _alias_bomb(levels: int) -> str:
    """Nested aliases: 9**levels strings from a few hundred bytes of YAML."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + f"\ntrain: {{steps: *a{levels - 1}}}\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (_alias_bomb(6), "aliases expand to more than 100000 values"),
        ("train: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 50 levels at line 1"),
        (
            "train:\n  steps: 10\n  batch_size: 2\n  steps: 20\n",
            "duplicate key 'steps' at line 4 (first at line 2)",
        ),
    ],
    ids=["alias-bomb", "deep", "duplicate-key"],
)
def test_hostile_yaml_is_refused_naming_the_file(tmp_path, text, expected):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: {expected}"), str(info.value)


def test_the_yaml_limits_apply_to_overrides_and_leave_ordinary_aliases(tmp_path):
    path = _write(tmp_path, "")
    with pytest.raises(ConfigError, match=r"^--set model.overrides=\{a: 1, a: 2\}: duplicate key"):
        load_config(path, ["model.overrides={a: 1, a: 2}"])
    # A merge key may be overridden, and a shared alias is fine.
    path = _write(tmp_path, "model:\n  overrides: &o {num_stacks: 1}\ndata:\n  rand_scales: [1]\n")
    assert load_config(path).model.overrides == {"num_stacks": 1}
    text = "model:\n  overrides: {<<: {num_stacks: 1, cnv_dim: 8}, num_stacks: 2}\n"
    assert load_config(_write(tmp_path, text)).model.overrides == {"num_stacks": 2, "cnv_dim": 8}


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("test.top_k=20000", "--set test.top_k=20000: test.top_k must be <= 1000"),
        ("test.top_k=2", "--set test.top_k=2: test.num_dets (1000) exceeds the top_k**2"),
        ("test.num_dets=5", "--set test.num_dets=5: test.max_detections must be <= test.num_dets"),
        ("train.batch_size=99999999999999999999", "--set train.batch_size=9999"),
    ],
)
def test_out_of_range_overrides_name_the_override(tmp_path, override, expected):
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, ""), [override])
    assert str(info.value).startswith(expected), str(info.value)
