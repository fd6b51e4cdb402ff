"""Training input throughput: the tf.data pipeline vs the official sampler and its queue.

The baseline is princeton-vl/CornerNet's training input path: `sample/coco.py`
`kp_detection` (random crop, resize, clip, flip, colour jitter, lighting,
normalisation, the per-box `draw_gaussian` loops) run in one process per core,
each putting whole batches of torch tensors on a `torch.multiprocessing` queue
(size 5, the official `prefetch_size`) as `train.py`'s `prefetch_data` does.
With `--official-root DIR`, a checkout of that repository, the official code
itself runs, fed by `OfficialDB`, a minimal stand-in for its `db` object;
without it the baseline is this script's numpy/OpenCV restatement of the same
sampler, and the output says so. The baseline is timed with the queue (the
real path: batches taken off the queue by the trainer process) and without it
(the processes' own sampling rate). All sides produce 511x511 inputs, 80-class
128x128 heatmaps and 128 tag slots, batch 8, from the same files: 640x480
JPEGs with 2-12 objects (generated shapes, categories spread over 80 classes).
The tf.data side runs in a fresh process per round, twice: with TensorFlow's
pooled host allocator, as `cornernet-train` runs it
(`cornernet_tf.utils.host_memory`), and with the system allocator.

    python benchmarks/data_pipeline.py --official-root ../CornerNet
        [--images 64 --batch-size 8 --batches 30 --rounds 3]

The sides alternate for `--rounds` rounds (so that a change of machine load
affects all of them); the best round of each is compared, and the ratios of
the rounds give the spread. Target: >= 2x the baseline with the queue.
"""

import argparse
import gc
import json
import math
import os
import queue
import sys
import tempfile
import time

import cv2
import numpy as np

from cornernet_tf.utils.host_memory import HOST_ALLOCATOR_ENV

INPUT, OUTPUT, NUM_CLASSES, MAX_TAGS, BORDER, GAUSSIAN_IOU = 511, 128, 80, 128, 128, 0.3
SCALES = np.arange(0.6, 1.4, 0.1)
MEAN_BGR = np.array([0.40789654, 0.44719302, 0.47026115], np.float32)
STD_BGR = np.array([0.28863828, 0.27408164, 0.27809835], np.float32)
EIG_VAL = np.array([0.2141788, 0.01817699, 0.00341571], np.float32)
EIG_VEC = np.array(
    [
        [-0.58752847, -0.69563484, 0.41340352],
        [-0.5832747, 0.00994535, -0.81221408],
        [-0.56089297, 0.71832671, 0.41158938],
    ],
    np.float32,
)


def make_images(root: str, count: int, seed: int = 0) -> None:
    """640x480 JPEG shapes with their categories spread over 80 COCO-like classes."""
    from cornernet_tf.data import shapes

    config = shapes.ShapesConfig(height=480, width=640, min_objects=2, max_objects=12)
    path = shapes.write_split(root, "train2017", count, seed=seed, config=config)
    with open(path) as f:
        data = json.load(f)
    rng = np.random.default_rng(seed)
    data["categories"] = [{"id": k + 1, "name": f"class{k}"} for k in range(NUM_CLASSES)]
    for ann in data["annotations"]:
        ann["category_id"] = int(rng.integers(1, NUM_CLASSES + 1))
    with open(path, "w") as f:
        json.dump(data, f)


# --- the official sampler, numpy/OpenCV ----------------------------------------------


def _border(border, size):
    i = 1
    while size - border // i <= border // i:
        i *= 2
    return border // i


def _random_crop(rng, image, dets):
    img_h, img_w = image.shape[:2]
    scale = rng.choice(SCALES)
    height = width = int(INPUT * scale)
    canvas = np.zeros((height, width, 3), image.dtype)
    w_border, h_border = _border(BORDER, img_w), _border(BORDER, img_h)
    ctx = rng.integers(low=w_border, high=img_w - w_border)
    cty = rng.integers(low=h_border, high=img_h - h_border)
    x0, x1 = max(ctx - width // 2, 0), min(ctx + width // 2, img_w)
    y0, y1 = max(cty - height // 2, 0), min(cty + height // 2, img_h)
    left, right, top, bottom = ctx - x0, x1 - ctx, cty - y0, y1 - cty
    cx, cy = width // 2, height // 2
    canvas[cy - top : cy + bottom, cx - left : cx + right] = image[y0:y1, x0:x1]
    dets = dets.copy()
    dets[:, 0:4:2] += cx - left - x0
    dets[:, 1:4:2] += cy - top - y0
    return canvas, dets


def _gaussian_radius(height, width, overlap):
    b1, c1 = height + width, width * height * (1 - overlap) / (1 + overlap)
    r1 = (b1 - math.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (height + width), (1 - overlap) * width * height
    r2 = (b2 - math.sqrt(b2**2 - 16 * c2)) / 8
    a3, b3, c3 = 4 * overlap, -2 * overlap * (height + width), (overlap - 1) * width * height
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return min(r1, r2, r3)


def _draw_gaussian(heatmap, x, y, radius):
    diameter = 2 * radius + 1
    sigma = diameter / 6
    m = (diameter - 1) / 2
    yy, xx = np.ogrid[-m : m + 1, -m : m + 1]
    gaussian = np.exp(-(xx * xx + yy * yy) / (2 * sigma * sigma))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    height, width = heatmap.shape
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    region = heatmap[y - top : y + bottom, x - left : x + right]
    patch = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    np.maximum(region, patch, out=region)


def _color_and_lighting(rng, image):
    gs = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    gs_mean = gs.mean()
    ops = ["brightness", "contrast", "saturation"]
    for op in rng.permutation(ops):
        alpha = 1.0 + rng.uniform(low=-0.4, high=0.4)
        if op == "brightness":
            image *= alpha
        elif op == "contrast":
            image *= alpha
            image += (1 - alpha) * gs_mean
        else:
            image *= alpha
            image += (1 - alpha) * gs[:, :, None]
    image += np.dot(EIG_VEC, EIG_VAL * rng.normal(scale=0.1, size=(3,)))


def official_batch(rng, records, order, position, batch_size):
    """One batch as the official `kp_detection` builds it."""
    images = np.zeros((batch_size, 3, INPUT, INPUT), np.float32)
    tl_heat = np.zeros((batch_size, NUM_CLASSES, OUTPUT, OUTPUT), np.float32)
    br_heat = np.zeros((batch_size, NUM_CLASSES, OUTPUT, OUTPUT), np.float32)
    tl_regrs = np.zeros((batch_size, MAX_TAGS, 2), np.float32)
    br_regrs = np.zeros((batch_size, MAX_TAGS, 2), np.float32)
    tl_tags = np.zeros((batch_size, MAX_TAGS), np.int64)
    br_tags = np.zeros((batch_size, MAX_TAGS), np.int64)
    masks = np.zeros((batch_size, MAX_TAGS), np.uint8)
    ratio = OUTPUT / INPUT
    for b in range(batch_size):
        path, dets = records[order[position % len(order)]]
        position += 1
        image = cv2.imread(path)
        image, dets = _random_crop(rng, image, dets)
        scale = INPUT / image.shape[0]
        image = cv2.resize(image, (INPUT, INPUT))
        dets = dets.copy()
        dets[:, 0:4] *= scale
        dets[:, 0:4:2] = np.clip(dets[:, 0:4:2], 0, INPUT - 1)
        dets[:, 1:4:2] = np.clip(dets[:, 1:4:2], 0, INPUT - 1)
        dets = dets[((dets[:, 2] - dets[:, 0]) > 0) & ((dets[:, 3] - dets[:, 1]) > 0)]
        if rng.uniform() > 0.5:
            image[:] = image[:, ::-1, :]
            dets[:, [0, 2]] = INPUT - dets[:, [2, 0]] - 1
        image = image.astype(np.float32) / 255.0
        _color_and_lighting(rng, image)
        image -= MEAN_BGR
        image /= STD_BGR
        images[b] = image.transpose((2, 0, 1))
        for k, det in enumerate(dets[:MAX_TAGS]):
            cat = int(det[4]) - 1
            fxtl, fytl, fxbr, fybr = det[0] * ratio, det[1] * ratio, det[2] * ratio, det[3] * ratio
            xtl, ytl, xbr, ybr = int(fxtl), int(fytl), int(fxbr), int(fybr)
            w = math.ceil((det[2] - det[0]) * ratio)
            h = math.ceil((det[3] - det[1]) * ratio)
            radius = max(0, int(_gaussian_radius(h, w, GAUSSIAN_IOU)))
            _draw_gaussian(tl_heat[b, cat], xtl, ytl, radius)
            _draw_gaussian(br_heat[b, cat], xbr, ybr, radius)
            tl_regrs[b, k] = [fxtl - xtl, fytl - ytl]
            br_regrs[b, k] = [fxbr - xbr, fybr - ybr]
            tl_tags[b, k] = ytl * OUTPUT + xtl
            br_tags[b, k] = ybr * OUTPUT + xbr
            masks[b, k] = 1
    return [images, tl_heat, br_heat, masks, tl_regrs, br_regrs, tl_tags, br_tags], position


# --- the official code itself (--official-root) ------------------------------------

# The official files `kp_detection` imports (with `import config`, `import utils`).
OFFICIAL_FILES = ("sample/coco.py", "sample/utils.py", "utils/image.py", "config.py")


class OfficialDB:
    """What the official `kp_detection` reads from its `db` (`db/base.py`, `db/coco.py`).

    The settings of `config/CornerNet.json` (`rand_scales` expanded with
    np.arange as `db/detection.py` does), the COCO colour constants, and
    per-image detections `[N, 5]` float64 (x1, y1, x2, y2, 1-based class) as
    `MSCOCO.detections` returns them.
    """

    def __init__(self, records):
        self.configs = {
            "categories": NUM_CLASSES,
            "input_size": [INPUT, INPUT],
            "output_sizes": [[OUTPUT, OUTPUT]],
            "border": BORDER,
            "lighting": True,
            "rand_crop": True,
            "rand_color": True,
            "rand_scales": SCALES,
            "gaussian_bump": True,
            "gaussian_iou": GAUSSIAN_IOU,
            "gaussian_radius": -1,
        }
        self.mean, self.std = MEAN_BGR, STD_BGR
        self.eig_val, self.eig_vec = EIG_VAL, EIG_VEC
        self.db_inds = np.arange(len(records))
        self._records = records
        self._rng = None

    def shuffle_inds(self, quiet=False):
        if self._rng is None:
            self._rng = np.random.RandomState(os.getpid())
        self.db_inds = self.db_inds[self._rng.permutation(len(self.db_inds))]

    def image_file(self, ind):
        return self._records[ind][0]

    def detections(self, ind):
        return self._records[ind][1].astype(float).copy()


def _batch_source(official_root, records, batch_size, seed):
    """A function returning one batch: the official `sample_data`, or the restatement."""
    if official_root is None:
        import torch

        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(records))
        position = 0

        def restated():
            nonlocal position
            arrays, position = official_batch(rng, records, order, position, batch_size)
            return [torch.from_numpy(a) for a in arrays]

        return restated
    # The official modules, as its train.py imports them (from the repository root).
    sys.path.insert(0, official_root)
    from config import system_configs
    from sample.coco import sample_data

    system_configs.update_config({"batch_size": batch_size, "sampling_function": "kp_detection"})
    db = OfficialDB(records)
    # as train.py's prefetch_data; the official random_crop and flip draw from np.random
    np.random.seed(os.getpid())  # noqa: NPY002
    ind = 0

    def official():
        nonlocal ind
        data, ind = sample_data(db, ind, data_aug=True)
        return data

    return official


def _worker(official_root, records, batch_size, seed, queue, report, warmup, batches):
    """One prefetch process: batches onto `queue`, or (queue None) timed and reported."""
    sample = _batch_source(official_root, records, batch_size, seed)
    if queue is not None:
        while True:  # train.py's prefetch_data
            queue.put(sample())
    for _ in range(warmup):
        sample()
    start = time.perf_counter()
    for _ in range(batches):
        sample()
    report.put(batches * batch_size / (time.perf_counter() - start))
    while True:  # keep loading the machine until the others are done
        sample()


def bench_sampler(official_root, records, batch_size, batches, warmup, workers, use_queue):
    """images/s of `workers` sampler processes, taking batches off a torch queue or not."""
    import torch.multiprocessing as mp

    # spawn: forking after TensorFlow and OpenCV have started their thread pools
    # can deadlock the children (the official train.py forks; startup is not timed).
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(5) if use_queue else None  # official prefetch_size
    report = ctx.Queue()
    per_worker = math.ceil(batches / workers)
    procs = [
        ctx.Process(
            target=_worker,
            args=(official_root, records, batch_size, seed, queue, report, warmup, per_worker),
            daemon=True,
        )
        for seed in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        if not use_queue:
            return sum(report.get() for _ in procs)
        for _ in range(warmup):
            queue.get()
        start = time.perf_counter()
        for _ in range(batches):
            queue.get()
        return batches * batch_size / (time.perf_counter() - start)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


def tf_iterator(root, batch_size):
    from cornernet_tf.data import augment, pipeline
    from cornernet_tf.spec.config import DataConfig

    # The official sampler's settings; the scales as np.arange gives them (SCALES),
    # which is what the official code crops with.
    config = DataConfig(
        train_split="train2017",
        input_size=INPUT,
        output_size=OUTPUT,
        rand_scales=augment.DEFAULT_SCALES,
        border=BORDER,
        gaussian_iou=GAUSSIAN_IOU,
        max_objects=MAX_TAGS,
    )
    data = pipeline.make_train_dataset(root, config, batch_size=batch_size, seed=0)
    return iter(data.dataset)


def bench_tf(root, batch_size, batches, warmup):
    """images/s of a fresh tf.data pipeline, deleted afterwards.

    A pipeline per round: a live iterator would keep filling its buffers in
    the background while the baseline is timed, slowing the baseline and
    giving this side a head start.
    """
    iterator = tf_iterator(root, batch_size)
    for _ in range(2 * warmup):  # tracing, autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        images, targets = next(iterator)
    _ = images.numpy(), targets["tl_heatmap"].numpy()
    elapsed = time.perf_counter() - start
    del iterator, images, targets
    gc.collect()
    return batches * batch_size / elapsed


def _tf_side(root, batch_size, batches, warmup, pooled, report):
    # TensorFlow picks its host allocator when it starts: set it first.
    os.environ[HOST_ALLOCATOR_ENV] = "true" if pooled else "false"
    report.put(bench_tf(root, batch_size, batches, warmup))


def bench_tf_process(root, batch_size, batches, warmup, pooled):
    """`bench_tf` in a fresh process with TensorFlow's pooled host allocator or the system's."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    report = ctx.Queue()
    proc = ctx.Process(
        target=_tf_side, args=(root, batch_size, batches, warmup, pooled, report), daemon=True
    )
    proc.start()
    try:
        while True:
            try:
                return report.get(timeout=5)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError(
                        f"the tf.data side exited (code {proc.exitcode}) without a result; "
                        "see its error above"
                    ) from None
    finally:
        proc.join(timeout=60)
        proc.terminate()


def _check_official_root(parser, root):
    """The checkout's path, or a usage error naming the missing file and the fix."""
    if root is None:
        return None
    root = os.path.abspath(root)
    missing = [f for f in OFFICIAL_FILES if not os.path.isfile(os.path.join(root, f))]
    if missing:
        parser.error(
            f"--official-root {root}: {', '.join(missing)} not found; pass the folder of a "
            "checkout of https://github.com/princeton-vl/CornerNet (the one holding sample/ "
            "and config.py)."
        )
    for module in ("torch", "tqdm"):  # tqdm: the official utils package imports it
        try:
            __import__(module)
        except ImportError:
            parser.error(
                f"--official-root needs {module}: pip install 'cornernet_tf[bench]' (see the "
                "bench extra in pyproject.toml)."
            )
    return root


def _ratios(ours, theirs):
    per_round = [a / b for a, b in zip(ours, theirs, strict=True)]
    return f"{max(ours) / max(theirs):.2f}x (rounds {min(per_round):.2f}-{max(per_round):.2f}x)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--official-root",
        metavar="DIR",
        help="a checkout of princeton-vl/CornerNet: time its own kp_detection (without it the "
        "baseline is this script's restatement of that sampler)",
    )
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="timed batches")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="sampler processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best is kept")
    args = parser.parse_args(argv)
    for name in ("images", "batch_size", "batches", "warmup", "workers", "rounds"):
        if getattr(args, name) < (0 if name == "warmup" else 1):
            parser.error(f"--{name.replace('_', '-')} must be a positive integer.")
    official_root = _check_official_root(parser, args.official_root)
    baseline = (
        f"official kp_detection ({official_root})"
        if official_root
        else "restatement of the official sampler (no --official-root given)"
    )
    with tempfile.TemporaryDirectory() as root:
        make_images(root, args.images)
        from cornernet_tf.data.coco import CocoDataset

        dataset = CocoDataset.open(root, "train2017")
        records = [
            (r.path, np.concatenate([r.boxes, r.labels[:, None] + 1.0], 1).astype(np.float64))
            for r in dataset.records
        ]
        queued, bare, ours, system = [], [], [], []
        # Alternate so that a change in machine load hits every side; keep each one's best round.
        for _ in range(args.rounds):
            for use_queue, results in ((True, queued), (False, bare)):
                results.append(
                    bench_sampler(
                        official_root,
                        records,
                        args.batch_size,
                        args.batches,
                        args.warmup,
                        args.workers,
                        use_queue,
                    )
                )
            for pooled, results in ((True, ours), (False, system)):
                results.append(
                    bench_tf_process(root, args.batch_size, args.batches, args.warmup, pooled)
                )
    print(
        f"data pipeline, 640x480 JPEG -> 511x511 input, {NUM_CLASSES} classes, {OUTPUT}x{OUTPUT} "
        f"targets, batch {args.batch_size}, {os.cpu_count()} cores"
    )
    print(f"  baseline: {baseline}, {args.workers} processes")
    rows = (
        ("baseline + torch.multiprocessing queue", queued),
        ("baseline, no queue", bare),
        ("cornernet_tf tf.data, pooled host memory", ours),
        ("cornernet_tf tf.data, system allocator", system),
    )
    for name, values in rows:
        print(f"  {name:40s} {max(values):7.1f} images/s  rounds {[round(v, 1) for v in values]}")
    print("  tf.data with pooled host memory (as cornernet-train runs it):")
    print(f"    ratio to the baseline with the queue: {_ratios(ours, queued)}")
    print(f"    ratio to the baseline without it:     {_ratios(ours, bare)}")
    print(f"  tf.data with the system allocator ({HOST_ALLOCATOR_ENV}=false):")
    print(f"    ratio to the baseline with the queue: {_ratios(system, queued)}")
    print(f"    ratio to the baseline without it:     {_ratios(system, bare)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
