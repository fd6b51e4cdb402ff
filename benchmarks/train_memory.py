"""Hourglass-104 training: peak memory and step time, against the official PyTorch code.

One Adam step on a batch of random images (511x511, batch 2, two boxes each,
80 classes) for each side, every side in its own child process so that its
peak resident memory (`ru_maxrss`) is its own, one after the other in this run:

- `ours`: `CornerNet.from_preset("hourglass104")`, compiled (which creates
  Adam's slots), the Keras train step as a graph (`jit_compile=False`),
  float32, with TensorFlow's pooled host allocator as `cornernet-train` runs
  it (`TF_CPU_ALLOCATOR_USE_BFC=false` in the environment measures the system
  allocator);
- `recompute`: the same with `compile(recompute_stacks=True)`
  (`train.recompute_stacks`);
- `xla`: `ours` with the whole step compiled by XLA (`jit_compile=True`), what
  `train.jit_compile: auto` picks on GPUs (on CPUs it runs the graph, as
  `ours`; the first step includes the compilation);
- `official`: with `--official-root DIR`, a checkout of princeton-vl/CornerNet:
  its `models/CornerNet.py` network and `AELoss`, stepped as its
  `nnet/py_factory.py` `train` does (zero_grad, loss, mean, backward, Adam
  step). Its corner pooling is the C++ extension in `models/py_utils/_cpools`,
  built with its own `setup.py`; `--cpools DIR` names the folder holding the
  built `top_pool`, `bottom_pool`, `left_pool` and `right_pool` modules
  (default: that `_cpools` folder, e.g. after `python setup.py build_ext
  --inplace` there). The published sources target PyTorch 0.4 and CUDA
  (`at::zeros(torch::CUDA(...), ...)` does not compile against PyTorch 2, and
  the backward allocates on the GPU); where they cannot be imported, the
  script says so and puts in their place `torch.cummax` modules with the same
  interface (`forward(input) -> [output]`, `backward(input, grad) -> [grad]`),
  so that the official autograd functions save the same tensors.

Without `--official-root` there is no baseline and the script says so.

    python benchmarks/train_memory.py [--official-root DIR] [--cpools DIR]
        [--sides ours,recompute,xla,official] [--steps 1] [--size 511] [--batch 2]

Each side runs one untimed step (tracing, allocation) then `--steps` timed
ones (the table shows their median); an Hourglass-104 side needs about 8 GB
of memory. With the pooled allocator our sides also report the most bytes
their tensors held at once (TensorFlow's own count), which the peak RSS
exceeds by the runtime, the graph and the pool's unused space.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from official_models import import_corner_pools

from cornernet_tf.utils.host_memory import HOST_ALLOCATOR_ENV, pool_host_memory

RESULT = "RESULT "


def _targets(size, batch, num_classes=80, max_objects=128):
    """Images [B, H, W, 3] (0-255) and our targets for two boxes per image."""
    import numpy as np
    import tensorflow as tf

    from cornernet_tf.targets import encode_targets

    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    boxes = np.array([[0.1, 0.1, 0.5, 0.6], [0.3, 0.2, 0.9, 0.8]], "float32") * (size - 1)
    target = encode_targets(
        boxes,
        np.array([0, 1], "int32"),
        input_size=size,
        output_size=(size + 1) // 4,
        num_classes=num_classes,
        max_objects=max_objects,
    )
    keys = ("tl_heatmap", "br_heatmap", "tl_index", "br_index", "tl_offset", "br_offset", "mask")
    return images, {k: tf.stack([target[k]] * batch).numpy() for k in keys}


def _time_steps(step, steps):
    step()  # tracing / allocation
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def _run_ours(args, recompute, jit_compile):
    import keras

    from cornernet_tf.models import CornerNet

    images, targets = _targets(args.size, args.batch)
    model = CornerNet.from_preset("hourglass104")
    model.compile(
        keras.optimizers.Adam(2.5e-4), jit_compile=jit_compile, recompute_stacks=recompute
    )
    return _time_steps(lambda: model.train_on_batch(images, targets), args.steps)


def _run_official(args):
    import numpy as np
    import torch

    pools = import_corner_pools(args.cpools or _default_cpools(args.official_root))
    print(f"official corner pooling: {pools}")
    sys.path.insert(0, args.official_root)
    from models import CornerNet as official  # princeton-vl/CornerNet models/CornerNet.py

    images, targets = _targets(args.size, args.batch)
    network = official.model(None)
    loss_fn = official.loss
    optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, network.parameters()))
    network.train()
    # The official sampler's layout (`sample/coco.py`): NCHW images, heatmaps
    # [B, C, H, W], int64 indices, uint8 tag masks.
    xs = [
        torch.from_numpy(images.transpose(0, 3, 1, 2).copy()),
        torch.from_numpy(targets["tl_index"].astype(np.int64)),
        torch.from_numpy(targets["br_index"].astype(np.int64)),
    ]
    ys = [
        torch.from_numpy(targets["tl_heatmap"].transpose(0, 3, 1, 2).copy()),
        torch.from_numpy(targets["br_heatmap"].transpose(0, 3, 1, 2).copy()),
        torch.from_numpy(targets["mask"].astype(np.uint8)),
        torch.from_numpy(targets["tl_offset"]),
        torch.from_numpy(targets["br_offset"]),
    ]

    def step():
        optimizer.zero_grad()
        loss = loss_fn(network(*xs), ys).mean()
        loss.backward()
        optimizer.step()

    return _time_steps(step, args.steps)


def _default_cpools(official_root):
    return os.path.join(official_root, "models", "py_utils", "_cpools")


def _child(args):
    if args.child == "official":
        times = _run_official(args)
    else:
        times = _run_ours(
            args, recompute=args.child == "recompute", jit_compile=args.child == "xla"
        )
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {"side": args.child, "times": times, "peak_gb": peak_gb, "tensors_gb": None}
    if args.child != "official":
        import tensorflow as tf

        try:  # the pooled allocator counts the bytes its tensors held at most
            result["tensors_gb"] = tf.config.experimental.get_memory_info("CPU:0")["peak"] / 2**30
        except ValueError:  # the system allocator keeps no count
            pass
    print(RESULT + json.dumps(result))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official-root", help="a checkout of princeton-vl/CornerNet")
    parser.add_argument("--cpools", help="folder of the built official corner-pool modules")
    parser.add_argument("--sides", default="ours,recompute,official")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per side")
    parser.add_argument("--size", type=int, default=511)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0

    sides = [s for s in args.sides.split(",") if s]
    unknown = sorted(set(sides) - {"ours", "recompute", "xla", "official"})
    if unknown:
        parser.error(f"--sides: unknown side {unknown[0]!r}; use ours, recompute, xla, official.")
    if args.official_root is None:
        sides = [s for s in sides if s != "official"]
        print("no --official-root: no baseline, our sides only.")
    elif not os.path.isfile(os.path.join(args.official_root, "models", "CornerNet.py")):
        parser.error(
            f"--official-root {args.official_root}: no models/CornerNet.py there; pass a "
            "checkout of princeton-vl/CornerNet."
        )

    pool_host_memory()  # the children inherit cornernet-train's allocator setting
    print(f"our sides with {HOST_ALLOCATOR_ENV}={os.environ[HOST_ALLOCATOR_ENV]}")
    results = {}
    for side in sides:
        command = [sys.executable, __file__, "--child", side, "--steps", str(args.steps)]
        command += ["--size", str(args.size), "--batch", str(args.batch)]
        if args.official_root:
            command += ["--official-root", os.path.abspath(args.official_root)]
        if args.cpools:
            command += ["--cpools", os.path.abspath(args.cpools)]
        print(f"running {side} ...", flush=True)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run(command, capture_output=True, text=True, env=env)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT)]
        if proc.returncode != 0 or not lines:
            print(f"{side} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
            continue
        results[side] = json.loads(lines[-1][len(RESULT) :])

    print(f"\nHourglass-104 train step, {args.size}x{args.size}, batch {args.batch}:")
    print(f"{'side':<12}{'s/step':>10}{'peak RSS GB':>14}{'TF tensors peak GB':>20}")
    for side, r in results.items():
        seconds = sorted(r["times"])[len(r["times"]) // 2]
        r["seconds"] = seconds
        tensors = "-" if r["tensors_gb"] is None else f"{r['tensors_gb']:.2f}"
        print(f"{side:<12}{seconds:>10.1f}{r['peak_gb']:>14.2f}{tensors:>20}")
    if "official" in results:
        base = results["official"]
        for side in ("ours", "recompute", "xla"):
            if side in results:
                print(
                    f"{side} / official: speed {base['seconds'] / results[side]['seconds']:.2f}x, "
                    f"memory {results[side]['peak_gb'] / base['peak_gb']:.2f}x"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
