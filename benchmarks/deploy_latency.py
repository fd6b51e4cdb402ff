"""Latency of every deployment format side by side, in one run (docs/deploy.md).

For each preset at its test size, with fresh (untrained) weights: Keras
`predict` (the full detection pipeline), the TFLite detector files float32,
float16 and int8 (`cornernet_tf.export.convert_detector_variants`: canvas,
network, decoding and soft-NMS in the file; int8 calibrated on generated
shapes images) run with LiteRT, and the ONNX file
(`cornernet_tf.export.onnx.convert_onnx`: everything but soft-NMS) run with
ONNX Runtime on CPU, plus its host soft-NMS (`cornernet_tf.runtime.soft_nms_numpy`).

    python benchmarks/deploy_latency.py                        # tiny at 127, squeeze at 511
    python benchmarks/deploy_latency.py --presets tiny --sizes 127 --repeats 50
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import time_ms

from cornernet_tf import export
from cornernet_tf.export.onnx import convert_onnx
from cornernet_tf.models import CornerNet
from cornernet_tf.runtime import soft_nms_numpy

LABELS = {"none": "TFLite float32", "float16": "TFLite float16", "int8": "TFLite int8"}


def _calibration(input_size, count: int) -> list[np.ndarray]:
    from cornernet_tf.data import shapes

    with tempfile.TemporaryDirectory() as root:
        config = shapes.ShapesConfig(height=input_size[0], width=input_size[1], image_format="png")
        shapes.make_shapes_dataset(root, num_train=count, num_val=1, seed=0, config=config)
        return export.representative_images(Path(root) / "train2017", input_size, count)


def bench_preset(preset: str, size: int, *, repeats: int, threads: int, calibration: int):
    """Rows (format, size MiB, median ms, min ms) and conversion seconds for one preset."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    model = CornerNet.from_preset(preset)
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.uint8)
    model(image.astype(np.float32), training=False)
    start = time.perf_counter()
    labels = [str(i) for i in range(model.num_classes)]
    files = export.convert_detector_variants(
        model,
        input_size=(size, size),
        representative_data=_calibration((size, size), calibration),
        labels=labels,
    )
    onnx_bytes = convert_onnx(model, input_size=(size, size), labels=labels)
    conversion = time.perf_counter() - start

    rows = [("Keras predict", None, *time_ms(lambda: model.predict(image, verbose=0), repeats))]
    for quantization, flatbuffer in files.items():
        runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
        median, best = time_ms(lambda r=runner: r(images=image), repeats)
        rows.append((LABELS[quantization], len(flatbuffer) / 2**20, median, best))
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {"images": image.astype(np.float32)}
    rows.append(
        (
            "ONNX Runtime",
            len(onnx_bytes) / 2**20,
            *time_ms(lambda: session.run(None, feed), repeats),
        )
    )
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed), strict=True))
    config = model.test_config

    def host_nms():
        soft_nms_numpy(
            outputs["candidate_boxes"][0],
            outputs["candidate_scores"][0],
            outputs["candidate_classes"][0],
            sigma=config.soft_nms_sigma,
            score_threshold=config.score_threshold,
            max_detections=config.max_detections,
        )

    rows.append(("  + host soft-NMS", None, *time_ms(host_nms, repeats)))
    return rows, conversion, config.flip_test


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--presets", nargs="+", default=["tiny", "squeeze"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[127, 511])
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per format")
    parser.add_argument("--threads", type=int, default=2, help="TFLite/ONNX Runtime threads")
    parser.add_argument("--num-calibration", type=int, default=8, help="int8 calibration images")
    args = parser.parse_args(argv)
    if len(args.sizes) != len(args.presets):
        parser.error("--sizes needs one size per preset.")

    print(f"{os.cpu_count()} CPUs; {args.threads} threads; {args.repeats} timed calls each")
    for preset, size in zip(args.presets, args.sizes, strict=True):
        rows, conversion, flip = bench_preset(
            preset,
            size,
            repeats=args.repeats,
            threads=args.threads,
            calibration=args.num_calibration,
        )
        print(
            f"\n{preset} at {size}x{size} (untrained, flip test {flip}); "
            f"conversion of the four files {conversion:.0f} s"
        )
        print(f"{'format':<18} {'size MiB':>9} {'median ms':>10} {'min ms':>8} {'vs Keras':>9}")
        keras = rows[0][2]
        for name, mib, median, best in rows:
            size_text = f"{mib:9.2f}" if mib else f"{'':9}"
            ratio = f"{keras / median:8.2f}x" if not name.startswith(" ") else ""
            print(f"{name:<18} {size_text} {median:10.1f} {best:8.1f} {ratio}")


if __name__ == "__main__":
    main()
