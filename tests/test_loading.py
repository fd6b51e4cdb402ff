"""`cornernet_tf.models.loading.load_model` (`cornernet_tf.load_model`) and its old name."""

import keras
import pytest

import cornernet_tf
from cornernet_tf import export, load_model


@pytest.mark.parametrize(
    ("name", "contents", "message"),
    [
        ("nope.keras", None, "nope.keras' not found"),
        ("weights.h5", b"x", "is not a .keras file"),
        ("broken.keras", b"not a zip", "is truncated or corrupt"),
    ],
)
def test_load_model_names_the_problem(tmp_path, name, contents, message):
    if contents is not None:
        (tmp_path / name).write_bytes(contents)
    with pytest.raises(ValueError, match=message):
        load_model(tmp_path / name)


def test_load_model_refuses_other_models(tmp_path):
    other = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    other.save(tmp_path / "other.keras")
    with pytest.raises(ValueError, match="holds a Sequential, not a CornerNet"):
        load_model(tmp_path / "other.keras")


def test_export_load_model_still_works_with_a_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=r"use cornernet_tf\.load_model"):
        old = export.load_model
    assert old is cornernet_tf.load_model
    with pytest.warns(DeprecationWarning, match=r"cornernet_tf\.export\.load_model"):
        from cornernet_tf.export import load_model as imported
    assert imported is cornernet_tf.load_model
    with pytest.raises(AttributeError, match="has no attribute 'loadmodel'"):
        export.loadmodel  # noqa: B018 - the attribute access is the test
