"""`python scripts/train.py ARGS` is `cornernet-train ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.train`; see its docstring or `--help`.
"""

from cornernet_tf.cli.train import run

if __name__ == "__main__":
    run()
