"""Perfect CornerNet head outputs for given boxes, for decoding tests.

Built from the definitions of the targets and the decoder (a +30 logit at each
corner's integer pixel, -30 elsewhere; embedding 3·(n+1) for object n on both
its corners, 1000 on background; offsets `corner - floor(corner)`),
independently of `cornernet_tf.targets`.
"""

import numpy as np

KEYS = ("tl_heatmap", "br_heatmap", "tl_embedding", "br_embedding", "tl_offset", "br_offset")
BACKGROUND_LOGIT = -30.0  # sigmoid ~ 1e-13
CORNER_LOGIT = 30.0  # sigmoid == 1.0 in float32
BACKGROUND_EMBEDDING = 1000.0


def ideal_outputs(objects_per_image, height, width, num_classes):
    """Perfect NHWC head outputs for boxes (x1, y1, x2, y2, class) in output-map pixels.

    Returns:
        (tl_heat, br_heat, tl_emb, br_emb, tl_off, br_off) numpy arrays.
    """
    batch = len(objects_per_image)
    heat = np.full((2, batch, height, width, num_classes), BACKGROUND_LOGIT, np.float32)
    emb = np.full((2, batch, height, width, 1), BACKGROUND_EMBEDDING, np.float32)
    off = np.zeros((2, batch, height, width, 2), np.float32)
    for b, objects in enumerate(objects_per_image):
        for n, (x1, y1, x2, y2, cls) in enumerate(objects):
            for corner, (x, y) in enumerate(((x1, y1), (x2, y2))):
                ix, iy = int(x), int(y)
                heat[corner, b, iy, ix, cls] = CORNER_LOGIT
                emb[corner, b, iy, ix, 0] = 3.0 * (n + 1)
                off[corner, b, iy, ix] = (x - ix, y - iy)
    return heat[0], heat[1], emb[0], emb[1], off[0], off[1]


def as_outputs(arrays):
    """The `ideal_outputs` tuple as the model's dict of inference heads."""
    return dict(zip(KEYS, arrays, strict=True))
