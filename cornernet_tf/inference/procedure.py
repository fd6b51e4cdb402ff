"""The official test procedure as one object, built from one `TestConfig`.

An image travels one road at test time (princeton-vl/CornerNet `test/coco.py`,
`kp_detection`):

    preprocess  each scale: resize, centre on a zero `(h | 127, w | 127)` canvas
                (`| (granule - 1)` for a network of another granule),
                append the mirrored canvas for the flip test     (geometry.py)
    network     raw heads of the last stack                      (the model)
    decode      top-K corners, K×K pairs, flip merge             (decode.py)
    rescale     output-map pixels → image pixels, per scale      (geometry.py)
    suppress    per-class Gaussian soft-NMS (with box merging for
                multi-scale), the best `max_detections`          (soft_nms.py)

`CornerNetDecoder` runs that road for `CornerNet.detect` (and so `predict`,
COCO evaluation and the SavedModel signatures), for the fixed-size TFLite graph
and for the host-side soft-NMS of int8 TFLite files, so every path reads the
same settings the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

from cornernet_tf.inference import geometry
from cornernet_tf.inference.decode import OUTPUT_KEYS, decode_outputs
from cornernet_tf.inference.soft_nms import soft_nms
from cornernet_tf.spec.config import TestConfig

__all__ = ["CornerNetDecoder"]

Network = Callable[[tf.Tensor], Mapping[str, tf.Tensor]]


class CornerNetDecoder:
    """Runs the test procedure of a `TestConfig` around a network.

    Args:
        config: the settings; a mapping is read with `TestConfig.from_dict`
            (missing keys take the official defaults).
        output_stride: input pixels per output-map pixel of the network.
        granule: the network's input granule (`CornerNet.input_size_granule`):
            the test canvas is `size | (granule - 1)`; 128 is the official
            `| 127` of Hourglass-104 and CornerNet-Squeeze.
    """

    def __init__(
        self,
        config: TestConfig | Mapping[str, Any] | None = None,
        output_stride=4,
        granule=geometry.OFFICIAL_GRANULE,
    ):
        self.config = TestConfig.coerce(config)
        self.output_stride = output_stride
        self.granule = granule

    def __repr__(self) -> str:
        return (
            f"CornerNetDecoder({self.config!r}, output_stride={self.output_stride}, "
            f"granule={self.granule})"
        )

    def candidates(self, network: Network, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Preprocess, network, decode and rescale: scored pairs before soft-NMS.

        Args:
            network: `canvas [N, H', W', 3] -> dict` of the inference heads
                (`tl_heatmap`, ... as `CornerNet.call(training=False)`).
            images: [B, H, W, 3] RGB, 0-255, one size.

        Returns:
            `boxes` [B, D, 4] (x1, y1, x2, y2 in image pixels), `scores`,
            `tl_scores`, `br_scores` [B, D] float32 (-1 = rejected pair),
            `classes` [B, D] int32, with D = num_dets × (2 with the flip test)
            × scales; and `heads`: the raw heads of the first scale's
            unflipped canvas (for parity checks of exported graphs).
        """
        config = self.config
        image_hw = tf.shape(images)[1:3]
        batch = tf.shape(images)[0]
        parts = {key: [] for key in ("boxes", "scores", "classes", "tl_scores", "br_scores")}
        heads = None
        for scale in config.scales:
            canvas, placement = geometry.prepare_test_image(
                images, scale, self.output_stride, self.granule
            )
            if config.flip_test:
                canvas = tf.concat([canvas, tf.reverse(canvas, [2])], axis=0)
            outputs = network(canvas)
            if heads is None:
                heads = {key: outputs[key][:batch] for key in OUTPUT_KEYS}
            k, num_dets = config.top_k, config.num_dets
            size = tf.TensorShape(outputs["tl_heatmap"].shape)[1:].num_elements()
            if size is not None and size < k:
                # A small image's map holds fewer corners than `top_k`: all of them.
                k, num_dets = size, min(num_dets, size * size)
            decoded = decode_outputs(
                outputs,
                flip_test=config.flip_test,
                k=k,
                ae_threshold=config.ae_threshold,
                num_dets=num_dets,
                kernel=config.nms_kernel,
            )
            decoded["boxes"] = geometry.rescale_detections(
                decoded["boxes"], placement["ratios"], placement["borders"], image_hw, scale
            )
            for key, values in parts.items():
                values.append(decoded[key])
        result = {key: tf.concat(values, axis=1) for key, values in parts.items()}
        result["heads"] = heads
        return result

    def suppress(self, candidates: Mapping[str, Any]) -> dict[str, tf.Tensor]:
        """Soft-NMS of `candidates` (as returned by `candidates`) to final detections.

        Returns:
            `boxes` [B, M, 4] (image pixels), `confidence` [B, M], `classes`
            [B, M] int32, `num_detections` [B] int32, M = max_detections,
            padded with -1.
        """
        config = self.config
        detections = soft_nms(
            candidates["boxes"],
            candidates["scores"],
            candidates["classes"],
            sigma=config.soft_nms_sigma,
            score_threshold=config.score_threshold,
            max_detections=config.max_detections,
            merge=config.merge_bbox,
            weight_exp=config.weight_exp,
            tl_scores=candidates.get("tl_scores"),
            br_scores=candidates.get("br_scores"),
        )
        return {
            "boxes": detections["boxes"],
            "confidence": detections["scores"],
            "classes": detections["classes"],
            "num_detections": detections["num_detections"],
        }

    def __call__(self, network: Network, images: tf.Tensor) -> dict[str, tf.Tensor]:
        """Detections of a batch of same-size images (see `suppress`)."""
        return self.suppress(self.candidates(network, images))
