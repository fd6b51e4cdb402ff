"""The embedded dataset: synthetic shapes written in the COCO 2017 layout.

`make_shapes_dataset(output_dir)` writes::

    output_dir/annotations/instances_train2017.json
    output_dir/annotations/instances_val2017.json
    output_dir/train2017/000000000001.jpg ...
    output_dir/val2017/000000000001.jpg ...

so everything (training, evaluation with pycocotools, the demo) runs on a fresh
machine without downloads.

Each image has a textured background (smooth colour field, stripes or
checks, pixel noise, thin distractor lines) and 1-8 filled shapes of three
classes — rectangle, ellipse, triangle — with random colours, sizes from
`min_object_size` pixels to `max_object_fraction` of the image side, aspect
ratios 1:2 to 2:1, overlapping each other. Later shapes occlude earlier ones,
but a placement is rejected when it would leave less than
`min_visible_fraction` of any shape visible.

Boxes are the **visible extents** (modal boxes, as COCO annotates): the tight
box around the pixels of the shape that remain visible, in COCO's continuous
pixel convention (`x = first column`, `w = last column - first column + 1`), so
the official reader's `x2 = x + w` is one past the last visible column. `area`
is the visible pixel count.

Deterministic: image `i` of a split is drawn from
`numpy.random.default_rng([seed, crc32(split), i])`, independent of how many
images are generated. A few hundred 128x128 images take about a second.
"""

from __future__ import annotations

import dataclasses
import os
import zlib

import cv2
import numpy as np

from cornernet_tf.utils.fs import atomic_write_json

CLASSES = ("rectangle", "ellipse", "triangle")
DEFAULT_NUM_TRAIN = 2000
DEFAULT_NUM_VAL = 200
DEFAULT_IMAGE_SIZE = 128
_MIN_COLOR_DISTANCE = 60.0  # L1 distance (0-255 RGB) between a shape and its background
_PLACEMENT_TRIES = 20


@dataclasses.dataclass(frozen=True)
class ShapesConfig:
    """How the synthetic images are drawn.

    Attributes:
        height: image height in pixels.
        width: image width in pixels.
        min_objects: fewest shapes per image.
        max_objects: most shapes per image (fewer when placements fail).
        min_object_size: smallest shape side in pixels.
        max_object_fraction: largest shape side as a fraction of the smaller
            image side.
        min_visible_fraction: each shape keeps at least this fraction visible.
        image_format: "jpg" or "png".
        jpeg_quality: JPEG quality (1-100).
    """

    height: int = DEFAULT_IMAGE_SIZE
    width: int = DEFAULT_IMAGE_SIZE
    min_objects: int = 1
    max_objects: int = 8
    min_object_size: int = 8
    max_object_fraction: float = 0.6
    min_visible_fraction: float = 0.5
    image_format: str = "jpg"
    jpeg_quality: int = 90

    def __post_init__(self):
        for name in ("height", "width", "min_objects", "max_objects", "min_object_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ShapesConfig: `{name}` must be an int >= 1, got {value!r}.")
        if self.min_objects > self.max_objects:
            raise ValueError(
                f"ShapesConfig: `min_objects` ({self.min_objects}) must not exceed `max_objects` "
                f"({self.max_objects})."
            )
        if not 0 < self.max_object_fraction <= 1:
            raise ValueError(
                "ShapesConfig: `max_object_fraction` must be in (0, 1], got "
                f"{self.max_object_fraction!r}."
            )
        if self.min_object_size > self.max_object_fraction * min(self.height, self.width):
            raise ValueError(
                f"ShapesConfig: `min_object_size` {self.min_object_size} exceeds "
                f"max_object_fraction * image side = "
                f"{self.max_object_fraction * min(self.height, self.width):.1f}; use larger "
                "images or smaller objects."
            )
        if not 0 < self.min_visible_fraction <= 1:
            raise ValueError(
                "ShapesConfig: `min_visible_fraction` must be in (0, 1], got "
                f"{self.min_visible_fraction!r}."
            )
        if self.image_format not in ("jpg", "png"):
            raise ValueError(
                f"ShapesConfig: `image_format` must be 'jpg' or 'png', got {self.image_format!r}."
            )
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(
                f"ShapesConfig: `jpeg_quality` must be in [1, 100], got {self.jpeg_quality!r}."
            )


def _random_color(rng: np.random.Generator) -> np.ndarray:
    """A random saturated-ish RGB colour, float [3] in 0-255."""
    hsv = np.array(
        [[[rng.uniform(0, 180), rng.uniform(60, 255), rng.uniform(60, 255)]]], np.float32
    )
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Textured background, float32 [H, W, 3] in 0-255."""
    grid = int(rng.integers(2, 7))
    coarse = rng.uniform(0, 255, (grid, grid, 3)).astype(np.float32)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)  # smooth field
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:  # stripes at a random angle and period
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(4, 24)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period)
        image += rng.uniform(10, 40) * np.sin(phase)[..., None] * _random_color(rng) / 255.0
    elif kind == 1:  # checks
        cell = rng.uniform(4, 20)
        checks = ((xx // cell + yy // cell) % 2)[..., None]
        image += (checks - 0.5) * rng.uniform(10, 50)
    image += rng.normal(0, rng.uniform(2, 10), image.shape).astype(np.float32)  # grain
    for _ in range(int(rng.integers(0, 5))):  # thin distractor lines
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, _random_color(rng).tolist(), int(rng.integers(1, 3)))
    return image


def _shape_mask(
    rng: np.random.Generator, label: int, height: int, width: int, config: ShapesConfig
) -> np.ndarray:
    """A filled shape of class `label` at a random place and size: bool [H, W]."""
    largest = config.max_object_fraction * min(height, width)
    side = np.exp(rng.uniform(np.log(config.min_object_size), np.log(largest)))
    aspect = np.exp(rng.uniform(np.log(0.5), np.log(2.0)))
    w = int(np.clip(round(side * np.sqrt(aspect)), config.min_object_size, largest))
    h = int(np.clip(round(side / np.sqrt(aspect)), config.min_object_size, largest))
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    x1, y1 = x0 + w - 1, y0 + h - 1  # inclusive pixel extents
    mask = np.zeros((height, width), np.uint8)
    if CLASSES[label] == "rectangle":
        cv2.rectangle(mask, (x0, y0), (x1, y1), 1, thickness=-1)
    elif CLASSES[label] == "ellipse":
        # Fixed-point centre/axes (shift=2) so the ellipse spans [x0, x1] x [y0, y1].
        center = (int(round((x0 + x1) * 2)), int(round((y0 + y1) * 2)))
        axes = (int(round((x1 - x0) * 2)), int(round((y1 - y0) * 2)))
        cv2.ellipse(mask, center, axes, 0, 0, 360, 1, thickness=-1, shift=2)
    else:  # triangle: apex on one horizontal side, base on the other
        apex_x = x0 + int(rng.integers(0, w))
        if rng.random() < 0.5:
            points = [(apex_x, y0), (x0, y1), (x1, y1)]
        else:
            points = [(apex_x, y1), (x0, y0), (x1, y0)]
        cv2.fillPoly(mask, [np.array(points, np.int32)], 1)
    return mask.astype(bool)


def render_image(rng: np.random.Generator, config: ShapesConfig):
    """Draws one image and its annotations.

    Args:
        rng: the image's random generator.
        config: drawing parameters.

    Returns:
        dict with `image` [H, W, 3] uint8 RGB, `boxes` [N, 4] float32
        `x, y, w, h` (COCO, visible extents), `labels` [N] int32 0-based,
        `areas` [N] visible pixels, `full_areas` [N] pixels of the whole
        shapes, `owner` [H, W] int32 (index of the shape each pixel shows,
        -1 for background).
    """
    height, width = config.height, config.width
    image = _background(rng, height, width)
    owner = np.full((height, width), -1, np.int32)  # which shape each pixel shows
    full_area: list[int] = []
    labels: list[int] = []
    for _ in range(int(rng.integers(config.min_objects, config.max_objects + 1))):
        label = int(rng.integers(len(CLASSES)))
        for _try in range(_PLACEMENT_TRIES):
            mask = _shape_mask(rng, label, height, width, config)
            remaining = np.bincount(owner[~mask] + 1, minlength=len(labels) + 1)[1:]
            if all(
                r >= config.min_visible_fraction * a
                for r, a in zip(remaining, full_area, strict=True)
            ):
                break
        else:
            continue  # no placement keeps the others visible enough: fewer shapes
        background_color = image[mask].mean(axis=0)
        for _try in range(10):
            color = _random_color(rng)
            if np.abs(color - background_color).sum() >= _MIN_COLOR_DISTANCE:
                break
        shading = rng.normal(0, rng.uniform(0, 8), (int(mask.sum()), 3))
        image[mask] = color + shading.astype(np.float32)
        owner[mask] = len(labels)
        full_area.append(int(mask.sum()))
        labels.append(label)
    image += rng.normal(0, 2.0, image.shape).astype(np.float32)  # sensor noise over everything
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)

    boxes, areas = [], []
    for k in range(len(labels)):
        ys, xs = np.nonzero(owner == k)
        boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        areas.append(len(xs))
    return {
        "image": image,
        "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
        "labels": np.asarray(labels, np.int32),
        "areas": np.asarray(areas, np.int64),
        "full_areas": np.asarray(full_area, np.int64),
        "owner": owner,
    }


def write_split(
    output_dir: str | os.PathLike,
    split: str,
    num_images: int,
    *,
    seed: int = 0,
    config: ShapesConfig = ShapesConfig(),  # noqa: B008 (frozen, immutable)
) -> str:
    """Writes one split: images in `<output_dir>/<split>/`, annotations JSON.

    Args:
        output_dir: dataset root.
        split: split name, e.g. "train2017".
        num_images: images to draw (>= 0).
        seed: base seed.
        config: drawing parameters.

    Returns:
        Path of `annotations/instances_<split>.json`.
    """
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
        raise ValueError(f"write_split: `num_images` must be an int >= 0, got {num_images!r}.")
    output_dir = os.fspath(output_dir)
    image_dir = os.path.join(output_dir, split)
    ann_dir = os.path.join(output_dir, "annotations")
    os.makedirs(image_dir, exist_ok=True)
    os.makedirs(ann_dir, exist_ok=True)
    split_key = zlib.crc32(split.encode())
    images, annotations = [], []
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if config.image_format == "jpg" else []
    for index in range(num_images):
        rng = np.random.default_rng([seed, split_key, index])
        drawn = render_image(rng, config)
        image, boxes, labels, areas = (drawn[k] for k in ("image", "boxes", "labels", "areas"))
        image_id = index + 1
        file_name = f"{image_id:012d}.{config.image_format}"
        ok, encoded = cv2.imencode(f".{config.image_format}", image[..., ::-1], params)
        if not ok:
            raise RuntimeError(f"write_split: OpenCV could not encode {file_name}.")
        encoded.tofile(os.path.join(image_dir, file_name))
        images.append(
            {"id": image_id, "file_name": file_name, "height": config.height, "width": config.width}
        )
        for box, label, area in zip(boxes, labels, areas, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(label) + 1,
                    "bbox": [float(v) for v in box],
                    "area": int(area),
                    "iscrowd": 0,
                }
            )
    data = {
        "info": {"description": "cornernet_tf synthetic shapes", "seed": seed, "split": split},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": name, "supercategory": "shape"} for k, name in enumerate(CLASSES)
        ],
    }
    path = os.path.join(ann_dir, f"instances_{split}.json")
    atomic_write_json(path, data, indent=None)
    return path


def make_shapes_dataset(
    output_dir: str | os.PathLike,
    *,
    num_train: int = DEFAULT_NUM_TRAIN,
    num_val: int = DEFAULT_NUM_VAL,
    seed: int = 0,
    config: ShapesConfig = ShapesConfig(),  # noqa: B008 (frozen, immutable)
) -> dict[str, str]:
    """Writes the shapes dataset (train2017 and val2017) under `output_dir`.

    Args:
        output_dir: dataset root (created).
        num_train: training images.
        num_val: validation images (drawn with a different split key, so
            never copies of training images).
        seed: base seed; the same seed writes the same files.
        config: drawing parameters (image size, objects per image, ...).

    Returns:
        {"train2017": annotation path, "val2017": annotation path}.
    """
    return {
        split: write_split(output_dir, split, count, seed=seed, config=config)
        for split, count in (("train2017", num_train), ("val2017", num_val))
    }
