"""Shared pytest fixtures."""

import pytest

from cornernet_tf.data import shapes


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
