"""COCO AP of every deployment format of one trained model, side by side (docs/deploy.md).

Writes the TFLite detector files (float32, float16, int8 calibrated on
`--data-dir` images) and the ONNX file of a trained model at a fixed input
size, then scores each on a split with `cornernet_tf.evaluation.evaluate_coco`
(images letterboxed into the fixed input by `cornernet_tf.runtime.TFLiteDetector`
and `OnnxDetector`), next to Keras `CornerNet.detect` on the original images,
in float32 and in bfloat16 (`load_model(..., precision="bfloat16")`).

    python benchmarks/deploy_ap.py --model artifacts/demo/model.keras \\
        --dataset data/shapes --data-dir data/shapes/train2017 --input-size 127 127
"""

import argparse
import tempfile

from cornernet_tf import export
from cornernet_tf.evaluation import evaluate_coco
from cornernet_tf.export.onnx import export_onnx
from cornernet_tf.models import load_model
from cornernet_tf.models.loading import with_precision
from cornernet_tf.runtime import OnnxDetector, TFLiteDetector

LABELS = {"none": "TFLite float32", "float16": "TFLite float16", "int8": "TFLite int8"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--model", required=True, help=".keras file of a trained CornerNet")
    parser.add_argument("--dataset", required=True, help="dataset root (COCO 2017 layout)")
    parser.add_argument("--split", default="val2017")
    parser.add_argument("--data-dir", required=True, help="int8 calibration images")
    parser.add_argument("--num-calibration", type=int, default=100)
    parser.add_argument("--input-size", type=int, nargs=2, default=(511, 511), metavar=("H", "W"))
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args(argv)

    model = load_model(args.model)
    size = tuple(args.input_size)
    calibration = export.representative_images(args.data_dir, size, args.num_calibration)

    def score(detector):
        metrics = evaluate_coco(
            detector, args.dataset, args.split, max_images=args.max_images, verbose=0
        )
        return 100 * metrics["AP"], 100 * metrics["AP50"]

    rows = [("Keras detect (original size)", *score(model))]
    rows.append(("Keras bfloat16 (original size)", *score(with_precision(model, "bfloat16"))))
    with tempfile.TemporaryDirectory() as tmp:
        paths = export.export_tflite(
            model,
            tmp,
            input_size=size,
            quantizations=export.QUANTIZATIONS,
            representative_data=calibration,
        )
        for quantization, path in paths.items():
            rows.append((LABELS[quantization], *score(TFLiteDetector(path))))
        onnx_path = export_onnx(model, tmp, input_size=size)
        rows.append(("ONNX Runtime", *score(OnnxDetector(onnx_path))))

    print(f"Model: {args.model}; {args.dataset} / {args.split}; input {size[0]}x{size[1]}")
    print(f"{'format':<30} {'AP':>6} {'AP50':>6} {'vs float32':>11}")
    float32 = rows[2][1]
    for name, ap, ap50 in rows:
        print(f"{name:<30} {ap:6.2f} {ap50:6.2f} {ap - float32:+11.2f}")


if __name__ == "__main__":
    main()
