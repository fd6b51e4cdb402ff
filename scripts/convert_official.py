"""`python scripts/convert_official.py ARGS` is `cornernet-convert ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.convert`; see its docstring or `--help`.
"""

import sys

from cornernet_tf.cli.convert import main

if __name__ == "__main__":
    sys.exit(main())
