"""`python scripts/export.py ARGS` is `cornernet-export ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.export`; see its docstring or `--help`.
"""

import sys

from cornernet_tf.cli.export import main

if __name__ == "__main__":
    sys.exit(main())
