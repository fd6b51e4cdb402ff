"""Progress of a long command on stderr: a bar with ETA on a terminal, timestamped lines otherwise.

Keras' `keras.utils.Progbar` writes to stdout and always redraws with `\\r`;
the commands keep stdout for their results and may be logged to a file, where
a redrawn bar becomes one long line of carriage returns. On a terminal the bar
is redrawn in place; elsewhere (a pipe, a file, CI) a plain line with a UTC
timestamp is written every `interval` seconds, and at the end when a line was
written before (a short run stays quiet: its results say enough).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import TextIO

__all__ = ["Progress", "format_duration"]


def format_duration(seconds: float) -> str:
    """`1 h 02 min`, `3 min 05 s` or `12 s`."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


class Progress:
    """Counts done items out of `total` and shows the rate and the time left.

    Args:
        total: the number of items; None or 0 when unknown (no ETA then).
        unit: what an item is, for the display ("image", "frame").
        stream: where to write; stderr by default.
        interval: seconds between plain lines when `stream` is not a terminal
            (0: a line for every update).
        clock: a monotonic clock (seconds).
    """

    _BAR_WIDTH = 24
    _REDRAW_SECONDS = 0.1

    def __init__(
        self,
        total: int | None,
        unit: str = "item",
        *,
        stream: TextIO | None = None,
        interval: float = 10.0,
        clock=time.monotonic,
    ):
        self.total = total or None
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self.clock = clock
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self.done = 0
        self._start = clock()
        self._last_shown = self._start
        self._shown_done = None  # the count last displayed
        self._bar_shown = False

    def update(self, count: int = 1) -> None:
        """Records `count` more items done and shows the progress when it is time."""
        self.done += count
        now = self.clock()
        if self.terminal:
            if self._shown_done is None or now - self._last_shown >= self._REDRAW_SECONDS:
                self._show(now)
        elif now - self._last_shown >= self.interval:
            self._show(now)

    def message(self, text: str, stream: TextIO | None = None) -> None:
        """Writes a line (to `stream`, default the progress stream) without breaking the bar."""
        self._clear()
        print(text, file=stream or self.stream, flush=True)
        if self.terminal and self._shown_done is not None:
            self._show(self.clock())

    def close(self) -> None:
        """Shows the final count (and ends the bar's line on a terminal)."""
        if self.terminal or self._shown_done not in (None, self.done):
            self._show(self.clock())
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()
            self._bar_shown = False

    def _status(self, now: float) -> str:
        elapsed = now - self._start
        per_item = elapsed / self.done if self.done else None
        total = f"/{self.total}" if self.total else ""
        parts = [f"{self.done}{total} {self.unit}s"]
        if self.total:
            parts[0] += f" ({100 * min(self.done, self.total) // self.total}%)"
        if per_item is not None:
            parts.append(
                f"{per_item:.2f} s/{self.unit}"
                if per_item >= 0.5
                else f"{1 / per_item:.1f} {self.unit}s/s"
            )
        if self.total and per_item is not None:
            left = max(0, self.total - self.done) * per_item
            parts.append(
                f"ETA {format_duration(left)}" if left else f"took {format_duration(elapsed)}"
            )
        else:
            parts.append(f"elapsed {format_duration(elapsed)}")
        return ", ".join(parts)

    def _show(self, now: float) -> None:
        self._last_shown, self._shown_done = now, self.done
        status = self._status(now)
        if self.terminal:
            filled = self._BAR_WIDTH * min(self.done, self.total) // self.total if self.total else 0
            bar = "#" * filled + "." * (self._BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[K[{bar}] {status}" if self.total else f"\r\x1b[K{status}")
            self._bar_shown = True
        else:
            stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
            self.stream.write(f"{stamp} {status}\n")
        self.stream.flush()

    def _clear(self) -> None:
        if self.terminal and self._bar_shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._bar_shown = False
