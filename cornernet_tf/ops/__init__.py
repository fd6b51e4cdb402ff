"""Tensor operations CornerNet adds to a standard CNN."""

from cornernet_tf.ops.corner_pool import corner_pool

__all__ = ["corner_pool"]
