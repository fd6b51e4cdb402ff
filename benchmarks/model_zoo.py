"""The presets side by side: parameters, Keras and TFLite speed, file sizes (docs/performance.md).

For each preset, in one run on this machine: trainable parameters, output
stride, the flip test of its test procedure, the `.keras` file size, Keras
`model.predict` ms/image on one `size`x`size` image (the full detection
pipeline of the preset's test procedure), and per TFLite quantisation the
file size and the interpreter's ms/image (`TFLiteDetector.run`; int8 files
stop before soft-NMS, which the host runs). Freshly initialised weights:
speed and size do not depend on them.

    python benchmarks/model_zoo.py                           # squeeze and hourglass104 at 511
    python benchmarks/model_zoo.py --presets squeeze --quantizations none,float16,int8
    python benchmarks/model_zoo.py --presets hourglass104 --quantizations none

Hourglass-104's float32 TFLite file is about 800 MB and its conversion takes
minutes and several GB of memory; `--quantizations` limits what is converted.
Rows not measured print "-".
"""

import argparse
import gc
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from tflite import _calibration
from timing import time_ms

from cornernet_tf import export
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.runtime import TFLiteDetector

QUANTIZATIONS = ("none", "float16", "int8")


def _measure(name, size, quantizations, repeats, threads, calibration_count):
    model = CornerNet.from_preset(name)
    params = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / "model.keras"
        model.save(keras_path)
        keras_mib = keras_path.stat().st_size / 2**20
    row = {
        "preset": name,
        "params": params,
        "stride": model.output_stride,
        "flip": str(model.test_config.flip_test),
        "keras MiB": keras_mib,
        "predict ms": time_ms(lambda: model.predict(image, verbose=0), repeats)[0],
    }
    canvas = image.astype(np.float32)
    calibration = None
    for quantization in quantizations:
        if quantization == "int8" and calibration is None:
            calibration = _calibration(None, (size, size), calibration_count)
        start = time.perf_counter()
        flatbuffer = export.convert_tflite(
            model, input_size=(size, size), quantize=quantization, representative_data=calibration
        )
        row[f"{quantization} convert s"] = time.perf_counter() - start
        row[f"{quantization} MiB"] = len(flatbuffer) / 2**20
        detector = TFLiteDetector(flatbuffer, test_config=model.test_config, num_threads=threads)
        row[f"{quantization} ms"] = time_ms(lambda d=detector: d.run(canvas), repeats)[0]
        del flatbuffer, detector
        gc.collect()
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="squeeze,hourglass104", help="comma-separated")
    parser.add_argument("--size", type=int, default=511, help="square input size")
    parser.add_argument(
        "--quantizations", default="none,float16,int8", help="TFLite files to convert and time"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per format")
    parser.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads")
    parser.add_argument("--num-calibration", type=int, default=8, help="int8 calibration images")
    args = parser.parse_args(argv)
    quantizations = [q for q in args.quantizations.split(",") if q]
    unknown = sorted(set(quantizations) - set(QUANTIZATIONS))
    if unknown:
        parser.error(f"unknown --quantizations {unknown}; choose from {list(QUANTIZATIONS)}")

    load_before = os.getloadavg()[0]
    rows = []
    for name in args.presets.split(","):
        rows.append(
            _measure(
                name,
                args.size,
                quantizations,
                args.repeats,
                args.threads,
                args.num_calibration,
            )
        )
        print(f"measured: {rows[-1]}", flush=True)  # a long run shows progress
        gc.collect()

    print(
        f"input {args.size}x{args.size}; median of {args.repeats} calls after one warm-up; "
        f"{args.threads} TFLite threads; int8 calibrated on {args.num_calibration} shapes images; "
        f"load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
        f"({os.cpu_count()} CPUs)"
    )
    columns = ["preset", "params", "stride", "flip", "keras MiB", "predict ms"]
    for q in QUANTIZATIONS:
        columns += [f"{q} MiB", f"{q} ms", f"{q} convert s"]
    print(" | ".join(columns))
    for row in rows:
        cells = []
        for column in columns:
            value = row.get(column)
            if value is None:
                cells.append("-")
            elif isinstance(value, str):
                cells.append(value)
            elif isinstance(value, int):
                cells.append(f"{value:,}")
            else:
                cells.append(f"{value:.1f}")
        print(" | ".join(cells))
    if len(rows) > 1:
        base = rows[-1]
        for row in rows[:-1]:
            ratio = row["predict ms"] / base["predict ms"]
            print(f"{row['preset']} / {base['preset']} predict time: {ratio:.3f}")
    for row in rows:
        if "int8 MiB" in row and "none MiB" in row:
            ratio = row["int8 MiB"] / row["none MiB"]
            print(f"{row['preset']} int8 / float32 file size: {ratio:.3f}")


if __name__ == "__main__":
    main()
