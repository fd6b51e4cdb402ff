"""TF Serving warm-up requests stored with a SavedModel.

TF Serving runs the requests in `<version>/assets.extra/tf_serving_warmup_requests`
when it loads a version, before it reports the version AVAILABLE, so that the
first user request does not pay for TensorFlow's lazy initialisation (graph
optimisation, kernel and memory-allocator set-up). The file is a TFRecord of
`tensorflow.serving.PredictionLog` records, at most 1000 (TF Serving's
"SavedModel Warmup" guide; the model server's `--enable_model_warmup` is on by
default).

`export_saved_model` writes one request per signature, each with one image of
a typical size: `serving_default` gets a JPEG file, `detect_uint8` the same
image's pixels. Shapes are dynamic, so one size warms every size up; the
network's cost still grows with the image, so the default is COCO's most
common size.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf import images

__all__ = [
    "DEFAULT_WARMUP_IMAGE_SIZE",
    "WARMUP_DIR",
    "WARMUP_FILE",
    "read_warmup_requests",
    "warmup_image",
    "warmup_requests",
    "write_warmup_requests",
]

WARMUP_DIR = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
DEFAULT_WARMUP_IMAGE_SIZE = (480, 640)  # (height, width) of most COCO images


def warmup_image(height: int, width: int) -> np.ndarray:
    """A deterministic synthetic photo-like RGB image [height, width, 3] uint8.

    A smooth background with a few solid shapes: it compresses to a small JPEG
    and, unlike a blank image, gives the decoder corners to pair and soft-NMS
    boxes to suppress, so the warm-up runs every part of the graph.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    rows, cols = yy / max(height - 1, 1), xx / max(width - 1, 1)
    image = np.stack([120 + 80 * rows, 100 + 60 * cols, 140 - 50 * rows * cols], axis=-1)
    random = np.random.RandomState(0)
    for _ in range(6):
        color = random.randint(0, 256, 3)
        cy, cx = random.uniform(0.15, 0.85) * height, random.uniform(0.15, 0.85) * width
        ry, rx = random.uniform(0.05, 0.2) * height, random.uniform(0.05, 0.2) * width
        if random.rand() < 0.5:
            mask = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
        else:
            mask = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
        image[mask] = color
    return np.clip(image, 0, 255).astype(np.uint8)


def warmup_requests(model_name: str, image_size: tuple[int, int] = DEFAULT_WARMUP_IMAGE_SIZE):
    """The warm-up records: one `PredictionLog` per signature.

    Args:
        model_name: the served model name (the requests' `model_spec.name`).
        image_size: (height, width) of the warm-up image.

    Returns:
        `[serving_default request with one JPEG, detect_uint8 request with
        the same image's [1, H, W, 3] pixels]`, as `PredictionLog`s.
    """
    from tensorflow_serving.apis import prediction_log_pb2

    from cornernet_tf.serving.common import SIGNATURE_IMAGES, SIGNATURE_UINT8
    from cornernet_tf.serving.protocol import predict_request

    jpeg = tf.io.encode_jpeg(warmup_image(*image_size), quality=90).numpy()
    jpeg_pixels = image_size[0] * image_size[1]
    pixels, _ = images.decode_checked(tf.constant(jpeg), max_pixels=jpeg_pixels)
    pixels = pixels.numpy()[None]  # what `serving_default` decodes
    requests = [
        predict_request([jpeg], model_name, signature=SIGNATURE_IMAGES),
        predict_request(pixels, model_name, signature=SIGNATURE_UINT8),
    ]
    return [
        prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
        for request in requests
    ]


def write_warmup_requests(
    saved_model_dir: str | os.PathLike,
    model_name: str,
    image_size: tuple[int, int] = DEFAULT_WARMUP_IMAGE_SIZE,
) -> Path:
    """Writes `<saved_model_dir>/assets.extra/tf_serving_warmup_requests`.

    Call it on the staging folder of an export: TF Serving reads the file when
    the version appears, so it must be there before the rename.

    Args:
        saved_model_dir: the SavedModel's folder.
        model_name: the served model name.
        image_size: (height, width) of the warm-up image.

    Returns:
        The file's path.
    """
    path = Path(saved_model_dir) / WARMUP_DIR / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in warmup_requests(model_name, image_size):
            writer.write(record.SerializeToString())
    return path


def read_warmup_requests(path: str | os.PathLike) -> list:
    """The `PredictionLog` records of a warm-up file (or of a SavedModel folder's)."""
    from tensorflow_serving.apis import prediction_log_pb2

    path = Path(path)
    if path.is_dir():
        path = path / WARMUP_DIR / WARMUP_FILE
    records = []
    for data in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        record = prediction_log_pb2.PredictionLog()
        record.ParseFromString(data)
        records.append(record)
    return records
