"""`cornernet_tf.utils.console`: log lines go to the stream of the moment."""

import io
import logging
import sys

from cornernet_tf.utils.console import CurrentStreamHandler


def test_the_handler_writes_to_the_current_stream_never_a_closed_one(monkeypatch):
    logger = logging.getLogger("cornernet_tf.test_console")
    handler = CurrentStreamHandler("stderr")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        first, second = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "stderr", first)
        logger.warning("one")
        first.close()  # as pytest closes a capture, or an application its log file
        monkeypatch.setattr(sys, "stderr", second)
        logger.warning("two")
        assert second.getvalue() == "two\n"
    finally:
        logger.removeHandler(handler)
