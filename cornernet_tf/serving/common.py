"""What the REST and gRPC clients share: names, errors, output parsing, formatting.

Imports neither TensorFlow nor a network library, so that `cornernet_tf.serving`
and the command line's `--help` stay fast; each protocol module imports its own
client library (`requests`, `grpc`) and the CLI imports a protocol module only
when a command needs it.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cornernet_tf.spec.exported_io import (
    DEFAULT_MAX_IMAGE_SIDE,
    DETECTION_OUTPUTS,
    INPUT_NAME,
    SIGNATURE_IMAGES,
    SIGNATURE_UINT8,
)
from cornernet_tf.utils.checks import check_count

__all__ = [
    "DEFAULT_MODEL",
    "SIGNATURE_IMAGES",
    "INPUT_NAME",
    "OUTPUT_NAMES",
    "SIGNATURE_UINT8",
    "ServingError",
    "check_count",
    "check_detections",
    "check_timeout",
    "check_version_label",
    "decode_pixels",
    "format_detections",
    "load_class_names",
    "read_images",
    "split_batch",
]

DEFAULT_MODEL = "cornernet"
OUTPUT_NAMES = tuple(DETECTION_OUTPUTS.values())


class ServingError(RuntimeError):
    """The server could not be reached or answered with an error.

    The message says what failed, the server's own words and what to do about
    it, so a command line can print it as it is.

    Args:
        message: the full explanation.
        code: the protocol's status, e.g. "HTTP 404" or "NOT_FOUND", if the
            server answered; None if it could not be reached.
    """

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        self.code = code


def check_timeout(timeout: float, caller: str) -> float:
    """Returns `timeout` as a float, or raises ValueError unless it is > 0 and finite.

    A deadline is always set: a request without one waits forever on a stuck server.
    """
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"{caller}: `timeout` must be a number of seconds, got {timeout!r}.")
    if not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"{caller}: `timeout` must be positive and finite, got {timeout!r}.")
    return float(timeout)


def check_detections(rows: Any, num_images: int) -> list[dict[str, Any]]:
    """Checks a `:predict` answer against the export's detection outputs.

    Args:
        rows: the parsed answer, one dict per image.
        num_images: images sent.

    Returns:
        `rows`, unchanged.

    Raises:
        ServingError: a field is missing or is not what the signature returns
            (`detection_boxes` [M][4], `detection_scores` and
            `detection_classes` [M] numbers, `num_detections` a count <= M),
            or a detection is not one (a coordinate not finite, a score
            outside [0, 1], a class id not an integer >= 0); the message
            names the field.
    """

    def fail(field: str, problem: str) -> None:
        raise ServingError(
            f"the server answered something that is not this model's output: {field} "
            f"{problem}; check that --url and --model name a CornerNet export (the `metadata` "
            "command shows its signatures)."
        )

    def numbers(value: Any) -> bool:
        return isinstance(value, list) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in value
        )

    if not isinstance(rows, list) or len(rows) != num_images:
        fail("the answer", f"has {_count(rows)} results for {num_images} images")
    for i, row in enumerate(rows):
        where = f"(image {i})"
        if not isinstance(row, Mapping):
            fail(f"result {i}", f"is a {type(row).__name__}, not an object of named outputs")
        missing = [name for name in OUTPUT_NAMES if name not in row]
        if missing:
            fail(missing[0], f"is missing {where}; the result has {sorted(row)}")
        boxes = row["detection_boxes"]
        if not isinstance(boxes, list) or not all(numbers(b) and len(b) == 4 for b in boxes):
            fail("detection_boxes", f"is not a list of [x1, y1, x2, y2] boxes {where}")
        for name in ("detection_scores", "detection_classes"):
            if not numbers(row[name]) or len(row[name]) != len(boxes):
                fail(name, f"is not a list of {len(boxes)} numbers (one per box) {where}")
        count = row["num_detections"]
        if (
            isinstance(count, bool)
            or not isinstance(count, int | float)
            or not math.isfinite(count)
            or count != int(count)
            or not 0 <= count <= len(boxes)
        ):
            fail("num_detections", f"is {count!r}, not a count from 0 to {len(boxes)} {where}")
        # The detections themselves (JSON parsers accept NaN and Infinity);
        # the -1 padding after them is not looked at.
        for k in range(int(count)):
            box = row["detection_boxes"][k]
            score = row["detection_scores"][k]
            label = row["detection_classes"][k]
            if not all(math.isfinite(v) for v in box):
                fail("detection_boxes", f"[{k}] is {box}, not finite pixel coordinates {where}")
            if not (math.isfinite(score) and 0 <= score <= 1):
                fail("detection_scores", f"[{k}] is {score!r}, not a score from 0 to 1 {where}")
            if not (math.isfinite(label) and label == int(label) and label >= 0):
                fail("detection_classes", f"[{k}] is {label!r}, not a class id >= 0 {where}")
    return rows


def _count(rows: Any) -> str:
    return str(len(rows)) if isinstance(rows, list) else f"a {type(rows).__name__}, not a list of"


def check_version_label(version: int | None, label: str | None, caller: str) -> None:
    """Raises ValueError unless at most one of a positive version and a label is given."""
    if version is not None and label is not None:
        raise ValueError(
            f"{caller}: pass a version ({version}) or a label ({label!r}), not both; TF "
            "Serving resolves a label to a version."
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise ValueError(f"{caller}: `version` must be an integer, got {version!r}.")
    if version is not None and not 1 <= version < 2**63:  # TF Serving's int64
        raise ValueError(f"{caller}: `version` must be from 1 to 2**63 - 1, got {version}.")
    if label is not None and (not isinstance(label, str) or not label or "/" in label):
        raise ValueError(f"{caller}: `label` must be a non-empty name without '/', got {label!r}.")


def split_batch(outputs: Mapping[str, Sequence]) -> list[dict[str, Any]]:
    """Per-image dicts from batched outputs (`{name: [value per image]}`).

    Args:
        outputs: each output's values along the batch dimension.

    Returns:
        One dict per image mapping each output name to that image's value.

    Raises:
        ServingError: the outputs have different batch sizes.
    """
    sizes = {len(value) for value in outputs.values()}
    if len(sizes) != 1:
        raise ServingError(f"outputs have different batch sizes {sorted(sizes)}.")
    return [{name: value[i] for name, value in outputs.items()} for i in range(sizes.pop())]


def load_class_names(path: str | Path) -> list[str]:
    """Class names from an export's `assets/classes.json` (a JSON list).

    Raises:
        ValueError: the file is missing, is not JSON or is not a list of names.
    """
    path = Path(path)
    try:
        names = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise ValueError(
            f"--classes: {path} does not exist; pass <export>/<name>/<version>/assets/classes.json."
        ) from error
    except json.JSONDecodeError as error:
        raise ValueError(f"--classes: {path} is not valid JSON ({error}).") from error
    if isinstance(names, dict):
        names = names.get("class_names")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"--classes: {path} must hold a JSON list of class names.")
    return names


def format_detections(
    result: Mapping[str, Any], class_names: list[str] | None = None, score_threshold: float = 0.0
) -> list[str]:
    """Human-readable lines, one per kept detection of one image.

    Args:
        result: one image's outputs (`detection_boxes`, `detection_scores`,
            `detection_classes`, `num_detections`), as either client returns them.
        class_names: names indexed by class id, or None to print ids.
        score_threshold: detections scoring below are skipped.

    Returns:
        Lines like `"circle       0.912  [12.0, 30.5, 60.2, 88.0]"`.
    """
    lines = []
    count = int(result["num_detections"])
    for box, score, label in zip(
        result["detection_boxes"][:count],
        result["detection_scores"][:count],
        result["detection_classes"][:count],
        strict=True,
    ):
        if not math.isfinite(score) or score < score_threshold:
            continue
        label = int(label)
        name = class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        coords = ", ".join(f"{v:.1f}" for v in box)
        lines.append(f"{name:<12} {score:.3f}  [{coords}]")
    return lines


def read_images(paths: Sequence[str]) -> list[bytes]:
    """The bytes of each image file (sent encoded, for `serving_default`).

    Raises:
        ValueError: a file cannot be read.
    """
    images = []
    for path in paths:
        try:
            images.append(Path(path).read_bytes())
        except OSError as error:
            raise ValueError(f"cannot read image {path!r}: {error.strerror}.") from error
    return images


def decode_pixels(paths: Sequence[str], max_side: int = DEFAULT_MAX_IMAGE_SIDE) -> list:
    """RGB uint8 arrays [H, W, 3] of one size (sent as pixels, for `detect_uint8`).

    Decoded by the reader of the export's `serving_default` signature
    (`cornernet_tf.images.read_image`): the size is checked from the file
    header before anything is decoded, so a small file claiming a huge image
    is refused undecoded, and a JPEG's EXIF orientation is applied.

    Args:
        paths: image files.
        max_side: longer sides are refused (the export's default limit).

    Raises:
        ValueError: a file cannot be read or decoded, is larger than
            `max_side`, or the images differ in size.
    """
    import numpy as np

    from cornernet_tf import images as image_io  # TensorFlow: only the uint8 mode decodes

    pixels = []
    for path in paths:
        image, code = image_io.read_image(
            os.fsencode(path), max_pixels=max_side**2, max_side=max_side
        )
        if int(code) != image_io.OK:
            raise ValueError(
                f"cannot decode image {path!r}: {image_io.REASONS[int(code)]}; sides up to "
                f"{max_side} pixels are sent (the export's limit), resize larger images."
            )
        pixels.append(np.asarray(image))
    sizes = {p.shape[:2] for p in pixels}
    if len(sizes) > 1:
        raise ValueError(
            f"--uint8 sends one [B, H, W, 3] tensor, but the images have sizes {sorted(sizes)}; "
            "send images of one size or drop --uint8 (encoded images may differ in size)."
        )
    return pixels
