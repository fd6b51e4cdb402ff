"""CornerNet-Saccade attention targets and loss against transcriptions of the official code.

The transcriptions are princeton-vl/CornerNet-Lite `create_attention_mask`
(`core/sample/cornernet_saccade.py`, with the `att_*` settings of
`core/dbs/detection.py`) and the attention part of `CornerNet_Saccade_Loss`
(`core/models/py_utils/losses.py`, `_focal_loss`, `_sigmoid`), in numpy.
"""

import numpy as np
import pytest
import tensorflow as tf

from cornernet_tf.models.cornernet import ATTENTION_NAMES
from cornernet_tf.saccade_losses import attention_loss
from cornernet_tf.saccade_targets import ATTENTION_RANGES, attention_targets

# core/dbs/detection.py
ATT_SIZES = [[16, 16], [32, 32], [64, 64]]
ATT_RANGES = [[96, 256], [32, 96], [0, 32]]
ATT_RATIOS = [16, 8, 4]


def official_attention_masks(detections):
    """`create_attention_mask` on fresh maps of the official sizes (255x255 input)."""
    atts = [np.zeros(size, np.float32) for size in ATT_SIZES]
    for det in detections:
        width = det[2] - det[0]
        height = det[3] - det[1]
        max_hw = max(width, height)
        for att, ratio, size in zip(atts, ATT_RATIOS, ATT_RANGES, strict=True):
            if max_hw >= size[0] and max_hw <= size[1]:
                x = (det[0] + det[2]) / 2
                y = (det[1] + det[3]) / 2
                x = (x / ratio).astype(np.int32)
                y = (y / ratio).astype(np.int32)
                att[y, x] = 1
    return atts


def official_attention_loss(atts, gt_atts):
    """The attention term of `CornerNet_Saccade_Loss.forward`, divided by the stack count
    as its total is. `atts[stack][map]` logits, `gt_atts[map]` targets (any layout)."""

    def sigmoid(x):
        return np.clip(1.0 / (1.0 + np.exp(-x)), 1e-4, 1 - 1e-4)

    def focal(preds, gt):  # `_focal_loss`
        pos_inds, neg_inds = gt == 1, gt < 1
        neg_weights = np.power(1 - gt[neg_inds], 4)
        loss = 0
        for pred in preds:
            pos_pred, neg_pred = pred[pos_inds], pred[neg_inds]
            pos_loss = (np.log(pos_pred) * np.power(1 - pos_pred, 2)).sum()
            neg_loss = (np.log(1 - neg_pred) * np.power(neg_pred, 2) * neg_weights).sum()
            if pos_pred.size == 0:
                loss = loss - neg_loss
            else:
                loss = loss - (pos_loss + neg_loss) / pos_inds.sum()
        return loss

    atts = [[sigmoid(a.astype(np.float64)) for a in att] for att in atts]
    atts = [[att[ind] for att in atts] for ind in range(len(gt_atts))]
    att_loss = 0
    for att, gt_att in zip(atts, gt_atts, strict=True):
        att_loss += focal(att, gt_att) / max(len(att), 1)
    return att_loss / len(atts[0])  # `loss = (... + att_loss + ...) / len(tl_heats)`


def _crop_boxes(rng, count):
    """Boxes clipped to a 255x255 crop, of every size range and the range borders."""
    sides = np.concatenate(
        [rng.uniform(1, 300, count - 6), [32.0, 96.0, 31.999, 96.001, 256.0, 0.5]]
    )
    aspect = rng.uniform(0.3, 1.0, count)
    x1, y1 = rng.uniform(-40, 250, count), rng.uniform(-40, 250, count)
    w, h = sides, sides * aspect
    flip = rng.uniform(size=count) < 0.5
    w, h = np.where(flip, h, w), np.where(flip, w, h)
    boxes = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, 254)  # `clip_detections` of the crop
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, 254)
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[keep].astype(np.float32)


def test_ranges_are_the_network_maps():
    assert tuple(ATTENTION_RANGES) == ATTENTION_NAMES
    assert [list(r) for r in ATTENTION_RANGES.values()] == ATT_RANGES


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_attention_targets_equal_the_official_masks(seed):
    rng = np.random.default_rng(seed)
    boxes = _crop_boxes(rng, 40)
    expected = official_attention_masks(boxes)
    assert all(m.sum() > 0 for m in expected)  # every map has objects
    # Padded as the pipeline pads: invalid rows (here copies of real boxes) mark nothing.
    padded = np.concatenate([boxes, boxes[:5] * 0.5 + 3], axis=0)
    valid = np.arange(len(padded)) < len(boxes)
    encode = tf.function(lambda b, v: attention_targets(b, 64, valid=v))  # as in tf.data
    maps = encode(tf.constant(padded), tf.constant(valid))
    for name, official in zip(ATTENTION_NAMES, expected, strict=True):
        got = maps[f"attention_{name}"].numpy()
        assert got.shape == official.shape + (1,)
        np.testing.assert_array_equal(got[..., 0], official, err_msg=name)


def test_attention_targets_of_no_object_and_other_sizes():
    maps = attention_targets(np.zeros((0, 4), np.float32), (32, 24))
    assert {k: v.shape for k, v in maps.items()} == {
        "attention_large": (8, 6, 1),
        "attention_medium": (16, 12, 1),
        "attention_small": (32, 24, 1),
    }
    assert all(float(tf.reduce_sum(v)) == 0 for v in maps.values())
    with pytest.raises(ValueError, match="`output_size` must be a positive int"):
        attention_targets(np.zeros((1, 4)), 0)
    with pytest.raises(ValueError, match=r"`boxes` must be \[N, 4\]"):
        attention_targets(np.zeros((4,)), 64)


def test_attention_loss_equals_the_official_term():
    rng = np.random.default_rng(3)
    batch, stacks = 3, 3
    targets = {name: [] for name in ATTENTION_NAMES}
    for b in range(batch):
        # The last image has no object: its maps only add negatives.
        boxes = _crop_boxes(rng, 30) if b < batch - 1 else np.zeros((0, 4), np.float32)
        for name, value in attention_targets(boxes, 64).items():
            targets[name.removeprefix("attention_")].append(value.numpy())
    targets = {f"attention_{k}": np.stack(v) for k, v in targets.items()}
    outputs = {
        f"{name}_{s}": rng.normal(-2.0, 2.0, targets[name].shape).astype(np.float32)
        for name in targets
        for s in range(stacks)
    }
    # No object of one size in the whole batch: that map's loss is its negatives only.
    targets["attention_large"][:] = 0.0
    got = attention_loss(outputs, targets, num_stacks=stacks)
    atts = [[outputs[f"attention_{n}_{s}"] for n in ATTENTION_NAMES] for s in range(stacks)]
    expected = official_attention_loss(atts, [targets[f"attention_{n}"] for n in ATTENTION_NAMES])
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=r"lacks \['attention_large_3'"):
        attention_loss(outputs, targets, num_stacks=4)
