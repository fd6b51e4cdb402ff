"""TF Serving SavedModel export of CornerNet.

A SavedModel export is a plain `tf.Module` holding the model's variables, two
serving functions and the class names (not the Keras model, its optimizer or
its training functions), written in TensorFlow Serving's layout
`<output>/<name>/<version>/` through a staging directory renamed into place
(`cornernet_tf.utils.fs.atomic_directory`), so a server watching
`<output>/<name>` never sees a half-written version:

- `serving_default`: `images` [B] `tf.string` of encoded JPEG/PNG/GIF/BMP
  files of any sizes; each image's size is read from its file header and
  checked against `max_image_side` before it is decoded
  (`cornernet_tf.images.decode_checked`, which also applies a JPEG's EXIF
  orientation), then it is detected at its own size, one image after the
  other (`tf.map_fn`), as the official `test/coco.py` runs one image at a time.
- `detect_uint8`: `images` [B, H, W, 3] uint8 RGB of one size, taken as given
  (no EXIF: these are pixels), refused above `max_image_side`.

Both return (M = the model's `test_config.max_detections`, 100 officially)
`detection_boxes` [B, M, 4] float32 (x1, y1, x2, y2 in the input
image's pixels), `detection_scores` [B, M] float32, `detection_classes`
[B, M] int32 and `num_detections` [B] int32, padded with -1 after
`num_detections` (`CornerNet.detect`: preprocessing, network, decoding and the
official soft-NMS, all inside the graph; for CornerNet-Saccade its whole
multi-crop procedure, `cornernet_tf.inference.saccade`). `assets/classes.json` lists the
class names; `assets/model_config.json` the model's configuration;
`assets.extra/tf_serving_warmup_requests` holds one request per signature that
TF Serving runs when it loads the version (`cornernet_tf.export.warmup`).
"""

import os
import tempfile
from pathlib import Path

import tensorflow as tf

from cornernet_tf import images as image_io
from cornernet_tf.export._checks import check_model, check_name, class_names_or_numbers
from cornernet_tf.export.warmup import DEFAULT_WARMUP_IMAGE_SIZE, write_warmup_requests
from cornernet_tf.inference.image_input import check_image_batch
from cornernet_tf.spec.exported_io import (
    CLASSES_ASSET,
    CONFIG_ASSET,
    DEFAULT_MAX_IMAGE_SIDE,
    DETECTION_OUTPUTS,
    INPUT_NAME,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
    detection_outputs,
)
from cornernet_tf.utils.fs import atomic_directory, atomic_write_json

__all__ = [
    "CLASSES_ASSET",
    "CONFIG_ASSET",
    "DEFAULT_MAX_IMAGE_SIDE",
    "DETECTION_OUTPUTS",
    "INPUT_NAME",
    "SIGNATURE_IMAGES",
    "SIGNATURE_UINT8",
    "ServingModule",
    "export_saved_model",
    "next_version",
    "serving_functions",
]


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
        max_image_side: both signatures reject images with a longer side with
            an `InvalidArgumentError` instead of exhausting memory;
            `serving_default` reads the side from the file header, before
            decoding.

    Returns:
        `{"serving_default": f(images [B] string), "detect_uint8":
        f(images [B, H, W, 3] uint8)}`, each returning the four detection
        outputs.
    """
    detect = model.detect
    max_detections = model.test_config.max_detections

    # A loaded signature does not check shapes against its input signature:
    # wrong ranks, channels and empty batches are refused here with the fix
    # instead of failing deep inside the network.
    # autograph off: the graph code uses explicit TF control flow, and converting
    # the whole network is slow (Keras' own ExportArchive does the same).
    @tf.function(
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name=INPUT_NAME)],
        autograph=False,
    )
    def detect_uint8(images):
        images = check_image_batch(
            images,
            f"detect_uint8: `{INPUT_NAME}`",
            max_side=max_image_side,
            fix="resize larger ones, or re-export with a larger --max-image-side",
        )
        return detection_outputs(detect(images))

    @tf.function(
        input_signature=[tf.TensorSpec([None], tf.string, name=INPUT_NAME)], autograph=False
    )
    def detect_encoded(images):
        # Raw ops and a reshape, as in `check_image_batch`: the traced graph
        # takes the rank from the input signature.
        shape = tf.raw_ops.Shape(input=images, out_type=tf.int64)
        batch = tf.concat([shape, [0]], 0)[:1]
        shape_ok = tf.debugging.Assert(
            (batch[0] >= 1) & (tf.raw_ops.Size(input=images, out_type=tf.int64) == batch[0]),
            [
                f"serving_default: `{INPUT_NAME}` must be a non-empty list of encoded image "
                "files (a string tensor of shape (B,)), got shape",
                shape,
            ],
            summarize=4,
        )
        with tf.control_dependencies([shape_ok]):
            images = tf.ensure_shape(tf.reshape(images, batch), [None])

        def detect_one(args):
            contents, index = args
            with tf.control_dependencies([_check_image_format(contents, index)]):
                # The size comes from the header: an oversized image is refused undecoded.
                image, code = image_io.decode_checked(
                    contents, max_pixels=max_image_side**2, max_side=max_image_side
                )
            readable = tf.debugging.Assert(
                tf.equal(code, image_io.OK),
                [
                    "serving_default: image",
                    index,
                    "is refused:",
                    tf.gather(tf.constant(image_io.REASONS), code),
                    f"; sides up to {max_image_side} pixels are accepted (read from the file "
                    "header before decoding), resize it or re-export with a larger "
                    "--max-image-side.",
                ],
            )
            with tf.control_dependencies([readable]):
                image = tf.identity(image)  # [H, W, 3] uint8, as displayed
            # A call of the uint8 signature's function: the network is traced once.
            detections = detect_uint8(image[None])
            return {name: value[0] for name, value in detections.items()}

        indices = tf.range(tf.shape(images)[0])
        # One image at a time: a request's memory is that of its largest image,
        # not of up to 10 images in flight (map_fn's graph-mode default).
        return tf.map_fn(
            detect_one,
            (images, indices),
            fn_output_signature=_detection_specs(max_detections),
            parallel_iterations=1,
        )

    return {SIGNATURE_IMAGES: detect_encoded, SIGNATURE_UINT8: detect_uint8}


def _detection_specs(max_detections: int) -> dict[str, tf.TensorSpec]:
    """The outputs of one image (inside `tf.map_fn`)."""
    return {
        "detection_boxes": tf.TensorSpec([max_detections, 4], tf.float32),
        "detection_scores": tf.TensorSpec([max_detections], tf.float32),
        "detection_classes": tf.TensorSpec([max_detections], tf.int32),
        "num_detections": tf.TensorSpec([], tf.int32),
    }


# TF Serving reads version directory names as int64.
MAX_VERSION = 2**63 - 1


def next_version(base_dir: str | os.PathLike) -> int:
    """The next free TF Serving version number under `base_dir` (1 if none).

    Args:
        base_dir: `<output>/<name>`, whose numeric subdirectories are versions.

    Returns:
        One more than the highest numeric subdirectory name, or 1.

    Raises:
        ValueError: the highest version is already TF Serving's largest (int64).
    """
    base_dir = Path(base_dir)
    versions = (
        [int(p.name) for p in base_dir.iterdir() if p.name.isdigit()] if base_dir.is_dir() else []
    )
    version = max(versions, default=0) + 1
    if version > MAX_VERSION:
        raise ValueError(
            f"next_version: {str(base_dir)!r} holds version {version - 1}, TF Serving's largest "
            "(int64); pass a free smaller --version or remove that directory."
        )
    return version


def export_saved_model(
    model,
    output_dir: str | os.PathLike,
    *,
    name: str = "cornernet",
    version: int | None = None,
    max_image_side: int = DEFAULT_MAX_IMAGE_SIDE,
    warmup_image_size: tuple[int, int] | None = DEFAULT_WARMUP_IMAGE_SIZE,
) -> Path:
    """Writes a TF Serving SavedModel to `<output_dir>/<name>/<version>/`, atomically.

    See the module docstring for the signatures and outputs.

    Args:
        model: a built CornerNet (see `cornernet_tf.models.load_model`).
        output_dir: the export root (TF Serving's `--model_base_path` is
            `<output_dir>/<name>`).
        name: the served model name.
        version: a positive version number; default: one more than the
            highest existing version (1 for a new model).
        max_image_side: the `serving_default` signature rejects decoded
            images with a larger side.
        warmup_image_size: (height, width) of the image in the TF Serving
            warm-up requests (`assets.extra/tf_serving_warmup_requests`);
            None writes no warm-up file. The default (480, 640) shrinks to
            fit a smaller `max_image_side`.

    Returns:
        The version directory.

    Raises:
        TypeError: `model` is not a CornerNet.
        ValueError: bad `name`, `version`, `max_image_side` or
            `warmup_image_size`, an existing version directory, or an unbuilt
            model.
    """
    check_model(model, "export_saved_model", attention=True)
    check_name(name, "export_saved_model")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION
    ):
        raise ValueError(
            f"export_saved_model: `version` must be a positive integer up to {MAX_VERSION} "
            f"(TF Serving reads versions as int64), got {version!r}."
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
    if warmup_image_size == DEFAULT_WARMUP_IMAGE_SIZE and max(warmup_image_size) > max_image_side:
        scale = max_image_side / max(warmup_image_size)
        warmup_image_size = tuple(max(1, int(side * scale)) for side in warmup_image_size)
    if warmup_image_size is not None and (
        not isinstance(warmup_image_size, tuple | list)
        or len(warmup_image_size) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) for v in warmup_image_size)
        or not all(1 <= v <= max_image_side for v in warmup_image_size)
    ):
        raise ValueError(
            "export_saved_model: `warmup_image_size` must be (height, width), positive integers "
            f"up to `max_image_side` ({max_image_side}; serving_default rejects larger images), "
            f"or None, got {warmup_image_size!r}."
        )
    base_dir = Path(output_dir) / name
    for folder in (Path(output_dir), base_dir):
        if folder.exists() and not folder.is_dir():
            raise ValueError(
                f"export_saved_model: {str(folder)!r} exists and is not a directory; pass a "
                "folder as the export root (--output)."
            )
    version = next_version(base_dir) if version is None else version
    final_dir = base_dir / str(version)
    if final_dir.exists():
        raise ValueError(
            f"export_saved_model: version directory {str(final_dir)!r} already exists; pass "
            f"another version (next free: {next_version(base_dir)}) or delete it."
        )

    # The staging folder's name is not numeric, so TF Serving ignores it until the rename.
    with atomic_directory(final_dir) as staging, tempfile.TemporaryDirectory() as assets_dir:
        atomic_write_json(Path(assets_dir) / CLASSES_ASSET, class_names_or_numbers(model))
        atomic_write_json(Path(assets_dir) / CONFIG_ASSET, _model_config(model))
        module = ServingModule(model, assets_dir)
        signatures = serving_functions(model, max_image_side)
        tf.saved_model.save(module, str(staging), signatures=signatures)
        if warmup_image_size is not None:
            # Inside the staging folder: TF Serving reads it as soon as the version appears.
            write_warmup_requests(staging, name, tuple(warmup_image_size))
    return final_dir


def _model_config(model) -> dict:
    return {
        "class_name": type(model).__name__,
        "config": model.get_config(),
        "input": "RGB pixel values in [0, 255]",
        "outputs": list(DETECTION_OUTPUTS.values()),
    }
