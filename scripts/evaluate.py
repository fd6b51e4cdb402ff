"""`python scripts/evaluate.py ARGS` is `cornernet-evaluate ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.evaluate`; see its docstring or `--help`.
"""

import sys

from cornernet_tf.cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
