"""`tf.data` input of eager inference calls: autotuning off.

`keras.Model.predict` wraps arrays in a `tf.data` pipeline and calls the
compiled predict function once per batch from Python; COCO evaluation does
the same with its decoded images. While a pipeline with `tf.data` autotuning
(the default) is alive, such a call intermittently ran on one CPU core, about
twice as long, with the other core idle for the whole call; with autotuning
off no call was slow (`benchmarks/predict.py` measures `predict` against the
network forward; docs/performance.md has the figures).

Autotuning tunes the parallelism of an input pipeline that runs alongside a
training step; an inference feed of a few images gains nothing from it.
Parallel maps keep running in parallel (their `AUTOTUNE` parallelism becomes
a fixed default).
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["without_autotune"]


def without_autotune(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with `tf.data` autotuning off, unless its options already decide it.

    Args:
        dataset: the input of `predict` or of an evaluation loop.

    Returns:
        The same elements; `options().autotune.enabled` is False when it was
        unset, and a caller's explicit setting is kept.
    """
    if dataset.options().autotune.enabled is not None:
        return dataset
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)
