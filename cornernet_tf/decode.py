"""`cornernet_tf.decode.decode_corners`: the stable import path of the corner decoder.

The code lives in `cornernet_tf.inference.decode`.
"""

from cornernet_tf.inference.decode import REJECTED_SCORE, decode_corners

__all__ = ["REJECTED_SCORE", "decode_corners"]
