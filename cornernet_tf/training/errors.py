"""The errors training raises for problems the user has to fix, and their messages.

`cornernet-train` turns `SetupError` (and `ConfigError`) into exit code 2,
`BadDataError` and `CheckpointWriteError` into exit code 1, each printed as one
line, and `TrainingInterrupted` into 128 + the signal number (130 for SIGINT,
143 for SIGTERM).
"""

from __future__ import annotations

import re
import signal

__all__ = [
    "BadDataError",
    "CheckpointWriteError",
    "SetupError",
    "TrainingInterrupted",
    "assertion_message",
    "first_line",
    "io_error_reason",
]


class SetupError(ValueError):
    """Training cannot start (missing data, bad cluster config); the message says the fix."""


class BadDataError(RuntimeError):
    """The input pipeline found more bad images than `data.max_bad_images`."""


class CheckpointWriteError(RuntimeError):
    """A checkpoint or the model file could not be written (disk full, read-only folder)."""


class TrainingInterrupted(RuntimeError):
    """SIGINT or SIGTERM stopped training; a checkpoint of the current step was saved.

    Attributes:
        signum: the signal received.
        step: the optimizer's iteration count when training stopped.
        checkpoint: the checkpoint to resume from (None when none exists yet,
            or on a worker that does not write into the model directory).
    """

    def __init__(self, signum: int, step: int, checkpoint: str | None):
        self.signum = signum
        self.step = step
        self.checkpoint = checkpoint
        name = signal.Signals(signum).name
        where = (
            f"checkpoint {checkpoint}; run the same command to resume"
            if checkpoint
            else "no checkpoint written yet"
        )
        super().__init__(f"interrupted by {name} at step {step}: {where}")


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


def io_error_reason(error: BaseException) -> str:
    """The file system's reason of a failed write ("No space left on device").

    TensorFlow's I/O errors read "{{function_node ...}} <temporary file>;
    <reason> [Op:SaveV2]"; the user needs the reason, the caller names the file.

    Args:
        error: an `OSError` or a `tf.errors.OpError`.

    Returns:
        One short line.
    """
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", first_line(error))
    return text.rsplit("; ", 1)[-1].strip() or type(error).__name__
