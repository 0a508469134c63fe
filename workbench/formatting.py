"""Numbers as people read them, the one rule every table, report and card check uses.

    >>> format_number(0.000552123), format_number(1234), format_number(float("nan"))
    ('0.000552', '1,234', '—')

A leaf module (numpy and pandas are imported when a function is called), so the card, the
reports and the widgets can all use it without importing each other.
"""

from __future__ import annotations

import math
from typing import Any

MISSING = "—"  # what a report shows where nothing was measured (never "nan" or "None")
_SIGNIFICANT = 3  # significant digits of a measured number


def is_missing(value: Any) -> bool:
    """None, NaN (numpy's and pandas' too) and pandas' NA; never an array-like."""
    if value is None:
        return True
    import pandas as pd

    if value is pd.NA:  # a nullable column's gap: pd.NA != pd.NA is NA, not True
        return True
    try:
        return bool(value != value)  # NaN, numpy's and pandas' too
    except (TypeError, ValueError):  # an array-like: not a missing scalar
        return False


def format_number(value: Any, digits: int = _SIGNIFICANT) -> str:
    """A number as a person reads it: at most ``digits`` significant digits, never in
    e-notation nor with 16 digits (``0.000552``, ``0.15``, ``1,234``); integers with thousands
    separators; a missing value (None, NaN) as "—"."""
    import numpy as np

    if is_missing(value):
        return MISSING
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    x = float(value)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}"
    if abs(x) >= 10 ** digits:
        return f"{round(x):,}"
    text = np.format_float_positional(x, precision=digits, unique=False, fractional=False,
                                      trim="-")
    return text.rstrip(".") if "." in text else text
