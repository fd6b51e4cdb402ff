"""Training CornerNet-Saccade: the masked focal loss, the total loss, a few steps on shapes.

The loss reference is princeton-vl/CornerNet-Lite `core/models/py_utils/losses.py`
(`_focal_loss_mask`, `_sigmoid`), transcribed in numpy.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from seeding import seed_weights

from cornernet_tf import losses, saccade_losses
from cornernet_tf.cli import train as train_cli
from cornernet_tf.data import pipeline
from cornernet_tf.models import load_model
from cornernet_tf.models.cornernet import ATTENTION_NAMES, CornerNet
from cornernet_tf.spec.config import DataConfig, load_config


def official_focal_loss_mask(preds, gt, mask):
    """`_focal_loss_mask` on sigmoid-clamped predictions (a list, one per stack)."""
    pos_inds, neg_inds = gt == 1, gt < 1
    neg_weights = np.power(1 - gt[neg_inds], 4)
    pos_mask, neg_mask = mask[pos_inds], mask[neg_inds]
    loss = 0
    for pred in preds:
        pos_pred, neg_pred = pred[pos_inds], pred[neg_inds]
        pos_loss = np.log(pos_pred) * np.power(1 - pos_pred, 2) * pos_mask
        neg_loss = np.log(1 - neg_pred) * np.power(neg_pred, 2) * neg_weights * neg_mask
        num_pos = pos_inds.astype(np.float32).sum()
        if pos_pred.size == 0:
            loss = loss - neg_loss.sum()
        else:
            loss = loss - (pos_loss.sum() + neg_loss.sum()) / num_pos
    return loss


def _sigmoid(x):
    return np.clip(1 / (1 + np.exp(-x.astype(np.float64))), 1e-4, 1 - 1e-4)


@pytest.mark.parametrize("with_positives", [True, False])
def test_masked_focal_loss_matches_official(with_positives):
    rng = np.random.default_rng(4)
    logits = rng.normal(0, 2, (2, 16, 16, 3)).astype(np.float32)
    target = (rng.uniform(size=logits.shape) ** 6).astype(np.float32)
    if with_positives:
        target.flat[rng.choice(target.size, 7, replace=False)] = 1.0
    mask = (rng.uniform(size=logits.shape) > 0.2).astype(np.float32)
    mask.flat[np.flatnonzero(target == 1)[:2]] = 0.0  # masked positives still count in num_pos
    want = official_focal_loss_mask([_sigmoid(logits)], target, mask)
    got = losses.focal_loss(logits, target, mask)
    np.testing.assert_allclose(float(got), want, rtol=1e-5)
    # An all-ones mask is the unmasked loss.
    np.testing.assert_allclose(
        float(losses.focal_loss(logits, target, np.ones_like(mask))),
        float(losses.focal_loss(logits, target)),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="`mask` .* must have the shape of `target`"):
        losses.focal_loss(logits, target, mask[:, :8])


@pytest.fixture(scope="module")
def saccade_batch(shapes_root):
    """Two shapes images through the Saccade sampler at 127 px (32 x 32 heatmaps)."""
    config = DataConfig(
        input_size=127,
        output_size=32,
        gaussian_iou=0.5,
        max_objects=16,
        rand_scales=(0.8, 0.9, 1.0),
        sampler="saccade",
        color_jitter=False,
        lighting=False,
    )
    data = pipeline.make_train_dataset(shapes_root, config, batch_size=2, seed=11)
    images, targets = next(iter(data.dataset))
    return data.num_classes, images, targets


def test_saccade_loss_is_the_corner_loss_plus_the_attention_loss(saccade_batch):
    num_classes, images, targets = saccade_batch
    seed_weights(21)
    model = CornerNet.from_preset("tiny_saccade", num_classes=num_classes)
    model.compile(optimizer="adam")
    outputs = model(images, training=True)
    total = model.compute_loss(y=targets, y_pred=outputs)
    corner = losses.cornernet_loss(outputs, targets, num_stacks=3)
    attention = saccade_losses.attention_loss(outputs, targets, num_stacks=3)
    np.testing.assert_allclose(float(total), float(corner["loss"] + attention), rtol=1e-6)
    # The model's loss masks the corner heatmaps with the targets' valid maps.
    ignored = np.ones(targets["tl_valid"].shape, np.float32)
    ignored[:, :16] = 0.0
    masked = {**targets, "tl_valid": tf.constant(ignored)}
    want = losses.cornernet_loss(outputs, masked, num_stacks=3)["loss"] + attention
    assert abs(float(want) - float(total)) > 1e-3
    np.testing.assert_allclose(
        float(model.compute_loss(y=masked, y_pred=outputs)), float(want), rtol=1e-6
    )
    with pytest.raises(ValueError, match=r"`targets` lacks \['attention_large'"):
        model.compute_loss(
            y={k: v for k, v in targets.items() if "attention" not in k}, y_pred=outputs
        )


def test_tiny_saccade_overfits_two_images(saccade_batch):
    num_classes, images, targets = saccade_batch
    seed_weights(22)
    # One stack: a third of the tracing; the stacks' loss terms are checked above.
    model = CornerNet.from_preset("tiny_saccade", num_classes=num_classes, num_stacks=1)
    model.compile(optimizer=keras.optimizers.Adam(2e-3))

    def attention_error():
        outputs = model(images, training=False, all_stacks=True)
        errors = []
        for name in ATTENTION_NAMES:
            target = targets[f"attention_{name}"]
            for s in range(model.num_stacks):
                prob = tf.sigmoid(outputs[f"attention_{name}_{s}"])
                errors.append(tf.reduce_sum(tf.abs(prob - target)))
        return float(tf.add_n(errors))

    before = attention_error()
    history = []
    for _ in range(8):
        model.reset_metrics()  # each step's own loss, not the running mean
        history.append(model.train_on_batch(images, targets, return_dict=True))
    assert all(np.isfinite(h["loss"]) for h in history)
    assert history[-1]["loss"] < 0.8 * history[0]["loss"]
    assert history[-1]["attention"] < history[0]["attention"]
    assert attention_error() < before


def test_cornernet_train_trains_a_saccade_preset(shapes_root, tmp_path, capsys):
    model_dir = tmp_path / "m"
    argv = [
        "--config",
        "shapes_tiny",
        "--data-dir",
        str(shapes_root),
        "--model-dir",
        str(model_dir),
    ]
    for setting in (
        "model.preset=tiny_saccade",
        "data.sampler=saccade",
        "data.gaussian_iou=0.5",
        "train.steps=2",
        "train.batch_size=2",
        "train.base_batch=2",
        "train.log_every=1",
    ):
        argv += ["--set", setting]
    assert train_cli.main(argv) == 0
    assert "attention: " in capsys.readouterr().out
    assert load_config(model_dir / "config.yaml").data.sampler == "saccade"
    model = load_model(model_dir / "model.keras")
    assert model.attention and "attention" in model.part_trackers
