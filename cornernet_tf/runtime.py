"""Running an exported CornerNet TFLite or ONNX file: letterboxing, host soft-NMS, detection.

A TFLite file (`cornernet_tf.export.export_tflite`) or ONNX file
(`cornernet_tf.export.onnx.export_onnx`) takes one image of a fixed size.
`TFLiteDetector` and `OnnxDetector` fit images of any size into it
(`letterbox`), run LiteRT or ONNX Runtime, complete the outputs of files
without soft-NMS (int8 debug files, ONNX files) on the host and map the boxes
back to the image's pixels. `soft_nms_numpy` is the NumPy reference of the
official soft-NMS for hosts without TensorFlow. Nothing here imports the
converter; `ai_edge_litert` and `onnxruntime` are imported only when a detector
is built.
"""

import json
from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf.inference.image_input import check_image, letterbox
from cornernet_tf.inference.procedure import CornerNetDecoder
from cornernet_tf.spec.exported_io import (
    DETECTION_OUTPUTS,
    DETECTOR_OUTPUTS,
    INPUT_NAME,
    detection_outputs,
)

__all__ = [
    "OnnxDetector",
    "TFLiteDetector",
    "detector_to_pixels",
    "host_soft_nms",
    "soft_nms_numpy",
]

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


def detector_to_pixels(outputs: dict, input_size) -> dict[str, np.ndarray]:
    """A detector file's outputs (normalised ymin, xmin, ymax, xmax) as the debug files'.

    Args:
        outputs: `detection_locations`, `detection_classes`,
            `detection_scores`, `num_detections` (`DETECTOR_OUTPUTS`).
        input_size: (H, W) of the file's input.

    Returns:
        `detection_boxes` [1, M, 4] (x1, y1, x2, y2 in input pixels),
        `detection_scores`, `detection_classes` int32, `num_detections` int32;
        rows past the count are -1.
    """
    if set(outputs) != set(DETECTOR_OUTPUTS):
        raise ValueError(
            f"detector_to_pixels: expected {sorted(DETECTOR_OUTPUTS)}, got {sorted(outputs)}."
        )
    height, width = input_size
    count = np.asarray(outputs["num_detections"]).astype(np.int32)
    valid = np.arange(outputs["detection_scores"].shape[1])[None, :] < count[:, None]
    ymin, xmin, ymax, xmax = np.moveaxis(np.asarray(outputs["detection_locations"]), -1, 0)
    boxes = np.stack([xmin * width, ymin * height, xmax * width, ymax * height], axis=-1)
    return {
        "detection_boxes": np.where(valid[..., None], boxes, -1.0).astype(np.float32),
        "detection_scores": np.where(valid, outputs["detection_scores"], -1.0).astype(np.float32),
        "detection_classes": np.where(valid, outputs["detection_classes"], -1).astype(np.int32),
        "num_detections": count,
    }


def soft_nms_numpy(
    boxes: np.ndarray,
    scores: np.ndarray,
    classes: np.ndarray,
    *,
    sigma: float = 0.5,
    score_threshold: float = 0.001,
    max_detections: int = 100,
) -> dict[str, np.ndarray]:
    """Per-class Gaussian soft-NMS of one image, in NumPy (no TensorFlow).

    The same greedy procedure as `cornernet_tf.inference.soft_nms` (official
    `external/nms.pyx` `soft_nms` with `method=2`, then `max_per_image`):
    repeatedly take the highest-scoring live box; multiply the score of every
    live same-class box that overlaps it (official "+1" pixel convention) by
    `exp(-iou**2 / sigma)`, and drop a box when a decay takes its score below
    `score_threshold`. Pairs with score -1 are not candidates.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) in pixels.
        scores: [N] pair scores (-1 = rejected).
        classes: [N] integer class ids.
        sigma: Gaussian decay parameter (official 0.5).
        score_threshold: decayed boxes below it are dropped (official 0.001).
        max_detections: detections returned (official `max_per_image`).

    Returns:
        `detection_boxes` [1, M, 4], `detection_scores` [1, M],
        `detection_classes` [1, M] int32, `num_detections` [1] int32, sorted by
        score, padded with -1 (M = `max_detections`).
    """
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = np.asarray(scores, np.float32).reshape(-1).copy()
    classes = np.asarray(classes).reshape(-1).astype(np.int32)
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    alive = scores > -1.0  # also drops NaN
    out_boxes = np.full((max_detections, 4), -1.0, np.float32)
    out_scores = np.full(max_detections, -1.0, np.float32)
    out_classes = np.full(max_detections, -1, np.int32)
    count = 0
    while count < max_detections and alive.any():
        best = int(np.argmax(np.where(alive, scores, -np.inf)))
        alive[best] = False
        out_boxes[count], out_scores[count], out_classes[count] = (
            boxes[best],
            scores[best],
            classes[best],
        )
        count += 1
        iw = np.minimum(x2[best], x2) - np.maximum(x1[best], x1) + 1.0
        ih = np.minimum(y2[best], y2) - np.maximum(y1[best], y1) + 1.0
        overlap = alive & (iw > 0) & (ih > 0) & (classes == classes[best])
        inter = iw * ih
        with np.errstate(divide="ignore", invalid="ignore"):
            iou = inter / (areas[best] + areas - inter)
        scores = np.where(overlap, scores * np.exp(-np.square(iou) / sigma), scores).astype(
            np.float32
        )
        alive &= ~(overlap & (scores < score_threshold))
    return {
        "detection_boxes": out_boxes[None],
        "detection_scores": out_scores[None],
        "detection_classes": out_classes[None],
        "num_detections": np.array([count], np.int32),
    }


def _detect_with_py_function(detect_image, images):
    """`CornerNet.detect`'s tensors from a NumPy `detect_image`, usable inside `tf.function`."""
    images = tf.convert_to_tensor(images)

    def run(batch):
        result = detect_image(batch.numpy()[0])
        return [result[key] for key in ("boxes", "confidence", "classes", "num_detections")]

    boxes, scores, classes, count = tf.py_function(
        run, [images], [tf.float32, tf.float32, tf.int32, tf.int32]
    )
    boxes.set_shape([1, None, 4])
    scores.set_shape([1, None])
    classes.set_shape([1, None])
    count.set_shape([1])
    return {"boxes": boxes, "confidence": scores, "classes": classes, "num_detections": count}


class OnnxDetector:
    """Runs a CornerNet ONNX file with ONNX Runtime on images of any size.

    Each image is letterboxed into the file's fixed input (`letterbox`), run,
    completed with `soft_nms_numpy` (settings from the file's metadata), and
    its boxes are mapped back to the image's pixels, as `TFLiteDetector`.

    Args:
        model: path of a `.onnx` file or its bytes.
        providers: ONNX Runtime execution providers (default: CPU).

    Raises:
        ValueError: `model` is a path that does not exist.
    """

    def __init__(self, model, *, providers=("CPUExecutionProvider",)):
        import onnxruntime

        if not isinstance(model, bytes):
            if not Path(model).is_file():
                raise ValueError(f"OnnxDetector: {str(model)!r} does not exist.")
            model = str(model)
        self.session = onnxruntime.InferenceSession(model, providers=list(providers))
        shape = self.session.get_inputs()[0].shape  # [1, H, W, 3]
        self.input_size = (int(shape[1]), int(shape[2]))
        properties = self.session.get_modelmeta().custom_metadata_map
        self.class_names = json.loads(properties["class_names"])
        self.soft_nms = json.loads(properties["soft_nms"])

    def run(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """Raw outputs (heads and candidates) for one [1, H, W, 3] float32 input."""
        names = [output.name for output in self.session.get_outputs()]
        values = self.session.run(names, {INPUT_NAME: np.asarray(canvas, np.float32)})
        return dict(zip(names, values, strict=True))

    def detect_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Detections of one [h, w, 3] RGB image, in its pixels (as `TFLiteDetector`)."""
        image = check_image(image, "OnnxDetector.detect_image: `image`", max_side=None)
        canvas, scale = letterbox(image, self.input_size)
        outputs = self.run(canvas)
        detections = soft_nms_numpy(
            outputs["candidate_boxes"][0],
            outputs["candidate_scores"][0],
            outputs["candidate_classes"][0],
            **self.soft_nms,
        )
        limits = np.array([image.shape[1], image.shape[0]] * 2, np.float32)
        valid = detections["detection_classes"][..., None] >= 0
        boxes = np.where(valid, np.clip(detections["detection_boxes"] / scale, 0.0, limits), -1.0)
        return {
            "boxes": boxes.astype(np.float32),
            "confidence": detections["detection_scores"],
            "classes": detections["detection_classes"],
            "num_detections": detections["num_detections"],
        }

    def detect(self, images):
        """`CornerNet.detect` for a batch of one image (as `TFLiteDetector.detect`)."""
        return _detect_with_py_function(self.detect_image, images)


class TFLiteDetector:
    """Runs a CornerNet TFLite file on images of any size, like `CornerNet.detect`.

    Each image is letterboxed into the file's fixed input (`letterbox`), run
    with `ai_edge_litert`, completed with `host_soft_nms` when the file has no
    in-graph soft-NMS (int8 debug files), and its boxes are mapped back to the
    image's pixels. Detector files (uint8 or float32 input, normalised boxes,
    `detector_to_pixels`) and debug files both run. `detect` has
    `CornerNet.detect`'s contract for one image, so
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
        image = self.runner.get_input_details()[INPUT_NAME]
        self.input_size = (int(image["shape"][1]), int(image["shape"][2]))
        self.input_dtype = image["dtype"]  # uint8 or float32 (detector files), float32 (debug)
        self.test_config = test_config

    def run(self, canvas: np.ndarray) -> dict[str, np.ndarray]:
        """Raw interpreter outputs for one input.

        Args:
            canvas: [1, H, W, 3] float32 RGB in [0, 255] (see `letterbox`);
                rounded for a uint8 input.

        Returns:
            The file's outputs by name.
        """
        canvas = np.asarray(canvas, np.float32)
        if self.input_dtype == np.uint8:
            canvas = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)
        return self.runner(images=canvas)

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
        outputs = self.run(canvas)
        if "detection_locations" in outputs:
            detections = detector_to_pixels(outputs, self.input_size)
        else:
            detections = host_soft_nms(outputs, self.test_config)
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
        return _detect_with_py_function(self.detect_image, images)
