"""Constants and small helpers shared by the export, runtime and serving tests.

The expensive artefacts built from them (the tiny model, its SavedModel and
its TFLite files) are session fixtures in `conftest.py`.
"""

import importlib.util
from pathlib import Path

import numpy as np
import tensorflow as tf

REPO = Path(__file__).resolve().parents[1]
CLASS_NAMES = ["circle", "square", "triangle"]
SIZE = 127  # the tiny model's input side, and the TFLite files' fixed input


def load_repo_module(name, path):
    """Imports a repository file that is not in a package (a script, the client)."""
    spec = importlib.util.spec_from_file_location(name, REPO / path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def random_image(seed, height=SIZE, width=SIZE):
    """A [height, width, 3] uint8 image of uniform noise."""
    return np.random.RandomState(seed).randint(0, 256, (height, width, 3)).astype(np.uint8)


def png(image):
    """The PNG file bytes of a uint8 image."""
    return tf.io.encode_png(image).numpy()
