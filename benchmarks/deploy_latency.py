"""Latency of every deployment format side by side, in one run (docs/deploy.md).

For each preset at its test size, with fresh (untrained) weights: Keras
`predict` (the full detection pipeline), the TFLite detector files float32,
float16 and int8 (`cornernet_tf.export.convert_detector_variants`: canvas,
network, decoding and soft-NMS in the file; int8 calibrated on generated
shapes images) run with LiteRT, and the ONNX file
(`cornernet_tf.export.onnx.convert_onnx`: everything but soft-NMS) run with
ONNX Runtime on CPU, plus its host soft-NMS (`cornernet_tf.runtime.soft_nms_numpy`).

`--official-root DIR` (a princeton-vl/CornerNet-Lite checkout) adds the
baseline: the official network of the preset (`core/models/CornerNet_Squeeze.py`
for squeeze, `core/models/CornerNet.py` for hourglass104, fresh weights) and
its float32 test forward under `torch.no_grad()` (network and `_decode`, as
`core/test/cornernet.py` calls it) on the same image, with `--threads`
threads and OpenMP's passive wait (`official_models.passive_openmp`; set
`OMP_WAIT_POLICY=ACTIVE` on a quiet machine); every row gets its ratio to it.
Its corner pooling is the checkout's C++ extension when built (`python
setup.py build_ext --inplace` in `core/models/py_utils/_cpools`; it builds on
CPU against PyTorch 2), else `torch.cummax` stand-ins (`official_models.py`);
the output says which.

`--breakdown` adds the network alone as TFLite files (float32 and int8, the
converter's default full-integer network with float input and outputs, no
canvas, decoding or soft-NMS), so that the detector rows minus these are the
cost of the rest.

All rows are timed in turns (`timing.time_in_turns`), one call of each per
round, so that load from other processes falls on every row alike.

    python benchmarks/deploy_latency.py                        # tiny at 127, squeeze at 511
    python benchmarks/deploy_latency.py --presets squeeze --sizes 511 \\
        --official-root ../CornerNet-Lite --breakdown
"""

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from official_models import (
    LITE_NETWORKS,
    check_lite_root,
    lite_network,
    lite_test_forward,
    passive_openmp,
)
from timing import time_in_turns

from cornernet_tf import export
from cornernet_tf.export.onnx import convert_onnx
from cornernet_tf.models import CornerNet
from cornernet_tf.runtime import soft_nms_numpy

LABELS = {"none": "TFLite float32", "float16": "TFLite float16", "int8": "TFLite int8"}
OFFICIAL = "official PyTorch"


def _calibration(input_size, count: int) -> list[np.ndarray]:
    from cornernet_tf.data import shapes

    with tempfile.TemporaryDirectory() as root:
        config = shapes.ShapesConfig(height=input_size[0], width=input_size[1], image_format="png")
        shapes.make_shapes_dataset(root, num_train=count, num_val=1, seed=0, config=config)
        return export.representative_images(Path(root) / "train2017", input_size, count)


def _network_files(model, size, calibration) -> dict[str, bytes]:
    """The network alone (no canvas, decoding or soft-NMS) as float32 and int8 TFLite."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, size, size, 3], tf.float32)])
    def network(images):
        return model(images, training=False)

    files = {}
    with tempfile.TemporaryDirectory() as folder:
        holder = tf.Module()
        holder.model_variables = [v.value for v in model.variables]
        tf.saved_model.save(holder, folder, signatures={"serving_default": network})
        for quantization in ("none", "int8"):
            converter = tf.lite.TFLiteConverter.from_saved_model(folder)
            if quantization == "int8":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
                converter.representative_dataset = lambda: ([x] for x in calibration)
            files[quantization] = converter.convert()
    return files


def bench_preset(preset, size, *, repeats, threads, calibration, official_root, breakdown):
    """Rows `(format, size MiB, seconds per round)`, conversion seconds and notes."""
    import onnxruntime
    from ai_edge_litert.interpreter import Interpreter

    model = CornerNet.from_preset(preset)
    image = np.random.default_rng(0).integers(0, 256, (1, size, size, 3)).astype(np.uint8)
    model(image.astype(np.float32), training=False)
    samples = _calibration((size, size), calibration)
    start = time.perf_counter()
    labels = [str(i) for i in range(model.num_classes)]
    files = export.convert_detector_variants(
        model, input_size=(size, size), representative_data=samples, labels=labels
    )
    onnx_bytes = convert_onnx(model, input_size=(size, size), labels=labels)
    conversion = time.perf_counter() - start
    networks = _network_files(model, size, samples) if breakdown else {}

    calls = {"Keras predict": lambda: model.predict(image, verbose=0)}
    sizes = {}
    for quantization, flatbuffer in files.items():
        runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
        calls[LABELS[quantization]] = lambda r=runner: r(images=image)
        sizes[LABELS[quantization]] = len(flatbuffer)
    pixels = image.astype(np.float32)
    for quantization, flatbuffer in networks.items():
        name = f"  {LABELS[quantization].split()[1]} network only"
        runner = Interpreter(model_content=flatbuffer, num_threads=threads).get_signature_runner()
        calls[name] = lambda r=runner: r(images=pixels)
        sizes[name] = len(flatbuffer)

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
    feed = {"images": pixels}
    calls["ONNX Runtime"] = lambda: session.run(None, feed)
    sizes["ONNX Runtime"] = len(onnx_bytes)
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

    calls["  + host soft-NMS"] = host_nms
    notes = []
    if official_root:
        import torch

        torch.set_num_threads(threads)
        network, pools = lite_network(official_root, preset)
        calls[OFFICIAL] = lite_test_forward(network, image, config)
        notes.append(f"official corner pooling: {pools}; torch {torch.__version__}")
    times = time_in_turns(calls, repeats)
    rows = [(name, sizes.get(name), seconds) for name, seconds in times.items()]
    return rows, conversion, notes


def _print_table(rows):
    medians = {name: statistics.median(seconds) for name, _, seconds in rows}
    rounds = {name: seconds for name, _, seconds in rows}
    official = rounds.get(OFFICIAL)
    header = f"{'format':<26} {'size MiB':>9} {'median ms':>10} {'min ms':>8} {'vs Keras':>9}"
    print(header + (f" {'vs official (rounds)':>24}" if official else ""))
    for name, size, seconds in rows:
        size_text = f"{size / 2**20:9.2f}" if size else f"{'':9}"
        line = f"{name:<26} {size_text} {1e3 * medians[name]:10.1f} {1e3 * min(seconds):8.1f}"
        if not name.startswith(" "):  # parts of a pipeline get no ratio
            line += f" {medians['Keras predict'] / medians[name]:8.2f}x"
            if official:
                # Per-round ratios: the two calls of a round ran under the same load.
                ratios = [ours / theirs for ours, theirs in zip(seconds, official, strict=True)]
                line += f" {statistics.median(ratios):7.2f}x ({min(ratios):.2f}-{max(ratios):.2f})"
        print(line)
    print("vs Keras: speed-up over Keras predict (medians)")
    if official:
        print("vs official: time over the official forward's in the same round, median and range")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--presets", nargs="+", default=["tiny", "squeeze"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[127, 511])
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds")
    parser.add_argument("--threads", type=int, default=2, help="TFLite/ONNX Runtime/torch threads")
    parser.add_argument("--num-calibration", type=int, default=8, help="int8 calibration images")
    parser.add_argument("--official-root", help="a princeton-vl/CornerNet-Lite checkout")
    parser.add_argument("--breakdown", action="store_true", help="add the network-only files")
    args = parser.parse_args(argv)
    if len(args.sizes) != len(args.presets):
        parser.error("--sizes needs one size per preset.")
    officials = {}
    for preset in args.presets if args.official_root else ():
        problem = check_lite_root(args.official_root, preset)
        if problem and preset in LITE_NETWORKS:  # a wrong folder, not a preset without one
            parser.error(f"--official-root: {problem}.")
        officials[preset] = None if problem else args.official_root

    print(f"{os.cpu_count()} CPUs; {args.threads} threads; {args.repeats} rounds in turns")
    if args.official_root:
        print(f"official forward with {passive_openmp()}")
    else:
        print("no --official-root: no official baseline")
    for preset, size in zip(args.presets, args.sizes, strict=True):
        rows, conversion, notes = bench_preset(
            preset,
            size,
            repeats=args.repeats,
            threads=args.threads,
            calibration=args.num_calibration,
            official_root=officials.get(preset),
            breakdown=args.breakdown,
        )
        flip = CornerNet.from_preset(preset).test_config.flip_test
        print(
            f"\n{preset} at {size}x{size} (untrained, flip test {flip}); "
            f"conversion of the four files {conversion:.0f} s"
        )
        if args.official_root and officials[preset] is None:
            notes.append(f"no official network for {preset}: no baseline")
        for note in notes:
            print(note)
        _print_table(rows)


if __name__ == "__main__":
    main()
