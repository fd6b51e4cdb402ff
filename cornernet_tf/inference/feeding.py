"""`tf.data` input of eager inference calls: autotuning off.

`keras.Model.predict` and COCO evaluation feed their images through a `tf.data`
pipeline and call a compiled function once per batch. While a pipeline with
autotuning (the default) is alive, such a call intermittently runs on one CPU
core for about twice as long; autotuning tunes an input pipeline that runs
alongside a training step, and an inference feed gains nothing from it.
Parallel maps still run in parallel (`AUTOTUNE` becomes a fixed default).
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
