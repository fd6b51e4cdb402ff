"""Transfer to new classes: fine-tuning (`model.init_from`) against training from scratch.

Two synthetic sets of the same kind of images (`cornernet_tf.data.shapes`),
with different classes:

- the source set: the shapes set, classes rectangle / ellipse / triangle;
- the target set: other images drawn the same way (another seed), each shape
  labelled by its colour instead: "red", "green" or "blue", the largest
  channel of its visible pixels' mean colour; `--images` training images
  (200 by default) and `--val-images` for the AP.

A model of the demo config (`configs/shapes_tiny.yaml`: the tiny preset, one
stack, 127x127) is trained on the source set for `--source-steps` (by
default the demo's own schedule, 1500 steps on 2000 images); then the
same config trains on the target set for `--steps`, once from the source
model (`--set model.init_from=...`: every weight but the heatmap outputs) and
once from scratch, with the same schedule (constant rate, / 10 for the last
fifth) and seed. Every run is a `cornernet-train` process; the AP is COCO AP
on the target's validation images (`cornernet_tf.evaluation.evaluate_coco`).

    python benchmarks/finetune.py [--work-dir DIR] [--source-images 2000]
        [--source-steps 1500] [--images 200] [--steps 300] [--freeze-backbone-steps 0]

Prints one line per run and both APs; the work directory keeps the sets, the
runs and `results.json`. Run again with the same `--work-dir`, it reuses the
sets and the source model and trains both target runs anew.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

from cornernet_tf.data import shapes
from cornernet_tf.utils.fs import atomic_write_json

COLORS = ("red", "green", "blue")
SPLITS = ("train2017", "val2017")


def write_color_split(root, split, count, seed):
    """A split of shapes images whose classes are the shapes' dominant colour channel."""
    config = shapes.ShapesConfig()
    os.makedirs(os.path.join(root, split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations"), exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, SPLITS.index(split), index])
        drawn = shapes.render_image(rng, config)
        image, owner = drawn["image"], drawn["owner"]
        file_name = f"{index + 1:012d}.png"
        cv2.imwrite(os.path.join(root, split, file_name), image[..., ::-1])
        size = {"height": config.height, "width": config.width}
        images.append({"id": index + 1, "file_name": file_name, **size})
        for k, (box, area) in enumerate(zip(drawn["boxes"], drawn["areas"], strict=True)):
            color = image[owner == k].mean(axis=0)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": index + 1,
                    "category_id": int(np.argmax(color)) + 1,
                    "bbox": [float(v) for v in box],
                    "area": int(area),
                    "iscrowd": 0,
                }
            )
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(COLORS)]
    atomic_write_json(
        os.path.join(root, "annotations", f"instances_{split}.json"),
        {"images": images, "annotations": annotations, "categories": categories},
    )


def train(data_dir, model_dir, steps, *overrides):
    """One `cornernet-train` run of the demo config; returns its wall time in seconds."""
    settings = [
        f"train.steps={steps}",
        f"train.lr_decay_steps=[{max(1, steps * 4 // 5)}]",
        f"train.checkpoint_every={steps}",
        "train.eval_every=0",
        *overrides,
    ]
    command = [sys.executable, "-m", "cornernet_tf.cli.train", "--config", "shapes_tiny"]
    command += ["--data-dir", data_dir, "--model-dir", model_dir, "--verbose", "0"]
    for item in settings:
        command += ["--set", item]
    start = time.perf_counter()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"training failed ({' '.join(command)}):\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def evaluate(model_path, data_dir):
    from cornernet_tf.evaluation import evaluate_coco
    from cornernet_tf.models import load_model

    metrics = evaluate_coco(load_model(model_path), data_dir, "val2017", verbose=0)
    return {name: float(metrics[name]) for name in ("AP", "AP50")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    parser.add_argument("--work-dir", default=None, help="kept folder (default: a temporary one)")
    parser.add_argument("--source-images", type=int, default=2000)
    parser.add_argument("--source-steps", type=int, default=1500)
    parser.add_argument("--images", type=int, default=200, help="target training images")
    parser.add_argument("--val-images", type=int, default=100)
    parser.add_argument("--steps", type=int, default=300, help="target training steps")
    parser.add_argument("--freeze-backbone-steps", type=int, default=0)
    args = parser.parse_args()
    work = args.work_dir or tempfile.mkdtemp(prefix="finetune_benchmark_")
    source_data, target_data = os.path.join(work, "source_data"), os.path.join(work, "target_data")
    if not os.path.isdir(source_data):
        shapes.make_shapes_dataset(source_data, num_train=args.source_images, num_val=0, seed=1)
    if not os.path.isdir(target_data):
        write_color_split(target_data, "train2017", args.images, seed=2)
        write_color_split(target_data, "val2017", args.val_images, seed=2)

    source_model = os.path.join(work, "source", "model.keras")
    seconds = train(source_data, os.path.join(work, "source"), args.source_steps)
    print(
        f"source: {args.source_steps} steps on {args.source_images} shapes images, {seconds:.0f} s"
    )
    results = {}
    runs = {
        "fine-tuned": [
            f"model.init_from={source_model}",
            f"train.freeze_backbone_steps={args.freeze_backbone_steps}",
        ],
        "scratch": [],
    }
    for name, overrides in runs.items():
        model_dir = os.path.join(work, name)
        shutil.rmtree(model_dir, ignore_errors=True)  # a run of other settings is not resumed
        seconds = train(target_data, model_dir, args.steps, *overrides)
        results[name] = evaluate(os.path.join(model_dir, "model.keras"), target_data)
        print(
            f"{name}: {args.steps} steps on {args.images} images of 3 new classes, {seconds:.0f} s:"
            f" AP {results[name]['AP']:.3f}, AP50 {results[name]['AP50']:.3f}"
        )
    atomic_write_json(os.path.join(work, "results.json"), {"args": vars(args), **results})
    print(
        f"AP on {args.val_images} target images: fine-tuned {results['fine-tuned']['AP']:.3f}, "
        f"from scratch {results['scratch']['AP']:.3f} (work dir {work})"
    )


if __name__ == "__main__":
    main()
