"""`python scripts/predict.py ARGS` is `cornernet-predict ARGS`, for a source checkout.

The tool is `cornernet_tf.cli.predict`; see its docstring or `--help`.
"""

import sys

from cornernet_tf.cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
