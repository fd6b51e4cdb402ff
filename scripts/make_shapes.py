"""`python scripts/make_shapes.py ARGS` is `cornernet-make-shapes ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.make_shapes`; see its docstring or `--help`.
"""

import sys

from cornernet_tf.cli.make_shapes import main

if __name__ == "__main__":
    sys.exit(main())
