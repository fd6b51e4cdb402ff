"""TFLite/LiteRT size and latency per quantisation, next to Keras (docs/performance.md).

Converts one model to float32, float16 and int8 TFLite files at a fixed input
size (`cornernet_tf.export.convert_tflite_variants`), then times, on the same
machine in one run: Keras `model.predict` on one image (the full detection
pipeline) and each TFLite file's interpreter call (int8 adds the host soft-NMS,
timed separately). With `--ap DATASET_ROOT`, it also scores float32 and int8
with COCO AP on a split (`cornernet_tf.evaluation.evaluate_coco` over
`cornernet_tf.runtime.TFLiteDetector`); the project's target is int8 within 2
AP points of float32, which needs a trained model.

    python benchmarks/tflite.py                               # fresh tiny preset, 127x127
    python benchmarks/tflite.py --model model.keras --input-size 511 511
    python benchmarks/tflite.py --model artifacts/demo/model.keras --input-size 127 127 \
        --ap data/shapes --split val2017 --data-dir data/shapes/train2017
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import time_ms

from cornernet_tf import export
from cornernet_tf.models import load_model
from cornernet_tf.models.cornernet import CornerNet
from cornernet_tf.runtime import TFLiteDetector, host_soft_nms

LABELS = {"none": "TFLite float32", "float16": "TFLite float16", "int8": "TFLite int8"}


def _calibration(data_dir, input_size, count: int, seed: int = 0) -> list[np.ndarray]:
    if data_dir is not None:
        return export.representative_images(data_dir, input_size, max_images=count)
    # No data: a generated shapes split (calibration on noise would say nothing).
    from cornernet_tf.data import shapes

    with tempfile.TemporaryDirectory() as root:
        config = shapes.ShapesConfig(height=input_size[0], width=input_size[1], image_format="png")
        shapes.make_shapes_dataset(root, num_train=count, num_val=1, seed=seed, config=config)
        return export.representative_images(Path(root) / "train2017", input_size, count)


def coco_ap_tflite(
    flatbuffer: bytes,
    dataset_root,
    split: str = "val2017",
    *,
    test_config: dict | None = None,
    max_images: int | None = None,
) -> dict[str, float]:
    """COCO box AP of one TFLite file on a split (images letterboxed to its input).

    Args:
        flatbuffer: the `.tflite` bytes.
        dataset_root: dataset root in the COCO 2017 layout.
        split: split to score.
        test_config: soft-NMS settings for int8 files (the model's `test_config`).
        max_images: score only the first N images.

    Returns:
        `cornernet_tf.evaluation.evaluate_coco`'s metrics (`AP`, `AP50`, ...).
    """
    from cornernet_tf.evaluation import evaluate_coco

    detector = TFLiteDetector(flatbuffer, test_config=test_config)
    return evaluate_coco(detector, dataset_root, split, max_images=max_images, verbose=0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help=".keras file (default: fresh tiny preset)")
    parser.add_argument("--input-size", type=int, nargs=2, default=(127, 127), metavar=("H", "W"))
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per format")
    parser.add_argument("--threads", type=int, default=2, help="TFLite interpreter threads")
    parser.add_argument("--data-dir", default=None, help="int8 calibration images")
    parser.add_argument("--num-calibration", type=int, default=32)
    parser.add_argument("--ap", default=None, metavar="DATASET_ROOT", help="also score COCO AP")
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args(argv)

    if args.model is None:
        model = CornerNet.from_preset("tiny")
        source = "tiny preset, freshly initialised"
    else:
        model = load_model(args.model)
        source = args.model
    input_size = tuple(args.input_size)
    image = np.random.default_rng(0).integers(0, 256, (1, *input_size, 3)).astype(np.uint8)
    model(image, training=False)
    calibration = _calibration(args.data_dir, input_size, args.num_calibration)
    start = time.perf_counter()
    flatbuffers = export.convert_tflite_variants(
        model, input_size=input_size, representative_data=calibration
    )
    conversion = time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        keras_path = Path(tmp) / "model.keras"
        model.save(keras_path)
        keras_size = keras_path.stat().st_size / 2**20
    rows = [
        (
            "Keras predict",
            keras_size,
            *time_ms(lambda: model.predict(image, verbose=0), args.repeats),
        )
    ]
    canvas = image.astype(np.float32)
    for quantization, flatbuffer in flatbuffers.items():
        detector = TFLiteDetector(
            flatbuffer, test_config=model.test_config, num_threads=args.threads
        )
        median, best = time_ms(lambda d=detector: d.run(canvas), args.repeats)
        rows.append((LABELS[quantization], len(flatbuffer) / 2**20, median, best))
        if quantization == "int8":
            outputs = detector.run(canvas)
            nms = time_ms(lambda o=outputs: host_soft_nms(o, model.test_config), args.repeats)
            rows.append(("  + host soft-NMS", 0.0, *nms))

    print(
        f"Model: {source}; input {input_size[0]}x{input_size[1]}; flip test "
        f"{model.test_config.flip_test}; {args.threads} TFLite threads; "
        f"conversion of the three files {conversion:.1f} s"
    )
    print(f"{'format':<18} {'size MiB':>9} {'median ms':>10} {'min ms':>8} {'vs Keras':>9}")
    keras_median = rows[0][2]
    for name, size, median, best in rows:
        size_text = f"{size:9.2f}" if size else f"{'':9}"
        ratio = f"{keras_median / median:8.2f}x" if size else ""
        print(f"{name:<18} {size_text} {median:10.1f} {best:8.1f} {ratio}")

    if args.ap is not None:
        print(f"\nCOCO AP on {args.ap} / {args.split}:")
        scores = {}
        for quantization in ("none", "int8"):
            metrics = coco_ap_tflite(
                flatbuffers[quantization],
                args.ap,
                args.split,
                test_config=model.test_config,
                max_images=args.max_images,
            )
            scores[quantization] = metrics["AP"]
            print(
                f"{LABELS[quantization]:<18} AP {100 * metrics['AP']:6.2f}  "
                f"AP50 {100 * metrics['AP50']:6.2f}"
            )
        drop = 100 * (scores["none"] - scores["int8"])
        print(f"int8 AP drop: {drop:.2f} points (target: at most 2)")


if __name__ == "__main__":
    main()
