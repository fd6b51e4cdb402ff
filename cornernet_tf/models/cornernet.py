"""The CornerNet detector as a `keras.Model`."""

import copy
import functools
from collections.abc import Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf import losses as losses_lib
from cornernet_tf import saccade_losses
from cornernet_tf.inference.feeding import without_autotune
from cornernet_tf.inference.image_input import check_image, check_image_batch, check_max_side
from cornernet_tf.inference.procedure import CornerNetDecoder
from cornernet_tf.inference.saccade import SaccadeProcedure
from cornernet_tf.layers.conv_bn import ConvBN, batch_norm, conv2d
from cornernet_tf.layers.corner_pooling import CornerPoolModule
from cornernet_tf.layers.heads import HEATMAP_BIAS, CornerHead
from cornernet_tf.layers.hourglass import BLOCKS, UPSAMPLING, HourglassModule
from cornernet_tf.layers.residual import Residual
from cornernet_tf.spec.config import ConfigError, SaccadeConfig, TestConfig
from cornernet_tf.spec.exported_io import DEFAULT_MAX_IMAGE_SIDE
from cornernet_tf.spec.presets import (
    PRESETS,
    input_size_granule,
    input_size_problem,
    output_stride,
)
from cornernet_tf.utils.checks import check_count
from cornernet_tf.utils.private_api import update_loss_tracker

# Official normalisation constants (`db/coco.py`), given there in BGR order.
OFFICIAL_MEAN_BGR = (0.40789654, 0.44719302, 0.47026115)
OFFICIAL_STD_BGR = (0.28863828, 0.27408164, 0.27809835)
OFFICIAL_MEAN_RGB = OFFICIAL_MEAN_BGR[::-1]
OFFICIAL_STD_RGB = OFFICIAL_STD_BGR[::-1]

HEAD_NAMES = ("heatmap", "embedding", "offset")
# CornerNet-Saccade's attention maps, in the official order (`att_modules[i][j]`):
# for objects whose longer side is 96-256, 32-96 and 0-32 pixels of the
# 255x255 input (`att_ranges` of princeton-vl/CornerNet-Lite
# `core/dbs/detection.py`), read from the hourglass's three level outputs,
# deepest first (1/16, 1/8 and 1/4 of the input: `att_ratios` 16, 8, 4).
ATTENTION_NAMES = ("large", "medium", "small")


CORNERS = ("tl", "br")


@keras.saving.register_keras_serializable(package="cornernet_tf")
class CornerNet(keras.Model):
    """CornerNet: an anchor-free detector finding objects as corner pairs.

    Law & Deng, "CornerNet: Detecting Objects as Paired Keypoints", ECCV 2018;
    the network follows princeton-vl/CornerNet `models/CornerNet.py` (`kp`):
    a stem (conv7x7/2 + strided residual), `num_stacks` hourglasses joined by
    1x1 "inter" connections, and per stack and corner a corner-pooling module
    with heatmap, embedding and offset heads. CornerNet-Squeeze (Law et al.,
    "CornerNet-Lite", BMVC 2020; princeton-vl/CornerNet-Lite
    `core/models/CornerNet_Squeeze.py`, preset "squeeze") is the same network
    with `block="fire"`, `upsample="transposed"`, `stem_residuals=2` and
    `head_kernel=1`. CornerNet-Saccade (the same paper;
    `core/models/CornerNet_Saccade.py`, preset "saccade") is Hourglass-54 (three
    stacks of three levels, one residual per level) with `attention=True`:
    per stack, three attention heads (the corner heads' conv3x3-ReLU-conv1x1,
    one output channel, bias -2.19) on the hourglass's level outputs.

    Inputs are RGB images with pixel values in [0, 255] (any float or integer
    dtype), NHWC; normalisation with `image_mean`/`image_std` (RGB, 0-1 scale)
    happens inside the model, and `channel_order="bgr"` reverses the channels
    before the first convolution (the official weights were trained on BGR).

    `call(images, training=True)` returns the raw head outputs of every stack
    as a flat dict, keys `tl_heatmap_0`, `br_heatmap_0`, `tl_embedding_0`,
    `br_embedding_0`, `tl_offset_0`, `br_offset_0`, `..._1`, ... (intermediate
    supervision). At inference (`training=False`) only the last stack's heads
    are computed and the keys carry no suffix (`tl_heatmap`, ...). With
    s = `output_stride` (4, or 8 with two stem residuals), heatmaps are logits
    [B, H/s, W/s, num_classes]; embeddings [B, H/s, W/s, 1]; offsets
    [B, H/s, W/s, 2] (x, y); all float32 whatever the dtype policy. With
    `attention=True` the dict also holds the attention logits of each stack,
    `attention_large_0`, `attention_medium_0`, `attention_small_0`, ... (no
    suffix at inference), [B, H/(4s), W/(4s), 1], [B, H/(2s), W/(2s), 1] and
    [B, H/s, W/s, 1]: the official `att_modules[i][0..2]` outputs before
    their sigmoid (see `ATTENTION_NAMES`).

    Args:
        num_classes: heatmap channels.
        num_stacks: hourglasses.
        dims: channel widths of the hourglass levels, outermost first.
        modules: residual blocks per hourglass level.
        pre_dim: channels of the stem's 7x7 convolution.
        cnv_dim: channels after each hourglass (input of the corner modules).
        pool_dim: channels of the corner-pooling branches.
        head_dim: channels of the heads' first convolution; `None` means
            `dims[0]`, as in the official network.
        block: hourglass block, "residual" (CornerNet) or "fire"
            (CornerNet-Squeeze's fire module).
        upsample: hourglass upsampling, "nearest" or "transposed" (4x4
            stride-2 transposed convolution, CornerNet-Squeeze).
        stem_residuals: stride-2 residuals after the stem's 7x7/2 convolution:
            1 (output stride 4) or 2 (CornerNet-Squeeze, output stride 8).
        head_kernel: kernel of the heads' first convolution (3, or 1 in
            CornerNet-Squeeze).
        attention: add CornerNet-Saccade's attention heads (needs three
            hourglass levels, `len(dims) == 4`). `detect` and `predict` then
            run CornerNet-Saccade's multi-crop test procedure
            (`inference.saccade`), and training does not support them yet.
        image_mean: RGB mean on the 0-1 scale, subtracted inside the model.
        image_std: RGB standard deviation on the 0-1 scale.
        channel_order: channel order the first convolution expects, "rgb" or
            "bgr" (converted official weights).
        class_names: optional list of `num_classes` names.
        test_config: the test procedure `detect` and `predict` run: a
            `cornernet_tf.spec.config.TestConfig`, or a dict of its fields (missing
            ones take the official defaults).
        bounding_box_format: box format `predict` returns ("xyxy" by default;
            any `keras.utils.bounding_boxes` format).
        saccade_config: CornerNet-Saccade's test settings (attention heads
            only): a `cornernet_tf.spec.config.SaccadeConfig` or a dict of its
            fields (missing ones take the official defaults).
    """

    def __init__(
        self,
        num_classes=80,
        num_stacks=2,
        dims=(256, 256, 384, 384, 384, 512),
        modules=(2, 2, 2, 2, 2, 4),
        pre_dim=128,
        cnv_dim=256,
        pool_dim=128,
        head_dim=None,
        block="residual",
        upsample="nearest",
        stem_residuals=1,
        head_kernel=3,
        attention=False,
        image_mean=OFFICIAL_MEAN_RGB,
        image_std=OFFICIAL_STD_RGB,
        channel_order="rgb",
        class_names=None,
        test_config=None,
        bounding_box_format="xyxy",
        saccade_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_classes = check_count(num_classes, "num_classes", "CornerNet")
        num_stacks = check_count(num_stacks, "num_stacks", "CornerNet")
        stem_residuals = check_count(stem_residuals, "stem_residuals", "CornerNet")
        if block not in BLOCKS:
            raise ValueError(f"CornerNet: `block` must be one of {list(BLOCKS)}, got {block!r}.")
        if upsample not in UPSAMPLING:
            raise ValueError(
                f"CornerNet: `upsample` must be one of {list(UPSAMPLING)}, got {upsample!r}."
            )
        if head_kernel not in (1, 3):
            raise ValueError(f"CornerNet: `head_kernel` must be 1 or 3, got {head_kernel!r}.")
        if not isinstance(attention, bool):
            raise ValueError(f"CornerNet: `attention` must be True or False, got {attention!r}.")
        if attention and len(dims) != len(ATTENTION_NAMES) + 1:
            raise ValueError(
                f"CornerNet: `attention=True` needs {len(ATTENTION_NAMES)} hourglass levels "
                f"(`dims` of length {len(ATTENTION_NAMES) + 1}, one attention map per level), "
                f"got dims={list(dims)}."
            )
        if channel_order not in ("rgb", "bgr"):
            raise ValueError(
                f"CornerNet: `channel_order` must be 'rgb' or 'bgr', got {channel_order!r}."
            )
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(
                f"CornerNet: `class_names` has {len(class_names)} names but `num_classes` is "
                f"{num_classes}; pass one name per class."
            )
        self.num_classes = num_classes
        self.num_stacks = num_stacks
        self.dims = list(dims)
        self.modules = list(modules)
        self.pre_dim = pre_dim
        self.cnv_dim = cnv_dim
        self.pool_dim = pool_dim
        self.head_dim = head_dim
        self.block = block
        self.upsample = upsample
        self.stem_residuals = stem_residuals
        self.head_kernel = head_kernel
        self.attention = attention
        self.image_mean = [float(v) for v in image_mean]
        self.image_std = [float(v) for v in image_std]
        self.channel_order = channel_order
        self.class_names = None if class_names is None else [str(n) for n in class_names]
        # conv 7x7/2, then stride-2 residuals (`pre`): the heads see 1/4 (1/8) of the input.
        self.output_stride = output_stride(stem_residuals)
        # Valid input sides step by output_stride * 2**levels (128 for
        # Hourglass-104 and CornerNet-Squeeze, 32 for `tiny`); the test canvas
        # is `size | (granule - 1)`, the official `| 127` for 128.
        self.input_size_granule = input_size_granule(self.output_stride, len(self.dims) - 1)
        self.test_config = test_config
        self.saccade_config = saccade_config
        self.bounding_box_format = bounding_box_format

        curr_dim = self.dims[0]
        self.pre = [ConvBN(pre_dim, 7, strides=2, name="pre_0")] + [
            Residual(curr_dim, 2, name=f"pre_{i + 1}") for i in range(stem_residuals)
        ]
        self.kps = [
            HourglassModule(self.dims, self.modules, block, upsample, name=f"kps_{i}")
            for i in range(num_stacks)
        ]
        self.cnvs = [ConvBN(cnv_dim, 3, name=f"cnvs_{i}") for i in range(num_stacks)]
        self.inters = [Residual(curr_dim, name=f"inters_{i}") for i in range(num_stacks - 1)]
        self.inters_ = [
            [conv2d(curr_dim, 1, name=f"inters__{i}_conv")[0], batch_norm(f"inters__{i}_bn")]
            for i in range(num_stacks - 1)
        ]
        self.cnvs_ = [
            [conv2d(curr_dim, 1, name=f"cnvs__{i}_conv")[0], batch_norm(f"cnvs__{i}_bn")]
            for i in range(num_stacks - 1)
        ]
        self.corner_modules = {
            corner: [
                CornerPoolModule(corner, cnv_dim, pool_dim, name=f"{corner}_cnvs_{i}")
                for i in range(num_stacks)
            ]
            for corner in CORNERS
        }
        out_dims = {"heatmap": num_classes, "embedding": 1, "offset": 2}
        self.heads = {
            f"{corner}_{head}": [
                CornerHead(
                    head_dim or curr_dim,
                    out_dims[head],
                    bias_value=HEATMAP_BIAS if head == "heatmap" else 0.0,
                    kernel_size=head_kernel,
                    name=f"{corner}_{head}s_{i}",
                )
                for i in range(num_stacks)
            ]
            for corner in CORNERS
            for head in HEAD_NAMES
        }
        # One head per hourglass level, deepest first, as `HourglassModule`
        # returns the level outputs (the official `up_start` is 0).
        self.attention_heads = {
            name: [
                CornerHead(
                    head_dim or curr_dim,
                    1,
                    bias_value=HEATMAP_BIAS,
                    kernel_size=3,
                    name=f"attention_{name}_{i}",
                )
                for i in range(num_stacks)
            ]
            for name in (ATTENTION_NAMES if attention else ())
        }
        self.loss_weights_ = {"pull": 0.1, "push": 0.1, "offset": 1.0}
        self.recompute_stacks = False  # `compile(recompute_stacks=True)`
        parts = ("focal", "pull", "push", "offset") + (("attention",) if attention else ())
        self.part_trackers = {name: keras.metrics.Mean(name=name) for name in parts}

    @classmethod
    def presets(cls):
        """Names of the built-in configurations."""
        return sorted(PRESETS)

    @classmethod
    def from_preset(cls, name, **overrides):
        """Builds a CornerNet from a named configuration.

        Args:
            name: "hourglass104" (CornerNet), "squeeze" (CornerNet-Squeeze),
                "saccade" (CornerNet-Saccade), "tiny", "tiny_squeeze" or
                "tiny_saccade" (CPU demos and tests); see `presets()`.
            **overrides: constructor arguments replacing the preset's.

        Returns:
            A built model (its weights exist: `summary()`, `count_params()`,
            `trainable_weights` work before the first call).
        """
        if name not in PRESETS:
            raise ValueError(
                f"CornerNet.from_preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}."
            )
        model = cls(**{**copy.deepcopy(PRESETS[name]), **overrides})
        model.build((None, None, None, 3))  # weights exist: summary(), count_params() work
        return model

    @property
    def test_config(self) -> TestConfig:
        """The test procedure's settings (`TestConfig`); assign a TestConfig or a dict."""
        return self._decoder.config

    @test_config.setter
    def test_config(self, value):
        decoder = self._make_decoder(value)
        if getattr(self, "_decoder", None) is not None and decoder.config == self.test_config:
            return  # unchanged: the compiled functions stay valid
        self._decoder = decoder
        # The compiled functions of `predict` and `predict_images` hold the
        # decoder they were traced with.
        if getattr(self, "predict_function", None) is not None:
            self.predict_function = None
        self._detect_one = None
        self._saccade = None

    @property
    def saccade_config(self) -> SaccadeConfig:
        """CornerNet-Saccade's settings (`SaccadeConfig`); assign a SaccadeConfig or a dict."""
        return self._saccade_config

    @saccade_config.setter
    def saccade_config(self, value):
        self._saccade_config = _saccade_settings(value, self)
        # The compiled functions hold the procedure they were traced with.
        if getattr(self, "predict_function", None) is not None:
            self.predict_function = None
        self._detect_one = self._saccade = None

    def _make_decoder(self, test_config) -> CornerNetDecoder:
        try:
            return CornerNetDecoder(
                TestConfig.coerce(test_config), self.output_stride, self.input_size_granule
            )
        except ConfigError as error:
            raise ValueError(
                f"CornerNet: invalid test setting: {error} Fix it in `test_config` (a "
                "TestConfig or dict) or the config file's `test` section."
            ) from None

    def _normalize(self, images):
        images = tf.cast(images, "float32") / 255.0  # [B, H, W, 3] RGB in [0, 1]
        images = (images - tf.constant(self.image_mean)) / tf.constant(self.image_std)
        if self.channel_order == "bgr":
            images = images[..., ::-1]
        return tf.cast(images, self.compute_dtype)

    def build(self, input_shape=None):
        # Every layer is built from channel counts alone (the weights do not
        # depend on the image size, whatever `input_shape` says), so building
        # creates the variables without tracing or running the network:
        # `from_preset` and `load_model` stay cheap.
        if self.built:
            return
        shape = (None, None, None, 3)
        for layer in self.pre:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        inter_shape = shape
        cnv_shape = shape[:-1] + (self.cnv_dim,)
        for i in range(self.num_stacks):
            self.kps[i].build(inter_shape)
            self.cnvs[i].build(self.kps[i].compute_output_shape(inter_shape))
            for corner in CORNERS:
                self.corner_modules[corner][i].build(cnv_shape)
                for head in HEAD_NAMES:
                    self.heads[f"{corner}_{head}"][i].build(cnv_shape)
            for level, name in enumerate(self.attention_heads):  # deepest first
                merge_dim = self.dims[len(self.attention_heads) - 1 - level]
                self.attention_heads[name][i].build(inter_shape[:-1] + (merge_dim,))
            if i < self.num_stacks - 1:
                for (conv, bn), in_shape in (
                    (self.inters_[i], inter_shape),
                    (self.cnvs_[i], cnv_shape),
                ):
                    conv.build(in_shape)
                    bn.build(conv.compute_output_shape(in_shape))
                self.inters[i].build(inter_shape)
        self.built = True

    def call(self, images, training=None, all_stacks=None):
        if all_stacks is None:
            all_stacks = bool(training)
        self._check_input_sides(images.shape)
        x = self._normalize(images)
        for layer in self.pre:
            x = layer(x, training=training)
        inter = x
        outputs = {}
        for i in range(self.num_stacks):
            last = i == self.num_stacks - 1
            with_heads = all_stacks or last
            stack = functools.partial(self._stack, i, with_heads=with_heads, training=training)
            # The last stack's backward pass comes first, right after its forward
            # pass: recomputing it would hold the same activations at the same
            # moment, one forward pass of a stack later.
            if training and self.recompute_stacks and not last:
                stack = _recomputed(stack)
            cnv, *heads = stack(inter)
            if with_heads:
                suffix = f"_{i}" if all_stacks else ""
                for name, out in zip(self._stack_keys(), heads, strict=True):
                    outputs[f"{name}{suffix}"] = tf.cast(out, "float32")
            if not last:
                conv_i, bn_i = self.inters_[i]
                conv_c, bn_c = self.cnvs_[i]
                inter = bn_i(conv_i(inter), training=training) + bn_c(
                    conv_c(cnv), training=training
                )
                inter = self.inters[i](keras.ops.relu(inter), training=training)
        return outputs

    def _check_input_sides(self, shape):
        """Raises ValueError when a known height or width does not fit the hourglasses."""
        for axis, side in (("height", shape[1]), ("width", shape[2])):
            if side is None:
                continue
            problem = input_size_problem(side, self.output_stride, len(self.dims) - 1)
            if problem is not None:
                raise ValueError(
                    f"CornerNet: input {axis} {problem}; pad or resize the images to one of "
                    "them (`predict`, `detect` and `predict_images` take any size and do it)."
                )

    def _stack_keys(self):
        """Output names of one stack: the corner heads, then the attention maps."""
        return _head_keys() + [f"attention_{name}" for name in self.attention_heads]

    def _stack(self, i, inter, with_heads, training):
        """Hourglass `i` and, with `with_heads`, its corner modules and heads.

        Returns `[cnv, *heads]`, the heads in `_stack_keys()` order: a flat
        list, as `tf.recompute_grad` takes.
        """
        merges = []
        if self.attention and with_heads:
            hourglass, merges = self.kps[i](inter, training=training, return_merges=True)
        else:
            hourglass = self.kps[i](inter, training=training)
        cnv = self.cnvs[i](hourglass, training=training)
        results = [cnv]
        if with_heads:
            for corner in CORNERS:
                feature = self.corner_modules[corner][i](cnv, training=training)
                for head in HEAD_NAMES:
                    results.append(self.heads[f"{corner}_{head}"][i](feature, training=training))
            for heads, merge in zip(self.attention_heads.values(), merges, strict=True):
                results.append(heads[i](merge, training=training))
        return results

    # ----------------------------------------------------------------- training

    def compile(
        self,
        optimizer="adam",
        pull_weight=0.1,
        push_weight=0.1,
        offset_weight=1.0,
        recompute_stacks=False,
        **kwargs,
    ):
        """Configures training; the loss is CornerNet's own (official `AELoss`).

        With attention heads the loss is CornerNet-Saccade's (official
        `CornerNet_Saccade_Loss`): the corner heatmaps' focal loss is masked
        by the targets' `tl_valid` / `br_valid`, and the attention maps'
        focal loss is added (`saccade_losses.attention_loss`); the targets
        must come from the Saccade sampler (`data.sampler: saccade`).

        On a built model (every preset is) this also creates the optimizer's
        variables, under the model's distribution strategy, so that the first
        `fit` step is traced once.

        Args:
            optimizer: a Keras optimizer (the official schedule is Adam 2.5e-4
                at batch 49).
            pull_weight: weight of the embedding pull loss.
            push_weight: weight of the embedding push loss.
            offset_weight: weight of the offset (smooth L1) loss.
            recompute_stacks: keep only the input of each stack but the last
                for the backward pass and compute the stack (hourglass, corner
                modules, heads) again there (`tf.recompute_grad`): less memory
                for one more forward pass of those stacks; the same loss and
                gradients. (The last stack's backward pass starts right after
                its forward pass: recomputing it would save nothing.)
            **kwargs: passed to `keras.Model.compile` (e.g. `jit_compile`).
        """
        if kwargs.pop("loss", None) is not None:
            raise ValueError("CornerNet.compile: `loss` is built in; set the part weights instead.")
        if not isinstance(recompute_stacks, bool):
            raise ValueError(
                f"CornerNet.compile: `recompute_stacks` must be True or False, got "
                f"{recompute_stacks!r}."
            )
        self.loss_weights_ = {"pull": pull_weight, "push": push_weight, "offset": offset_weight}
        self.recompute_stacks = recompute_stacks
        super().compile(optimizer=optimizer, **kwargs)
        if self.built:
            # The optimizer's slots now, not in the first step: tf.function
            # traces a step that creates variables twice, and the first
            # trace's memory stays (Hourglass-104 at 511: 0.55-0.9 GB more
            # peak memory in benchmarks/train_memory.py; docs/performance.md).
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def get_compile_config(self):
        # Only a model whose optimizer is built (`compile` of a built model, or
        # training) is saved compiled, so that loading always finds the
        # optimizer variables it restores.
        optimizer = getattr(self, "optimizer", None)
        if optimizer is None or not optimizer.built:
            return None
        config = super().get_compile_config()
        if config is not None:
            config.update({f"{k}_weight": v for k, v in self.loss_weights_.items()})
            config["recompute_stacks"] = self.recompute_stacks
        return config

    def compile_from_config(self, config):
        # Keras skips `compile` on load when it is overridden; ours takes the
        # same arguments plus the loss weights, so it can be replayed.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)  # builds the optimizer of a built model

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # `y_pred` holds every stack's heads (`call(training=True)` and
        # `test_step`); `cornernet_loss` names any that are missing.
        parts = losses_lib.cornernet_loss(
            y_pred,
            y,
            num_stacks=self.num_stacks,
            pull_weight=self.loss_weights_["pull"],
            push_weight=self.loss_weights_["push"],
            offset_weight=self.loss_weights_["offset"],
        )
        if self.attention:
            # Official `CornerNet_Saccade_Loss`: the attention focal loss adds
            # to the corner terms with weight 1.
            parts["attention"] = saccade_losses.attention_loss(
                y_pred, y, num_stacks=self.num_stacks
            )
            parts["loss"] = parts["loss"] + parts["attention"]
        for name, tracker in self.part_trackers.items():
            tracker.update_state(parts[name])
        # Each replica's gradients are all-reduced with a sum; dividing by the
        # replica count makes the update the mean of the per-replica losses,
        # as the official trainer averages its per-GPU losses.
        return parts["loss"] / _num_replicas()

    def test_step(self, data):
        # Like Keras' test_step, but with the heads of every stack so that the
        # validation loss is the training loss (as the official `validate`).
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred = self(x, training=False, all_stacks=True)
        loss = self.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=False
        )
        update_loss_tracker(self, loss * _num_replicas(), sample_weight=tf.shape(x)[0])
        return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    # ---------------------------------------------------------------- inference

    def detect(self, images, test_config=None):
        """Detections for a batch of same-size images (official test procedure).

        Runs `cornernet_tf.inference.CornerNetDecoder`: each image is placed
        centred on a zero canvas of `(h | 127, w | 127)` (`| (g - 1)` for
        the network's `input_size_granule` g; 128 for the official networks)
        at every test scale
        (with its mirror image for the flip test), run through the network,
        decoded (`decode_corners`), mapped back to image pixels and reduced by
        per-class Gaussian soft-NMS to the best `max_detections`.
        Graph-friendly: `predict_step`, COCO evaluation and the SavedModel
        signatures call it. A model with attention heads (CornerNet-Saccade)
        runs `saccade_procedure()` instead, graph-friendly as well.

        Args:
            images: [B, H, W, 3] RGB, pixel values in [0, 255], any numeric
                dtype.
            test_config: settings for this call instead of `self.test_config`:
                a `TestConfig`, or a dict of fields replacing the model's.

        Returns:
            Dict of `boxes` [B, M, 4] (x1, y1, x2, y2 in input-image pixels),
            `confidence` [B, M], `classes` [B, M] int32, `num_detections` [B]
            int32; unused slots are -1; M = `max_detections`.
        """
        images = tf.convert_to_tensor(images)
        if images.shape.rank != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"CornerNet.detect: `images` must be a batch [B, H, W, 3] of RGB images, got "
                f"shape {images.shape}; add a batch axis or convert grayscale/RGBA to RGB."
            )
        if 0 in images.shape[:3]:  # a zero canvas would still give "detections"
            raise ValueError(
                f"CornerNet.detect: `images` has shape {images.shape}; a batch needs at least "
                "one image of at least 1x1 pixels."
            )
        if self.attention:
            return self._saccade_detect(images, test_config)
        return self.decoder(test_config)(lambda canvas: self(canvas, training=False), images)

    def decoder(self, test_config=None) -> CornerNetDecoder:
        """The test procedure around this network: a `CornerNetDecoder` with its
        output stride and input granule (the test canvas), as `detect` runs it.

        Args:
            test_config: None for the model's `test_config`; a `TestConfig`; or
                a dict of fields replacing the model's.

        Returns:
            The `cornernet_tf.inference.CornerNetDecoder`; call it with a network
            function and images, or use its `candidates` and `suppress` steps.
        """
        if test_config is None:
            return self._decoder
        if isinstance(test_config, Mapping):
            test_config = self.test_config.to_dict() | dict(test_config)
        return self._make_decoder(test_config)

    def predict_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        images = tf.convert_to_tensor(images)
        detections = self.detect(images)
        # `predict` converts the xyxy pixel boxes to the asked-for format, which
        # for relative formats needs each image's size.
        batch = tf.shape(images)[0]
        detections["image_size"] = tf.tile(tf.shape(images)[None, 1:3], [batch, 1])
        return detections

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None, **kwargs):
        """Detections for a batch of images: `keras.Model.predict` plus a box format.

        Args:
            x: images [N, H, W, 3] (RGB, 0-255) or a `tf.data.Dataset` of
                batches of them (checked batch by batch as arrays are:
                `check_image_batch`). Generators and `keras.utils.PyDataset`s
                are refused: wrap them with `tf.data.Dataset.from_generator`.
            batch_size: images per batch when `x` is an array (default 32, as
                Keras); a dataset is used as batched.
            verbose: see `keras.Model.predict`.
            steps: see `keras.Model.predict`.
            callbacks: see `keras.Model.predict`.
            **kwargs: `bounding_box_format`, any `keras.utils.bounding_boxes`
                format ("xyxy", "xywh", "yxyx", "center_xywh", "rel_xyxy", ...);
                defaults to the model's `bounding_box_format`. `max_image_side`:
                arrays with a longer side are refused (default
                `DEFAULT_MAX_IMAGE_SIDE`, see docs/input.md).

        Returns:
            Dict of numpy arrays `boxes` [N, M, 4], `confidence` [N, M],
            `classes` [N, M], `num_detections` [N]; unused slots are -1.
        """
        box_format = kwargs.pop("bounding_box_format", None) or self.bounding_box_format
        max_side = check_max_side(
            kwargs.pop("max_image_side", DEFAULT_MAX_IMAGE_SIDE), "CornerNet.predict"
        )
        if kwargs:
            raise TypeError(f"CornerNet.predict: unexpected arguments {sorted(kwargs)}.")
        _refuse_streams(x, "CornerNet.predict")
        if isinstance(x, tf.data.Dataset):
            x = x.map(functools.partial(_checked_element, max_side=max_side))
        else:  # arrays and eager tensors
            x = check_image(x, "CornerNet.predict: `x`", batched=True, max_side=max_side)
            # Batched here rather than by Keras so that the pipeline runs
            # without autotuning (see `inference.feeding`).
            x = tf.data.Dataset.from_tensor_slices(x).batch(_batch_size(batch_size))
            batch_size = None
        try:
            detections = super().predict(
                without_autotune(x),
                batch_size=batch_size,
                verbose=verbose,
                steps=steps,
                callbacks=callbacks,
            )
        except tf.errors.InvalidArgumentError as error:
            if _DATASET_BATCH not in error.message:
                raise
            raise ValueError(_assertion_text(error.message)) from None
        return _in_box_format(detections, box_format)

    def predict_on_batch(self, x):
        """`keras.Model.predict_on_batch` with boxes in the model's `bounding_box_format`.

        `x` is checked as `predict` checks arrays (default side limit).
        """
        _refuse_streams(x, "CornerNet.predict_on_batch")
        x = check_image(x, "CornerNet.predict_on_batch: `x`", batched=True)
        return _in_box_format(super().predict_on_batch(x), self.bounding_box_format)

    def predict_images(
        self, images, bounding_box_format=None, max_image_side=DEFAULT_MAX_IMAGE_SIDE
    ):
        """Detections for a list of images of different sizes.

        Each image is run at its own size with the official per-image padding
        (batching different sizes would change the padding and the result).

        Args:
            images: a sequence or an iterable (a generator) of [H, W, 3] RGB
                arrays (0-255); a generator's images are read one at a time.
            bounding_box_format: as in `predict`.
            max_image_side: images with a longer side are refused before the
                network runs (memory grows with the pixels; docs/input.md).

        Returns:
            Dict of numpy arrays stacked over the images, as `predict`.
        """
        single = isinstance(images, np.ndarray | tf.Tensor) and len(images.shape) == 3
        if images is None or isinstance(images, str | bytes) or single:
            raise TypeError(
                "CornerNet.predict_images: `images` must be a list of [H, W, 3] arrays (one "
                "image: [image]); read files with cornernet_tf.images.read_image."
            )
        if isinstance(images, keras.utils.PyDataset):
            _refuse_streams(images, "CornerNet.predict_images", "images")
        try:
            images = iter(images)
        except TypeError:
            raise TypeError(
                "CornerNet.predict_images: `images` must be a list of [H, W, 3] arrays, got "
                f"{type(images).__name__}."
            ) from None
        max_side = check_max_side(max_image_side, "CornerNet.predict_images")
        if getattr(self, "_detect_one", None) is None:
            # One trace for every image size.
            self._detect_one = tf.function(
                self.detect,
                input_signature=[tf.TensorSpec([1, None, None, 3], tf.float32)],
                autograph=False,
            )
        results = []
        for i, image in enumerate(images):
            image = check_image(image, f"CornerNet.predict_images: image {i}", max_side=max_side)
            detections = self._detect_one(tf.cast(image, tf.float32)[None])
            detections = {key: value.numpy() for key, value in detections.items()}
            detections["image_size"] = np.array([image.shape[:2]], np.int32)
            results.append(detections)
        if not results:
            raise ValueError(
                "CornerNet.predict_images: `images` is empty; pass at least one image."
            )
        stacked = {k: np.concatenate([r[k] for r in results]) for k in results[0]}
        return _in_box_format(stacked, bounding_box_format or self.bounding_box_format)

    def saccade_procedure(self, test_config=None) -> SaccadeProcedure:
        """CornerNet-Saccade's test procedure around this network (attention heads only).

        Args:
            test_config: as in `decoder`.

        Returns:
            The `cornernet_tf.inference.saccade.SaccadeProcedure` that `detect`,
            `predict` and `predict_images` run for a model with attention heads.
        """
        if not self.attention:
            raise ValueError(
                "CornerNet.saccade_procedure: the model has no attention heads; build it "
                "with `attention=True` (the saccade presets) or use `decoder`."
            )
        config = self.decoder(test_config).config
        # One procedure (one traced canvas graph) kept for the latest settings.
        if getattr(self, "_saccade", None) is None or self._saccade.test_config != config:
            self._saccade = SaccadeProcedure(self._network, config, self.saccade_config)
        return self._saccade

    def _network(self, canvases):
        return self(canvases, training=False)

    def _saccade_detect(self, images, test_config=None):
        return self.saccade_procedure(test_config)(images)

    # ------------------------------------------------------------ serialisation

    def get_config(self):
        config = super().get_config()
        config.update(
            num_classes=self.num_classes,
            num_stacks=self.num_stacks,
            dims=self.dims,
            modules=self.modules,
            pre_dim=self.pre_dim,
            cnv_dim=self.cnv_dim,
            pool_dim=self.pool_dim,
            head_dim=self.head_dim,
            block=self.block,
            upsample=self.upsample,
            stem_residuals=self.stem_residuals,
            head_kernel=self.head_kernel,
            attention=self.attention,
            image_mean=self.image_mean,
            image_std=self.image_std,
            channel_order=self.channel_order,
            class_names=self.class_names,
            test_config=self.test_config.to_dict(),
            bounding_box_format=self.bounding_box_format,
        )
        if self.attention:
            config["saccade_config"] = self.saccade_config.to_dict()
        return config


# Names the failed check of a dataset's batch (`_checked_element`) in the error.
_DATASET_BATCH = "CornerNet.predict: a batch of the dataset"


def _checked_element(*element, max_side):
    """A `tf.data` element of `predict` with its images checked (`check_image_batch`)."""
    images = check_image_batch(element[0], _DATASET_BATCH, max_side=max_side)
    return images if len(element) == 1 else (images, *element[1:])


def _assertion_text(message: str) -> str:
    """The one-line text of a failed `tf.debugging.Assert`, without TF's graph context."""
    # "[text] [1 8 3000 3] [more text]": each part of the Assert's data in brackets.
    failed = message.partition("assertion failed: ")[2].splitlines()[0].strip()
    return " ".join(failed.removeprefix("[").removesuffix("]").split("] [")) + "."


def _refuse_streams(x, where: str, name: str = "x") -> None:
    """TypeError for inputs `predict` cannot check or batch: generators, iterators, PyDatasets."""
    if isinstance(x, keras.utils.PyDataset | Iterator):
        raise TypeError(
            f"{where}: `{name}` is a {type(x).__name__}; pass an array [N, H, W, 3] of same-size "
            "images or a tf.data.Dataset of such batches (tf.data.Dataset.from_generator wraps "
            "a generator), or a list or generator of images of any size to predict_images."
        )


def _batch_size(batch_size) -> int:
    """`predict`'s `batch_size` for arrays: Keras' default 32, or a positive integer."""
    if batch_size is None:
        return 32
    return check_count(batch_size, "batch_size", "CornerNet.predict", hint="or None (32)")


def _in_box_format(detections, box_format):
    """Host-side: xyxy pixel boxes → `box_format`, keeping the -1 padding.

    Args:
        detections: numpy arrays from `predict_step`, with `image_size` [N, 2]
            (height, width) of each image; that key is dropped.
        box_format: any `keras.utils.bounding_boxes` format.
    """
    detections = dict(detections)
    image_size = np.asarray(detections.pop("image_size"), np.float32)  # [N, 2]
    if box_format == "xyxy":
        return detections
    boxes = keras.utils.bounding_boxes.convert_format(
        detections["boxes"],
        source="xyxy",
        target=box_format,
        height=image_size[:, 0, None, None],
        width=image_size[:, 1, None, None],
    )
    valid = (np.asarray(detections["classes"]) >= 0)[..., None]
    detections["boxes"] = np.where(valid, np.asarray(boxes), -1.0).astype(np.float32)
    return detections


def _saccade_settings(value, model) -> SaccadeConfig:
    """`SaccadeConfig.coerce(value)`, its canvas checked against the network's input rule."""
    try:
        config = SaccadeConfig.coerce(value)
    except ConfigError as error:
        raise ValueError(
            f"CornerNet: invalid saccade setting: {error} Fix it in `saccade_config` (a "
            "SaccadeConfig or dict) or the config file's `saccade` section."
        ) from None
    problem = input_size_problem(config.crop_size, model.output_stride, len(model.dims) - 1)
    if model.attention and problem is not None:
        raise ValueError(f"CornerNet: saccade.crop_size {problem}.")
    return config


def _head_keys():
    return [f"{corner}_{head}" for corner in CORNERS for head in HEAD_NAMES]


def _recomputed(stack):
    """`stack` under `tf.recompute_grad`, BatchNorm statistics updated once.

    The backward pass runs `stack` again on the saved input; in training mode
    that second run would update every BatchNorm's moving mean and variance a
    second time. It runs in a `keras.StatelessScope`, which keeps those
    assignments to itself: the batch statistics (and so the gradients) are the
    forward pass's, the moving statistics are updated by the forward pass only.
    """
    runs = 0

    def run(inter):
        nonlocal runs
        runs += 1
        if runs == 1:
            return stack(inter)
        with keras.StatelessScope():
            return stack(inter)

    return tf.recompute_grad(run)


def _num_replicas():
    return tf.distribute.get_strategy().num_replicas_in_sync
