"""`CornerNet.predict` against the network forward it wraps, in one run.

The network forward is `model(images, training=False)` (the last stack's raw
heads) as one `tf.function` on a fixed-size batch: the floor of any test
procedure. `predict` adds the test canvas, decoding and soft-NMS. Flip test
off: `predict` on one image against the forward of one; flip test on:
against the forward of two (the image and its mirror run as one batch).
The rows are measured in turns, repeat by repeat, so load from other
processes falls on all of them; the table gives medians.

    python benchmarks/predict.py [--preset hourglass104] [--size 511] [--repeats 3]
        [--flip off,on]
"""

import argparse

import numpy as np
import tensorflow as tf
from timing import time_in_turns

from cornernet_tf.models import CornerNet


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hourglass104")
    parser.add_argument("--size", type=int, default=511, help="square image side")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--flip", default="off,on", help="flip-test settings to measure")
    args = parser.parse_args()

    model = CornerNet.from_preset(args.preset)
    forward = tf.function(lambda images: model(images, training=False))
    # One model per test procedure (the same weights): assigning `test_config`
    # recompiles `predict`, which would be timed with it.
    models = {}
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (1, args.size, args.size, 3)).astype("float32")
    pair = np.concatenate([image, image[:, :, ::-1]])

    calls = {}
    for flip in args.flip.split(","):
        on = flip == "on"
        config = model.test_config.to_dict() | {"flip_test": on}
        batch = pair if on else image
        calls[f"forward, batch {len(batch)}"] = lambda batch=batch: forward(batch)

        models[flip] = CornerNet.from_config(model.get_config() | {"test_config": config})
        models[flip].build()
        models[flip].set_weights(model.get_weights())

        def predict(net=models[flip]):
            return net.predict(image, verbose=0)

        calls[f"predict, flip test {flip}"] = predict

    times = time_in_turns(calls, args.repeats)

    print(f"\n{args.preset}, {args.size}x{args.size}, {args.repeats} repeats (median seconds):")
    median = {name: float(np.median(t)) for name, t in times.items()}
    for name, seconds in median.items():
        print(f"{name:<26}{seconds:>8.2f}   {' '.join(f'{t:.2f}' for t in times[name])}")
    for flip in args.flip.split(","):
        on = flip == "on"
        ratio = median[f"predict, flip test {flip}"] / median[f"forward, batch {2 if on else 1}"]
        print(f"predict / forward, flip test {flip}: {ratio:.2f}")


if __name__ == "__main__":
    main()
