"""Seeding the weights a test builds, without TensorFlow's global seed."""

import random


def seed_weights(seed: int) -> None:
    """Makes the next models' initial weights those of `keras.utils.set_random_seed(seed)`.

    Keras draws its initializers' seeds from Python's `random`, so seeding it
    gives the same weights. `set_random_seed` also sets TensorFlow's global
    seed, which clears TensorFlow's kernel caches: every function the process
    has traced (a shared fixture's train step, predict, the exported
    signatures) is then instantiated and optimised again on its next call,
    about 12 s for a train step.
    """
    random.seed(seed)
