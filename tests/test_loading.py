"""`cornernet_tf.models.load_model`: errors that name the problem."""

import keras
import pytest

from cornernet_tf.models import load_model


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
