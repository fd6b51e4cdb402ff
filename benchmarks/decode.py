"""Decode and post-processing time per image (docs/performance.md).

Measures `decode_corners` (K=100, C=80, 128x128 output maps, 1000 pairs) and
the flip-test post-processing (decode of an image/flipped-image pair, rescale,
per-class soft-NMS over 2000 pairs, best 100), in graph mode (`tf.function`)
and with XLA (`jit_compile=True`), on random head outputs; the post-processing
alone (rescale + soft-NMS of the 2000 flip-test pairs) is timed too. Prints a
table.

    python benchmarks/decode.py [--batch 1] [--repeats 20]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from cornernet_tf.inference import CornerNetDecoder
from cornernet_tf.inference.decode import OUTPUT_KEYS, decode_corners

NUM_CLASSES = 80
OUTPUT_SIZE = 128
IMAGE_HW = (511, 511)  # 511 | 127 = 511 -> 128x128 output maps


def random_outputs(batch: int, seed: int = 0) -> dict[str, tf.Tensor]:
    """Head outputs shaped like Hourglass-104's at 511x511: mostly-negative logits."""
    rng = np.random.default_rng(seed)
    shape = (batch, OUTPUT_SIZE, OUTPUT_SIZE)
    arrays = {
        "tl_heatmap": rng.normal(-4.0, 2.0, (*shape, NUM_CLASSES)),
        "br_heatmap": rng.normal(-4.0, 2.0, (*shape, NUM_CLASSES)),
        "tl_embedding": rng.normal(0.0, 1.0, (*shape, 1)),
        "br_embedding": rng.normal(0.0, 1.0, (*shape, 1)),
        "tl_offset": rng.uniform(0.0, 1.0, (*shape, 2)),
        "br_offset": rng.uniform(0.0, 1.0, (*shape, 2)),
    }
    return {key: tf.constant(value, tf.float32) for key, value in arrays.items()}


def time_ms(fn, inputs, repeats: int) -> float:
    """Median wall time of `fn(inputs)` in milliseconds, after warm-up."""
    for _ in range(3):
        tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(inputs))
        times.append(time.perf_counter() - start)
    return 1000.0 * float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1, help="images per call")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per row")
    args = parser.parse_args()
    if args.batch < 1 or args.repeats < 1:
        parser.error("--batch and --repeats must be >= 1")

    decoder = CornerNetDecoder()  # the official settings: flip test, K=100, 1000 pairs
    images = tf.zeros((args.batch, *IMAGE_HW, 3), tf.uint8)
    single = random_outputs(args.batch)
    pairs = random_outputs(2 * args.batch, seed=1)  # image + flipped image heads

    def decode(outputs):
        return decode_corners(*(outputs[key] for key in OUTPUT_KEYS))

    def candidates(outputs):
        # The network is stood in for by fixed heads: canvas, decode, flip merge, rescale.
        found = decoder.candidates(lambda canvas: outputs, images)
        return {key: value for key, value in found.items() if key != "heads"}

    def whole(outputs):
        return decoder(lambda canvas: outputs, images)

    stages = (
        ("decode_corners", decode, single),
        ("soft-NMS (2000 pairs)", decoder.suppress, tf.function(candidates)(pairs)),
        ("decoder without network", whole, pairs),
    )
    rows = []
    for name, fn, inputs in stages:
        for mode, jit in (("graph", False), ("XLA", True)):
            ms = time_ms(tf.function(fn, jit_compile=jit), inputs, args.repeats)
            rows.append((name, mode, ms / args.batch))

    print(
        f"\nK=100, C={NUM_CLASSES}, {OUTPUT_SIZE}x{OUTPUT_SIZE} maps, batch {args.batch}, "
        f"median of {args.repeats} ({tf.config.list_physical_devices()[0].device_type})"
    )
    print(f"{'stage':<28}{'mode':<8}{'ms/image':>10}")
    for name, mode, ms in rows:
        print(f"{name:<28}{mode:<8}{ms:>10.2f}")
    by_key = {(name, mode): ms for name, mode, ms in rows}
    for name, _, _ in stages:
        print(f"{name}: XLA / graph = {by_key[(name, 'XLA')] / by_key[(name, 'graph')]:.2f}")


if __name__ == "__main__":
    main()
