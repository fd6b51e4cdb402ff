"""The `make demo` job: shapes dataset → train → evaluate → predict pictures → export.

Each stage is one of the project's own command-line tools, run as a user would
run it; the demo times them and ends with a summary of where every artefact
went and the COCO AP reached.

    python scripts/demo.py --output artifacts/demo [--set train.steps=300]
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "shapes_tiny.yaml"


def _run(stage: str, args: list[str], timings: dict[str, float]) -> None:
    print(f"\n=== {stage}: {' '.join(args)}", flush=True)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=REPO)
    timings[stage] = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"demo: stage '{stage}' failed (exit {result.returncode}); see above.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="artifacts/demo", help="folder for everything")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="config override passed to train.py, e.g. --set train.steps=300",
    )
    parser.add_argument("--skip-export", action="store_true", help="stop after the pictures")
    args = parser.parse_args(argv)

    out = Path(args.output).resolve()
    data, run = out / "shapes", out / "run"
    model = run / "model.keras"
    metrics = run / "metrics_val2017.json"
    timings: dict[str, float] = {}
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    if not (data / "annotations" / "instances_val2017.json").exists():
        _run("dataset", ["scripts/make_shapes.py", "--output", str(data)], timings)
    overrides = [item for value in args.set for item in ("--set", value)]
    _run(
        "train",
        ["scripts/train.py", "--config", str(CONFIG), "--data-dir", str(data)]
        + ["--model-dir", str(run), "--verbose", "2", *overrides],
        timings,
    )
    _run(
        "evaluate",
        ["scripts/evaluate.py", "--config", str(CONFIG), "--data-dir", str(data)]
        + ["--model", str(model), "--output", str(metrics), "--plots", str(run / "plots")]
        + ["--verbose", "0"],
        timings,
    )
    pictures = sorted((data / "val2017").iterdir())[:6]
    _run(
        "predict",
        ["scripts/predict.py", "--model", str(model), "--output", str(out / "pictures")]
        + ["--score-threshold", "0.3", *map(str, pictures)],
        timings,
    )
    if not args.skip_export:
        exports = out / "exports"
        _run(
            "export saved_model",
            ["scripts/export.py", "--model", str(model), "--output", str(exports)]
            + ["--format", "saved_model"],
            timings,
        )
        _run(
            "export tflite",
            ["scripts/export.py", "--model", str(model), "--output", str(exports)]
            + ["--format", "tflite", "--quantize", "all", "--input-size", "127", "127"]
            + ["--data-dir", str(data / "train2017"), "--overwrite"],
            timings,
        )

    ap = json.loads(metrics.read_text())
    print("\n=== demo summary")
    print(f"dataset      {data}")
    print(f"model        {model}")
    print(f"metrics      {metrics}")
    print(f"plots        {run / 'plots'}")
    print(f"pictures     {out / 'pictures'}")
    print(f"tensorboard  tensorboard --logdir {run / 'logs'}")
    if not args.skip_export:
        print(f"exports      {out / 'exports'} (SavedModel cornernet/<version>/, *.tflite)")
    print(
        "COCO AP on the shapes val split: "
        + ", ".join(f"{key} {ap[key]:.3f}" for key in ("AP", "AP50", "AP75", "APs", "APm", "APl"))
    )
    print("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    print(f"total {sum(timings.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
