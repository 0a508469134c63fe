"""Whether one item of a run passed: the one rule every phase uses.

The phase-4 grid, the phase-6 statistics and gate, phase 5's before/after, phase 9's
re-evaluation, switch-or-retrain and the exercises all ask "did this item pass?" of the same
items; they must get the same answer, so the rule lives here and nowhere else:

1. An item whose call failed (an ``error`` and no output) **failed**: the user got no answer,
   whatever a scorer made of the empty output.
2. With ``scorer`` named, that scorer's verdict: its ``passed``, else its value ≥ 0.5.
3. Else a ``passed`` or ``correct`` column, as it is (frames made outside the run engine).
4. Else the **primary scorer** — the first scorer, in the run's order, that gives pass/fail
   (``primary_scorer``): the metric the card's target is about, not every scorer at once.
5. Else (no ``scores`` dict) every numeric score column (``score.NAME`` or ``NAME``) ≥ 0.5.

An item nothing judges is ``None`` (left out of rates, never counted as a pass).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

PASS_THRESHOLD = 0.5  # a score (0..1) at or above this passes when a scorer gives no pass/fail
# The columns of a run's items that are not scores.
ITEM_COLUMNS = frozenset({
    "item_id", "id", "position", "input", "expected", "output", "parsed", "parse_ok",
    "parse_error", "latency_s", "cost_usd", "error", "cached", "tokens", "prompt_tokens",
    "completion_tokens", "messages", "repaired", "split", "trace_id", "attempts"})


class UnknownScore(WorkbenchError):
    """A scorer was named that the run's items do not carry."""


def score_columns(items: pd.DataFrame) -> list[str]:
    """The per-item score columns of a run's items (numbers or booleans beyond the base ones)."""
    import pandas as pd

    out = []
    for column in items.columns:
        if column in ITEM_COLUMNS or column in ("passed", "correct", "scores"):
            continue
        values = items[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            out.append(column)
    return out


def primary_scorer(items: pd.DataFrame) -> str | None:
    """The first scorer (in the run's order) that gives pass/fail on some item."""
    for scores in items.get("scores", []):
        if not isinstance(scores, Mapping):
            continue
        for key, s in scores.items():
            if isinstance(s, Mapping) and s.get("passed") is not None:
                return key
    return None


def _number(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def verdict(entry: Any) -> bool | None:
    """One scorer's verdict on one item: its ``passed``, else its value ≥ 0.5; None if neither."""
    if isinstance(entry, Mapping):
        if entry.get("passed") is not None:
            return bool(entry["passed"])
        entry = entry.get("value")
    if entry is None:
        return None
    number = _number(entry)
    return None if math.isnan(number) else number >= PASS_THRESHOLD


def _failed_call(error: Any, output: Any) -> bool:
    return isinstance(error, str) and bool(error) and (output is None or output != output)


def item_passed(items: pd.DataFrame, scorer: str | None = None) -> pd.Series:
    """Each item's verdict by the rule in this module's docstring: True, False or None, as a
    Series on ``items``' index. ``UnknownScore`` when ``scorer`` is named and no item has it."""
    import pandas as pd

    columns = score_columns(items)
    if scorer is not None:
        known = set(columns)
        for scores in items.get("scores", []):
            if isinstance(scores, Mapping):
                known |= set(scores)
        if not ({scorer, f"score.{scorer}"} & known):
            raise UnknownScore(f"The run's items have no score '{scorer}'.",
                               f"Scores available: {', '.join(sorted(known)) or 'none'}.")
    flag = next((c for c in ("passed", "correct") if c in items.columns), None)
    primary = None if scorer is not None or flag else primary_scorer(items)

    def cell(index: Any, column: str) -> Any:
        return items.at[index, column] if column in items.columns else None

    out: list[bool | None] = []
    for index in items.index:
        if _failed_call(cell(index, "error"), cell(index, "output")):
            out.append(False)
            continue
        scores = cell(index, "scores")
        scores = scores if isinstance(scores, Mapping) else {}
        if scorer is not None:
            entry = scores.get(scorer, cell(index, scorer) if scorer in items.columns
                               else cell(index, f"score.{scorer}"))
            out.append(verdict(entry))
        elif flag is not None:
            out.append(verdict(cell(index, flag)))
        elif primary is not None:
            out.append(verdict(scores.get(primary)))
        elif not scores and columns:
            verdicts = [v for v in (verdict(cell(index, c)) for c in columns) if v is not None]
            out.append(all(verdicts) if verdicts else None)
        else:
            out.append(None)
    return pd.Series(out, index=items.index, dtype=object)
