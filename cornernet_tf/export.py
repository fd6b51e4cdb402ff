"""Export CornerNet for serving: TF Serving SavedModels and TFLite/LiteRT files (SPEC §9).

A SavedModel export is a plain `tf.Module` holding the model's variables, two
serving functions and the class names (not the Keras model, its optimizer or
its training functions), written in TensorFlow Serving's layout
`<output>/<name>/<version>/` through a temporary directory and one
`os.rename`, so a server watching `<output>/<name>` never sees a half-written
version:

- `serving_default`: `images` [B] `tf.string` of encoded JPEG/PNG/GIF/BMP
  files of any sizes; each image is decoded and detected at its own size
  (`tf.map_fn`), as the official `test/coco.py` runs one image at a time.
- `detect_uint8`: `images` [B, H, W, 3] uint8 RGB of one size.

Both return `detection_boxes` [B, 100, 4] float32 (x1, y1, x2, y2 in the input
image's pixels), `detection_scores` [B, 100] float32, `detection_classes`
[B, 100] int32 and `num_detections` [B] int32, padded with -1 after
`num_detections` (`CornerNet.detect`: preprocessing, network, decoding and
soft-NMS, SPEC §8, all inside the graph). `assets/classes.json` lists the
class names; `assets/model_config.json` the model's configuration.

A TFLite export runs the same pipeline at one fixed input size with builtin
ops only (no Flex): float32, float16 weights, or int8 (full-integer network
calibrated on representative images; inputs, outputs and the decoding stay
float). See `export_tflite`.
"""

import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf import postprocess

# Moved to cornernet_tf/models/loading.py; re-exported for the callers not yet updated.
from cornernet_tf.models.loading import load_model  # noqa: F401

SIGNATURE_IMAGES = "serving_default"
SIGNATURE_UINT8 = "detect_uint8"
INPUT_NAME = "images"
# `CornerNet.detect` keys → exported output names (TF object-detection names).
DETECTION_OUTPUTS = {
    "boxes": "detection_boxes",
    "confidence": "detection_scores",
    "classes": "detection_classes",
    "num_detections": "num_detections",
}
CLASSES_ASSET = "classes.json"
CONFIG_ASSET = "model_config.json"
QUANTIZATIONS = ("none", "float16", "int8")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_MAX_IMAGE_SIDE = 4096
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check_model(model, caller: str) -> None:
    if not isinstance(model, keras.Model) or not hasattr(model, "detect"):
        raise TypeError(
            f"{caller}: `model` must be a CornerNet (a keras.Model with `detect`), got "
            f"{type(model).__name__}."
        )
    if not model.variables:
        raise ValueError(
            f"{caller}: `model` has no weights yet; call it once on an image batch or load a "
            "trained model before exporting."
        )


def _class_names(model) -> list[str]:
    names = getattr(model, "class_names", None)
    return list(names) if names else [str(i) for i in range(model.num_classes)]


# ------------------------------------------------------------------ SavedModel


def _check_image_format(contents: tf.Tensor, index: tf.Tensor) -> tf.Operation:
    """Asserts that `contents` starts like a JPEG, PNG, GIF or BMP file."""
    head = tf.strings.substr(contents, 0, 4)
    known = tf.reduce_any(
        [
            tf.strings.substr(contents, 0, 3) == b"\xff\xd8\xff",  # JPEG
            head == b"\x89PNG",
            head == b"GIF8",
            tf.strings.substr(contents, 0, 2) == b"BM",
        ]
    )
    return tf.debugging.Assert(
        known,
        [
            "serving_default: image",
            index,
            "of the batch is not a JPEG, PNG, GIF or BMP file (it has",
            tf.strings.length(contents),
            'bytes); send the encoded file bytes, base64-encoded as {"b64": ...} in JSON.',
        ],
    )


class ServingModule(tf.Module):
    """The exported object: the model's variables and the class-name assets.

    The serving functions (`serving_functions`) reach the Keras model through
    their closures and are saved as signatures only, so neither the Keras
    model, its optimizer and training functions, nor a second copy of each
    function graph is written.

    Args:
        model: a built CornerNet.
        assets_dir: directory holding `classes.json` and `model_config.json`
            (copied into the SavedModel's `assets/`).
    """

    def __init__(self, model, assets_dir):
        super().__init__(name="cornernet_serving")
        self.model_variables = list(model.variables)
        self.classes_file = tf.saved_model.Asset(str(Path(assets_dir) / CLASSES_ASSET))
        self.config_file = tf.saved_model.Asset(str(Path(assets_dir) / CONFIG_ASSET))


def serving_functions(model, max_image_side: int = DEFAULT_MAX_IMAGE_SIDE) -> dict:
    """The two serving signatures as `tf.function`s, by signature key.

    Not traced here: `tf.saved_model.save` traces them in its save context
    (a trace made outside it would be repeated inside).

    Args:
        model: a built CornerNet.
        max_image_side: `serving_default` rejects decoded images with a larger
            side with an `InvalidArgumentError` instead of exhausting memory.

    Returns:
        `{"serving_default": f(images [B] string), "detect_uint8":
        f(images [B, H, W, 3] uint8)}`, each returning the four detection
        outputs.
    """
    detect = model.detect

    def rename(detections):
        return {name: detections[key] for key, name in DETECTION_OUTPUTS.items()}

    # autograph off: the graph code uses explicit TF control flow, and converting
    # the whole network is slow (Keras' own ExportArchive does the same).
    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)],
        autograph=False,
    )
    def detect_uint8(images):
        return rename(detect(images))

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)], autograph=False
    )
    def detect_encoded(images):
        def detect_one(args):
            contents, index = args
            with tf.control_dependencies([_check_image_format(contents, index)]):
                image = tf.io.decode_image(contents, channels=3, expand_animations=False)
            image = tf.ensure_shape(image, [None, None, 3])  # [H, W, 3] uint8
            size_ok = tf.debugging.Assert(
                tf.reduce_max(tf.shape(image)[:2]) <= max_image_side,
                [
                    "serving_default: image",
                    index,
                    "has shape",
                    tf.shape(image),
                    f"; sides above {max_image_side} pixels are rejected, resize it or "
                    "re-export with a larger max_image_side.",
                ],
            )
            with tf.control_dependencies([size_ok]):
                image = tf.identity(image)
            # A call of the uint8 signature's function: the network is traced once.
            detections = detect_uint8(image[None])
            return {name: value[0] for name, value in detections.items()}

        indices = tf.range(tf.shape(images)[0])
        return tf.map_fn(
            detect_one, (images, indices), fn_output_signature=_detection_specs(batched=False)
        )

    return {SIGNATURE_IMAGES: detect_encoded, SIGNATURE_UINT8: detect_uint8}


def _detection_specs(batched: bool) -> dict[str, tf.TensorSpec]:
    batch = [None] if batched else []
    return {
        "detection_boxes": tf.TensorSpec(batch + [100, 4], tf.float32),
        "detection_scores": tf.TensorSpec(batch + [100], tf.float32),
        "detection_classes": tf.TensorSpec(batch + [100], tf.int32),
        "num_detections": tf.TensorSpec(batch, tf.int32),
    }


def next_version(base_dir: str | os.PathLike) -> int:
    """The next free TF Serving version number under `base_dir` (1 if none).

    Args:
        base_dir: `<output>/<name>`, whose numeric subdirectories are versions.
    """
    base_dir = Path(base_dir)
    versions = (
        [int(p.name) for p in base_dir.iterdir() if p.name.isdigit()] if base_dir.is_dir() else []
    )
    return max(versions, default=0) + 1


def export_saved_model(
    model,
    output_dir: str | os.PathLike,
    *,
    name: str = "cornernet",
    version: int | None = None,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
) -> Path:
    """Writes a TF Serving SavedModel to `<output_dir>/<name>/<version>/`, atomically.

    The model's `max_detections` must be 100 (the exported output shapes).
    See the module docstring for the signatures and outputs.

    Args:
        model: a built CornerNet (see `load_model`).
        output_dir: the export root (TF Serving's `--model_base_path` is
            `<output_dir>/<name>`).
        name: the served model name.
        version: a positive version number; default: one more than the
            highest existing version (1 for a new model).
        max_image_side: the `serving_default` signature rejects decoded
            images with a larger side.

    Returns:
        The version directory.

    Raises:
        TypeError: `model` is not a CornerNet.
        ValueError: bad `name`, `version` or `max_image_side`, an existing
            version directory, or an unbuilt model.
    """
    _check_model(model, "export_saved_model")
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"export_saved_model: `name` must be letters, digits, '_', '.' or '-' (not starting "
            f"with '.' or '-'), got {name!r}."
        )
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise ValueError(
            f"export_saved_model: `version` must be a positive integer, got {version!r}."
        )
    if (
        isinstance(max_image_side, bool)
        or not isinstance(max_image_side, int)
        or max_image_side < 1
    ):
        raise ValueError(
            f"export_saved_model: `max_image_side` must be a positive integer, got "
            f"{max_image_side!r}."
        )
    if model.test_config.get("max_detections", 100) != 100:
        raise ValueError(
            "export_saved_model: the exported outputs hold 100 detections per image; set the "
            f"model's test_config max_detections to 100 (it is "
            f"{model.test_config['max_detections']})."
        )
    base_dir = Path(output_dir) / name
    if base_dir.exists() and not base_dir.is_dir():
        raise ValueError(f"export_saved_model: {str(base_dir)!r} exists and is not a directory.")
    version = next_version(base_dir) if version is None else version
    final_dir = base_dir / str(version)
    if final_dir.exists():
        raise ValueError(
            f"export_saved_model: version directory {str(final_dir)!r} already exists; pass "
            f"another version (next free: {next_version(base_dir)}) or delete it."
        )
    base_dir.mkdir(parents=True, exist_ok=True)

    # TF Serving ignores non-numeric entries, so the staging directory is invisible to it.
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.incomplete-", dir=base_dir))
    try:
        with tempfile.TemporaryDirectory() as assets_dir:
            _write_json(Path(assets_dir) / CLASSES_ASSET, _class_names(model))
            _write_json(Path(assets_dir) / CONFIG_ASSET, _model_config(model))
            module = ServingModule(model, assets_dir)
            signatures = serving_functions(model, max_image_side)
            tf.saved_model.save(module, str(staging), signatures=signatures)
        os.rename(staging, final_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final_dir


def _write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, default=str) + "\n")


def _model_config(model) -> dict:
    return {
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "input": "RGB pixel values in [0, 255]",
        "outputs": list(DETECTION_OUTPUTS.values()),
    }


# ---------------------------------------------------------------------- TFLite


def _check_input_size(input_size, caller: str) -> tuple[int, int]:
    if isinstance(input_size, int) and not isinstance(input_size, bool):
        input_size = (input_size, input_size)
    if (
        not isinstance(input_size, Sequence)
        or len(input_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in input_size)
        or not all(1 <= v <= DEFAULT_MAX_IMAGE_SIDE for v in input_size)
    ):
        raise ValueError(
            f"{caller}: `input_size` must be (height, width), positive integers up to "
            f"{DEFAULT_MAX_IMAGE_SIDE}, got {input_size!r}."
        )
    return int(input_size[0]), int(input_size[1])


def tflite_function(
    model, input_size=(511, 511), *, flip_test: bool | None = None, soft_nms: bool = True
):
    """The fixed-size detection graph converted to TFLite, as a `tf.function`.

    Input `images` [1, H, W, 3] float32 RGB in [0, 255] (H, W = `input_size`).
    The graph repeats `CornerNet.detect` with the model's `test_config` at a
    fixed size: per test scale, the image is resized and placed centred on its
    `(h | 127, w | 127)` canvas (`postprocess.prepare_test_image`), run through
    the network (with the flipped copy when `flip_test`), decoded
    (`postprocess.decode_outputs`) and mapped to input pixels
    (`postprocess.rescale_detections`); with `soft_nms`, the official
    per-class Gaussian soft-NMS follows (`postprocess.soft_nms`, a
    `tf.while_loop` that converts to the builtin WHILE op).
    `tf.image.non_max_suppression_with_scores` does convert to the builtin
    NON_MAX_SUPPRESSION_V5, but its IoU (no "+1") and thresholds differ from
    the official soft-NMS (see `postprocess.soft_nms`), so it is not used.

    Outputs: with `soft_nms`, `detection_boxes` [1, 100, 4] (x1, y1, x2, y2 in
    input pixels), `detection_scores` [1, 100], `detection_classes` [1, 100]
    and `num_detections` [1], as the SavedModel; without, the decoded
    candidates `candidate_boxes` [1, D, 4] (input pixels), `candidate_scores`
    [1, D] (-1 = rejected pair), `candidate_classes` [1, D] (and
    `candidate_tl_scores`, `candidate_br_scores` with `merge_bbox`) for
    `host_soft_nms`. Always, for parity checks against Keras, the raw heads
    of the first scale's unflipped canvas: `tl_heatmap`, `br_heatmap`
    [1, h, w, C] logits, `tl_embedding`, `br_embedding` [1, h, w, 1],
    `tl_offset`, `br_offset` [1, h, w, 2].

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input.
        flip_test: run the flip test; default: the model's `test_config`.
        soft_nms: include the soft-NMS loop in the graph.

    Returns:
        A `tf.function` with its input signature set.
    """
    _check_model(model, "tflite_function")
    height, width = _check_input_size(input_size, "tflite_function")
    config = model.test_config
    flip = config["flip_test"] if flip_test is None else bool(flip_test)
    scales = [float(scale) for scale in config.get("scales", [1.0])]
    merge = bool(config.get("merge_bbox", False))
    image_hw = np.array([height, width], np.int32)
    # The input size is fixed, so the test geometry is a set of constants.
    geometries = [
        {key: value.numpy() for key, value in postprocess.test_geometry(image_hw, s).items()}
        for s in scales
    ]

    @tf.function(
        input_signature=[tf.TensorSpec([1, height, width, 3], tf.float32, name=INPUT_NAME)],
        autograph=False,
    )
    def detect_fixed(images):
        outputs, parts = {}, {"boxes": [], "scores": [], "classes": [], "tl": [], "br": []}
        for scale, geometry in zip(scales, geometries, strict=True):
            canvas, _ = postprocess.prepare_test_image(images, scale)  # [1, H', W', 3]
            if flip:
                canvas = tf.concat([canvas, tf.reverse(canvas, [2])], axis=0)
            heads = model(canvas, training=False)
            if not outputs:
                outputs = {key: heads[key][:1] for key in postprocess.OUTPUT_KEYS}
            decoded = postprocess.decode_outputs(
                heads,
                flip_test=flip,
                k=config["top_k"],
                ae_threshold=config["ae_threshold"],
                num_dets=config["num_dets"],
                kernel=config["nms_kernel"],
            )
            parts["boxes"].append(
                postprocess.rescale_detections(
                    decoded["boxes"], geometry["ratios"], geometry["borders"], image_hw, scale
                )
            )  # [1, D, 4] input pixels
            parts["scores"].append(decoded["scores"])
            parts["classes"].append(decoded["classes"])
            parts["tl"].append(decoded["tl_scores"])
            parts["br"].append(decoded["br_scores"])
        boxes, scores, classes, tl_scores, br_scores = (
            tf.concat(parts[key], axis=1) for key in ("boxes", "scores", "classes", "tl", "br")
        )
        if not soft_nms:
            outputs["candidate_boxes"] = boxes
            outputs["candidate_scores"] = scores
            outputs["candidate_classes"] = classes
            if merge:
                outputs["candidate_tl_scores"] = tl_scores
                outputs["candidate_br_scores"] = br_scores
            return outputs
        detections = postprocess.soft_nms(
            boxes,
            scores,
            classes,
            sigma=config["soft_nms_sigma"],
            score_threshold=config["score_threshold"],
            max_detections=config["max_detections"],
            merge=merge,
            weight_exp=config.get("weight_exp", 8.0),
            tl_scores=tl_scores,
            br_scores=br_scores,
        )
        outputs.update(_rename_soft_nms(detections))
        return outputs

    return detect_fixed


def _rename_soft_nms(detections: dict) -> dict:
    return {
        "detection_boxes": detections["boxes"],
        "detection_scores": detections["scores"],
        "detection_classes": detections["classes"],
        "num_detections": detections["num_detections"],
    }


def host_soft_nms(outputs: dict, test_config: dict | None = None) -> dict[str, np.ndarray]:
    """Completes the outputs of a TFLite file without in-graph soft-NMS.

    Runs `postprocess.soft_nms` (official per-class Gaussian soft-NMS) on the
    `candidate_*` outputs; outputs that already hold `detection_*` pass
    through. The int8 files need this (see `convert_tflite_variants`).

    Args:
        outputs: the interpreter's output dict.
        test_config: `sigma`/threshold/`max_detections` settings
            (`CornerNet.test_config`); default: the official values.

    Returns:
        `detection_boxes` [1, 100, 4], `detection_scores` [1, 100],
        `detection_classes` [1, 100] int32, `num_detections` [1] int32.
    """
    if "detection_boxes" in outputs:
        return {key: np.asarray(outputs[key]) for key in DETECTION_OUTPUTS.values()}
    if "candidate_boxes" not in outputs:
        raise ValueError(
            "host_soft_nms: `outputs` must come from a CornerNet TFLite file (candidate_* or "
            f"detection_* keys), got {sorted(outputs)}."
        )
    from cornernet_tf.models.cornernet import CornerNet

    config = {**CornerNet.DEFAULT_TEST_CONFIG, **(test_config or {})}
    detections = postprocess.soft_nms(
        outputs["candidate_boxes"],
        outputs["candidate_scores"],
        outputs["candidate_classes"],
        sigma=config["soft_nms_sigma"],
        score_threshold=config["score_threshold"],
        max_detections=config["max_detections"],
        merge=config["merge_bbox"],
        weight_exp=config["weight_exp"],
        tl_scores=outputs.get("candidate_tl_scores"),
        br_scores=outputs.get("candidate_br_scores"),
    )
    return {key: value.numpy() for key, value in _rename_soft_nms(detections).items()}


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
    """
    height, width = _check_input_size(input_size, "letterbox")
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


def image_files(data_dir: str | os.PathLike, max_images: int | None = None) -> list[Path]:
    """Image files under `data_dir` (recursive, sorted), e.g. a COCO split folder.

    Args:
        data_dir: a directory.
        max_images: keep the first this many.

    Raises:
        ValueError: the directory is missing or holds no images.
    """
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise ValueError(f"data directory {str(data_dir)!r} does not exist.")
    files = sorted(p for p in data_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ValueError(
            f"data directory {str(data_dir)!r} holds no {'/'.join(IMAGE_SUFFIXES)} images; pass "
            "the folder of a dataset's images."
        )
    return files[:max_images]


def representative_images(
    data_dir: str | os.PathLike, input_size, max_images: int = 100
) -> list[np.ndarray]:
    """Calibration inputs for int8: dataset images letterboxed to `input_size`.

    Unreadable files are skipped with a warning that counts them.

    Args:
        data_dir: folder of images (searched recursively).
        input_size: (H, W) of the TFLite input.
        max_images: calibration images to use.

    Returns:
        A list of [1, H, W, 3] float32 arrays.
    """
    images, skipped = [], 0
    for path in image_files(data_dir, max_images):
        try:
            image = tf.io.decode_image(path.read_bytes(), channels=3, expand_animations=False)
        except (tf.errors.InvalidArgumentError, OSError):
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
    soft-NMS (`tflite_function(soft_nms=False)`; run `host_soft_nms` on its
    outputs): TFLite's calibrator segfaults on the soft-NMS WHILE loop, whose
    loop-invariant inputs it reads after the WHILE kernel has released them
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
    _check_model(model, "convert_tflite")
    height, width = _check_input_size(input_size, "convert_tflite")
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
    """Names of the operators in a TFLite flatbuffer (sorted, unique)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=flatbuffer)
    return sorted({op["op_name"] for op in interpreter._get_ops_details()})


def check_builtin_ops(flatbuffer: bytes) -> None:
    """Raises RuntimeError if a TFLite model uses Flex or custom operators."""
    try:
        names = tflite_ops(flatbuffer)
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(f"the TFLite model does not load with builtin ops: {error}") from error
    foreign = [n for n in names if n.startswith("Flex") or not n.isupper()]
    if foreign:
        raise RuntimeError(f"the TFLite model needs non-builtin ops {foreign}.")


def tflite_file_name(name: str, quantization: str) -> str:
    """`<name>_<float32|float16|int8>.tflite`."""
    return f"{name}_{'float32' if quantization == 'none' else quantization}.tflite"


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
    to a temporary file in the same directory and renamed into place.

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
    """
    _check_model(model, "export_tflite")
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise ValueError(
            f"export_tflite: `name` must be letters, digits, '_', '.' or '-' (not starting "
            f"with '.' or '-'), got {name!r}."
        )
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
    output_dir.mkdir(parents=True, exist_ok=True)
    for quantization, path in paths.items():
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=output_dir)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(flatbuffers[quantization])
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return paths


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
    """

    def __init__(self, model, *, test_config: dict | None = None, num_threads: int | None = None):
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
        """Raw interpreter outputs for one [1, H, W, 3] float32 input."""
        return self.runner(images=np.asarray(canvas, np.float32))

    def detect_image(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Detections of one [h, w, 3] RGB image, in its pixels.

        Returns:
            `boxes` [1, 100, 4], `confidence` [1, 100], `classes` [1, 100]
            int32, `num_detections` [1] int32; padding -1.
        """
        image = np.asarray(image)
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
        """`CornerNet.detect` for a batch of one image; usable inside `tf.function`."""
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
