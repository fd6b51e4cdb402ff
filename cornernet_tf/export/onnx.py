"""ONNX export of CornerNet: the network and its decoding at a fixed input size, standard ops.

The graph is the TFLite candidates graph (`cornernet_tf.export.tflite_function`
with `soft_nms=False`): test canvas, network (corner pooling included), flip
test and decoding, converted with `tf2onnx` to the default ONNX domain only (no
custom ops), so that ONNX Runtime, TensorRT and OpenVINO run it as is. Keras'
own `model.export(format="onnx")` is not used: with TensorFlow 2.21 it leaves
`StatefulPartitionedCall` nodes in the file, which ONNX Runtime refuses.

Soft-NMS is a host step (`cornernet_tf.runtime.soft_nms_numpy`, a NumPy
reference of the official per-class Gaussian soft-NMS): its loop converts to an
ONNX `Loop` whose body `tf2onnx` cannot express with standard ops ("onehot op:
only rank1 is supported"). `cornernet_tf.runtime.OnnxDetector` runs a file
with ONNX Runtime and completes it.

Input `images` [1, H, W, 3] float32 RGB 0-255. Outputs: `candidate_boxes`
[1, D, 4] (x1, y1, x2, y2 in input pixels), `candidate_scores` [1, D] (-1 =
rejected pair), `candidate_classes` [1, D] int32, and the raw heads of the
first canvas (`tl_heatmap`, `br_heatmap`, `tl_embedding`, `br_embedding`,
`tl_offset`, `br_offset`). The file's `metadata_props` hold the class names
and the soft-NMS settings.
"""

import json
import os
from pathlib import Path

from cornernet_tf.export._checks import check_input_fits, check_labels, check_model, check_name
from cornernet_tf.export.tflite import tflite_function
from cornernet_tf.spec.exported_io import check_input_size
from cornernet_tf.utils.fs import atomic_write_bytes

__all__ = ["OPSET", "convert_onnx", "export_onnx", "onnx_op_domains"]

# ONNX Runtime 1.17+, TensorRT 10 and OpenVINO 2024+ read opset 17.
OPSET = 17


def onnx_op_domains(onnx_bytes: bytes) -> set[str]:
    """The operator domains of an ONNX model ("" is the standard ONNX domain)."""
    import onnx

    model = onnx.load_from_string(onnx_bytes)
    return {node.domain for node in model.graph.node}


def convert_onnx(
    model, *, input_size=(511, 511), flip_test: bool | None = None, labels=None
) -> bytes:
    """Converts the fixed-size candidates graph to an ONNX model.

    Args:
        model: a built CornerNet.
        input_size: (height, width) of the fixed input; each side must fit the
            network (e.g. 511, or 127 for the tiny preset).
        flip_test: run the flip test; default: the model's `test_config`.
        labels: class names for the metadata; default: the model's
            `class_names`, or numbered names with a warning when it has none.

    Returns:
        The `.onnx` bytes.

    Raises:
        ValueError: an input size that does not fit the network.
        RuntimeError: the conversion failed or produced non-standard ops, or
            `tf2onnx` is not installed.
    """
    caller = "convert_onnx"
    check_model(model, caller)
    size = check_input_size(input_size, caller)
    check_input_fits(model, size, caller)
    if model.test_config.merge_bbox:
        raise ValueError(
            f"{caller}: `merge_bbox` needs the corner scores the host soft-NMS does not get; "
            "export with test_config.merge_bbox=False."
        )
    try:
        import tf2onnx
    except ImportError as error:
        raise RuntimeError(
            f"{caller}: the ONNX export needs `tf2onnx` (pip install 'cornernet_tf[deploy]')."
        ) from error
    function = tflite_function(model, size, flip_test=flip_test, soft_nms=False)
    try:
        proto, _ = tf2onnx.convert.from_function(
            function, input_signature=function.input_signature, opset=OPSET
        )
    except Exception as error:  # noqa: BLE001 - tf2onnx raises several types
        raise RuntimeError(f"{caller}: tf2onnx failed: {error}") from error
    config = (
        model.test_config
        if flip_test is None
        else model.test_config.replace(flip_test=bool(flip_test))
    )
    labels = check_labels(model, caller) if labels is None else [str(x) for x in labels]
    properties = {
        "class_names": json.dumps(labels),
        "input_size": json.dumps(list(size)),
        "soft_nms": json.dumps(
            {
                "sigma": config.soft_nms_sigma,
                "score_threshold": config.score_threshold,
                "max_detections": config.max_detections,
            }
        ),
    }
    for key, value in properties.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx_bytes = proto.SerializeToString()
    foreign = onnx_op_domains(onnx_bytes) - {"", "ai.onnx"}
    if foreign:
        raise RuntimeError(f"{caller}: the ONNX model uses non-standard op domains {foreign}.")
    return onnx_bytes


def export_onnx(
    model,
    output_dir: str | os.PathLike,
    *,
    name: str = "cornernet",
    input_size=(511, 511),
    flip_test: bool | None = None,
    overwrite: bool = False,
) -> Path:
    """Converts (`convert_onnx`) and writes `<output_dir>/<name>.onnx` atomically.

    Args:
        model: a built CornerNet.
        output_dir: directory for the file (created if needed).
        name: file name prefix.
        input_size: (height, width) of the fixed input.
        flip_test: see `convert_onnx`.
        overwrite: replace an existing file.

    Returns:
        The path written.

    Raises:
        ValueError: bad arguments or an existing file without `overwrite`.
        RuntimeError: the conversion failed (see `convert_onnx`).
    """
    check_model(model, "export_onnx")
    check_name(name, "export_onnx")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"export_onnx: {str(output_dir)!r} exists and is not a directory.")
    path = output_dir / f"{name}.onnx"
    if path.exists() and not overwrite:
        raise ValueError(
            f"export_onnx: {str(path)!r} already exists; pass overwrite=True (--overwrite) or "
            "another output directory or name."
        )
    atomic_write_bytes(path, convert_onnx(model, input_size=input_size, flip_test=flip_test))
    return path
