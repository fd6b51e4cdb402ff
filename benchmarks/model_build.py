"""Time until a CornerNet has its weights: `from_preset` and `load_model` (docs/performance.md).

For each preset: seconds of `CornerNet.from_preset` (which returns a built
model), the trainable parameter count it reports before any call, and seconds
of `keras.saving.load_model` on a `.keras` copy written to a temporary folder.

    python benchmarks/model_build.py [--presets tiny,hourglass104]
"""

import argparse
import os
import tempfile
import time

import keras
import numpy as np

from cornernet_tf.models import CornerNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,hourglass104", help="comma-separated names")
    args = parser.parse_args()
    print(f"{'preset':<14}{'from_preset s':>15}{'trainable':>14}{'load_model s':>14}")
    for name in args.presets.split(","):
        start = time.perf_counter()
        model = CornerNet.from_preset(name)
        built = time.perf_counter() - start
        trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "model.keras")
            model.save(path)
            start = time.perf_counter()
            keras.saving.load_model(path, compile=False)
            loaded = time.perf_counter() - start
        print(f"{name:<14}{built:>15.2f}{trainable:>14,}{loaded:>14.2f}")


if __name__ == "__main__":
    main()
