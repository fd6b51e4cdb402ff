"""Training input throughput: the tf.data pipeline vs the official numpy/OpenCV sampler.

The baseline restates princeton-vl/CornerNet's sampler (`sample/coco.py`
`kp_detection` with `random_crop`, `_resize_image`, `_clip_detections`, the
flip, `color_jittering_`, `lighting_`, `normalize_`, and the per-box
`draw_gaussian` loops) in numpy/OpenCV, run in one worker process per core that
put whole batches of torch tensors on a `torch.multiprocessing` queue, as the
official trainer's `prefetch_data` processes do. Both produce 511x511 inputs,
80-class 128x128 heatmaps and 128 tag slots from the same files: 640x480 JPEGs
with 2-12 objects (generated shapes, categories spread over 80 classes).

    python benchmarks/data_pipeline.py [--images 64 --batch-size 8 --batches 30 --rounds 3]

The two alternate for `--rounds` rounds (so that a change of machine load
affects both) and the best round of each is compared. Prints images/s of both
and the ratio (target: >= 2x).
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

import cv2
import numpy as np

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


def _worker(queue, records, batch_size, seed):
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(records))
    position = 0
    while True:
        arrays, position = official_batch(rng, records, order, position, batch_size)
        queue.put([torch.from_numpy(a) for a in arrays])


def bench_official(records, batch_size, batches, warmup, workers):
    import torch.multiprocessing as mp

    # spawn: forking after OpenCV has started its thread pool can deadlock the children.
    ctx = mp.get_context("spawn")
    queue = ctx.Queue(5)  # official prefetch_size
    procs = [
        ctx.Process(target=_worker, args=(queue, records, batch_size, seed), daemon=True)
        for seed in range(workers)
    ]
    for p in procs:
        p.start()
    try:
        for _ in range(warmup):
            queue.get()
        start = time.perf_counter()
        for _ in range(batches):
            queue.get()
        elapsed = time.perf_counter() - start
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
    return batches * batch_size / elapsed


def tf_iterator(root, batch_size):
    from cornernet_tf.config import DataConfig
    from cornernet_tf.data import augment, pipeline

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


def bench_tf(iterator, batch_size, batches, warmup):
    for _ in range(warmup):
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        images, targets = next(iterator)
    _ = images.numpy(), targets["tl_heatmap"].numpy()
    elapsed = time.perf_counter() - start
    return batches * batch_size / elapsed


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=30, help="timed batches")
    parser.add_argument("--warmup", type=int, default=4, help="untimed batches first")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="official processes")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; best is kept")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        make_images(root, args.images)
        from cornernet_tf.data.coco import CocoDataset

        dataset = CocoDataset.open(root, "train2017")
        records = [
            (r.path, np.concatenate([r.boxes, r.labels[:, None] + 1.0], 1).astype(np.float64))
            for r in dataset.records
        ]
        iterator = tf_iterator(root, args.batch_size)
        for _ in range(2 * args.warmup):  # tracing, XLA compilation, autotuning
            next(iterator)
        official, ours = [], []
        # Alternate so that a change in machine load hits both; keep each one's best round.
        for _ in range(args.rounds):
            official.append(
                bench_official(records, args.batch_size, args.batches, args.warmup, args.workers)
            )
            ours.append(bench_tf(iterator, args.batch_size, args.batches, args.warmup))
    print(
        f"data pipeline, 511x511 input, 80 classes, batch {args.batch_size}, {os.cpu_count()} cores"
    )
    print(
        f"  rounds (images/s): official {[round(v, 1) for v in official]}, ours "
        f"{[round(v, 1) for v in ours]}"
    )
    print(
        f"  official numpy/OpenCV sampler ({args.workers} processes): {max(official):8.1f} images/s"
    )
    print(f"  cornernet_tf tf.data pipeline:                 {max(ours):8.1f} images/s")
    print(f"  ratio (best rounds): {max(ours) / max(official):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
