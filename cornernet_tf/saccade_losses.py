"""CornerNet-Saccade attention loss.

Follows the attention part of `CornerNet_Saccade_Loss.forward` of
princeton-vl/CornerNet-Lite `core/models/py_utils/losses.py` (with its
`_focal_loss` and `_sigmoid`), in NHWC and float32.
"""

from __future__ import annotations

import tensorflow as tf

from cornernet_tf.losses import focal_loss
from cornernet_tf.saccade_targets import ATTENTION_RANGES
from cornernet_tf.utils.checks import check_count

__all__ = ["attention_loss"]


def attention_loss(
    outputs: dict[str, tf.Tensor], targets: dict[str, tf.Tensor], *, num_stacks: int
) -> tf.Tensor:
    """The attention term of the CornerNet-Saccade loss, as a part of the total.

    The official loss sums, over the three maps, the focal loss (`focal_loss`:
    the probabilities clipped to [1e-4, 1 - 1e-4], normalised by the map's
    positives over the batch) of every stack's map against the same target,
    divides that by the number of stacks, adds it to the other terms and
    divides the total by the number of stacks again:

        attention = sum_map sum_s focal(map_s, target_map) / num_stacks**2

    which is what this returns, so that it adds to the parts of
    `cornernet_tf.losses.cornernet_loss` (each already divided by
    `num_stacks`).

    Args:
        outputs: raw attention logits `attention_{large,medium,small}_{s}`
            `[B, h, w, 1]` for s < num_stacks (`CornerNet(attention=True)`
            with `training=True`); other keys are ignored.
        targets: batched `attention_targets` maps `attention_{large,medium,small}`.
        num_stacks: number of hourglass stacks whose maps are supervised.

    Returns:
        A float32 scalar.
    """
    num_stacks = check_count(num_stacks, "num_stacks", "attention_loss")
    names = [f"attention_{name}" for name in ATTENTION_RANGES]
    missing = [f"{name}_{s}" for name in names for s in range(num_stacks)]
    missing = [key for key in missing if key not in outputs]
    if missing:
        raise ValueError(
            f"attention_loss: `outputs` lacks {missing} for num_stacks={num_stacks}; it has "
            f"{sorted(outputs)}."
        )
    missing = [name for name in names if name not in targets]
    if missing:
        raise ValueError(
            f"attention_loss: `targets` lacks {missing}; pass the batched `attention_targets` "
            "output."
        )
    total = tf.constant(0.0, tf.float32)
    for name in names:
        for s in range(num_stacks):
            total += focal_loss(outputs[f"{name}_{s}"], targets[name])
    return total / float(num_stacks * num_stacks)
