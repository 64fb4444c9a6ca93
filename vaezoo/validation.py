"""Argument validators shared by the built-in components (and free for plugins to use).

Each returns the cleaned value or raises ``ValueError`` with one line naming the component
(``who``), the argument (``what``) and the value, for example::

    GaussianMixture: components must be a positive integer, got 0
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

from .errors import did_you_mean, one_of

__all__ = [
    "check_positive_int", "check_int_list", "check_shape", "check_positive_float", "check_nonnegative",
    "check_min_scale", "check_choice", "SEED_MAX",
]

SEED_MAX = 2**63 - 1
"""The largest seed vaezoo takes (seeds are 0 .. 2**63 - 1, what every torch generator accepts)."""


def check_positive_int(value: object, what: str, who: str, allow_zero: bool = False) -> int:
    """``value`` as an int > 0 (>= 0 with ``allow_zero``); bools are refused."""
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "a non-negative" if allow_zero else "a positive"
        raise ValueError(f"{who}: {what} must be {bound} integer, got {value!r}")
    return int(value)  # type: ignore[arg-type]


def check_int_list(values: object, what: str, who: str, allow_empty: bool) -> tuple[int, ...]:
    """A list of positive ints (e.g. hidden sizes) as a tuple; empty only with ``allow_empty``."""
    if not isinstance(values, Sequence) or isinstance(values, str):
        raise ValueError(f"{who}: {what} must be a list of positive integers, got {values!r}")
    out = tuple(check_positive_int(v, f"every entry of {what}", who) for v in values)
    if not out and not allow_empty:
        raise ValueError(f"{who}: {what} must have at least one entry, got {values!r}")
    return out


def check_shape(shape: object, what: str, who: str) -> tuple[int, ...]:
    """A non-empty shape of positive ints (e.g. ``data_shape``) as a tuple."""
    if not isinstance(shape, Sequence) or isinstance(shape, str) or len(shape) == 0:
        raise ValueError(f"{who}: {what} must be a non-empty tuple of positive integers, got {shape!r}")
    return tuple(check_positive_int(s, f"every entry of {what}", who) for s in shape)


def check_positive_float(value: object, what: str, who: str) -> float:
    """``value`` as a finite float > 0; bools, NaN and inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ValueError(f"{who}: {what} must be a positive number, got {value!r}")
    return float(value)


def check_nonnegative(value: object, what: str, who: str) -> float:
    """``value`` as a finite float >= 0; bools, NaN and inf are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise ValueError(f"{who}: {what} must be a number >= 0, got {value!r}")
    return float(value)


def check_min_scale(value: object, who: str) -> float:
    """The ``min_scale`` floor of an encoder's Gaussian head: a positive number."""
    return check_positive_float(value, "min_scale", who)


def check_choice(value: Any, what: str, who: str, choices: Collection[str]) -> str:
    """``value`` if it is one of ``choices``; else a did-you-mean and the choices."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(
            f"{who}: unknown {what} {value!r}.{did_you_mean(str(value), choices)} Choose one of {one_of(choices)}"
        )
    return value
