"""TensorFlow's pooled host-memory allocator for the processes that train and evaluate.

By default TensorFlow takes each tensor's host memory from the C library and
gives it back when the tensor dies. Large buffers (a batch of heatmaps is
84 MB) are then mapped from the system and page-faulted in afresh every time,
which costs more than drawing the targets in them. With
`TF_CPU_ALLOCATOR_USE_BFC=true`, TensorFlow keeps freed host memory in its own
pool (the best-fit-with-coalescing allocator its GPU memory always uses) and
reuses it: the training input pipeline and the train step run faster on the
same work (figures in docs/performance.md), and the process keeps its peak
memory instead of returning it to the system between steps.

TensorFlow reads the variable when it creates its CPU allocator, so
`pool_host_memory` must run before TensorFlow is imported; `cornernet-train`
and `cornernet-evaluate` call it first thing. A value already in the
environment wins (set `TF_CPU_ALLOCATOR_USE_BFC=false` to keep the system
allocator).
"""

from __future__ import annotations

import os
import sys

HOST_ALLOCATOR_ENV = "TF_CPU_ALLOCATOR_USE_BFC"

__all__ = ["HOST_ALLOCATOR_ENV", "pool_host_memory"]


def pool_host_memory() -> bool:
    """Asks TensorFlow for its pooled host allocator, unless the environment says otherwise.

    Returns:
        Whether the setting can still take effect: False once TensorFlow is
        imported (the allocator exists then; nothing is changed).
    """
    if "tensorflow" in sys.modules:
        return False
    os.environ.setdefault(HOST_ALLOCATOR_ENV, "true")
    return True
