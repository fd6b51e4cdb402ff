"""The official CornerNet augmentation as pure TensorFlow functions.

Follows princeton-vl/CornerNet `sample/coco.py` (`kp_detection`,
`_resize_image`, `_clip_detections`), `sample/utils.py` (`random_crop`,
`_get_border`) and `utils/image.py` (`color_jittering_`, `lighting_`,
`normalize_`, `crop_image`). The geometry functions take their random draws as
arguments (scale, crop centre, flip), so tests can compare them with the
official formulas; `draw_train_params` is the only random part, built on
stateless ops so that a seed fixes every draw.

Colour conventions: images here are **RGB** (the official code reads BGR with
OpenCV). The official constants are given in BGR order; `MEAN_RGB`, `STD_RGB`
reverse them, `EIG_VEC_RGB` reverses the rows of the eigenvector matrix (row i
is the colour channel, column j the eigen component; the eigenvalues keep their
order), and the grayscale used by the colour jitter keeps OpenCV's BGR2GRAY
weights per colour (0.299 R + 0.587 G + 0.114 B). The result is the official
tensor with its channels reversed.

Boxes are `[N, 4]` float32 `x1, y1, x2, y2` in pixels; images are NHWC
(`[H, W, 3]`, one image per call, as `tf.data.Dataset.map` uses them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tensorflow as tf

# rand_scale_min 0.6, rand_scale_max 1.4, step 0.1 (`config/CornerNet.json`), expanded
# with np.arange as `db/detection.py` does: 0.6, 0.7, ..., 1.3.
DEFAULT_SCALES: tuple[float, ...] = tuple(float(s) for s in np.arange(0.6, 1.4, 0.1))
DEFAULT_BORDER = 128
COLOR_VAR = 0.4  # `color_jittering_`: alpha = 1 + U(-0.4, 0.4)
LIGHTING_STD = 0.1  # `lighting_(data_rng, image, 0.1, ...)`

# Official constants (`db/coco.py`), BGR channel order, 0-1 pixel scale.
MEAN_BGR = (0.40789654, 0.44719302, 0.47026115)
STD_BGR = (0.28863828, 0.27408164, 0.27809835)
EIG_VAL = (0.2141788, 0.01817699, 0.00341571)
EIG_VEC_BGR = (
    (-0.58752847, -0.69563484, 0.41340352),
    (-0.5832747, 0.00994535, -0.81221408),
    (-0.56089297, 0.71832671, 0.41158938),
)
MEAN_RGB = MEAN_BGR[::-1]
STD_RGB = STD_BGR[::-1]
EIG_VEC_RGB = EIG_VEC_BGR[::-1]
# cv2.COLOR_BGR2GRAY: Y = 0.299 R + 0.587 G + 0.114 B, here in RGB order.
GRAY_WEIGHTS_RGB = (0.299, 0.587, 0.114)

# Order of the three colour-jitter operations in `alphas` / `order` below.
BRIGHTNESS, CONTRAST, SATURATION = 0, 1, 2


def size_pair(size, name: str) -> tuple[int, int]:
    """`size` as (height, width) ints; accepts an int or a pair.

    Raises:
        ValueError: naming the argument `name`, when `size` is not a positive
            int or a pair of them.
    """
    if isinstance(size, int | np.integer) and not isinstance(size, bool):
        size = (int(size), int(size))
    if (
        not isinstance(size, Sequence)
        or len(size) != 2
        or not all(isinstance(s, int | np.integer) and not isinstance(s, bool) for s in size)
        or min(size) < 1
    ):
        raise ValueError(f"`{name}` must be a positive int or (height, width), got {size!r}.")
    return int(size[0]), int(size[1])


def _two(value, dtype=tf.int32) -> tuple[tf.Tensor, tf.Tensor]:
    """A (height, width)-like pair, given as a [2] tensor or two values, cast to `dtype`."""
    if tf.is_tensor(value):
        value = tf.cast(value, dtype)
        return value[0], value[1]
    first, second = value
    return tf.cast(first, dtype), tf.cast(second, dtype)


def get_border(border, size) -> tf.Tensor:
    """The official `_get_border`: `border` halved until `size > 2 * border`.

    Args:
        border: the configured border (128), int.
        size: image height or width, int tensor of any shape.

    Returns:
        int32 of the shape of `size`: `border // 2**k` for the smallest k with
        `size - border // 2**k > border // 2**k` (0 when nothing else fits).
    """
    border = int(border)
    candidates = [border >> k for k in range(border.bit_length() + 1)]  # border, ..., 0
    candidates = tf.constant(candidates, tf.int32)  # [K], non-increasing
    size = tf.cast(size, tf.int32)[..., None]  # [..., 1]
    fits = size - candidates > candidates  # [..., K], monotone False..True
    first = tf.argmax(tf.cast(fits, tf.int32), axis=-1, output_type=tf.int32)  # [...]
    return tf.gather(candidates, first)


def crop_window(image_size, crop_size, center) -> dict[str, tf.Tensor]:
    """Where a crop centred at `center` reads and writes (official `random_crop`/`crop_image`).

    Args:
        image_size: (height, width) of the source image, int tensors.
        crop_size: (height, width) of the zero canvas, int tensors.
        center: (cty, ctx) crop centre in source pixels, int tensors.

    Returns:
        dict of int32 scalars: `y0, y1, x0, x1` (source rows/columns copied,
        end exclusive) and `top, left` (where they land on the canvas). A
        source point `(x, y)` lands at `(x - x0 + left, y - y0 + top)`.
    """
    height, width = _two(image_size)
    crop_h, crop_w = _two(crop_size)
    cty, ctx = _two(center)
    x0 = tf.maximum(ctx - crop_w // 2, 0)
    x1 = tf.minimum(ctx + crop_w // 2, width)
    y0 = tf.maximum(cty - crop_h // 2, 0)
    y1 = tf.minimum(cty + crop_h // 2, height)
    return {
        "y0": y0,
        "y1": y1,
        "x0": x0,
        "x1": x1,
        "top": crop_h // 2 - (cty - y0),
        "left": crop_w // 2 - (ctx - x0),
    }


def crop_image(image: tf.Tensor, window: dict[str, tf.Tensor], crop_size) -> tf.Tensor:
    """Copies `window` of `image` onto a zero canvas of `crop_size`.

    Args:
        image: [H, W, 3] any dtype.
        window: from `crop_window`.
        crop_size: (height, width) of the canvas.

    Returns:
        [crop_h, crop_w, 3] same dtype, zero where the window does not reach.
    """
    crop_h, crop_w = _two(crop_size)
    patch = image[window["y0"] : window["y1"], window["x0"] : window["x1"]]  # [h, w, 3]
    bottom = crop_h - window["top"] - (window["y1"] - window["y0"])
    right = crop_w - window["left"] - (window["x1"] - window["x0"])
    return tf.pad(patch, [[window["top"], bottom], [window["left"], right], [0, 0]])


def crop_boxes(boxes: tf.Tensor, window: dict[str, tf.Tensor]) -> tf.Tensor:
    """Moves boxes [N, 4] into the canvas coordinates of `window` (no clipping)."""
    dx = tf.cast(window["left"] - window["x0"], boxes.dtype)
    dy = tf.cast(window["top"] - window["y0"], boxes.dtype)
    return boxes + tf.stack([dx, dy, dx, dy])


def random_crop(image: tf.Tensor, boxes: tf.Tensor, crop_size, center):
    """Official `random_crop` with explicit draws.

    Args:
        image: [H, W, 3].
        boxes: [N, 4] x1, y1, x2, y2 in image pixels.
        crop_size: (int(511·scale) height, width), the canvas size.
        center: (cty, ctx), drawn in `[border, size - border)` with `get_border`.

    Returns:
        (canvas [crop_h, crop_w, 3], boxes [N, 4] in canvas pixels).
    """
    window = crop_window(tf.shape(image)[:2], crop_size, center)
    return crop_image(image, window, crop_size), crop_boxes(boxes, window)


def resize_boxes(boxes: tf.Tensor, from_size, to_size) -> tf.Tensor:
    """Scales boxes as official `_resize_image`: x·(new_w/old_w), y·(new_h/old_h)."""
    from_h, from_w = _two(from_size, boxes.dtype)
    to_h, to_w = _two(to_size, boxes.dtype)
    rx, ry = to_w / from_w, to_h / from_h
    return boxes * tf.stack([rx, ry, rx, ry])


def resize_image(image: tf.Tensor, size) -> tf.Tensor:
    """Bilinear resize with half-pixel centres (cv2.resize INTER_LINEAR) to float32.

    Args:
        image: [H, W, 3] uint8 or float.
        size: (height, width).

    Returns:
        [height, width, 3] float32 in the input's value range (not rounded to
        uint8 as cv2 does on uint8 input: a ≤0.5/255 difference).
    """
    return tf.image.resize(image, size, method="bilinear", antialias=False)


def clip_boxes(boxes: tf.Tensor, labels: tf.Tensor, size):
    """Official `_clip_detections`: clip to `[0, W-1] x [0, H-1]`, drop empty boxes.

    Args:
        boxes: [N, 4] x1, y1, x2, y2.
        labels: [N] class ids, dropped with their boxes.
        size: (height, width) of the image the boxes live in.

    Returns:
        (boxes [K, 4], labels [K]) with `x2 - x1 > 0` and `y2 - y1 > 0`.
    """
    height, width = _two(size, boxes.dtype)
    lo = tf.zeros([4], boxes.dtype)
    hi = tf.stack([width - 1, height - 1, width - 1, height - 1])
    boxes = tf.clip_by_value(boxes, lo, hi)
    keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)  # [N]
    return tf.boolean_mask(boxes, keep), tf.boolean_mask(labels, keep)


def flip_boxes(boxes: tf.Tensor, width) -> tf.Tensor:
    """Official horizontal flip of boxes: `x1' = W - x2 - 1`, `x2' = W - x1 - 1`."""
    width = tf.cast(width, boxes.dtype)
    x1, y1, x2, y2 = tf.unstack(boxes, axis=-1)
    return tf.stack([width - x2 - 1, y1, width - x1 - 1, y2], axis=-1)


def grayscale(image: tf.Tensor) -> tf.Tensor:
    """OpenCV BGR2GRAY weights on an RGB image: [H, W, 3] → [H, W, 1]."""
    weights = tf.constant(GRAY_WEIGHTS_RGB, image.dtype)  # [3]
    return tf.tensordot(image, weights, axes=[[2], [0]])[..., None]


def color_coefficients(alphas: tf.Tensor, order: tf.Tensor, gray_mean: tf.Tensor):
    """Folds the official colour jitter into `a·x + b·gray(x) + c`.

    `color_jittering_` computes the grayscale `gs` and its mean once, from the
    image before jittering, then applies brightness (`x *= α`), contrast
    (`x = α·x + (1-α)·mean(gs)`) and saturation (`x = α·x + (1-α)·gs`) in a
    random order. Each is affine in (x, gs), so the composition is too.

    Args:
        alphas: [3] float32 factors for (brightness, contrast, saturation).
        order: [3] int32 permutation: the operations in application order.
        gray_mean: scalar, mean of `grayscale(x)`.

    Returns:
        (a, b, c) float32 scalars.
    """
    a, b, c = tf.constant(1.0), tf.constant(0.0), tf.constant(0.0)
    for step in range(3):
        op = order[step]
        alpha = tf.gather(alphas, op)
        a, b, c = (
            alpha * a,
            alpha * b + tf.where(op == SATURATION, 1.0 - alpha, 0.0),
            alpha * c + tf.where(op == CONTRAST, (1.0 - alpha) * gray_mean, 0.0),
        )
    return a, b, c


def color_jitter(image: tf.Tensor, alphas: tf.Tensor, order: tf.Tensor) -> tf.Tensor:
    """Official `color_jittering_` with explicit draws, on a [H, W, 3] 0-1 RGB image."""
    gray = grayscale(image)  # [H, W, 1]
    a, b, c = color_coefficients(alphas, order, tf.reduce_mean(gray))
    return a * image + b * gray + c


def lighting_shift(alpha: tf.Tensor) -> tf.Tensor:
    """Official `lighting_`: the RGB shift `eig_vec · (eig_val * alpha)`, [3] float32.

    Args:
        alpha: [3] float32 ~ N(0, 0.1) per eigen component.
    """
    eig_vec = tf.constant(EIG_VEC_RGB, tf.float32)  # [3 channels, 3 components]
    return tf.linalg.matvec(eig_vec, tf.constant(EIG_VAL, tf.float32) * alpha)


def normalize(image: tf.Tensor) -> tf.Tensor:
    """Official `normalize_`: `(x - mean) / std` with the RGB-ordered constants (0-1 scale)."""
    return (image - tf.constant(MEAN_RGB, image.dtype)) / tf.constant(STD_RGB, image.dtype)


def draw_train_params(
    seed: tf.Tensor,
    image_size,
    *,
    input_size=511,
    scales: Sequence[float] = DEFAULT_SCALES,
    border: int = DEFAULT_BORDER,
    flip_probability: float = 0.5,
) -> dict[str, tf.Tensor]:
    """Draws every random choice of one training sample from a stateless seed.

    Args:
        seed: [2] int32/int64 stateless seed (distinct per sample).
        image_size: (height, width) of the decoded image, int tensors.
        input_size: network input size, int or (height, width).
        scales: random crop scales; the crop is `int(input · scale)` (official).
        border: official `border`, halved by `get_border` until it fits.
        flip_probability: probability of a horizontal flip.

    Returns:
        dict of tensors: `crop_size` [2] int32, `center` [2] int32 (cty, ctx),
        `flip` bool, `color_alphas` [3] float32 (brightness, contrast,
        saturation), `color_order` [3] int32, `lighting_alpha` [3] float32.
    """
    in_h, in_w = size_pair(input_size, "input_size")
    if not scales:
        raise ValueError("draw_train_params: `scales` must be non-empty, e.g. DEFAULT_SCALES.")
    crop_table = tf.constant(
        [[int(in_h * s), int(in_w * s)] for s in scales], tf.int32
    )  # [S, 2], the official int(view_size * scale)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 7)  # [7, 2]
    height, width = _two(image_size)
    index = tf.random.stateless_uniform([], seeds[0], 0, len(scales), dtype=tf.int32)
    h_border, w_border = get_border(border, height), get_border(border, width)
    cty = tf.random.stateless_uniform([], seeds[1], h_border, height - h_border, dtype=tf.int32)
    ctx = tf.random.stateless_uniform([], seeds[2], w_border, width - w_border, dtype=tf.int32)
    return {
        "crop_size": tf.gather(crop_table, index),
        "center": tf.stack([cty, ctx]),
        "flip": tf.random.stateless_uniform([], seeds[3]) < flip_probability,
        "color_alphas": 1.0
        + tf.random.stateless_uniform([3], seeds[4], -COLOR_VAR, COLOR_VAR, dtype=tf.float32),
        "color_order": tf.argsort(tf.random.stateless_uniform([3], seeds[5])),
        "lighting_alpha": LIGHTING_STD * tf.random.stateless_normal([3], seeds[6]),
    }


def train_geometry(image: tf.Tensor, boxes: tf.Tensor, labels: tf.Tensor, draws, *, input_size):
    """Crop, resize, clip and flip of `kp_detection` with given draws.

    Args:
        image: [H, W, 3] uint8.
        boxes: [N, 4] float32 in image pixels.
        labels: [N] int32.
        draws: `crop_size`, `center`, `flip` as from `draw_train_params`.
        input_size: int or (height, width).

    Returns:
        (image [in_h, in_w, 3] float32 in 0-255, boxes [K, 4], labels [K]).
    """
    in_size = size_pair(input_size, "input_size")
    crop_size = draws["crop_size"]
    canvas, boxes = random_crop(image, boxes, crop_size, draws["center"])
    # Resizing commutes with a horizontal flip (half-pixel centres), so flipping the
    # small uint8 canvas first is cheaper and gives the official result.
    canvas = tf.cond(draws["flip"], lambda: tf.reverse(canvas, [1]), lambda: canvas)
    resized = resize_image(canvas, in_size)  # [in_h, in_w, 3] float32
    resized = tf.ensure_shape(resized, [*in_size, 3])
    boxes = resize_boxes(boxes, crop_size, in_size)
    boxes, labels = clip_boxes(boxes, labels, in_size)
    boxes = tf.cond(draws["flip"], lambda: flip_boxes(boxes, in_size[1]), lambda: boxes)
    return resized, boxes, labels


def photometric(
    image: tf.Tensor,
    draws,
    *,
    color: bool = True,
    lighting: bool = True,
    normalize_output: bool = False,
) -> tf.Tensor:
    """Colour jitter, PCA lighting and (optionally) normalisation, fused.

    Same values as official `image/255; color_jittering_; lighting_;
    normalize_` in a few elementwise passes instead of a dozen: the jitter is
    `a·x + b·gray + c` (`color_coefficients`), lighting a per-channel shift and
    normalisation a per-channel affine map.

    Args:
        image: [H, W, 3] float32 RGB in 0-255.
        draws: `color_alphas`, `color_order`, `lighting_alpha`.
        color: apply the colour jitter (official `rand_color`).
        lighting: apply PCA lighting (official: only together with `color`).
        normalize_output: return `(x - mean) / std` (official network input);
            otherwise return `255 · x`, the jittered image in 0-255, for models
            that normalise internally (`cornernet_tf.models.CornerNet` does).

    Returns:
        [H, W, 3] float32.
    """
    if normalize_output:
        out_scale = 1.0 / tf.constant(STD_RGB, tf.float32)  # [3]
        out_shift = -tf.constant(MEAN_RGB, tf.float32) * out_scale
    else:
        out_scale, out_shift = tf.fill([3], 255.0), tf.zeros([3])
    if not color:
        return image * (out_scale / 255.0) + out_shift
    gray = grayscale(image) * (1.0 / 255.0)  # [H, W, 1] in 0-1
    a, b, c = color_coefficients(draws["color_alphas"], draws["color_order"], tf.reduce_mean(gray))
    if lighting:
        c = c + lighting_shift(draws["lighting_alpha"])  # [3]
    return image * (a / 255.0 * out_scale) + gray * (b * out_scale) + (c * out_scale + out_shift)
