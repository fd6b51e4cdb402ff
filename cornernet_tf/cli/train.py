"""Trains CornerNet; restarted with the same command, it resumes from its last checkpoint.

    cornernet-train --config shapes_tiny --data-dir data/shapes \\
        --model-dir runs/shapes [--set train.steps=100 ...] [--strategy auto]

(also `python -m cornernet_tf.cli.train` or `python scripts/train.py`).
`--config` is a YAML file or the name of a packaged config
(`cornernet_tf.spec.catalog`).

Writes `<model-dir>/model.keras`, `classes.json`, `config.yaml`, checkpoints
and TensorBoard logs (and `best.keras` with `train.eval_every`); see
`cornernet_tf.training` for the layout. `--model-dir` is a local or mounted
folder (`gs://`, `s3://` are refused), written by one run at a time. A folder
holding checkpoints is resumed from the newest complete one; `--restart`
starts from scratch instead, moving the earlier run's files into
`replaced-<time>/`. Ctrl-C (SIGINT) or SIGTERM saves a checkpoint of the
current step and stops. Multi-worker: run the same command on every worker
with `TF_CONFIG` set (and `--strategy multi_worker` or `auto`); `--model-dir`
must be on a file system they share.

Exit codes: 0 done, 1 training failed (bad images over the limit, a file that
cannot be written), 2 bad arguments, config, data or model directory (one line
on stderr naming the file, the field and the fix), 130 stopped by SIGINT, 143
by SIGTERM (one line saying where the checkpoint is).
"""

import argparse
import logging
import os
import sys
from typing import NoReturn

from cornernet_tf.cli._common import CONFIG_HELP, load_config, setup_output
from cornernet_tf.utils.host_memory import pool_host_memory

# `cornernet_tf.training.STRATEGIES`, repeated so that `--help` and config errors
# answer without importing TensorFlow.
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--config", required=True, help=CONFIG_HELP)
    parser.add_argument("--data-dir", required=True, help="dataset root in the COCO 2017 layout")
    parser.add_argument(
        "--model-dir",
        required=True,
        help="output and checkpoint directory: a local or mounted folder, one run at a time",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (YAML syntax), e.g. --set train.steps=1000; repeatable",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start from scratch in a --model-dir holding an earlier run; its files are moved "
        "into <model-dir>/replaced-<time>/",
    )
    parser.add_argument("--strategy", choices=STRATEGIES, default="auto")
    parser.add_argument(
        "--verbose",
        type=int,
        choices=(0, 1, 2, 3),
        default=1,
        help="Keras fit verbosity (0 silent, 1 progress bar, 2 a line per epoch); 3: as 2, "
        "plus TensorFlow's own start-up logs",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except KeyboardInterrupt:
        # Outside the trainer's own handling (start-up, a second Ctrl-C): every
        # file is written under a temporary name, so nothing partial is left.
        print(
            "interrupted; no partial file was left (run the same command to resume from the "
            "last checkpoint, if any)",
            file=sys.stderr,
        )
        return 130


def _main(args: argparse.Namespace) -> int:
    pool_host_memory()  # before TensorFlow starts: see cornernet_tf.utils.host_memory
    # The config is checked before TensorFlow is imported: mistakes fail in a blink.
    from cornernet_tf.spec.config import ConfigError

    try:
        config = load_config(args.config, args.set)  # sizes included: spec.presets
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    # So is the dataset's layout (what `train` checks first).
    from cornernet_tf.data.coco import layout_problem

    problem = layout_problem(args.data_dir, config.data.train_split, "data.train_split")
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2

    setup_output(verbose=args.verbose >= 3)
    from cornernet_tf import training

    training.configure_logging()
    try:
        # `train` checks the data directory, then creates the strategy from its
        # name before any other TensorFlow work.
        result = training.train(
            config,
            args.data_dir,
            args.model_dir,
            strategy=args.strategy,
            evaluate_fn=training.default_evaluate_fn(config, args.data_dir),
            verbose=min(args.verbose, 2),
            restart=args.restart,
        )
    except (ConfigError, training.SetupError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (training.BadDataError, training.CheckpointWriteError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except training.TrainingInterrupted as e:
        print(e, file=sys.stderr)
        return 128 + e.signum
    if result.model_path:
        print(f"model: {os.path.abspath(result.model_path)}")
        if result.best:
            best = result.best
            print(
                f"best: {os.path.abspath(best['path'])} "
                f"({best['metric']} {best['value']:.4f} at step {best['step']})"
            )
    return 0


def run() -> NoReturn:
    """The `cornernet-train` command: `main`, then the process ends at once.

    When a training run is over, its files written and closed, the process
    ends without Python's and TensorFlow's shutdown. In TensorFlow 2.21 a
    `tf.data` iterator's destruction waits for its autotuning thread, which it
    does not wake: the thread sleeps out its period, doubling up to a minute.
    The trainer's input iterators live until the interpreter exits, so the
    command sat idle after its last line (2-100 s in the runs measured in
    docs/performance.md). An exception still ends it the usual way.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":
    run()
