"""TFLite/LiteRT export of CornerNet: fixed-size detection graphs with builtin ops only.

A TFLite export runs the detection pipeline of `CornerNet.detect` at one fixed
input size with builtin ops only (no Flex): float32, float16 weights, or int8
(full-integer network calibrated on representative images; the decoding stays
float). Two forms:

- the detector file (`convert_detector_variants`, the default of
  `export_tflite`): the object-detector contract of the LiteRT/TFLite Task
  Library and MediaPipe Tasks' `ObjectDetector` -- one [1, H, W, 3] uint8 (or
  float32 0-255) input, the four outputs `detection_locations` [1, M, 4]
  (ymin, xmin, ymax, xmax as fractions of the input), `detection_classes`
  [1, M], `detection_scores` [1, M], `num_detections` [1] (all float32), with
  metadata (`cornernet_tf.export.tflite_metadata`) and the class names as its
  label file; soft-NMS runs inside every variant, int8 included;
- the debug file (`convert_tflite_variants`, `export_tflite(debug=True)`):
  float32 input, pixel boxes, int32 classes and the raw heads for parity
  checks, run with `cornernet_tf.runtime.TFLiteDetector`.
"""

import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf.export._checks import (
    check_input_fits,
    check_labels,
    check_model,
    check_name,
    class_names_or_numbers,
)
from cornernet_tf.export.tflite_metadata import add_detector_metadata
from cornernet_tf.images import OK, image_files, read_image
from cornernet_tf.inference.image_input import letterbox
from cornernet_tf.spec.exported_io import (
    DETECTOR_OUTPUTS,
    INPUT_NAME,
    check_input_size,
    detection_outputs,
)
from cornernet_tf.utils.fs import atomic_write_bytes, atomic_write_json
from cornernet_tf.utils.private_api import tflite_operator_names

__all__ = [
    "DETECTOR_OUTPUTS",
    "INPUT_TYPES",
    "QUANTIZATIONS",
    "check_builtin_ops",
    "convert_detector_variants",
    "detector_function",
    "convert_tflite",
    "convert_tflite_variants",
    "export_tflite",
    "representative_images",
    "tflite_file_name",
    "tflite_function",
    "tflite_ops",
]

QUANTIZATIONS = ("none", "float16", "int8")
INPUT_TYPES = ("uint8", "float32")
NETWORK_SCOPE = "network"


def tflite_function(
    model, input_size=(511, 511), *, flip_test: bool | None = None, soft_nms: bool = True
):
    """The fixed-size detection graph converted to TFLite, as a `tf.function`.

    Input `images` [1, H, W, 3] float32 RGB in [0, 255] (H, W = `input_size`).
    The graph is `CornerNet.detect` at a fixed size: the model's decoder
    (`cornernet_tf.inference.CornerNetDecoder`, built from `model.test_config`)
    places the image on its test canvas at every scale, runs the network (with
    the flipped copy for the flip test), decodes and maps the pairs to input
    pixels; with `soft_nms`, the official per-class Gaussian soft-NMS follows
    (a `tf.while_loop` that converts to the builtin WHILE op). With a fixed
    input size the test geometry folds into constants.
    `tf.image.non_max_suppression_with_scores` does convert to the builtin
    NON_MAX_SUPPRESSION_V5, but its IoU (no "+1") and thresholds differ from
    the official soft-NMS (see `cornernet_tf.inference.soft_nms`), so it is
    not used.

    Outputs (M = `test_config.max_detections`): with `soft_nms`,
    `detection_boxes` [1, M, 4] (x1, y1, x2, y2 in input pixels),
    `detection_scores` [1, M], `detection_classes` [1, M] and `num_detections`
    [1], as the SavedModel; without, the decoded candidates `candidate_boxes`
    [1, D, 4] (input pixels), `candidate_scores` [1, D] (-1 = rejected pair),
    `candidate_classes` [1, D] (and `candidate_tl_scores`,
    `candidate_br_scores` with `merge_bbox`) for
    `cornernet_tf.runtime.host_soft_nms`. Always, for parity checks against
    Keras, the raw heads of the first scale's unflipped canvas: `tl_heatmap`,
    `br_heatmap` [1, h, w, C] logits, `tl_embedding`, `br_embedding`
    [1, h, w, 1], `tl_offset`, `br_offset` [1, h, w, 2].

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input.
        flip_test: run the flip test; default: the model's `test_config`.
        soft_nms: include the soft-NMS loop in the graph.

    Returns:
        A `tf.function` with its input signature set.
    """
    check_model(model, "tflite_function")
    height, width = check_input_size(input_size, "tflite_function")
    config = model.test_config
    if flip_test is not None:
        config = config.replace(flip_test=bool(flip_test))
    decoder = model.decoder(config)

    @tf.function(
        input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)],
        autograph=False,
    )
    def detect_fixed(images):
        candidates = decoder.candidates(lambda canvas: model(canvas, training=False), images)
        outputs = dict(candidates["heads"])
        if soft_nms:
            outputs.update(detection_outputs(decoder.suppress(candidates)))
            return outputs
        keys = ("boxes", "scores", "classes")
        if config.merge_bbox:
            keys += ("tl_scores", "br_scores")
        outputs.update({f"candidate_{key}": candidates[key] for key in keys})
        return outputs

    return detect_fixed


def _builtin_soft_nms(candidates, config, input_size):
    """The official soft-NMS as the builtin NON_MAX_SUPPRESSION_V5 op (detector files).

    A detector file must be one TFLite subgraph (MediaPipe Tasks refuses a
    model with more, and the soft-NMS loop of `cornernet_tf.inference.soft_nms`
    converts to a WHILE op with two subgraphs of its own); TFLite's calibrator
    cannot run that loop either (tensorflow/tensorflow#75140). The op computes
    the same greedy Gaussian soft-NMS: its Gaussian is `exp(-iou**2 / (2 s))`,
    so s = `soft_nms_sigma / 2`; the official "+1" pixel convention comes from
    giving it boxes whose far corner is moved by one pixel (then its area and
    overlap are the official `(x2 - x1 + 1)(y2 - y1 + 1)` and
    `min(x2) - max(x1) + 1`); classes are kept apart by offsetting each class's
    boxes beyond the others'. One difference remains: the op drops a box whose
    *initial* score is at most `score_threshold` (0.001), which the official
    loop keeps while no decay touches it -- boxes that only ever fill the last
    slots of an image with fewer confident ones. No `merge_bbox` (multi-scale
    testing).
    """
    boxes = candidates["boxes"][0]  # [D, 4] x1, y1, x2, y2
    scores = candidates["scores"][0]
    classes = tf.cast(candidates["classes"][0], tf.float32)
    offset = (classes * (4.0 * max(input_size)))[:, None]
    # SPLIT, not UNPACK: the int8 conversion keeps SPLIT float (`_quantize_network`).
    x1, y1, x2, y2 = tf.split(boxes, 4, axis=-1)
    corners = tf.concat([y1, x1, y2 + 1.0, x2 + 1.0], axis=-1) + offset
    indices, selected, count = tf.raw_ops.NonMaxSuppressionV5(
        boxes=corners,
        scores=scores,
        max_output_size=config.max_detections,
        iou_threshold=1.0,
        score_threshold=config.score_threshold,
        soft_nms_sigma=config.soft_nms_sigma / 2.0,
        pad_to_max_output_size=True,
    )
    return {
        "boxes": tf.gather(boxes, indices)[None],
        "confidence": selected[None],
        "classes": tf.gather(candidates["classes"][0], indices)[None],
        "num_detections": tf.reshape(count, [1]),
    }


def _detector_outputs(detections, input_size):
    """Detections (`CornerNet.detect` keys, input pixels) in the detector contract."""
    height, width = (float(v) for v in input_size)
    boxes = detections["boxes"]
    count = tf.cast(detections["num_detections"], tf.int32)
    slots = boxes.shape[1]
    valid = tf.range(slots)[None, :] < count[:, None]  # [1, M]
    x1, y1, x2, y2 = tf.split(boxes, 4, axis=-1)
    locations = tf.clip_by_value(
        tf.concat([y1 / height, x1 / width, y2 / height, x2 / width], axis=-1), 0.0, 1.0
    )
    # Padding rows are zero, as the TF Object Detection API's files.
    return {
        "detection_locations": tf.where(valid[..., None], locations, 0.0),
        "detection_classes": tf.where(valid, tf.cast(detections["classes"], tf.float32), 0.0),
        "detection_scores": tf.where(valid, tf.cast(detections["confidence"], tf.float32), 0.0),
        "num_detections": tf.cast(count, tf.float32),
    }


def detector_function(
    model,
    input_size=(511, 511),
    *,
    input_type: str = "uint8",
    flip_test: bool | None = None,
):
    """The fixed-size detector graph of a TFLite detector file, as a `tf.function`.

    Input `images` [1, H, W, 3] RGB 0-255, uint8 or float32 (`input_type`).
    The graph is `tflite_function`'s (`CornerNet.detect` at a fixed size: test
    canvas, network, decoding) with the official soft-NMS as one builtin op
    (`_builtin_soft_nms`, so that the file is a single subgraph) and its outputs in the
    object-detector contract (`cornernet_tf.spec.exported_io.DETECTOR_OUTPUTS`,
    M = `test_config.max_detections`): `detection_locations` [1, M, 4]
    (ymin, xmin, ymax, xmax as fractions of H and W, clipped to [0, 1]),
    `detection_classes` [1, M] (class index as float), `detection_scores`
    [1, M], `num_detections` [1] (float); rows past the count are zero.

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input.
        input_type: "uint8" or "float32".
        flip_test: run the flip test; default: the model's `test_config`.

    Returns:
        A `tf.function` with its input signature set.
    """
    check_model(model, "detector_function")
    height, width = check_input_size(input_size, "detector_function")
    if input_type not in INPUT_TYPES:
        raise ValueError(
            f"detector_function: `input_type` must be one of {INPUT_TYPES}, got {input_type!r}."
        )
    config = model.test_config
    if flip_test is not None:
        config = config.replace(flip_test=bool(flip_test))
    if config.merge_bbox:
        raise ValueError(
            "detector_function: `merge_bbox` (multi-scale soft-NMS merging) has no builtin "
            "TFLite form; export with test_config.merge_bbox=False, or export debug files."
        )
    decoder = model.decoder(config)

    def network(canvas):
        # The scope names the network's tensors apart from the decoding's, which the
        # int8 conversion keeps in float (`_quantize_network`).
        with tf.name_scope(NETWORK_SCOPE):
            return model(canvas, training=False)

    @tf.function(
        input_signature=[tf.TensorSpec([1, height, width, 3], input_type, name=INPUT_NAME)],
        autograph=False,
    )
    def detect_fixed(images):
        pixels = tf.cast(images, tf.float32)
        candidates = decoder.candidates(network, pixels)
        detections = _builtin_soft_nms(candidates, config, (height, width))
        return _detector_outputs(detections, (height, width))

    return detect_fixed


def representative_images(
    data_dir: str | os.PathLike, input_size, max_images: int = 100
) -> list[np.ndarray]:
    """Calibration inputs for int8: dataset images letterboxed to `input_size`.

    Files are read like every other image (`cornernet_tf.images.read_image`:
    header checked before decoding); unreadable ones are skipped with a
    warning that counts them.

    Args:
        data_dir: folder of images (searched recursively).
        input_size: (H, W) of the TFLite input.
        max_images: calibration images to use.

    Returns:
        A list of [1, H, W, 3] float32 arrays.

    Raises:
        ValueError: the folder is missing or holds no readable images.
    """
    images, skipped = [], 0
    for path in image_files(data_dir, max_images):
        image, code = read_image(tf.constant(str(path)))
        if int(code) != OK:
            skipped += 1
            continue
        images.append(letterbox(image.numpy(), input_size)[0])
    if skipped:
        warnings.warn(
            f"representative_images: skipped {skipped} unreadable image(s) in {data_dir}.",
            stacklevel=2,
        )
    if not images:
        raise ValueError(f"data directory {str(data_dir)!r} holds no readable images.")
    return images


def _converter(saved_model_dir, quantization, samples):
    """A builtin-ops-only TFLite converter for one quantisation."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantization == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantization == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([x] for x in samples)
        # Int8 kernels where they exist; the decoding keeps float builtins.
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
    return converter


def _convert(converter, quantization) -> bytes:
    """Runs `converter`; a failure names the quantisation and the converter's error."""
    try:
        flatbuffer = converter.convert()
    except Exception as error:  # noqa: BLE001 - the converter raises several types
        raise RuntimeError(
            f"convert_tflite: conversion to TFLite builtin ops failed ({quantization}); "
            f"Flex ops (SELECT_TF_OPS) are deliberately not allowed. Converter error: "
            f"{error}"
        ) from error
    check_builtin_ops(flatbuffer)
    return flatbuffer


def _save_function(model, function, path):
    """Traces `function` into a SavedModel the converter reads."""
    # The converter freezes the tf.Variables tracked by the saved object;
    # tracking the Keras wrappers' underlying variables keeps none a resource.
    holder = tf.Module()
    holder.model_variables = [v.value for v in model.variables]
    tf.saved_model.save(holder, path, signatures={"serving_default": function})


def _calibration_samples(quantizations, representative_data, input_size, caller):
    """The int8 calibration images as float32 arrays (None without int8)."""
    if "int8" not in quantizations:
        return None
    if representative_data is None:
        raise ValueError(
            f"{caller}: int8 needs `representative_data` (calibration images); pass "
            "--data-dir with a folder of dataset images."
        )
    samples = [np.asarray(x, np.float32) for x in representative_data]
    if not samples or any(x.shape != (1, *input_size, 3) for x in samples):
        raise ValueError(
            f"{caller}: `representative_data` must be non-empty [1, H, W, 3] float32 "
            f"images with (H, W) = {tuple(input_size)}; use `representative_images`."
        )
    return samples


def _check_quantizations(quantizations, caller):
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not quantizations or isinstance(quantizations, str):
        raise ValueError(
            f"{caller}: quantizations must be a non-empty list of {QUANTIZATIONS}, got "
            f"{quantizations!r}."
        )


# Decoding ops that have int8 kernels but must keep float scores and pixel
# coordinates; none of them is in the network.
_FLOAT_DECODING_OPS = ["LOGISTIC", "TOPK_V2", "SPLIT", "NON_MAX_SUPPRESSION_V5"]


def _quantize_network(converter, samples) -> bytes:
    """Full-integer network, float decoding: the int8 detector file.

    The converter alone quantises every op with an int8 kernel, the decoding's
    top-k, gathers and box arithmetic included (scores in 1/256 steps, boxes
    in steps of several pixels). TFLite's selective quantisation
    (`tf.lite.experimental.QuantizationDebugger`) keeps float every op whose
    output is outside the network's name scope (`NETWORK_SCOPE`), and the
    decoding's op types in `_FLOAT_DECODING_OPS`. The names are those of the
    calibrated model, known only once the debugger has calibrated it. The
    quantiser still rounds two decoding tensors through int8 (the corner
    scores after the sigmoid, 1/256 steps, and the candidate boxes before one
    unstack); the rest of the decoding and soft-NMS runs in float.
    """
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=_FLOAT_DECODING_OPS)
    try:
        with warnings.catch_warnings():
            # The debugger runs the calibrated model with tf.lite.Interpreter, which
            # warns that it is deprecated in favour of ai_edge_litert.
            warnings.filterwarnings("ignore", "(?s).*tf.lite.Interpreter is deprecated")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter,
                debug_dataset=lambda: ([x] for x in samples),
                debug_options=options,
            )
        from ai_edge_litert.interpreter import Interpreter

        calibrated = Interpreter(model_content=debugger.calibrated_model)
        # Every tensor named outside the network: op outputs among them are the
        # decoding's nodes (the other names match no op and are ignored).
        options.denylisted_nodes = sorted(
            {
                tensor["name"]
                for tensor in calibrated.get_tensor_details()
                if not tensor["name"].startswith(f"{NETWORK_SCOPE}/")
            }
        )
        flatbuffer = debugger.get_nondebug_quantized_model()
    except Exception as error:  # noqa: BLE001 - the converter raises several types
        raise RuntimeError(
            f"convert_tflite: int8 quantisation of the network failed. Converter error: {error}"
        ) from error
    check_builtin_ops(flatbuffer)
    return flatbuffer


def convert_detector_variants(
    model,
    *,
    input_size=(511, 511),
    quantizations: Sequence[str] = QUANTIZATIONS,
    representative_data: Iterable[np.ndarray] | None = None,
    input_type: str = "uint8",
    flip_test: bool | None = None,
    labels: Sequence[str] | None = None,
) -> dict[str, bytes]:
    """Converts the detector graph (`detector_function`) to TFLite files with metadata.

    Builtin ops only, as `convert_tflite_variants`, one subgraph, soft-NMS
    inside every variant (`detector_function`). int8 quantises the network's
    weights and activations (ranges calibrated on `representative_data`) with
    the decoding and soft-NMS in float. Every file gets the detector metadata
    and label file
    (`cornernet_tf.export.tflite_metadata.add_detector_metadata`).

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input; each side must fit the
            network (as `CornerNet` inputs, e.g. 511 or 127).
        quantizations: any of "none", "float16", "int8".
        representative_data: [1, H, W, 3] float32 0-255 images, required for
            int8 (`representative_images`).
        input_type: "uint8" (default; what camera frames are) or "float32"
            (0-255, identity normalisation in the metadata).
        flip_test: see `detector_function`.
        labels: class names for the label file; default: the model's
            `class_names`, or numbered names with a warning when it has none.

    Returns:
        `{quantization: .tflite bytes}`.

    Raises:
        ValueError: bad arguments, an input size that does not fit the network.
        RuntimeError: the conversion failed, or `mediapipe` (the metadata
            schema) is not installed.
    """
    caller = "convert_detector_variants"
    check_model(model, caller)
    size = check_input_size(input_size, caller)
    check_input_fits(model, size, caller)
    _check_quantizations(quantizations, caller)
    if input_type not in INPUT_TYPES:
        raise ValueError(
            f"{caller}: `input_type` must be one of {INPUT_TYPES}, got {input_type!r}."
        )
    samples = _calibration_samples(quantizations, representative_data, size, caller)
    if samples is not None and input_type == "uint8":
        samples = [np.clip(np.rint(x), 0, 255).astype(np.uint8) for x in samples]
    labels = check_labels(model, caller) if labels is None else [str(x) for x in labels]
    if len(labels) != model.num_classes:
        raise ValueError(
            f"{caller}: `labels` has {len(labels)} names, the model {model.num_classes} classes."
        )

    results = {}
    with tempfile.TemporaryDirectory() as saved_models:
        saved_model_dir = os.path.join(saved_models, "detector")
        function = detector_function(model, size, input_type=input_type, flip_test=flip_test)
        _save_function(model, function, saved_model_dir)
        for quantization in dict.fromkeys(quantizations):
            converter = _converter(saved_model_dir, quantization, samples)
            if quantization == "int8":
                flatbuffer = _quantize_network(converter, samples)
            else:
                flatbuffer = _convert(converter, quantization)
            precision = "float32" if quantization == "none" else quantization
            results[quantization] = add_detector_metadata(
                flatbuffer,
                labels=labels,
                name=f"CornerNet {precision}",
                description=(
                    f"CornerNet detector, {size[0]}x{size[1]} RGB input; soft-NMS in the graph."
                ),
            )
    return results


def convert_tflite_variants(
    model,
    *,
    input_size=(511, 511),
    quantizations: Sequence[str] = QUANTIZATIONS,
    representative_data: Iterable[np.ndarray] | None = None,
    flip_test: bool | None = None,
) -> dict[str, bytes]:
    """Converts the fixed-size detection graph to TFLite flatbuffers.

    The graph (`tflite_function`) is traced once into a temporary SavedModel
    and converted once per quantisation. Builtin ops only: `TFLITE_BUILTINS`
    (and `TFLITE_BUILTINS_INT8` for int8); Flex (`SELECT_TF_OPS`) is never
    enabled, so an op without a builtin kernel makes the conversion fail with
    an error naming it.

    Quantisations: "none" keeps float32; "float16" stores float16 weights
    (dequantised to float32 at load); "int8" quantises the network's weights
    and activations to int8 with ranges calibrated on `representative_data`,
    while the input, the outputs and the decoding stay float32 (int8 heatmap
    logits around the -2.19 prior and 0-1 corner scores would lose the score
    resolution that ranking and soft-NMS need). The int8 file stops before
    soft-NMS (`tflite_function(soft_nms=False)`; run
    `cornernet_tf.runtime.host_soft_nms` on its outputs): TFLite's calibrator
    segfaults on the soft-NMS WHILE loop, whose loop-invariant inputs it reads
    after the WHILE kernel has released them
    (tensorflow/tensorflow#75140, open in TF 2.21).

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input.
        quantizations: any of "none", "float16", "int8".
        representative_data: [1, H, W, 3] float32 images, required for int8
            (`representative_images`).
        flip_test: see `tflite_function`.

    Returns:
        `{quantization: flatbuffer bytes}`.

    Raises:
        ValueError: unknown quantisation, missing or malformed calibration data,
            an input size that does not fit the network.
        RuntimeError: the conversion failed (e.g. an op needs Flex).
    """
    check_model(model, "convert_tflite")
    height, width = check_input_size(input_size, "convert_tflite")
    check_input_fits(model, (height, width), "convert_tflite")
    _check_quantizations(quantizations, "convert_tflite")
    samples = _calibration_samples(
        quantizations, representative_data, (height, width), "convert_tflite"
    )
    results = {}
    with tempfile.TemporaryDirectory() as saved_models:
        for quantization in dict.fromkeys(quantizations):
            # TFLite's calibrator crashes on WHILE loops with loop-invariant inputs
            # (tensorflow/tensorflow#75140), so int8 files leave soft-NMS to the host.
            with_nms = quantization != "int8"
            saved_model_dir = os.path.join(saved_models, "nms" if with_nms else "candidates")
            if not os.path.isdir(saved_model_dir):
                function = tflite_function(
                    model, (height, width), flip_test=flip_test, soft_nms=with_nms
                )
                _save_function(model, function, saved_model_dir)
            converter = _converter(saved_model_dir, quantization, samples)
            results[quantization] = _convert(converter, quantization)
    return results


def convert_tflite(
    model,
    *,
    input_size=(511, 511),
    quantize: str = "none",
    representative_data: Iterable[np.ndarray] | None = None,
    flip_test: bool | None = None,
) -> bytes:
    """Converts the fixed-size detection graph with one quantisation.

    See `convert_tflite_variants`.

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input.
        quantize: "none", "float16" or "int8".
        representative_data: calibration images for int8.
        flip_test: see `tflite_function`.

    Returns:
        The `.tflite` flatbuffer bytes.

    Raises:
        ValueError: unknown quantisation, missing or malformed calibration data.
        RuntimeError: the conversion failed (e.g. an op needs Flex).
    """
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            f"convert_tflite: `quantize` must be one of {QUANTIZATIONS}, got {quantize!r}."
        )
    return convert_tflite_variants(
        model,
        input_size=input_size,
        quantizations=[quantize],
        representative_data=representative_data,
        flip_test=flip_test,
    )[quantize]


def tflite_ops(flatbuffer: bytes) -> list[str]:
    """Names of the operators in a TFLite flatbuffer.

    Args:
        flatbuffer: the `.tflite` bytes.

    Returns:
        The operator names (e.g. "CONV_2D"), sorted and unique.
    """
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return tflite_operator_names(interpreter)


def check_builtin_ops(flatbuffer: bytes) -> None:
    """Raises unless a TFLite model loads and uses builtin operators only.

    Args:
        flatbuffer: the `.tflite` bytes.

    Raises:
        RuntimeError: the model does not load, or needs Flex or custom ops.
    """
    try:
        names = tflite_ops(flatbuffer)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"the TFLite model does not load with builtin ops: {error}") from error
    foreign = [n for n in names if n.startswith("Flex") or not n.isupper()]
    if foreign:
        raise RuntimeError(f"the TFLite model needs non-builtin ops {foreign}.")


def tflite_file_name(name: str, quantization: str, *, debug: bool = False) -> str:
    """The file name of one quantisation's `.tflite` file.

    Args:
        name: file name prefix.
        quantization: "none", "float16" or "int8".
        debug: the debug file (raw heads) instead of the detector file.

    Returns:
        `<name>_<float32|float16|int8>.tflite` (`..._debug.tflite` with `debug`).
    """
    suffix = "_debug" if debug else ""
    precision = "float32" if quantization == "none" else quantization
    return f"{name}_{precision}{suffix}.tflite"


def tflite_classes_file_name(name: str) -> str:
    """`<name>_classes.json`: the class names of the `.tflite` files of that prefix, a JSON list."""
    return f"{name}_classes.json"


def export_tflite(
    model,
    output_dir: str | os.PathLike,
    *,
    name: str = "cornernet",
    input_size=(511, 511),
    quantizations: Sequence[str] = ("none",),
    representative_data: Iterable[np.ndarray] | None = None,
    input_type: str = "uint8",
    flip_test: bool | None = None,
    debug: bool = False,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Converts and writes `.tflite` files atomically.

    By default the detector files (`convert_detector_variants`: the
    object-detector contract with metadata and label file); with `debug`, the
    files with pixel boxes and raw heads (`convert_tflite_variants`). Each
    file is `<output_dir>/<name>_<float32|float16|int8>[_debug].tflite`,
    written to a temporary file in the same directory and renamed into place
    (`cornernet_tf.utils.fs.atomic_write_bytes`); the directory is created if
    needed. The model's class names (ids when it has none) are written beside
    them as `<name>_classes.json`, a JSON list like the SavedModel's
    `assets/classes.json`.

    Args:
        model: a built CornerNet.
        output_dir: directory for the files.
        name: file name prefix.
        input_size: (height, width) of the fixed input.
        quantizations: any of "none" (float32), "float16", "int8".
        representative_data: calibration images for int8.
        input_type: detector files: "uint8" or "float32" input.
        flip_test: see `tflite_function`.
        debug: write the debug files instead of the detector files.
        overwrite: replace existing files.

    Returns:
        `{quantization: path}`.

    Raises:
        TypeError: `model` is not a CornerNet.
        ValueError: bad arguments, an unbuilt model, or existing files without
            `overwrite`.
        RuntimeError: the conversion failed (see `convert_tflite_variants`).
    """
    check_model(model, "export_tflite")
    check_name(name, "export_tflite")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"export_tflite: {str(output_dir)!r} exists and is not a directory.")
    paths = {q: output_dir / tflite_file_name(name, q, debug=debug) for q in quantizations}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"export_tflite: {existing} already exist; pass overwrite=True (--overwrite) or "
            "another output directory or name."
        )
    if debug:
        flatbuffers = convert_tflite_variants(
            model,
            input_size=input_size,
            quantizations=quantizations,
            representative_data=representative_data,
            flip_test=flip_test,
        )
    else:
        flatbuffers = convert_detector_variants(
            model,
            input_size=input_size,
            quantizations=quantizations,
            representative_data=representative_data,
            input_type=input_type,
            flip_test=flip_test,
        )
    for quantization, path in paths.items():
        atomic_write_bytes(path, flatbuffers[quantization])
    # A flatbuffer holds no class names: they travel beside it, in the format
    # of the SavedModel's `assets/classes.json` (rewritten by every export).
    atomic_write_json(output_dir / tflite_classes_file_name(name), class_names_or_numbers(model))
    return paths
