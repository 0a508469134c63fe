"""Spend: per day, per key, and against the card's monthly budget.

The budget counts every model call's cost (``source="calls"``): what the providers bill, so
evaluation runs and the online judge spend from it too; the service's own share and its split
per API key (``workbench.client``) come from the requests to the service. Months and days are
UTC.

The **budget-burn** alert projects the month's end: what was spent since the 1st, plus the
spending rate of the last 7 days (or of the history there is, once it covers
``MIN_HISTORY_S``) times the time left. It fires when that projection is over
``[constraints] monthly_budget_usd`` (or the month is already over it), days before the bill.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import monitor_aggregates as aggregates

if TYPE_CHECKING:
    import pandas as pd

    from workbench.monitor import Alert
    from workbench.project import Project

TRAILING_S = 7 * 86400
MIN_HISTORY_S = 6 * 3600  # less spending history than this cannot project a month
_COST = aggregates.COUNTERS.index("cost_usd")


def month_bounds(now: float) -> tuple[float, float]:
    """The start of ``now``'s UTC month and of the next one, as epoch seconds."""
    day = dt.datetime.fromtimestamp(now, tz=dt.UTC)
    start = day.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + dt.timedelta(days=32)).replace(day=1)
    return start.timestamp(), following.timestamp()


def _spend(project: Project, source: str, since: float, until: float, now: float) -> float:
    found = aggregates.collect(project, source, since=since, until=until, now=now)
    return float(sum(t.counts[_COST] for t in found.values()))


def first_seen(project: Project, source: str) -> float | None:
    """When ``source`` first had traffic: to the minute for the last 3 days, else the hour."""
    db = project.store.db
    row = db.execute("SELECT MIN(start) FROM monitor_buckets WHERE source = ? AND dim = '' "
                     "AND bucket_s = ?", (source, aggregates.HOUR)).fetchone()
    if row is None or row[0] is None:
        return None
    minute = db.execute("SELECT MIN(start) FROM monitor_buckets WHERE source = ? AND dim = '' "
                        "AND bucket_s = ? AND start < ?",
                        (source, aggregates.MINUTE, row[0] + aggregates.HOUR)).fetchone()
    return float(minute[0]) if minute and minute[0] is not None else float(row[0])


@dataclass(frozen=True)
class Budget:
    """The month's spend against the budget. ``status``: "over" (projected or spent past the
    budget), "on track", "no budget" (the card sets none) or "too early" (less history than
    ``MIN_HISTORY_S`` to project from)."""

    budget: float | None
    spent: float
    rate_per_day: float
    projected: float
    month_start: float
    month_end: float
    history_s: float
    status: str
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def sentence(self) -> str:
        month = dt.datetime.fromtimestamp(self.month_start, tz=dt.UTC).strftime("%B")
        if self.budget is None:
            return (f"${self.spent:,.4f} spent in {month}; the card sets no monthly budget "
                    "([constraints] monthly_budget_usd).")
        if self.status == "too early":
            return (f"${self.spent:,.4f} spent in {month} of the ${self.budget:,.2f} budget; "
                    f"{self.history_s / 3600:.1f} h of spending history is too little to "
                    "project the month.")
        if self.spent > self.budget:
            return (f"${self.spent:,.2f} already spent in {month}, over the monthly budget of "
                    f"${self.budget:,.2f}.")
        verdict = "over" if self.status == "over" else "within"
        return (f"Projected month-end spend ${self.projected:,.2f} ({self.spent:,.2f} spent so "
                f"far, ${self.rate_per_day:,.2f}/day lately) is {verdict} the monthly budget "
                f"of ${self.budget:,.2f}.")


def budget_status(project: Project, card: Any = None, *, now: float | None = None) -> Budget:
    """Where the month's spend (every model call) stands against the card's budget."""
    from workbench.card import load_card

    now = time.time() if now is None else now
    card = card if card is not None else load_card(project)
    budget = card.constraints.monthly_budget_usd
    start, end = month_bounds(now)
    spent = _spend(project, "calls", start, now, now)
    seen = first_seen(project, "calls")
    history = 0.0 if seen is None else max(0.0, now - max(seen, now - TRAILING_S))
    recent = _spend(project, "calls", now - history, now, now) if history else 0.0
    rate = recent / history if history else 0.0
    projected = spent + rate * max(0.0, end - now)
    if budget is None:
        status = "no budget"
    elif spent > budget or (history >= MIN_HISTORY_S and projected > budget):
        status = "over"
    elif history < MIN_HISTORY_S:
        status = "too early"
    else:
        status = "on track"
    return Budget(budget, spent, rate * 86400, projected, start, end, history, status,
                  {"trailing_spend": recent})


def budget_alert(project: Project, card: Any = None, *, now: float | None = None) -> Alert:
    """The budget-burn alert (kind ``budget``): firing when the projection (or the spend) is
    over the monthly budget; "no data" without a budget or enough history."""
    from workbench.monitor import Alert, AlertRule

    state = budget_status(project, card, now=now)
    rule = AlertRule("budget_burn", "<=", math.nan if state.budget is None else state.budget,
                     "card", kind="budget")
    status = {"over": "firing", "on track": "ok"}.get(state.status, "no data")
    details = {"spent": state.spent, "rate_per_day": state.rate_per_day,
               "month_end": state.month_end, "history_h": state.history_s / 3600}
    return Alert(rule, status, state.projected, f"budget_burn: {state.sentence}", details)


def spend_frame(project: Project, *, days: int = 31, now: float | None = None) -> pd.DataFrame:
    """Spend per UTC day over the last ``days`` days (today included): every model call's
    (``model_spend_usd``, what the budget counts) and the service's (``service_spend_usd``),
    with the service's requests and distinct users."""
    import pandas as pd

    now = time.time() if now is None else now
    today = math.floor(now / 86400) * 86400
    since = today - (days - 1) * 86400
    calls = aggregates.collect(project, "calls", since=since, until=now, bucket_s=86400, now=now)
    service = aggregates.collect(project, "service", since=since, until=now, bucket_s=86400,
                                 now=now)
    rows = []
    for i in range(days):
        day = since + i * 86400
        c, s = calls.get((day, "")), service.get((day, ""))
        rows.append({"day": pd.Timestamp(day, unit="s", tz="UTC").date(),
                     "model_spend_usd": c.counts[_COST] if c else 0.0,
                     "service_spend_usd": s.counts[_COST] if s else 0.0,
                     "requests": int(s.counts[0]) if s else 0,
                     "users": s.users() if s else 0})
    return pd.DataFrame(rows, columns=["day", "model_spend_usd", "service_spend_usd",
                                       "requests", "users"])


def spend_by_key(project: Project, *, since: float | None = None, until: float | None = None,
                 now: float | None = None) -> pd.DataFrame:
    """The service's spend per API key (``client``, the key's id, never the key) since
    ``since`` (default: the start of this month): requests, spend, cost per request, the key's
    share of the spend, distinct users."""
    from workbench.monitor import breakdown

    now = time.time() if now is None else now
    since = month_bounds(now)[0] if since is None else since
    frame = breakdown(project, "client", window_s=None, since=since,
                      until=now if until is None else until, now=now, source="service")
    total = frame["cost_usd"].sum()
    out = frame.rename(columns={"value": "client"})[
        ["client", "requests", "answered", "cost_usd", "cost_per_request", "users"]].copy()
    out["spend_share"] = out["cost_usd"] / total if total else math.nan
    return out.sort_values(["cost_usd", "requests"], ascending=False).reset_index(drop=True)
