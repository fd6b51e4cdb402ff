"""The errors training raises for problems the user has to fix, and their messages.

`scripts/train.py` turns `SetupError` (and `ConfigError`) into exit code 2 and
`BadDataError` into exit code 1, each printed as one line.
"""

from __future__ import annotations

import re

__all__ = ["BadDataError", "SetupError", "assertion_message", "first_line"]


class SetupError(ValueError):
    """Training cannot start (missing data, bad cluster config); the message says the fix."""


class BadDataError(RuntimeError):
    """The input pipeline found more bad images than `data.max_bad_images`."""


def assertion_message(text: str) -> str:
    """The data of a `tf.debugging.Assert` failure as one line: "[a] [b]" -> "a b".

    TensorFlow reports a failed `Assert` inside `fit` as a multi-line "Graph
    execution error" with each data item in brackets; the bad-image limit of
    the input pipeline is such an `Assert`, and its message is what the user
    needs to read.

    Args:
        text: the error text (`str(error)`).

    Returns:
        The assertion's data joined into one line, or the first line of `text`
        when it holds no assertion.
    """
    match = re.search(r"assertion failed: (.*?)(?:\n|$)", text)
    if match is None:
        return first_line(text)
    return " ".join(re.sub(r"\[|\]|\"", " ", match.group(1)).split())


def first_line(error: BaseException | str) -> str:
    """The first non-empty line of an error (or its type name when it has no text).

    Args:
        error: an exception or its text.

    Returns:
        One line for an error message of our own.
    """
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
