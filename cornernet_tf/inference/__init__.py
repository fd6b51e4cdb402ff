"""The test procedures: geometry, corner decoding, soft-NMS, the decoder that runs them,
and CornerNet-Saccade's multi-crop procedure."""

from cornernet_tf.inference.decode import decode_corners, decode_outputs
from cornernet_tf.inference.geometry import prepare_test_image, rescale_detections, test_geometry
from cornernet_tf.inference.procedure import CornerNetDecoder
from cornernet_tf.inference.saccade import SaccadeConfig, SaccadeProcedure
from cornernet_tf.inference.soft_nms import soft_nms

__all__ = [
    "CornerNetDecoder",
    "SaccadeConfig",
    "SaccadeProcedure",
    "decode_corners",
    "decode_outputs",
    "prepare_test_image",
    "rescale_detections",
    "soft_nms",
    "test_geometry",
]
