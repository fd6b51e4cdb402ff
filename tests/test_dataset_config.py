"""The packaged config for small real datasets loads, by name, and fits its preset."""

from cornernet_tf.cli._common import load_config
from cornernet_tf.spec.presets import config_size_problem


def test_small_data_config_loads_by_name_and_fits_the_tiny_preset():
    config = load_config("small_data")
    assert config.model.preset == "tiny" and config.model.overrides == {"num_stacks": 1}
    assert config_size_problem(config) is None
    # Real photos: the official augmentation, and the splits `convert --val-fraction` writes.
    assert config.data.color_jitter and config.data.lighting
    assert (config.data.train_split, config.data.val_split) == ("train2017", "val2017")
    assert 0 < config.train.eval_every < config.train.steps
