"""Wall-clock timing shared by the benchmark scripts."""

import statistics
import time


def time_ms(function, repeats: int) -> tuple[float, float]:
    """Median and minimum wall time of `function()` in milliseconds (one warm-up call)."""
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times), min(times)


def time_in_turns(calls: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, repeat by repeat, the calls in turns (after one warm-up each).

    Turns put load from other processes on every side of a comparison alike.

    Args:
        calls: `{name: function}`.
        repeats: rounds.

    Returns:
        `{name: [seconds per round]}`.
    """
    for call in calls.values():
        call()  # tracing
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times
