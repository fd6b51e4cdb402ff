r"""Command line client for CornerNet served by TensorFlow Serving (REST or gRPC).

A thin wrapper around `cornernet_tf.serving.cli` (also run as
`python -m cornernet_tf.serving.cli` where the package is installed), kept so
that commands written for a checkout keep working:

    python tf_serving/client.py status
    python tf_serving/client.py metadata
    python tf_serving/client.py predict a.jpg b.png \
        --classes exports/cornernet/1/assets/classes.json
    python tf_serving/client.py --protocol grpc predict img.jpg --json
    python tf_serving/client.py batching-config > tf_serving/batching.config

It runs this checkout's package: the one installed in the environment may
come from another checkout or release. See docs/serving.md.
"""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
if (_REPO / "cornernet_tf" / "__init__.py").is_file():
    sys.path.insert(0, str(_REPO))

from cornernet_tf.serving.cli import main  # noqa: E402 - after the path set-up above

if __name__ == "__main__":
    sys.exit(main())
