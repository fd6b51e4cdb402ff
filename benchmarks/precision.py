"""Keras inference in float32 and bfloat16, against the official float32 forward, in one run.

For a preset (default hourglass104) at one size (default 511), with fresh
weights, one image: the network forward (`model(images, training=False)` as a
`tf.function`, the last stack's heads, batch 1) with the float32 policy and
with bfloat16 (`cornernet_tf.models.loading.with_precision`, Keras'
"mixed_bfloat16": bfloat16 convolutions on oneDNN, which uses AVX512-BF16 or
AMX where the CPU has them), and with `--official-root DIR` (a
princeton-vl/CornerNet-Lite checkout) the official float32 test forward under
`torch.no_grad()` (network and `_decode`, `official_models.lite_test_forward`;
OpenMP's passive wait, `official_models.passive_openmp`).
The rows run in turns (`timing.time_in_turns`); the table gives median and
minimum and the ratios. Decoding adds little to either side at this size
(benchmarks/decode.py).

    python benchmarks/precision.py [--preset hourglass104] [--size 511] [--repeats 5]
        [--official-root ../CornerNet-Lite] [--threads 2]
"""

import argparse
import os
import statistics

import numpy as np
from official_models import (
    LITE_NETWORKS,
    check_lite_root,
    lite_network,
    lite_test_forward,
    passive_openmp,
)
from timing import time_in_turns

OFFICIAL = "official PyTorch float32"


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next(line for line in cpuinfo if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return [flag for flag in flags if flag in ("avx512_bf16", "amx_bf16", "avx512_vnni")]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    parser.add_argument("--preset", default="hourglass104")
    parser.add_argument("--size", type=int, default=511)
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (official)")
    parser.add_argument("--official-root", help="a princeton-vl/CornerNet-Lite checkout")
    args = parser.parse_args(argv)
    if args.official_root:
        problem = check_lite_root(args.official_root, args.preset)
        if problem:
            parser.error(f"--official-root: {problem}.")
        openmp = passive_openmp()

    import tensorflow as tf

    from cornernet_tf.models import CornerNet
    from cornernet_tf.models.loading import with_precision

    model = CornerNet.from_preset(args.preset)
    model.build()
    image = np.random.default_rng(0).integers(0, 256, (1, args.size, args.size, 3))
    image = image.astype(np.uint8)
    spec = [tf.TensorSpec(image.shape, tf.uint8)]
    calls = {}
    for precision in ("float32", "bfloat16"):
        net = with_precision(model, precision)
        forward = tf.function(lambda x, net=net: net(x, training=False), input_signature=spec)
        calls[f"Keras {precision}"] = lambda f=forward: f(image)
    notes = [f"{os.cpu_count()} CPUs, flags {' '.join(_cpu_flags()) or '(none of bf16/amx)'}"]
    if args.official_root:
        import torch

        torch.set_num_threads(args.threads)
        network, pools = lite_network(args.official_root, args.preset)
        calls[OFFICIAL] = lite_test_forward(network, image, model.test_config)
        notes.append(f"official {LITE_NETWORKS[args.preset]}: corner pooling {pools}, {openmp}")
    else:
        notes.append("no --official-root: no official baseline")

    times = time_in_turns(calls, args.repeats)
    medians = {name: statistics.median(seconds) for name, seconds in times.items()}
    print(f"{args.preset} forward at {args.size}x{args.size}, batch 1, {args.repeats} rounds")
    for note in notes:
        print(note)
    print(f"{'side':<26} {'median ms':>10} {'min ms':>9} {'vs float32':>11} {'vs official':>12}")
    for name, seconds in times.items():
        line = f"{name:<26} {1e3 * medians[name]:10.1f} {1e3 * min(seconds):9.1f}"
        line += f" {medians[name] / medians['Keras float32']:10.2f}x"
        if OFFICIAL in medians:
            line += f" {medians[name] / medians[OFFICIAL]:11.2f}x"
        print(line)


if __name__ == "__main__":
    main()
