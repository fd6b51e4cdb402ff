"""CornerNet-Saccade's test procedure: look at the downsized image, then zoom in.

Follows princeton-vl/CornerNet-Lite `core/test/cornernet_saccade.py`
(`cornernet_saccade_inference`) with `configs/CornerNet_Saccade.json`:

    coarse pass  the whole image, longer side resized to each of `init_sizes`
                 (192, 255), centred on a zero `crop_size` canvas
    decode       top-K corners and pairs of each canvas, pairs touching the
                 map border rejected (`no_border`); sigmoid attention maps
                 with max-pool NMS
    locate       attention peaks above `att_threshold` → crop centres, zoom
                 `att_scales[j]` × the pass's scale for map j (large, medium,
                 small objects); plus the centres of coarse detections scoring
                 above 0.5, zoomed so that the object spans 192, 64 or 24
                 pixels; close locations of similar zoom merged
    crops        the best `att_max_crops` locations cut from the image,
                 resized onto `crop_size` canvases, run as one batch
    merge        detections remapped to image pixels, pooled with the coarse
                 ones (score > 0.3), per-class Gaussian soft-NMS, the best
                 `max_detections`

All of it is TensorFlow ops with static ranks (`SaccadeProcedure.detect`), so
`CornerNet.detect` of a model with attention heads runs in a `tf.function`, in
Keras' predict loop and in a SavedModel. The official numpy steps keep their
arithmetic: the integer crop windows, float64 crop locations, masks over the
fixed-size attention maps instead of `np.where`. Differences: the crops run as
one batch (the official code runs batches of 32), and locations of equal score
may be ordered differently (`location_nms`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from cornernet_tf.inference.decode import OUTPUT_KEYS, REJECTED_SCORE, decode_corners
from cornernet_tf.inference.soft_nms import soft_nms
from cornernet_tf.spec.config import SaccadeConfig, TestConfig

__all__ = [
    "ATTENTION_KEYS",
    "SaccadeConfig",
    "SaccadeProcedure",
    "crop_window",
    "decode_attention",
    "location_nms",
    "prepare_crops",
    "reference_locations",
    "remap_detections",
]

# The attention maps of the last stack, official order (`att_ranges`
# [[96, 256], [32, 96], [0, 32]]): large, medium, small objects.
ATTENTION_KEYS = ("attention_large", "attention_medium", "attention_small")
# Input pixels per attention-map pixel of each map (official `att_ratios`).
ATTENTION_RATIOS = (16, 8, 4)
# Constants of the official procedure (not configuration there either).
COARSE_SCORE_THRESHOLD = 0.3  # coarse detections kept for the merge (`get_locs`)
REFERENCE_SCORE_THRESHOLD = 0.5  # coarse detections that also become crops (`get_ref_locs`)
LOCATION_NMS_DISTANCE = 16  # `location_nms(..., thresh=16)`
MAX_PASS_SCALE = 2  # no crops from a pass zoomed by more (`decode_atts`)
MAX_CROP_SCALE = 4  # no crops zoomed by more (`decode_atts`)

Network = Callable[[tf.Tensor], Mapping[str, tf.Tensor]]


# ------------------------------------------------------------------ geometry


def crop_window(image_hw, centers, sides, out_side):
    """Where crops come from and where they land (official `crop_image_gpu`).

    A square window of `sides` pixels centred on `centers` is clipped to the
    image and resized by `out_side / side` onto an `out_side` canvas, centred
    there. The official integer arithmetic, vectorised: halves by floor
    division, the scaled extents truncated towards zero as Python's `int`.

    Args:
        image_hw: (height, width) of the image, int32.
        centers: [N, 2] int32 (y, x) window centres.
        sides: [N] int32 window sides.
        out_side: side of the canvas (an int).

    Returns:
        `(source, target, offsets)`, int32: source rows/columns
        `(y0, y1, x0, x1)` [N, 4] of the image, target rows/columns [N, 4] of
        the canvas, and the image position (y, x) [N, 2] of each unclipped
        window's top-left corner.
    """
    image_hw = tf.cast(image_hw, tf.int32)
    centers = tf.cast(centers, tf.int32)
    sides = tf.cast(sides, tf.int32)
    cty, ctx = centers[:, 0], centers[:, 1]
    half = sides // 2
    # A zero side has an empty window; its scale stays finite.
    scale = tf.math.divide_no_nan(tf.constant(out_side, tf.float64), tf.cast(sides, tf.float64))
    x0, x1 = tf.maximum(0, ctx - half), tf.minimum(ctx + half, image_hw[1])
    y0, y1 = tf.maximum(0, cty - half), tf.minimum(cty + half, image_hw[0])
    mid = out_side // 2

    def scaled(extent):
        return tf.cast(tf.cast(extent, tf.float64) * scale, tf.int32)  # truncates, as int()

    target = tf.stack(
        [
            mid - scaled(cty - y0),
            mid + scaled(y1 - cty),
            mid - scaled(ctx - x0),
            mid + scaled(x1 - ctx),
        ],
        axis=1,
    )
    return tf.stack([y0, y1, x0, x1], axis=1), target, tf.stack([cty - half, ctx - half], axis=1)


def _sample_axis(start, stop, target_start, target_stop, out_side):
    """Source indices and weights of one axis of a half-pixel bilinear resize.

    Canvas position `p` in `[target_start, target_stop)` reads the window
    `[start, stop)` as `tf.image.resize(..., "bilinear", antialias=False)`
    (TensorFlow's `ResizeBilinear` with half-pixel centres, torch's
    `interpolate(mode="bilinear", align_corners=False)`) maps output pixel
    `p - target_start` of `target_stop - target_start` pixels.

    Returns:
        `(lower, upper, lerp, inside)`, each [N, out_side]: image indices,
        the weight of `upper`, and whether the canvas position is covered.
    """
    positions = tf.range(out_side, dtype=tf.int32)[None, :]
    in_size = (stop - start)[:, None]
    out_size = (target_stop - target_start)[:, None]
    ratio = tf.math.divide_no_nan(tf.cast(in_size, tf.float32), tf.cast(out_size, tf.float32))
    source = (tf.cast(positions - target_start[:, None], tf.float32) + 0.5) * ratio - 0.5
    floor = tf.floor(source)
    lower = tf.clip_by_value(tf.cast(floor, tf.int32), 0, tf.maximum(in_size - 1, 0))
    upper = tf.clip_by_value(tf.cast(tf.math.ceil(source), tf.int32), 0, tf.maximum(in_size - 1, 0))
    inside = (positions >= target_start[:, None]) & (positions < target_stop[:, None])
    return start[:, None] + lower, start[:, None] + upper, source - floor, inside


def prepare_crops(image, locations, crop_size):
    """Canvases of the crops at `locations` (official `prepare_images`).

    Each crop is the window `crop_window` gives, resized with half-pixel
    bilinear interpolation (no antialiasing) onto a zero canvas. The resize is
    a gather of the four neighbours of every canvas pixel, clamped to the
    window, with `ResizeBilinear`'s weights: `tf.image.crop_and_resize`
    samples the window's border differently.

    Args:
        image: [H, W, 3] float32 (0-255).
        locations: [N, >=3] rows `(y, x, scale, ...)`, float32 or float64:
            a window of `int(crop_size / scale)` pixels (computed in the
            locations' dtype, as numpy does) centred on `(int(y), int(x))`.
        crop_size: canvas side.

    Returns:
        canvases [N, crop_size, crop_size, 3] float32 (zero outside the
        crop) and offsets [N, 2] float32 (`crop_window`'s `offsets`).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    locations = tf.convert_to_tensor(locations)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    scales = locations[:, 2]
    sides = tf.cast(tf.constant(crop_size, scales.dtype) / scales, tf.int32)
    centers = tf.cast(locations[:, :2], tf.int32)
    source, target, offsets = crop_window(shape[:2], centers, sides, crop_size)
    y0, y1, x0, x1 = tf.unstack(source, axis=1)
    ty0, ty1, tx0, tx1 = tf.unstack(target, axis=1)
    rows_lo, rows_hi, y_lerp, rows_in = _sample_axis(y0, y1, ty0, ty1, crop_size)
    cols_lo, cols_hi, x_lerp, cols_in = _sample_axis(x0, x1, tx0, tx1, crop_size)
    pixels = tf.reshape(image, [-1, 3])
    # Clamped to the image: rows of an empty or outside window are masked below.
    rows_lo, rows_hi = (tf.clip_by_value(r, 0, height - 1) for r in (rows_lo, rows_hi))
    cols_lo, cols_hi = (tf.clip_by_value(c, 0, width - 1) for c in (cols_lo, cols_hi))

    def at(rows, cols):  # [N, S, S, 3]
        return tf.gather(pixels, rows[:, :, None] * width + cols[:, None, :])

    x_lerp = x_lerp[:, None, :, None]
    top_left, top_right = at(rows_lo, cols_lo), at(rows_lo, cols_hi)
    bottom_left, bottom_right = at(rows_hi, cols_lo), at(rows_hi, cols_hi)
    top = top_left + (top_right - top_left) * x_lerp
    bottom = bottom_left + (bottom_right - bottom_left) * x_lerp
    canvases = top + (bottom - top) * y_lerp[:, :, None, None]
    # A window outside the image (or of zero side) gives an empty canvas.
    nonempty = tf.reduce_min(tf.stack([y1 - y0, x1 - x0, ty1 - ty0, tx1 - tx0], 1), 1) > 0
    covered = rows_in[:, :, None] & cols_in[:, None, :] & nonempty[:, None, None]
    canvases = tf.where(covered[..., None], canvases, 0.0)
    return canvases, tf.cast(offsets, tf.float32)


def remap_detections(detections, scales, offsets, map_ratio):
    """Canvas-map boxes to image pixels (official `rescale_dets_` + `remap_dets_`).

    The arithmetic follows numpy's in-place updates of the official float32
    array: the map ratio in float32, the zoom in the zooms' dtype (float64
    for crop locations) with the result rounded back to float32.

    Args:
        detections: [N, D, 8] float32, x1, y1, x2, y2 in output-map pixels.
        scales: [N] zoom of each canvas (float32 or float64).
        offsets: [N, 2] float32 image (y, x) of each canvas's window corner.
        map_ratio: output-map pixels per canvas pixel (64 / 255).

    Returns:
        `detections` with boxes in image pixels.
    """
    scales = tf.convert_to_tensor(scales)
    coords = detections[..., :4] / tf.constant(map_ratio, tf.float32)
    coords = tf.cast(tf.cast(coords, scales.dtype) / scales[:, None, None], tf.float32)
    # Columns x1, y1, x2, y2 get the x, y, x, y offset.
    coords += tf.tile(tf.reverse(offsets, [1]), [1, 2])[:, None, :]
    return tf.concat([coords, detections[..., 4:]], axis=-1)


def decode_attention(attentions, scales, offsets, image_hw, threshold, att_scales, ignore_same):
    """Crop locations from attention peaks (official `decode_atts`).

    Every map pixel is a candidate; the official `np.where` becomes a mask,
    and the rows are returned in numpy's order (canvas, map, row-major pixel).
    Positions are float64 as numpy computes them; a map gives no crops for a
    canvas zoomed by more than `MAX_PASS_SCALE`, nor when its zoom would pass
    `MAX_CROP_SCALE`, nor (with `ignore_same`) when it does not zoom in.

    Args:
        attentions: the large, medium and small maps after sigmoid and NMS,
            each [N, h, w, 1] float32 with static h, w.
        scales: [N] float32 zoom of each canvas.
        offsets: [N, 2] float32 image (y, x) of each canvas's window corner.
        image_hw: (height, width) of the image.
        threshold: peaks above it count.
        att_scales: zoom per map, relative to the canvas's.
        ignore_same: skip maps that do not zoom in (`att_scale <= 1`).

    Returns:
        [M, 4] float64 rows `(y, x, scale, score)` in image pixels.
    """
    scales = tf.convert_to_tensor(scales, tf.float32)
    offsets = tf.cast(offsets, tf.float64)
    height = tf.cast(image_hw[0], tf.float64)
    width = tf.cast(image_hw[1], tf.float64)
    columns = []
    for att, ratio, att_scale in zip(attentions, ATTENTION_RATIOS, att_scales, strict=True):
        map_h, map_w = att.shape[1], att.shape[2]
        pixels = tf.range(map_h * map_w)
        grid_y = tf.cast((pixels // map_w) * ratio, tf.float64)[None, :]  # [1, h*w]
        grid_x = tf.cast((pixels % map_w) * ratio, tf.float64)[None, :]
        zoom = tf.cast(scales, tf.float64)[:, None]
        ys = grid_y / zoom + offsets[:, 0:1]
        xs = grid_x / zoom + offsets[:, 1:2]
        scores = tf.reshape(att, [-1, map_h * map_w])
        next_scale = tf.constant(att_scale, tf.float32) * scales  # numpy: float32
        usable = (scales <= MAX_PASS_SCALE) & (next_scale <= MAX_CROP_SCALE)
        if ignore_same and att_scale <= 1:
            usable = tf.zeros_like(usable)
        keep = (
            (scores > threshold)
            & (ys >= 0)
            & (ys < height)
            & (xs >= 0)
            & (xs < width)
            & usable[:, None]
        )
        next_scale = tf.broadcast_to(tf.cast(next_scale, tf.float64)[:, None], tf.shape(ys))
        rows = tf.stack([ys, xs, next_scale, tf.cast(scores, tf.float64)], axis=-1)
        columns.append((rows, keep))
    rows = tf.concat([r for r, _ in columns], axis=1)  # [N, sum h*w, 4]
    keep = tf.concat([k for _, k in columns], axis=1)
    return tf.boolean_mask(tf.reshape(rows, [-1, 4]), tf.reshape(keep, [-1]))


def reference_locations(detections):
    """Crops around confident detections (official `get_ref_locs`).

    Each detection scoring above 0.5 gives a crop at its centre, zoomed so
    that its longer side becomes 192 (over 96 pixels), 64 (over 32) or 24.

    Args:
        detections: [M, 8] float32 rows `(x1, y1, x2, y2, score, tl, br, class)`.

    Returns:
        [K, 4] float32 rows `(y, x, scale, 1)`.
    """
    detections = tf.boolean_mask(detections, detections[:, 4] > REFERENCE_SCORE_THRESHOLD)
    x1, y1, x2, y2 = tf.unstack(detections[:, :4], axis=1)
    sides = tf.maximum(x2 - x1, y2 - y1)
    target = tf.where(sides > 96, 192.0, tf.where(sides > 32, 64.0, 24.0))
    return tf.stack([(y1 + y2) / 2, (x1 + x2) / 2, target / sides, tf.ones_like(sides)], axis=1)


def location_nms(locations, distance=LOCATION_NMS_DISTANCE, max_kept=None):
    """Greedy suppression of close crop locations (official `location_nms`).

    Best score first, a location suppresses the others whose zoom is within
    [0.8, 1.2] of its own and whose centre is within `distance / zoom` of its
    own in x or in y (the smaller of the two distances counts).

    The official code sorts with numpy's `argsort` reversed; here a stable
    ascending sort reversed, which is numpy's order for up to 16 locations
    (insertion sort) and may order equal scores differently beyond.

    Args:
        locations: [M, 4] float64 rows `(y, x, scale, score)`.
        distance: suppression distance at zoom 1.
        max_kept: stop after this many kept locations (None: all). A kept
            location depends only on those kept before it, so the first
            `max_kept` are those of the full run: the crop budget needs no
            more steps.

    Returns:
        The kept rows, best first; [0, 4] when none.
    """
    locations = tf.convert_to_tensor(locations, tf.float64)
    order = tf.reverse(tf.argsort(locations[:, 3], stable=True), [0])
    locations = tf.gather(locations, order)
    ys, xs, scales = locations[:, 0], locations[:, 1], locations[:, 2]
    count = tf.shape(locations)[0]
    limit = count if max_kept is None else tf.minimum(count, max_kept)

    # Each step keeps the first live location in score order, so the kept ones
    # come in index order: a mask over the sorted rows records them.
    def step(num_kept, alive, kept):
        best = tf.argmax(tf.cast(alive, tf.int32), output_type=tf.int32)
        dist = tf.minimum(tf.abs(ys - ys[best]), tf.abs(xs - xs[best]))
        ratio = scales[best] / scales
        far = (dist > distance / scales[best]) | (ratio > 1.2) | (ratio < 0.8)
        chosen = tf.range(count) == best
        return num_kept + 1, alive & far & ~chosen, kept | chosen

    def cond(num_kept, alive, kept):
        return (num_kept < limit) & tf.reduce_any(alive)

    no = tf.zeros([count], tf.bool)
    _, _, kept = tf.while_loop(cond, step, (tf.constant(0), ~no, no))
    return tf.boolean_mask(locations, kept)


# ------------------------------------------------------------ the procedure


class SaccadeProcedure:
    """Runs CornerNet-Saccade's test procedure around a network.

    Args:
        network: `canvases [N, S, S, 3] (RGB, 0-255) -> dict` with the corner
            heads (`tl_heatmap`, ...) and `attention_large`, `attention_medium`,
            `attention_small` logits of the last stack.
        test_config: the corner decoding and merge settings (`TestConfig` or
            a dict); `num_dets`, `scales` and `flip_test` are not used.
        config: the Saccade settings (`SaccadeConfig` or a dict).
        canvas_detector: instead of `network`, a callable doing
            `_run_canvases`' work (network, decoding and attention NMS), such
            as an exported canvas graph
            (`cornernet_tf.export.saccade_tflite.LiteRTCanvasDetector`).
    """

    def __init__(
        self,
        network: Network | None,
        test_config: TestConfig | Mapping[str, Any] | None = None,
        config: SaccadeConfig | Mapping[str, Any] | None = None,
        canvas_detector: Network | None = None,
    ):
        if (network is None) == (canvas_detector is None):
            raise ValueError("SaccadeProcedure: pass either `network` or `canvas_detector`.")
        self.network = network
        self.canvas_detector = canvas_detector
        self.test_config = TestConfig.coerce(test_config)
        self.config = SaccadeConfig.coerce(config)
        side = self.config.crop_size
        # autograph off: the procedure uses explicit TF control flow.
        self.run_canvases = tf.function(
            self._run_canvases if canvas_detector is None else canvas_detector,
            input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)],
            autograph=False,
        )
        self._detect = tf.function(
            self.detect,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)],
            autograph=False,
        )
        image_spec = [tf.TensorSpec([None, None, 3], tf.float32)]
        self._candidates = tf.function(self._image_candidates, input_signature=image_spec)
        self._locate = tf.function(
            lambda image: self._coarse(image, max_crops=None), input_signature=image_spec
        )

    def __repr__(self) -> str:
        return f"SaccadeProcedure({self.test_config!r}, {self.config!r})"

    def _run_canvases(self, canvases: tf.Tensor) -> dict[str, tf.Tensor]:
        """Network, corner decoding and attention NMS of a batch of canvases.

        Returns:
            `boxes` [N, D, 4] (output-map pixels), `scores`, `tl_scores`,
            `br_scores` [N, D], `classes` [N, D] int32 (D = `num_dets`), and
            the three attention maps [N, h, w, 1] after sigmoid and max-pool
            NMS, under `ATTENTION_KEYS`.
        """
        outputs = self.network(canvases)
        test = self.test_config
        k = min(test.top_k, math.prod(outputs["tl_heatmap"].shape[1:]))
        result = decode_corners(
            *(outputs[key] for key in OUTPUT_KEYS),
            k=k,
            ae_threshold=test.ae_threshold,
            num_dets=min(self.config.num_dets, k * k),
            kernel=test.nms_kernel,
            no_border=True,
        )
        kernel = self.config.att_nms_kernel
        for key in ATTENTION_KEYS:
            att = tf.sigmoid(tf.cast(outputs[key], tf.float32))
            pooled = tf.nn.max_pool2d(att, ksize=kernel, strides=1, padding="SAME")
            result[key] = tf.where(tf.equal(pooled, att), att, tf.zeros_like(att))
        return result

    def _detect_canvases(self, image, locations):
        """Crops at `locations`, through the network, remapped to image pixels.

        Returns:
            detections [N, D, 8] (x1, y1, x2, y2, score, tl_score, br_score,
            class; image pixels), the attention maps of the canvases and their
            offsets [N, 2] (`prepare_crops`).
        """
        side = self.config.crop_size
        canvases, offsets = prepare_crops(image, locations, side)
        # One traced network graph, called by the coarse pass and the crops.
        result = self.run_canvases(canvases)
        detections = tf.concat(
            [result["boxes"]]
            + [result[key][..., None] for key in ("scores", "tl_scores", "br_scores")]
            + [tf.cast(result["classes"], tf.float32)[..., None]],
            axis=-1,
        )
        # Output-map pixels per canvas pixel (official `output_sizes / input_size`).
        map_ratio = self._map_side(result) / side
        detections = remap_detections(detections, locations[:, 2], offsets, map_ratio)
        return detections, [result[key] for key in ATTENTION_KEYS], offsets

    @staticmethod
    def _map_side(result) -> int:
        # The small-object attention map has the corner heads' resolution.
        return result[ATTENTION_KEYS[-1]].shape[1]

    def _coarse(self, image, max_crops):
        """The coarse passes: detections scoring above 0.3 and the crop locations.

        Args:
            image: [H, W, 3] float32.
            max_crops: locations to keep (None: all), best first.

        Returns:
            `(detections [M, 8], locations [L, 4])` in image pixels; locations
            are float64 rows `(y, x, scale, score)`.
        """
        config = self.config
        shape = tf.shape(image)
        height, width = shape[0], shape[1]
        longer = tf.cast(tf.maximum(height, width), tf.float64)
        # Official float32 locations of the whole image, one per size.
        scales = tf.cast(tf.constant(config.init_sizes, tf.float64) / longer, tf.float32)
        centre = tf.cast(tf.stack([height // 2, width // 2]), tf.float32)
        locations = tf.concat(
            [tf.tile(centre[None], [len(config.init_sizes), 1]), scales[:, None]], axis=1
        )
        detections, attentions, offsets = self._detect_canvases(image, locations)
        crops = decode_attention(
            attentions,
            scales,
            offsets,
            (height, width),
            config.att_threshold,
            config.att_scales,
            ignore_same=False,
        )
        detections = tf.reshape(detections, [-1, 8])
        detections = tf.boolean_mask(detections, detections[:, 4] > COARSE_SCORE_THRESHOLD)
        if config.ref_dets:
            references = tf.cast(reference_locations(detections), tf.float64)
            crops = location_nms(tf.concat([crops, references], 0), max_kept=max_crops)
        elif max_crops is not None:
            crops = crops[:max_crops]  # the official order: no sorting without `ref_dets`
        return detections, crops

    def _image_candidates(self, image):
        """Coarse detections and those of the crops, before the merge."""
        coarse, locations = self._coarse(image, max_crops=self.config.att_max_crops)

        def crops():
            detections, _, _ = self._detect_canvases(image, locations)
            detections = tf.reshape(detections, [-1, 8])
            return tf.boolean_mask(detections, detections[:, 4] > REJECTED_SCORE)

        # The network takes no empty batch: no crops, no call.
        found = tf.cond(tf.shape(locations)[0] > 0, crops, lambda: tf.zeros([0, 8]))
        return {"detections": tf.concat([coarse, found], 0), "locations": locations}

    def _detect_image(self, image):
        detections = self._image_candidates(image)["detections"]
        test = self.test_config
        merged = soft_nms(
            detections[None, :, :4],
            detections[None, :, 4],
            tf.cast(detections[None, :, 7], tf.int32),
            sigma=test.soft_nms_sigma,
            score_threshold=test.score_threshold,
            max_detections=test.max_detections,
        )
        return {
            "boxes": merged["boxes"][0],
            "confidence": merged["scores"][0],
            "classes": merged["classes"][0],
            "num_detections": merged["num_detections"][0],
        }

    def detect(self, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections of a batch of images: graph ops, traceable in a `tf.function`.

        Args:
            images: [B, H, W, 3] float32 RGB (0-255).

        Returns:
            `boxes` [B, M, 4] (x1, y1, x2, y2, image pixels), `confidence`
            [B, M], `classes` [B, M] int32, `num_detections` [B] int32;
            M = `max_detections`, padded with -1.
        """
        m = self.test_config.max_detections
        return tf.map_fn(
            self._detect_image,
            tf.cast(images, tf.float32),
            fn_output_signature={
                "boxes": tf.TensorSpec([m, 4], tf.float32),
                "confidence": tf.TensorSpec([m], tf.float32),
                "classes": tf.TensorSpec([m], tf.int32),
                "num_detections": tf.TensorSpec([], tf.int32),
            },
            # One image at a time: the crops of one image are the batch.
            parallel_iterations=1,
        )

    def __call__(self, images) -> dict[str, tf.Tensor]:
        """`detect` as one compiled graph (any batch and image size)."""
        return self._detect(tf.cast(images, tf.float32))

    def locate(self, image):
        """The coarse passes of one image: their detections and every crop location.

        Args:
            image: [H, W, 3] RGB (0-255).

        Returns:
            `(detections [M, 8], locations [L, 4])`: coarse detections in image
            pixels scoring above 0.3, and the crop locations `(y, x, scale,
            score)`, best first (before `att_max_crops`).
        """
        return self._locate(tf.cast(image, tf.float32))

    def candidates(self, image) -> dict[str, tf.Tensor]:
        """Every detection before the merge: coarse ones and those of the crops.

        Args:
            image: [H, W, 3] RGB (0-255).

        Returns:
            `detections` [M, 8] (image pixels; columns x1, y1, x2, y2, score,
            tl_score, br_score, class) and `locations` [C, 4], the crops run.
        """
        return self._candidates(tf.cast(image, tf.float32))
