"""Peak memory of one detection against the image side: the input limit's figures (docs/input.md).

For each preset and square image side, a fresh process builds the model (random
weights), runs `CornerNet.detect` once on a `side`×`side` uint8 image with the
default test procedure (flip test: two canvases of `(side | 127) + 1` pixels)
and reports its peak resident memory, the resident memory of the built model
before the call, and the seconds of the call (tracing included). Both memory
figures come from the same process, so the difference is what the image costs.

    python benchmarks/inference_memory.py [--presets tiny,hourglass104] [--sides 511,1023]
"""

import argparse
import json
import resource
import subprocess
import sys
import time


def _resident_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def _measure(preset: str, side: int) -> dict:
    import numpy as np
    import tensorflow as tf

    from cornernet_tf.models import CornerNet

    model = CornerNet.from_preset(preset)
    before = _resident_mb()
    detect = tf.function(
        model.detect,
        input_signature=[tf.TensorSpec([1, None, None, 3], tf.uint8)],
        autograph=False,
    )
    image = np.random.default_rng(0).integers(0, 256, (1, side, side, 3), np.uint8)
    start = time.perf_counter()
    detect(image)["num_detections"].numpy()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"model_mb": before, "peak_mb": peak, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="tiny,hourglass104", help="comma-separated names")
    parser.add_argument("--sides", default="511,1023", help="comma-separated image sides")
    parser.add_argument("--child", nargs=2, metavar=("PRESET", "SIDE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.child[0], int(args.child[1]))))
        return
    print(f"{'preset':<14}{'side':>6}{'model MB':>10}{'peak MB':>10}{'image MB':>10}{'s':>8}")
    for preset in args.presets.split(","):
        for side in (int(s) for s in args.sides.split(",")):
            out = subprocess.run(
                [sys.executable, __file__, "--child", preset, str(side)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{preset:<14}{side:>6}{r['model_mb']:>10.0f}{r['peak_mb']:>10.0f}"
                f"{r['peak_mb'] - r['model_mb']:>10.0f}{r['seconds']:>8.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
