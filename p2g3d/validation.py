"""The one validation layer for numbers at the boundary: finite, of the right kind, in range, named in the message.

Settings dataclasses call these in ``__post_init__``, so a bad value fails when the settings are built, before any
model loads; the command line builds the same dataclasses, so it gives the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .errors import InputError


def check_number(
    settings, name: str, *, integer: bool = False, low=None, high=None, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise InputError unless ``settings.<name>`` is a finite number (an int if ``integer``) in ``[low, high]``
    (open at ``low`` / ``high`` with ``low_open`` / ``high_open``); the message names the setting, the range and the
    value."""
    value = getattr(settings, name)
    kinds = (int,) if integer else (int, float)
    valid = not isinstance(value, bool) and isinstance(value, kinds) and math.isfinite(value)
    valid = valid and (low is None or (value > low if low_open else value >= low))
    valid = valid and (high is None or (value < high if high_open else value <= high))
    if not valid:
        opening, closing = "(" if low_open else "[", ")" if high_open else "]"
        bounds = f"{opening}{'-inf' if low is None else low}, {'inf' if high is None else high}{closing}"
        raise InputError(f"{name} must be a finite {'integer' if integer else 'number'} in {bounds}, got {value!r}")


def check_choice(settings, name: str, choices: Sequence) -> None:
    """Raise InputError unless ``settings.<name>`` is one of ``choices``."""
    value = getattr(settings, name)
    if value not in choices:
        raise InputError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
