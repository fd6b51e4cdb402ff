"""Train-step and predict throughput of the CornerNet presets (docs/performance.md).

For each preset, on random images of its input size and targets of a few
boxes: images/s of one compiled training step (`train_on_batch`, Adam), and
milliseconds per image of `predict` (the preset's test procedure: decode and
soft-NMS, with the flip test for the Hourglass presets), side by side in one
run. Prints a table.

    python benchmarks/model_throughput.py [--presets tiny,hourglass104] [--repeats 3]
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from cornernet_tf.models import CornerNet
from cornernet_tf.targets import encode_targets

SETTINGS = {
    # preset: (input size, train batch); the output size follows the model's stride
    "tiny": (127, 16),
    "tiny_squeeze": (127, 16),
    "squeeze": (511, 2),
    "hourglass104": (511, 2),
}


def _batch(model, size, out, batch, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    boxes = np.array([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.8]], "float32") * (size - 1)
    target = encode_targets(
        boxes,
        np.array([0, 1 % model.num_classes], "int32"),
        input_size=size,
        output_size=out,
        num_classes=model.num_classes,
    )
    keys = ("tl_heatmap", "br_heatmap", "tl_index", "br_index", "tl_offset", "br_offset", "mask")
    return images, {k: tf.stack([target[k]] * batch) for k in keys}


def _median_seconds(fn, args, repeats):
    fn(*args)  # trace / compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,hourglass104")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jit", action="store_true", help="compile the train step with XLA")
    args = parser.parse_args()

    rows = []
    for name in args.presets.split(","):
        size, batch = SETTINGS[name]
        model = CornerNet.from_preset(name)
        out = -(-size // model.output_stride)
        model.compile(keras.optimizers.Adam(1e-4), jit_compile=args.jit)
        images, targets = _batch(model, size, out, batch)
        step = _median_seconds(model.train_on_batch, (images, targets), args.repeats)
        predict = _median_seconds(model.predict_on_batch, (images[:1],), args.repeats)
        rows.append((name, size, batch, batch / step, step, predict * 1000))
        print(f"measured {name}", flush=True)

    print(f"\nCPU threads: {tf.config.threading.get_intra_op_parallelism_threads() or 'all'}")
    header = f"{'preset':<14}{'input':>7}{'batch':>7}{'train img/s':>13}{'s/step':>9}"
    print(header + f"{'predict ms/img':>16}")
    for name, size, batch, ips, step, ms in rows:
        print(f"{name:<14}{size:>7}{batch:>7}{ips:>13.2f}{step:>9.2f}{ms:>16.0f}")
    if len(rows) == 2:
        print(f"ratio tiny/hourglass104 predict time: {rows[0][5] / rows[1][5]:.3f}")


if __name__ == "__main__":
    main()
