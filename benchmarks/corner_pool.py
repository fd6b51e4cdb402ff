"""Corner pooling speed: `cornernet_tf.ops.corner_pool` against the alternatives.

Times the forward and the forward+backward of a top pool on one tensor (default
[8, 128, 128, 128] float32, the Hourglass-104 feature map at batch 8), in one
run and on the same data:

- `ours`: `corner_pool` in a `tf.function` with static shapes (one chain of
  `tf.maximum` over the rows); `ours_dynamic`: with unknown H and W (chunks of
  32 rows plus a carry); `ours_xla`: with `jit_compile=True` (a
  `tf.while_loop` over rows with a hand-written backward);
- `torch`: `torch.flip` + `torch.cummax` in NCHW with autograd (mmcv's method);
- alternative TensorFlow formulations: the op's chunked path on static shapes
  (`chunked`), Hillis-Steele doubling with shifted maxima and autodiff
  (`doubling`), the same doubling with a hand-written segmented-sum backward
  (`doubling_custom_grad`), `tf.scan` (`tf_scan`, the naive baseline),
  `keras.ops.associative_scan` (`assoc_scan`), a `tf.while_loop` over rows with
  a TensorArray and autodiff (`while_rows`), and the op's XLA path outside XLA
  (`while_rows_custom_grad`);
- `floor`: one elementwise pass, `tf.maximum(x, 0)`, the memory-bandwidth floor.

`--xla-all` adds each TensorFlow row compiled with XLA (`<row>_xla`).

Calls are interleaved round by round so that load from other processes hits
every row alike; the table shows medians and the ratios to torch and to the
floor. Usage:

    python benchmarks/corner_pool.py [--shape 8,128,128,128] [--threads 2]
        [--rounds 5] [--only ours,torch,floor] [--direction top]
"""

import argparse
import os
import statistics
import time

import numpy as np
import tensorflow as tf

tf.get_logger().setLevel("ERROR")  # retracing notes for the many functions built here

ALL = (
    "ours",
    "ours_dynamic",
    "ours_xla",
    "torch",
    "chunked",
    "doubling",
    "doubling_custom_grad",
    "tf_scan",
    "assoc_scan",
    "while_rows",
    "while_rows_custom_grad",
    "floor",
)
_AXES = {"top": (1, True), "left": (2, True), "bottom": (1, False), "right": (2, False)}


def chunked(x, axis, toward_end):
    """The op's path for long or unknown lengths (chunks of 32 rows + a carry)."""
    from cornernet_tf.ops.corner_pool import _chunked_scan

    return _chunked_scan(x, axis, toward_end)


def doubling(x, axis, toward_end):
    """Hillis-Steele: log2(n) steps of max with the tensor shifted by 1, 2, 4, ..."""
    n = x.shape[axis]
    y = x
    shift = 1
    while shift < n:
        begin = [0] * 4
        padding = [[0, 0]] * 4
        if toward_end:
            begin[axis] = shift
            padding[axis] = [0, shift]
        size = [-1] * 4
        size[axis] = n - shift
        shifted = tf.pad(tf.slice(y, begin, size), padding, constant_values=float("-inf"))
        y = tf.maximum(shifted, y)
        shift *= 2
    return y


def doubling_custom_grad(x, axis, toward_end):
    """The op's dynamic-length path applied to the whole axis (hand-written backward)."""
    from cornernet_tf.ops.corner_pool import _doubling_scan

    return _doubling_scan(x, axis, toward_end)


def _to_front(x, axis):
    perm = [axis] + [i for i in range(4) if i != axis]
    return tf.transpose(x, perm), np.argsort(perm).tolist()


def tf_scan(x, axis, toward_end):
    front, inverse = _to_front(x, axis)  # [N, ...]
    return tf.transpose(tf.scan(tf.maximum, front, reverse=toward_end), inverse)


def assoc_scan(x, axis, toward_end):
    import keras

    return keras.ops.associative_scan(tf.maximum, x, reverse=toward_end, axis=axis)


def while_rows(x, axis, toward_end):
    front, inverse = _to_front(x, axis)  # [N, ...]
    n = tf.shape(front)[0]
    rows = tf.TensorArray(x.dtype, size=n)
    first = n - 1 if toward_end else 0
    step = -1 if toward_end else 1

    def body(k, i, running, rows):
        running = tf.maximum(running, front[i])
        return k + 1, i + step, running, rows.write(i, running)

    _, _, _, rows = tf.while_loop(
        lambda k, i, r, a: k < n,
        body,
        (0, first, tf.fill(tf.shape(front)[1:], float("-inf")), rows),
        maximum_iterations=n,
    )
    return tf.transpose(rows.stack(), inverse)


def while_rows_custom_grad(x, axis, toward_end):
    """The op's path under XLA: `while_rows` with a hand-written backward loop."""
    from cornernet_tf.ops.corner_pool import _while_scan

    return _while_scan(x, axis, toward_end)


def _tf_functions(name, direction, shape, jit):
    from cornernet_tf.ops import corner_pool

    axis, toward_end = _AXES[direction]
    if name.startswith("ours"):
        fn = lambda x: corner_pool(x, direction)
    elif name.startswith("floor"):
        fn = lambda x: tf.maximum(x, 0.0)
    else:
        formulation = globals()[name.removesuffix("_xla")]
        fn = lambda x: formulation(x, axis, toward_end)
    dims = [shape[0], None, None, shape[3]] if name == "ours_dynamic" else list(shape)
    spec = tf.TensorSpec(dims, tf.float32)

    def forward_backward(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x, output_gradients=dy)

    forward = tf.function(fn, input_signature=[spec], jit_compile=jit)
    both = tf.function(forward_backward, input_signature=[spec, spec], jit_compile=jit)
    return forward, both


def _torch_functions(direction, x_nhwc, dy_nhwc):
    import torch

    dim = 2 if _AXES[direction][0] == 1 else 3  # NCHW
    flip = _AXES[direction][1]
    x = torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2)))
    dy = torch.from_numpy(np.ascontiguousarray(dy_nhwc.transpose(0, 3, 1, 2)))

    def pool(t):
        if flip:
            return torch.flip(torch.cummax(torch.flip(t, [dim]), dim=dim).values, [dim])
        return torch.cummax(t, dim=dim).values

    def forward():
        with torch.no_grad():
            return pool(x)

    def both():
        leaf = x.detach().requires_grad_(True)
        y = pool(leaf)
        y.backward(dy)
        return y, leaf.grad

    return forward, both


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shape", default="8,128,128,128", help="B,H,W,C (NHWC)")
    parser.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8))
    parser.add_argument("--rounds", type=int, default=5, help="timed calls per row")
    parser.add_argument("--only", default=",".join(ALL), help="comma-separated rows")
    parser.add_argument("--direction", default="top", choices=sorted(_AXES))
    parser.add_argument(
        "--xla-all",
        action="store_true",
        help="also time every TF row with jit_compile=True (slow to compile)",
    )
    args = parser.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    names = [n for n in args.only.split(",") if n]
    if args.xla_all:
        skip = {"torch", "ours_dynamic", *names}
        names += [f"{n}_xla" for n in names if n != "ours_xla" and f"{n}_xla" not in skip]
    unknown = sorted({n.removesuffix("_xla") for n in names} - set(ALL) - {"ours"})
    if len(shape) != 4 or min(shape) < 1:
        parser.error(f"--shape must be four positive integers B,H,W,C, got {args.shape!r}")
    if unknown:
        parser.error(f"--only: unknown rows {unknown}; choose from {', '.join(ALL)}")

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(shape, dtype=np.float32)
    dy_np = rng.standard_normal(shape, dtype=np.float32)
    x, dy = tf.constant(x_np), tf.constant(dy_np)
    print(
        f"corner_pool {args.direction}, shape {list(shape)} float32 (NHWC; torch NCHW), "
        f"threads: torch {args.threads}, TF intra-op {args.threads} / inter-op 1, "
        f"{args.rounds} rounds",
        flush=True,
    )

    calls, reference = {}, None
    for name in names:
        if name == "torch":
            import torch

            torch.set_num_threads(args.threads)
            forward, both = _torch_functions(args.direction, x_np, dy_np)
            calls[name] = (forward, both)
            out = forward().numpy().transpose(0, 2, 3, 1)
            both()  # warm up autograd outside the timed rounds
        else:
            jit = name.endswith("_xla")
            forward, both = _tf_functions(name, args.direction, shape, jit=jit)
            start = time.perf_counter()
            out = forward(x).numpy()
            both(x, dy)  # trace and compile outside the timed rounds
            print(f"  {name}: traced/compiled in {time.perf_counter() - start:.1f} s", flush=True)
            calls[name] = (lambda f=forward: f(x), lambda f=both: f(x, dy))
        if not name.startswith("floor"):
            if reference is None:
                reference = out
            elif not np.array_equal(out, reference):
                raise SystemExit(f"{name}: forward differs from {names[0]}")

    times = {name: ([], []) for name in calls}
    for _ in range(args.rounds):
        for name, (forward, both) in calls.items():
            for call, record in zip((forward, both), times[name], strict=True):
                start = time.perf_counter()
                call()
                record.append(time.perf_counter() - start)

    median = {n: tuple(statistics.median(t) * 1e3 for t in times[n]) for n in times}
    base = median.get("torch")
    floor = median.get("floor", (None,))[0]
    header = f"{'row':22s} {'fwd ms':>9s} {'fwd+bwd ms':>11s}"
    header += f" {'fwd/torch':>10s} {'f+b/torch':>10s}" if base else ""
    header += f" {'fwd/floor':>10s} {'f+b/floor':>10s}" if floor else ""
    print(header)
    for name, (fwd, fb) in median.items():
        line = f"{name:22s} {fwd:9.1f} {fb:11.1f}"
        if base:
            line += f" {fwd / base[0]:10.3f} {fb / base[1]:10.3f}"
        if floor:
            line += f" {fwd / floor:10.2f} {fb / floor:10.2f}"
        print(line)
    print("floor: one elementwise pass (tf.maximum(x, 0), forward).")
    print("Targets (docs/performance.md): ours fwd+bwd <= 0.25x torch fwd+bwd and <= 3x the floor.")


if __name__ == "__main__":
    main()
