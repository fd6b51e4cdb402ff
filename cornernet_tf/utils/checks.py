"""The one check of a count argument (a batch size, a number of images, a side)."""

from __future__ import annotations

import numbers
from typing import Any

__all__ = ["check_count"]


def check_count(value: Any, name: str, where: str = "", minimum: int = 1, hint: str = "") -> int:
    """`value` as an `int`, or ValueError unless it is an integer >= `minimum`.

    Python and NumPy integers pass; `bool`, floats and strings do not, even
    when they equal an integer.

    Args:
        value: the argument.
        name: its name, for the message.
        where: the function or tool it was given to, for the message.
        minimum: the smallest valid value.
        hint: what else the argument may be (e.g. "or None"), for the message.

    Returns:
        `int(value)`.
    """
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not integer or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        prefix = f"{where}: " if where else ""
        hint = f" {hint}" if hint else ""
        raise ValueError(f"{prefix}`{name}` must be {kind}{hint}, got {value!r}.")
    return int(value)
