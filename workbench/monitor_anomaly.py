"""Anomalies: latency, error rate and spend far above their own recent past.

A fixed threshold from the card says "p95 over 2 s is bad"; it cannot say "p95 tripled since
yesterday", which is often the first sign of a provider slowing down or a prompt change gone
wrong. Each metric of the current window is compared with the same metric in each hour of the
trailing 7 days (before the window), by a **robust z-score**: how many scaled median absolute
deviations (1.4826 × MAD, the standard deviation for normal data) it sits above the median.
Median and MAD are not dragged by the outliers a mean and a standard deviation would chase.

- ``p95_latency_anomaly``: hours with at least ``MIN_ANSWERED`` answered requests;
- ``error_rate_anomaly``: hours with at least ``MIN_SERVED`` answered or failed requests; a
  few errors among few requests are noise a z-score overrates, so the window's errors must
  also be unlikely under the baseline's pooled rate (binomial tail below ``ERROR_P``);
- ``spend_anomaly``: spend per hour (every hour since traffic began counts, quiet ones as 0),
  against the **same hour of the day** once the baseline holds 3 days (traffic has a daily
  cycle: four times the night's spend is an anomaly even when it stays under noon's).

An anomaly fires when z >= ``anomaly_z`` (default 4) and the baseline holds at least
``anomaly_min_buckets`` qualifying hours (default 24): before that it says "no data". The
spread is floored (``FLOORS``), so a flat baseline (MAD 0) does not turn a 1 ms wobble into an
alert. Only "worse" fires: faster answers or fewer errors are not paged. The rates of false
and missed alarms on simulated traffic are in ``benchmarks/bench_monitor.py``.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from workbench import monitor_aggregates as aggregates
from workbench import monitor_sketch as sketch

if TYPE_CHECKING:
    from workbench.monitor import Alert
    from workbench.project import Project

BASELINE_S = 7 * 86400
MIN_ANSWERED = 10
MIN_SERVED = 20
MAD_SCALE = 1.4826
ERROR_P = 1e-3  # the window's errors must be this unlikely at the baseline's rate
SEASONAL_HOURS = 72  # baseline hours from which spend is compared hour of day by hour of day
# metric -> (absolute floor of the spread, floor relative to the median)
FLOORS = {"p95_latency": (0.005, 0.05), "error_rate": (0.01, 0.0), "spend": (0.01, 0.1)}
_NAMES = {"p95_latency": "p95 latency", "error_rate": "error rate", "spend": "spend per hour"}


def robust_z(value: float, baseline: list[float], metric: str) -> tuple[float, float, float]:
    """(z, median, spread) of ``value`` against ``baseline``."""
    import numpy as np

    values = np.asarray(baseline, dtype=float)
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    absolute, relative = FLOORS[metric]
    spread = max(MAD_SCALE * mad, absolute, relative * abs(median))
    return (value - median) / spread, median, spread


def _baseline(project: Project, source: str, window_start: float,
              now: float) -> dict[str, list[float]]:
    """Each metric's value in each qualifying hour of the 7 days before the window."""
    end = math.floor(window_start / 3600) * 3600
    begin = end - BASELINE_S
    hours = aggregates.collect(project, source, since=begin, until=end, bucket_s=3600, now=now)
    out: dict[str, list[float]] = {"p95_latency": [], "error_rate": [], "spend": [],
                                   "spend_hours": [], "pooled": [0.0, 0.0]}
    cost = aggregates.COUNTERS.index("cost_usd")
    first = None
    for (start, _), totals in sorted(hours.items()):
        first = start if first is None else first
        answered, errors = totals.counts[1], totals.counts[2]
        if answered >= MIN_ANSWERED:
            out["p95_latency"].append(sketch.quantiles(totals._dense(), (95,))[0])
        if answered + errors >= MIN_SERVED:
            out["error_rate"].append(errors / (answered + errors))
            out["pooled"][0] += errors
            out["pooled"][1] += answered + errors
    if first is not None:  # every hour since traffic began, quiet ones spending nothing
        spend = {start: totals.counts[cost] for (start, _), totals in hours.items()}
        out["spend_hours"] = [float(h) for h in range(int(first), int(end), 3600)]
        out["spend"] = [spend.get(h, 0.0) for h in out["spend_hours"]]
    return out


def _hour_of_day(t: float) -> int:
    return int(t // 3600) % 24


def seasonal_z(value: float, at: float, history: list[float], hours: list[float]
               ) -> tuple[float, float, float, float]:
    """(z, expected, spread, limit) of spend ``value`` at time ``at``: each hour's spend less
    the median spend of the same hour of the day (UTC) in the baseline, and the window's the
    same way; the robust z of the window's residual among the baseline's."""
    import numpy as np

    values = np.asarray(history, dtype=float)
    hod = np.array([_hour_of_day(h) for h in hours])
    typical = {h: float(np.median(values[hod == h])) for h in set(hod.tolist())}
    residuals = values - np.array([typical[h] for h in hod])
    expected = typical.get(_hour_of_day(at), float(np.median(values)))
    centre = float(np.median(residuals))
    mad = float(np.median(np.abs(residuals - centre)))
    absolute, relative = FLOORS["spend"]
    spread = max(MAD_SCALE * mad, absolute, relative * abs(expected))
    z = (value - expected - centre) / spread
    return z, expected, spread, expected + centre


def _unlikely_errors(errors: int, served: int, pooled: list[float]) -> float:
    """P(at least ``errors`` failures in ``served`` requests) at the baseline's pooled rate."""
    from scipy.stats import binom

    rate = pooled[0] / pooled[1] if pooled[1] else 0.0
    rate = max(rate, 0.5 / pooled[1]) if pooled[1] else 0.0  # never quite zero
    return float(binom.sf(errors - 1, served, rate)) if errors else 1.0


def _fmt(metric: str, value: float) -> str:
    if metric == "p95_latency":
        return f"{value:.3g} s"
    if metric == "error_rate":
        return f"{value:.1%}"
    return f"${value:,.4f}"


def anomaly_alerts(project: Project, *, source: str, now: float | None = None,
                   window_s: float = 3600.0, settings: Any = None,
                   current: dict[str, Any] | None = None) -> list[Alert]:
    """One alert (kind ``anomaly``) per metric: the last ``window_s`` seconds against the
    hours of the 7 days before them. ``current`` is the window's ``window_metrics`` if the
    caller has it."""
    from workbench.monitor import Alert, AlertRule, window_metrics

    now = time.time() if now is None else now
    z_limit = getattr(settings, "anomaly_z", 4.0)
    min_buckets = getattr(settings, "anomaly_min_buckets", 24)
    current = current or window_metrics(project, window_s=window_s, now=now, source=source)
    baseline = _baseline(project, source, now - window_s, now)
    served = current["answered"] + current["errors"]
    values = {
        "p95_latency": (current["p95_latency"], current["answered"] >= MIN_ANSWERED,
                        f"at least {MIN_ANSWERED} answered requests"),
        "error_rate": (current["error_rate"], served >= MIN_SERVED,
                       f"at least {MIN_SERVED} answered or failed requests"),
        "spend": (current["cost_usd"] * 3600 / window_s, True, "traffic"),
    }
    alerts = []
    for metric, (value, enough, needs) in values.items():
        name = f"{metric}_anomaly"
        history = baseline[metric]
        if len(history) < min_buckets or not enough or math.isnan(value):
            have = len(history)
            text = (f"{name}: the window needs {needs}, and the baseline {min_buckets} hours "
                    f"with {needs} in the last 7 days (it has {have}).")
            alerts.append(Alert(AlertRule(name, "<=", math.nan, "baseline", kind="anomaly"),
                                "no data", value, text, {"baseline_hours": have}))
            continue
        details: dict[str, Any] = {"baseline_hours": len(history)}
        if metric == "spend" and len(history) >= SEASONAL_HOURS:
            mid = now - window_s / 2
            z, median, spread, centre = seasonal_z(value, mid, history, baseline["spend_hours"])
            limit = centre + z_limit * spread
            typical = f"usually {_fmt(metric, median)} at this hour of the day"
            details["seasonal"] = True
        else:
            z, median, spread = robust_z(value, history, metric)
            limit = median + z_limit * spread
            typical = f"median {_fmt(metric, median)}"
        firing = z >= z_limit
        if metric == "error_rate":
            p = _unlikely_errors(int(current["errors"]), int(served), baseline["pooled"])
            details["binomial_p"] = p
            firing = firing and p < ERROR_P
        text = (f"{name}: {_NAMES[metric]} {_fmt(metric, value)} is {z:+.1f} robust z from its "
                f"last 7 days ({typical}, over {len(history)} hours; fires from "
                f"{_fmt(metric, limit)}, z >= {z_limit:g}"
                + (f", and the errors' chance at the usual rate {details['binomial_p']:.2g}"
                   f" < {ERROR_P:g}" if metric == "error_rate" else "") + ")")
        details.update(z=z, median=median, spread=spread)
        alerts.append(Alert(AlertRule(name, "<=", limit, "baseline", kind="anomaly"),
                            "firing" if firing else "ok", value, text, details))
    return alerts
