"""TFLite/LiteRT export of CornerNet: fixed-size detection graphs with builtin ops only.

A TFLite export runs the detection pipeline of `CornerNet.detect` at one fixed
input size with builtin ops only (no Flex): float32, float16 weights, or int8
(full-integer network calibrated on representative images; inputs, outputs and
the decoding stay float). `export_tflite` writes the files; `convert_tflite`
and `convert_tflite_variants` return the flatbuffers. The files are run with
`cornernet_tf.runtime.TFLiteDetector`.
"""

import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf.export._checks import check_model, check_name
from cornernet_tf.export.saved_model import _class_names
from cornernet_tf.images import OK, image_files, read_image
from cornernet_tf.runtime import letterbox
from cornernet_tf.spec.exported_io import INPUT_NAME, check_input_size, detection_outputs
from cornernet_tf.utils.fs import atomic_write_bytes, atomic_write_json

__all__ = [
    "QUANTIZATIONS",
    "check_builtin_ops",
    "convert_tflite",
    "convert_tflite_variants",
    "export_tflite",
    "representative_images",
    "tflite_file_name",
    "tflite_function",
    "tflite_ops",
]

QUANTIZATIONS = ("none", "float16", "int8")


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
        ValueError: unknown quantisation, missing or malformed calibration data.
        RuntimeError: the conversion failed (e.g. an op needs Flex).
    """
    check_model(model, "convert_tflite")
    height, width = check_input_size(input_size, "convert_tflite")
    unknown = [q for q in quantizations if q not in QUANTIZATIONS]
    if unknown or not quantizations or isinstance(quantizations, str):
        raise ValueError(
            f"convert_tflite: quantizations must be a non-empty list of {QUANTIZATIONS}, got "
            f"{quantizations!r}."
        )
    samples = None
    if "int8" in quantizations:
        if representative_data is None:
            raise ValueError(
                "convert_tflite: int8 needs `representative_data` (calibration images); pass "
                "--data-dir with a folder of dataset images."
            )
        samples = [np.asarray(x, np.float32) for x in representative_data]
        if not samples or any(x.shape != (1, height, width, 3) for x in samples):
            raise ValueError(
                "convert_tflite: `representative_data` must be non-empty [1, H, W, 3] float32 "
                f"images with (H, W) = {(height, width)}; use `representative_images`."
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
                # The converter freezes the tf.Variables tracked by the saved object;
                # tracking the Keras wrappers' underlying variables keeps none a resource.
                holder = tf.Module()
                holder.model_variables = [v.value for v in model.variables]
                tf.saved_model.save(
                    holder, saved_model_dir, signatures={"serving_default": function}
                )
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
                converter.inference_input_type = tf.float32
                converter.inference_output_type = tf.float32
            try:
                flatbuffer = converter.convert()
            except Exception as error:  # noqa: BLE001 - the converter raises several types
                raise RuntimeError(
                    f"convert_tflite: conversion to TFLite builtin ops failed ({quantization}); "
                    f"Flex ops (SELECT_TF_OPS) are deliberately not allowed. Converter error: "
                    f"{error}"
                ) from error
            check_builtin_ops(flatbuffer)
            results[quantization] = flatbuffer
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
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


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


def tflite_file_name(name: str, quantization: str) -> str:
    """The file name of one quantisation's `.tflite` file.

    Args:
        name: file name prefix.
        quantization: "none", "float16" or "int8".

    Returns:
        `<name>_<float32|float16|int8>.tflite`.
    """
    return f"{name}_{'float32' if quantization == 'none' else quantization}.tflite"


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
    flip_test: bool | None = None,
    overwrite: bool = False,
) -> dict[str, Path]:
    """Converts (see `convert_tflite_variants`) and writes `.tflite` files atomically.

    Each file is `<output_dir>/<name>_<float32|float16|int8>.tflite`, written
    to a temporary file in the same directory and renamed into place
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
        flip_test: see `tflite_function`.
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
    paths = {q: output_dir / tflite_file_name(name, q) for q in quantizations}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"export_tflite: {existing} already exist; pass overwrite=True (--overwrite) or "
            "another output directory or name."
        )
    flatbuffers = convert_tflite_variants(
        model,
        input_size=input_size,
        quantizations=quantizations,
        representative_data=representative_data,
        flip_test=flip_test,
    )
    for quantization, path in paths.items():
        atomic_write_bytes(path, flatbuffers[quantization])
    # A flatbuffer holds no class names: they travel beside it, in the format
    # of the SavedModel's `assets/classes.json` (rewritten by every export).
    atomic_write_json(output_dir / tflite_classes_file_name(name), _class_names(model))
    return paths
