"""A command's console output: its log lines, and TensorFlow's start-up kept quiet.

Every command-line tool (`cornernet_tf.cli`, the serving client) calls
`setup_output` once. Importing this module is free; TensorFlow is imported
by `setup_output` only when asked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

__all__ = ["CurrentStreamHandler", "setup_output"]

# The log line format: on a terminal the message alone, in a file or pipe with
# the time (one line per event, no progress-bar control characters).
_TERMINAL_FORMAT = "%(levelname)s: %(message)s"
_FILE_FORMAT = "%(asctime)s %(levelname)s: %(message)s"
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class CurrentStreamHandler(logging.StreamHandler):
    """A `StreamHandler` writing to the current `sys.stderr` (or `sys.stdout`), not the
    one of its creation: a caller that swaps the stream (a test capturing output, an
    application embedding the tools) still gets the lines, and a closed stream is
    never written to.

    Args:
        name: "stderr" or "stdout".
    """

    def __init__(self, name: str = "stderr"):
        super().__init__(getattr(sys, name))
        self.stream_name = name

    @property
    def stream(self):
        return getattr(sys, self.stream_name)

    @stream.setter
    def stream(self, value):  # `StreamHandler.__init__` sets it; the property decides
        pass


def setup_output(verbose: bool = False, *, import_tensorflow: bool = True) -> None:
    """Sets up a command's output: its log lines, and TensorFlow's start-up kept quiet.

    TensorFlow's C++ runtime prints a dozen lines when it starts (oneDNN,
    CUDA drivers looked for, "failed call to cuInit" on machines without a
    GPU, XLA's "Compiled cluster") that read like failures and are none.
    Unless `verbose`, they are hidden: `TF_CPP_MIN_LOG_LEVEL=3` (only when
    the user has not set it) hides those logged after start-up, and the lines
    logged while its libraries load, before that setting is read, go to a
    temporary file while TensorFlow is imported, shown only if the import
    fails. Errors still reach the user as Python exceptions. Keras' absl
    warnings are hidden too.

    The `cornernet_tf` loggers print to stderr, one line per event, with the
    time when stderr is not a terminal (a log file or a pipe).

    Call it once, after the arguments are checked and before TensorFlow is
    imported.

    Args:
        verbose: show TensorFlow's own logs as it prints them.
        import_tensorflow: import TensorFlow now, quietly; False for commands
            that may not need it (only the log level is set then).
    """
    package_logger = logging.getLogger("cornernet_tf")
    if not package_logger.handlers:
        handler = CurrentStreamHandler("stderr")
        plain = not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
        handler.setFormatter(
            logging.Formatter(_FILE_FORMAT if plain else _TERMINAL_FORMAT, _TIME_FORMAT)
        )
        package_logger.addHandler(handler)
        package_logger.setLevel(logging.INFO)
    if verbose:
        return
    logging.getLogger("absl").setLevel(logging.ERROR)
    chosen_by_user = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if import_tensorflow and "tensorflow" not in sys.modules:
        with contextlib.nullcontext() if chosen_by_user else _stderr_to_file():
            import tensorflow  # noqa: F401


@contextlib.contextmanager
def _stderr_to_file():
    """Points file descriptor 2 at a temporary file; replays it if the block fails.

    The C++ libraries write to the descriptor, not to `sys.stderr`, so only
    the descriptor can hold them back.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (AttributeError, OSError, ValueError):  # no real descriptor 2 (embedded)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            capture.seek(0)
            os.write(2, capture.read())
            raise
        finally:
            with contextlib.suppress(OSError, ValueError):
                sys.stderr.flush()  # Python's own buffered text goes where it was written
            os.dup2(saved, 2)
            os.close(saved)
