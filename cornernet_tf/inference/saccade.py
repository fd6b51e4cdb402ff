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

Where it runs: the network and the decoding of one batch of canvases
(`SaccadeProcedure.run_canvases`) are one fixed-shape TensorFlow graph, which a
SavedModel or TFLite file can carry as a "detect in canvases" function; the
choice of crops depends on the attention values (how many crops, where, how
large), so locating, cropping and remapping are a host step in numpy, as the
official code does them. Soft-NMS is the TensorFlow `soft_nms` of the
whole-image procedure.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tensorflow as tf

from cornernet_tf.inference.decode import OUTPUT_KEYS, REJECTED_SCORE, decode_corners
from cornernet_tf.inference.soft_nms import soft_nms
from cornernet_tf.spec.config import TestConfig

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
BATCH_SIZE = 32  # canvases per network call (official `batch_decode`)

Network = Callable[[tf.Tensor], Mapping[str, tf.Tensor]]


@dataclasses.dataclass(frozen=True)
class SaccadeConfig:
    """Settings of the Saccade procedure (official `CornerNet_Saccade.json`).

    The corner decoding reads `top_k`, `ae_threshold` and `nms_kernel`, the
    merge `soft_nms_sigma`, `score_threshold` and `max_detections` from the
    model's `TestConfig`; these are the Saccade-only settings.

    Attributes:
        init_sizes: longer side of the whole image in the coarse passes.
        crop_size: side of every canvas (the network's input).
        num_dets: corner pairs kept per canvas (official `num_dets`).
        att_threshold: attention peaks above it become crops.
        att_scales: zoom of the crops from the large, medium and small
            objects' map, relative to the coarse pass.
        att_max_crops: most crops per image.
        att_nms_kernel: max-pool window of the attention-map NMS (odd).
        ref_dets: also crop around confident coarse detections.
    """

    init_sizes: tuple[int, ...] = (192, 255)
    crop_size: int = 255
    num_dets: int = 12
    att_threshold: float = 0.3
    att_scales: tuple[float, ...] = (1.0, 2.0, 4.0)
    att_max_crops: int = 30
    att_nms_kernel: int = 3
    ref_dets: bool = True

    def __post_init__(self):
        def fail(field, message):
            raise ValueError(f"SaccadeConfig: `{field}` {message}")

        def integer(field, value, minimum):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                fail(field, f"must be an integer, got {value!r}.")
            if value < minimum:
                fail(field, f"must be >= {minimum}, got {value}.")
            return int(value)

        object.__setattr__(self, "crop_size", integer("crop_size", self.crop_size, 1))
        object.__setattr__(self, "num_dets", integer("num_dets", self.num_dets, 1))
        object.__setattr__(self, "att_max_crops", integer("att_max_crops", self.att_max_crops, 0))
        kernel = integer("att_nms_kernel", self.att_nms_kernel, 1)
        if kernel % 2 != 1:
            fail("att_nms_kernel", f"must be odd (the NMS window is centred), got {kernel}.")
        sizes = _sequence(self.init_sizes, "init_sizes", fail)
        if not sizes:
            fail("init_sizes", "must list at least one size, e.g. [192, 255].")
        object.__setattr__(
            self, "init_sizes", tuple(integer("init_sizes", size, 1) for size in sizes)
        )
        scales = _sequence(self.att_scales, "att_scales", fail)
        if len(scales) != len(ATTENTION_KEYS) or not all(_positive(s) for s in scales):
            fail(
                "att_scales",
                f"must be {len(ATTENTION_KEYS)} zooms > 0 (large, medium, small objects), "
                f"got {list(scales)}.",
            )
        object.__setattr__(self, "att_scales", tuple(float(s) for s in scales))
        threshold = self.att_threshold
        if not _real(threshold) or not 0 <= threshold < 1:
            fail("att_threshold", f"must be a number in [0, 1), got {threshold!r}.")
        object.__setattr__(self, "att_threshold", float(threshold))
        if not isinstance(self.ref_dets, bool):
            fail("ref_dets", f"must be true or false, got {self.ref_dets!r}.")

    @classmethod
    def coerce(cls, value: SaccadeConfig | Mapping[str, Any] | None) -> SaccadeConfig:
        """A `SaccadeConfig` from itself, a mapping of fields or None (the defaults)."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ValueError(
                    f"SaccadeConfig: unknown setting(s) {unknown}; known: "
                    f"{[f.name for f in dataclasses.fields(cls)]}."
                )
            return cls(**value)
        raise TypeError(f"SaccadeConfig: expected a SaccadeConfig or a dict, got {value!r}.")


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive(value) -> bool:
    return _real(value) and value > 0


def _sequence(value, field, fail) -> tuple:
    if isinstance(value, str | bytes) or not isinstance(value, list | tuple):
        fail(field, f"must be a list, got {value!r}.")
    return tuple(value)


# ------------------------------------------------------------------ host step


def crop_window(image_hw, center, size, out_size):
    """Where a crop comes from and where it lands (official `crop_image_gpu`).

    A `size` window centred on `center` is clipped to the image and resized
    by `out_size / max(size)` onto an `out_size` canvas, centred there.

    Args:
        image_hw: (height, width) of the image.
        center: (y, x) integer centre of the window.
        size: (height, width) integer window size.
        out_size: (height, width) of the canvas.

    Returns:
        `(source, target, offset)`: source rows/columns `(y0, y1, x0, x1)` of
        the image, target rows/columns of the canvas, and the image position
        `(y, x)` of the unclipped window's top-left corner.
    """
    cty, ctx = center
    height, width = size
    im_height, im_width = image_hw
    scale = out_size[0] / max(height, width)
    x0, x1 = max(0, ctx - width // 2), min(ctx + width // 2, im_width)
    y0, y1 = max(0, cty - height // 2), min(cty + height // 2, im_height)
    mid_y, mid_x = out_size[0] // 2, out_size[1] // 2
    target = (
        mid_y - int((cty - y0) * scale),
        mid_y + int((y1 - cty) * scale),
        mid_x - int((ctx - x0) * scale),
        mid_x + int((x1 - ctx) * scale),
    )
    return (y0, y1, x0, x1), target, (cty - height // 2, ctx - width // 2)


def prepare_crops(image, locations, crop_size):
    """Canvases of the crops at `locations` (official `prepare_images`).

    Args:
        image: [H, W, 3] float32 (0-255).
        locations: [N, >=3] rows `(y, x, scale, ...)`: a window of
            `int(crop_size / scale)` pixels centred on `(int(y), int(x))`.
        crop_size: canvas side.

    Returns:
        canvases [N, crop_size, crop_size, 3] float32 (zero outside the
        crop) and offsets [N, 2] float32 (`crop_window`'s `offset`).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    image_hw = tuple(image.shape[:2])
    canvases = np.zeros((len(locations), crop_size, crop_size, 3), np.float32)
    offsets = np.zeros((len(locations), 2), np.float32)
    for i, (y, x, scale) in enumerate(locations[:, :3]):
        side = int(crop_size / scale)
        source, target, offsets[i] = crop_window(
            image_hw, (int(y), int(x)), (side, side), (crop_size, crop_size)
        )
        y0, y1, x0, x1 = source
        ty0, ty1, tx0, tx1 = target
        if min(y1 - y0, x1 - x0, ty1 - ty0, tx1 - tx0) <= 0:
            continue  # a window outside the image: an empty canvas
        # Half-pixel bilinear without antialiasing: torch's
        # `interpolate(mode="bilinear", align_corners=False)`.
        canvases[i, ty0:ty1, tx0:tx1] = tf.image.resize(
            image[y0:y1, x0:x1], (ty1 - ty0, tx1 - tx0), method="bilinear", antialias=False
        ).numpy()
    return canvases, offsets


def remap_detections(detections, scales, offsets, map_ratio):
    """Canvas-map boxes to image pixels (official `rescale_dets_` + `remap_dets_`).

    Args:
        detections: [N, D, >=4] float32, x1, y1, x2, y2 in output-map pixels.
        scales: [N] zoom of each canvas.
        offsets: [N, 2] image (y, x) of each canvas's window corner.
        map_ratio: output-map pixels per canvas pixel (64 / 255).

    Returns:
        A copy of `detections` with boxes in image pixels.
    """
    detections = np.array(detections, copy=True)
    xs, ys = detections[..., 0:4:2], detections[..., 1:4:2]
    xs /= map_ratio
    ys /= map_ratio
    xs /= scales.reshape(-1, 1, 1)
    ys /= scales.reshape(-1, 1, 1)
    xs += offsets[:, 1][:, None, None]
    ys += offsets[:, 0][:, None, None]
    detections[..., 0:4:2], detections[..., 1:4:2] = xs, ys
    return detections


def decode_attention(attentions, scales, offsets, image_hw, threshold, att_scales, ignore_same):
    """Crop locations from attention peaks (official `decode_atts`).

    Args:
        attentions: the large, medium and small maps after sigmoid and NMS,
            each [N, h, w, 1].
        scales: [N] zoom of each canvas.
        offsets: [N, 2] image (y, x) of each canvas's window corner.
        image_hw: (height, width) of the image.
        threshold: peaks above it count.
        att_scales: zoom per map, relative to the canvas's.
        ignore_same: skip maps that do not zoom in (`att_scale <= 1`).

    Returns:
        [M, 4] float64 rows `(y, x, scale, score)` in image pixels.
    """
    height, width = image_hw
    ys_all, xs_all, scales_all, scores_all = [], [], [], []
    for i in range(attentions[0].shape[0]):
        for att, ratio, att_scale in zip(attentions, ATTENTION_RATIOS, att_scales, strict=True):
            ys, xs = np.where(att[i, :, :, 0] > threshold)
            scores = att[i, ys, xs, 0]
            ys = ys * ratio / scales[i] + offsets[i, 0]
            xs = xs * ratio / scales[i] + offsets[i, 1]
            keep = (ys >= 0) & (ys < height) & (xs >= 0) & (xs < width)
            ys, xs, scores = ys[keep], xs[keep], scores[keep]
            next_scale = att_scale * scales[i]
            if (ignore_same and att_scale <= 1) or scales[i] > MAX_PASS_SCALE:
                continue
            if next_scale > MAX_CROP_SCALE:
                continue
            scales_all += [next_scale] * len(xs)
            scores_all += scores.tolist()
            ys_all += ys.tolist()
            xs_all += xs.tolist()
    columns = (ys_all, xs_all, scales_all, scores_all)
    return np.stack([np.array(c, np.float64) for c in columns], axis=1)


def reference_locations(detections):
    """Crops around confident detections (official `get_ref_locs`).

    Each detection scoring above 0.5 gives a crop at its centre, zoomed so
    that its longer side becomes 192 (over 96 pixels), 64 (over 32) or 24.

    Args:
        detections: [M, 8] rows `(x1, y1, x2, y2, score, tl, br, class)`.

    Returns:
        [K, 4] rows `(y, x, scale, 1)`.
    """
    detections = detections[detections[:, 4] > REFERENCE_SCORE_THRESHOLD]
    xs = (detections[:, 0] + detections[:, 2]) / 2
    ys = (detections[:, 1] + detections[:, 3]) / 2
    sides = np.maximum(detections[:, 2] - detections[:, 0], detections[:, 3] - detections[:, 1])
    scales = np.zeros_like(sides)
    large, small = sides > 96, sides <= 32
    medium = ~large & ~small
    scales[large] = 192 / sides[large]
    scales[medium] = 64 / sides[medium]
    scales[small] = 24 / sides[small]
    return np.stack((ys, xs, scales, np.ones_like(sides)), axis=1)


def location_nms(locations, distance=LOCATION_NMS_DISTANCE):
    """Greedy suppression of close crop locations (official `location_nms`).

    Best score first, a location suppresses the others whose zoom is within
    [0.8, 1.2] of its own and whose centre is within `distance / zoom` of its
    own in x or in y (the smaller of the two distances counts).

    Args:
        locations: [M, 4] rows `(y, x, scale, score)`.
        distance: suppression distance at zoom 1.

    Returns:
        The kept rows, best first; [0, 4] when none.
    """
    order = np.argsort(locations[:, -1])[::-1]
    locations = locations[order]
    ys, xs, scales = locations[:, 0], locations[:, 1], locations[:, 2]
    dists = np.minimum(np.abs(ys[:, None] - ys[None, :]), np.abs(xs[:, None] - xs[None, :]))
    ratios = scales[:, None] / scales[None, :]
    kept = []
    while dists.shape[0] > 0:
        kept.append(locations[0])
        keep = (dists[0] > distance / scales[0]) | (ratios[0] > 1.2) | (ratios[0] < 0.8)
        locations, scales = locations[keep], scales[keep]
        dists, ratios = dists[keep][:, keep], ratios[keep][:, keep]
    return np.stack(kept) if kept else np.zeros((0, 4))


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
    """

    def __init__(
        self,
        network: Network,
        test_config: TestConfig | Mapping[str, Any] | None = None,
        config: SaccadeConfig | Mapping[str, Any] | None = None,
    ):
        self.network = network
        self.test_config = TestConfig.coerce(test_config)
        self.config = SaccadeConfig.coerce(config)
        side = self.config.crop_size
        self.run_canvases = tf.function(
            self._run_canvases,
            input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32)],
            autograph=False,
        )

    def __repr__(self) -> str:
        return f"SaccadeProcedure({self.test_config!r}, {self.config!r})"

    def _run_canvases(self, canvases: tf.Tensor) -> dict[str, tf.Tensor]:
        """The graph part: network, corner decoding and attention NMS of canvases.

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
        result["map_size"] = tf.shape(outputs["tl_heatmap"])[1]
        return result

    def _detect_canvases(self, canvases):
        """`run_canvases` in batches of `BATCH_SIZE`: [N, D, 8] detections and the maps."""
        parts = [
            self.run_canvases(tf.constant(canvases[start : start + BATCH_SIZE]))
            for start in range(0, len(canvases), BATCH_SIZE)
        ]
        detections = np.concatenate(
            [
                np.concatenate(
                    [
                        part["boxes"].numpy(),
                        part["scores"].numpy()[..., None],
                        part["tl_scores"].numpy()[..., None],
                        part["br_scores"].numpy()[..., None],
                        part["classes"].numpy()[..., None].astype(np.float32),
                    ],
                    axis=-1,
                )
                for part in parts
            ]
        )  # [N, D, 8]: x1, y1, x2, y2, score, tl_score, br_score, class
        attentions = [
            np.concatenate([part[key].numpy() for part in parts]) for key in ATTENTION_KEYS
        ]
        map_ratio = int(parts[0]["map_size"]) / self.config.crop_size
        return detections, attentions, map_ratio

    def locate(self, image):
        """The coarse passes: their detections and the crop locations.

        Args:
            image: [H, W, 3] float32 RGB (0-255).

        Returns:
            `(detections [M, 8], locations [L, 4])`: coarse detections in
            image pixels scoring above 0.3, and the crop locations
            `(y, x, scale, score)`, best first (before `att_max_crops`).
        """
        config = self.config
        height, width = image.shape[:2]
        locations = np.array(
            [[height // 2, width // 2, size / max(height, width)] for size in config.init_sizes],
            np.float32,
        )
        canvases, offsets = prepare_crops(image, locations, config.crop_size)
        detections, attentions, map_ratio = self._detect_canvases(canvases)
        scales = locations[:, 2]
        crops = decode_attention(
            attentions,
            scales,
            offsets,
            (height, width),
            config.att_threshold,
            config.att_scales,
            ignore_same=False,
        )
        detections = remap_detections(detections, scales, offsets, map_ratio).reshape(-1, 8)
        detections = detections[detections[:, 4] > COARSE_SCORE_THRESHOLD]
        if config.ref_dets:
            crops = np.concatenate((crops, reference_locations(detections)), axis=0)
            crops = location_nms(crops)
        return detections, crops

    def candidates(self, image):
        """Every detection before the merge: coarse ones and those of the crops.

        Args:
            image: [H, W, 3] RGB (0-255).

        Returns:
            `detections` [M, 8] (image pixels; columns x1, y1, x2, y2, score,
            tl_score, br_score, class) and `locations` [C, 4], the crops run.
        """
        image = np.asarray(image, np.float32)
        detections, locations = self.locate(image)
        locations = locations[: self.config.att_max_crops]
        parts = [detections]
        if len(locations):
            canvases, offsets = prepare_crops(image, locations, self.config.crop_size)
            crop_detections, _, map_ratio = self._detect_canvases(canvases)
            crop_detections = remap_detections(
                crop_detections, locations[:, 2], offsets, map_ratio
            ).reshape(-1, 8)
            parts.append(crop_detections[crop_detections[:, 4] > REJECTED_SCORE])
        return {"detections": np.concatenate(parts, axis=0), "locations": locations}

    def __call__(self, image) -> dict[str, np.ndarray]:
        """Detections of one image.

        Args:
            image: [H, W, 3] RGB (0-255).

        Returns:
            Dict of numpy arrays `boxes` [1, M, 4] (x1, y1, x2, y2, image
            pixels), `confidence` [1, M], `classes` [1, M] int32,
            `num_detections` [1] int32; M = `max_detections`, padded with -1.
        """
        detections = self.candidates(image)["detections"]
        test = self.test_config
        # Rows of -1 (never candidates) round the count up to a multiple of
        # 128: a non-empty input, and few soft-NMS traces over many images.
        padding = -(len(detections) + 1) % 128 + 1
        detections = np.concatenate([detections, np.full((padding, 8), REJECTED_SCORE, np.float32)])
        merged = soft_nms(
            tf.constant(detections[None, :, :4], tf.float32),
            tf.constant(detections[None, :, 4], tf.float32),
            tf.constant(detections[None, :, 7].astype(np.int32)),
            sigma=test.soft_nms_sigma,
            score_threshold=test.score_threshold,
            max_detections=test.max_detections,
        )
        return {
            "boxes": merged["boxes"].numpy(),
            "confidence": merged["scores"].numpy(),
            "classes": merged["classes"].numpy(),
            "num_detections": merged["num_detections"].numpy(),
        }
