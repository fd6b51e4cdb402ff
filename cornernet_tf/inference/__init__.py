"""The test procedure: geometry, corner decoding, soft-NMS and the decoder that runs them."""

from cornernet_tf.inference.decode import decode_corners, decode_outputs
from cornernet_tf.inference.geometry import prepare_test_image, rescale_detections, test_geometry
from cornernet_tf.inference.procedure import CornerNetDecoder
from cornernet_tf.inference.soft_nms import soft_nms

__all__ = [
    "CornerNetDecoder",
    "decode_corners",
    "decode_outputs",
    "prepare_test_image",
    "rescale_detections",
    "soft_nms",
    "test_geometry",
]
