"""`CornerNet.predict` of CornerNet-Saccade against Hourglass-104 and Squeeze, one image.

Each preset runs its own official test procedure on the same image (default
480x640, a typical COCO size; untrained weights): Hourglass-104 the image on a
511x767 canvas with the flip test, CornerNet-Squeeze the same canvas without
it, CornerNet-Saccade two 255x255 coarse canvases then its crops. Untrained
attention maps stay below the 0.3 threshold, so `saccade` runs no crops; the
`saccade, N crops` row counts every attention peak (`att_threshold` 0) with a
budget of N crops of 255x255 (the official budget is 30), the cost of a busy
image. Rows run in turns, repeat by repeat; the table gives medians.

    python benchmarks/saccade_predict.py [--size 480,640] [--repeats 3] [--crops 30]
        [--presets saccade,hourglass104,squeeze]
"""

import argparse

import numpy as np
from timing import time_in_turns

from cornernet_tf.models import CornerNet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--size", default="480,640", help="image height,width")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--crops", type=int, default=30)
    parser.add_argument("--presets", default="saccade,hourglass104,squeeze")
    args = parser.parse_args()

    height, width = (int(v) for v in args.size.split(","))
    image = np.random.default_rng(0).uniform(0, 255, (1, height, width, 3)).astype("float32")
    calls = {}
    for preset in args.presets.split(","):
        model = CornerNet.from_preset(preset)
        calls[preset] = lambda model=model: model.predict(image, verbose=0)
        if model.attention and args.crops:
            busy = CornerNet.from_preset(
                preset, saccade_config={"att_threshold": 0.0, "att_max_crops": args.crops}
            )
            busy.set_weights(model.get_weights())
            crops = len(busy.saccade_procedure().candidates(image[0])["locations"])
            calls[f"{preset}, {crops} crops"] = lambda busy=busy: busy.predict(image, verbose=0)

    times = time_in_turns(calls, args.repeats)

    print(f"\npredict, one {height}x{width} image, {args.repeats} repeats (median seconds):")
    for name, values in times.items():
        print(f"{name:<22}{np.median(values):>8.2f}   {' '.join(f'{t:.2f}' for t in values)}")


if __name__ == "__main__":
    main()
