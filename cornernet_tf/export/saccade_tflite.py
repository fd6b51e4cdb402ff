"""CornerNet-Saccade for TFLite: the canvas network in the file, the crops on the host.

The whole procedure (`cornernet_tf.inference.saccade`) does not convert with
builtin ops: its crop locations are float64, as the official numpy code
computes them, and TFLite's builtin arithmetic (DIV, FLOOR, comparisons) has
no float64 kernels; in float32, crop centres and zooms would round differently
from the official procedure. So the TFLite file carries the part that runs on
canvases of a fixed side: the network, the corner decoding and the attention
NMS of a batch of `crop_size` canvases (`SaccadeProcedure.run_canvases`), with
a dynamic batch (2 coarse canvases, then up to `att_max_crops` crops). The
host runs the rest, the same TensorFlow code as `CornerNet.detect`, with the
file as its canvas detector (`LiteRTCanvasDetector`, `tflite_saccade_procedure`).

Files (`export_saccade_tflite`): `<name>_canvas.tflite` and `<name>_saccade.json`
(the test and Saccade settings and the class names the host step needs).

Inputs and outputs of the file (D = `saccade.num_dets`, S = `crop_size`, h =
the heads' map side):

    canvases            [N, S, S, 3] float32 RGB, 0-255
    boxes               [N, D, 4] float32, x1, y1, x2, y2 in map pixels
    scores, tl_scores, br_scores   [N, D] float32 (-1: rejected pair)
    classes             [N, D] int32
    attention_large     [N, h/4, h/4, 1] float32, sigmoid and max-pool NMS
    attention_medium    [N, h/2, h/2, 1]
    attention_small     [N, h, h, 1]
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from cornernet_tf.export._checks import check_model, check_name, class_names_or_numbers
from cornernet_tf.inference.saccade import ATTENTION_KEYS, SaccadeProcedure
from cornernet_tf.spec.config import SaccadeConfig, TestConfig
from cornernet_tf.utils.fs import atomic_write_bytes, atomic_write_json

__all__ = [
    "CANVAS_INPUT",
    "CANVAS_OUTPUTS",
    "LiteRTCanvasDetector",
    "convert_saccade_tflite",
    "export_saccade_tflite",
    "saccade_canvas_function",
    "tflite_saccade_procedure",
]

CANVAS_INPUT = "canvases"
CANVAS_OUTPUTS = ("boxes", "scores", "tl_scores", "br_scores", "classes", *ATTENTION_KEYS)


def saccade_canvas_function(model) -> tf.types.experimental.ConcreteFunction:
    """The canvas graph of a model with attention heads, traced for any batch.

    Args:
        model: a built CornerNet with attention heads.

    Returns:
        A concrete function `canvases [N, S, S, 3] float32 -> dict` of
        `CANVAS_OUTPUTS` (see the module docstring).
    """
    check_model(model, "saccade_canvas_function", attention=True)
    if not model.attention:
        raise ValueError(
            "saccade_canvas_function: the model has no attention heads; export it with "
            "cornernet_tf.export.export_tflite."
        )
    procedure = model.saccade_procedure()
    side = procedure.config.crop_size

    @tf.function(autograph=False)
    def canvases_to_detections(canvases):
        result = procedure.run_canvases(canvases)
        return {key: result[key] for key in CANVAS_OUTPUTS}

    return canvases_to_detections.get_concrete_function(
        tf.TensorSpec([None, side, side, 3], tf.float32, name=CANVAS_INPUT)
    )


def convert_saccade_tflite(model) -> bytes:
    """The canvas graph as a float32 TFLite flatbuffer, builtin ops only.

    Raises:
        RuntimeError: the conversion failed (an op without a builtin kernel).
    """
    function = saccade_canvas_function(model)
    with tempfile.TemporaryDirectory() as folder:
        # The converter freezes the tf.Variables the saved object tracks: the
        # Keras variables' underlying ones, so that none stays a resource.
        module = tf.Module()
        module.model_variables = [v.value for v in model.variables]
        tf.saved_model.save(module, folder, signatures={"serving_default": function})
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        try:
            return converter.convert()
        except Exception as error:  # the converter raises several unrelated types
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise RuntimeError(
                f"convert_saccade_tflite: the canvas graph did not convert with builtin ops: "
                f"{first}"
            ) from None


def export_saccade_tflite(
    model, output_dir: str | os.PathLike, *, name: str = "cornernet_saccade", overwrite=False
) -> dict[str, Path]:
    """Writes the canvas graph's TFLite file and the host step's settings, atomically.

    Args:
        model: a built CornerNet with attention heads.
        output_dir: the folder of the files (created if missing).
        name: file prefix.
        overwrite: replace existing files.

    Returns:
        `{"tflite": <name>_canvas.tflite, "settings": <name>_saccade.json}`.

    Raises:
        ValueError: not a model with attention heads, a bad name, or existing
            files without `overwrite`.
        RuntimeError: the conversion failed.
    """
    check_name(name, "export_saccade_tflite")
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(
            f"export_saccade_tflite: {str(output_dir)!r} exists and is not a directory."
        )
    paths = {
        "tflite": output_dir / f"{name}_canvas.tflite",
        "settings": output_dir / f"{name}_saccade.json",
    }
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise ValueError(
            f"export_saccade_tflite: {existing} already exist; pass overwrite=True or another "
            "output directory or name."
        )
    flatbuffer = convert_saccade_tflite(model)
    output_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(paths["tflite"], flatbuffer)
    atomic_write_json(
        paths["settings"],
        {
            "test_config": model.test_config.to_dict(),
            "saccade_config": model.saccade_config.to_dict(),
            "class_names": class_names_or_numbers(model),
        },
    )
    return paths


class LiteRTCanvasDetector:
    """The canvas graph of a TFLite file, run with `ai_edge_litert`, as a TF function.

    Called on canvases [N, S, S, 3] float32, it returns the file's outputs as
    tensors with static shapes (`tf.numpy_function` around the interpreter),
    so that `SaccadeProcedure` runs the rest of the procedure around it.

    Args:
        model: path of a `<name>_canvas.tflite` file or its bytes.
        num_threads: interpreter threads (None: LiteRT's default).
    """

    def __init__(self, model, num_threads: int | None = None):
        from ai_edge_litert.interpreter import Interpreter

        if isinstance(model, bytes):
            self.interpreter = Interpreter(model_content=model, num_threads=num_threads)
        else:
            if not Path(model).is_file():
                raise ValueError(f"LiteRTCanvasDetector: {str(model)!r} does not exist.")
            self.interpreter = Interpreter(model_path=str(model), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner()
        outputs = self.runner.get_output_details()
        self.crop_size = int(self.runner.get_input_details()[CANVAS_INPUT]["shape"][1])
        # Per-canvas shapes of the outputs, for the graph around them.
        self.shapes = {key: tuple(int(v) for v in outputs[key]["shape"][1:]) for key in outputs}
        self.dtypes = {key: tf.as_dtype(outputs[key]["dtype"]) for key in outputs}

    def run(self, canvases: np.ndarray) -> dict[str, np.ndarray]:
        """The file's outputs for a batch of canvases (numpy)."""
        return self.runner(**{CANVAS_INPUT: np.asarray(canvases, np.float32)})

    def __call__(self, canvases: tf.Tensor) -> dict[str, tf.Tensor]:
        keys = list(CANVAS_OUTPUTS)

        def run(batch):
            outputs = self.run(batch)
            return [outputs[key] for key in keys]

        values = tf.numpy_function(run, [canvases], [self.dtypes[key] for key in keys])
        batch = canvases.shape[0]
        for key, value in zip(keys, values, strict=True):
            value.set_shape((batch, *self.shapes[key]))
        return dict(zip(keys, values, strict=True))


def tflite_saccade_procedure(tflite_file, settings_file, num_threads: int | None = None):
    """CornerNet-Saccade's procedure around an exported canvas TFLite file.

    Args:
        tflite_file: `<name>_canvas.tflite` (`export_saccade_tflite`).
        settings_file: its `<name>_saccade.json`.
        num_threads: interpreter threads.

    Returns:
        A `SaccadeProcedure`: call it on [B, H, W, 3] RGB images (0-255) for
        `CornerNet.detect`'s outputs; it runs eagerly (the interpreter is a
        host call), not in a SavedModel.
    """
    settings = json.loads(Path(settings_file).read_text(encoding="utf-8"))
    detector = LiteRTCanvasDetector(tflite_file, num_threads=num_threads)
    config = SaccadeConfig.coerce(settings["saccade_config"])
    if config.crop_size != detector.crop_size:
        raise ValueError(
            f"tflite_saccade_procedure: {str(settings_file)!r} has saccade.crop_size "
            f"{config.crop_size} but {str(tflite_file)!r} takes {detector.crop_size}; use the "
            "files of one export."
        )
    return SaccadeProcedure(
        None,
        TestConfig.coerce(settings["test_config"]),
        config,
        canvas_detector=detector,
    )
