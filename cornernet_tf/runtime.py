"""Running an exported CornerNet TFLite file: letterboxing, host soft-NMS, detection.

A TFLite file (`cornernet_tf.export.export_tflite`) takes one image of a fixed
size. `TFLiteDetector` fits images of any size into it (`letterbox`), runs the
LiteRT interpreter, completes the int8 files' outputs with the soft-NMS they
leave to the host (`host_soft_nms`) and maps the boxes back to the image's
pixels. Nothing here imports the converter; `ai_edge_litert` is imported only
when a detector is built.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf.inference.image_input import check_image
from cornernet_tf.inference.procedure import CornerNetDecoder
from cornernet_tf.spec.exported_io import (
    DETECTION_OUTPUTS,
    INPUT_NAME,
    check_input_size,
    detection_outputs,
)

__all__ = ["TFLiteDetector", "host_soft_nms", "letterbox"]

CANDIDATE_KEYS = ("boxes", "scores", "classes", "tl_scores", "br_scores")


def host_soft_nms(outputs: dict, test_config=None) -> dict[str, np.ndarray]:
    """Completes the outputs of a TFLite file without in-graph soft-NMS.

    Runs the soft-NMS step of `cornernet_tf.inference.CornerNetDecoder`
    (official per-class Gaussian soft-NMS) on the `candidate_*` outputs;
    outputs that already hold `detection_*` pass through. The int8 files need this (see
    `cornernet_tf.export.convert_tflite_variants`).

    Args:
        outputs: the interpreter's output dict.
        test_config: the model's `TestConfig` (or a dict of its fields) whose
            soft-NMS settings apply; default: the official values.

    Returns:
        `detection_boxes` [1, M, 4], `detection_scores` [1, M],
        `detection_classes` [1, M] int32, `num_detections` [1] int32, with
        M = `max_detections`.

    Raises:
        ValueError: `outputs` holds neither `candidate_*` nor `detection_*`.
    """
    if "detection_boxes" in outputs:
        return {key: np.asarray(outputs[key]) for key in DETECTION_OUTPUTS.values()}
    if "candidate_boxes" not in outputs:
        raise ValueError(
            "host_soft_nms: `outputs` must come from a CornerNet TFLite file (candidate_* or "
            f"detection_* keys), got {sorted(outputs)}."
        )
    decoder = CornerNetDecoder(test_config)
    candidates = {key: outputs.get(f"candidate_{key}") for key in CANDIDATE_KEYS}
    detections = detection_outputs(decoder.suppress(candidates))
    return {key: np.asarray(value) for key, value in detections.items()}


def letterbox(image: np.ndarray, input_size) -> tuple[np.ndarray, float]:
    """Fits an image into the fixed TFLite input, keeping its aspect ratio.

    The image is resized (bilinear) by `scale = min(H / h, W / w)` and placed
    at the top-left of a zero canvas of `input_size`; boxes the model returns
    map back to the original image as `box / scale`.

    Args:
        image: [h, w, 3] RGB, any numeric dtype.
        input_size: (H, W) of the TFLite input.

    Returns:
        `(canvas, scale)`: [1, H, W, 3] float32 and the resize factor.

    Raises:
        ValueError: a bad `input_size` or an image that is not [h, w, 3].
    """
    height, width = check_input_size(input_size, "letterbox")
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or min(image.shape[:2]) < 1:
        raise ValueError(f"letterbox: `image` must be [h, w, 3] RGB, got shape {image.shape}.")
    scale = min(height / image.shape[0], width / image.shape[1])
    new_h = max(1, min(height, round(image.shape[0] * scale)))
    new_w = max(1, min(width, round(image.shape[1] * scale)))
    resized = tf.image.resize(image.astype(np.float32), (new_h, new_w)).numpy()
    canvas = np.zeros((1, height, width, 3), np.float32)
    canvas[0, :new_h, :new_w] = resized
    return canvas, scale


class TFLiteDetector:
    """Runs a CornerNet TFLite file on images of any size, like `CornerNet.detect`.

    Each image is letterboxed into the file's fixed input (`letterbox`), run
    with `ai_edge_litert`, completed with `host_soft_nms` when the file has no
    in-graph soft-NMS (int8), and its boxes are mapped back to the image's
    pixels. `detect` has `CornerNet.detect`'s contract for one image, so
    `cornernet_tf.evaluation.evaluate_coco` can score a TFLite file.

    Args:
        model: path of a `.tflite` file or its bytes.
        test_config: soft-NMS settings for files without in-graph soft-NMS;
            default: the official values.
        num_threads: interpreter threads (None: LiteRT's default).

    Raises:
        ValueError: `model` is a path that does not exist.
    """

    def __init__(self, model, *, test_config=None, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, bytes):
            self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        else:
            if not Path(model).is_file():
                raise ValueError(f"TFLiteDetector: {str(model)!r} does not exist.")
            self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        shape = self.runner.get_input_details()[INPUT_NAME]["shape"]  # [1, H, W, 3]
        self.input_size = (int(shape[1]), int(shape[2]))
        self.test_config = test_config

    def run(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """Raw interpreter outputs for one input.

        Args:
            canvas: [1, H, W, 3] float32 RGB in [0, 255] (see `letterbox`).

        Returns:
            The file's outputs by name.
        """
        return self.runner(images=np.asarray(canvas, np.float32))

    def detect_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Detections of one [h, w, 3] RGB image, in its pixels.

        Args:
            image: [h, w, 3] RGB, any size.

        Returns:
            `boxes` [1, M, 4], `confidence` [1, M], `classes` [1, M]
            int32, `num_detections` [1] int32; padding -1.
        """
        # Any size fits the fixed input; values outside [0, 255] would make every score NaN.
        image = check_image(image, "TFLiteDetector.detect_image: `image`", max_side=None)
        canvas, scale = letterbox(image, self.input_size)
        detections = host_soft_nms(self.run(canvas), self.test_config)
        boxes = detections["detection_boxes"]
        limits = np.array([image.shape[1], image.shape[0]] * 2, np.float32)
        valid = detections["detection_classes"][..., None] >= 0
        boxes = np.where(valid, np.clip(boxes / scale, 0.0, limits), -1.0).astype(np.float32)
        return {
            "boxes": boxes,
            "confidence": detections["detection_scores"].astype(np.float32),
            "classes": detections["detection_classes"].astype(np.int32),
            "num_detections": detections["num_detections"].astype(np.int32),
        }

    def detect(self, images):
        """`CornerNet.detect` for a batch of one image; usable inside `tf.function`.

        Args:
            images: [1, h, w, 3] RGB.

        Returns:
            `detect_image`'s dict as tensors.
        """
        images = tf.convert_to_tensor(images)

        def run(batch):
            result = self.detect_image(batch.numpy()[0])
            return [result[key] for key in ("boxes", "confidence", "classes", "num_detections")]

        boxes, scores, classes, count = tf.py_function(
            run, [images], [tf.float32, tf.float32, tf.int32, tf.int32]
        )
        boxes.set_shape([1, None, 4])
        scores.set_shape([1, None])
        classes.set_shape([1, None])
        count.set_shape([1])
        return {"boxes": boxes, "confidence": scores, "classes": classes, "num_detections": count}
