"""Is a difference real or noise? Intervals on every aggregate, flaky items, paired tests.

    >>> wilson_interval(8, 10)                       # a pass rate of 8/10
    (0.490..., 0.943...)
    >>> paired_test(a_passed, b_passed).verdict      # the same items, two runs
    'B is better than A (p = 0.01)'

- Pass rates get **Wilson** intervals (scipy's ``binomtest(...).proportion_ci("wilson")``): unlike
  the textbook ``p ± 1.96·se`` they stay inside [0, 1] and behave at 0/10 and 10/10.
- Other aggregates (mean latency, cost per request, p95) get **bootstrap** intervals
  (``scipy.stats.bootstrap``, BCa).
- Two runs over the same items are compared **paired**: McNemar's exact test for pass/fail (a
  binomial test on the items where the runs disagree) and the Wilcoxon signed-rank test for
  scores. A paired test is far more sensitive than comparing two pass rates, because the items
  both runs get right (or wrong) carry no information about the difference.
- Repeats (the same items run N times, ``cache=False``) show **flaky** items: passes 2 of 3.

numpy, scipy and pandas are imported when a function is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# Whether an item passed is decided in one place for every phase (re-exported here).
from workbench.evaluate.verdicts import item_passed, primary_scorer

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project
    from workbench.runs import Run

ALPHA = 0.05  # a difference with p below this is called real


# -- intervals -----------------------------------------------------------------------------------

def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval for a proportion ``successes / n`` (NaNs when n is 0)."""
    from scipy.stats import binomtest

    if n <= 0:
        return (math.nan, math.nan)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be between 0 and n={n}, not {successes}")
    ci = binomtest(int(successes), int(n)).proportion_ci(confidence_level=confidence,
                                                         method="wilson")
    return (float(ci.low), float(ci.high))


def bootstrap_interval(values: Sequence[float], stat: Callable[..., Any] | None = None,
                       confidence: float = 0.95, n_resamples: int = 2000,
                       seed: int = 0) -> tuple[float, float]:
    """A bootstrap (BCa) interval for ``stat`` (default the mean) of ``values``.

    ``stat`` must accept an ``axis`` argument, as numpy's reductions do
    (``lambda x, axis: np.percentile(x, 95, axis=axis)`` for a p95). NaNs are dropped; with
    fewer than two values the interval is NaN; when every value is the same it is that value."""
    import numpy as np
    from scipy.stats import bootstrap

    stat = stat or np.mean
    data = np.asarray([v for v in values if v is not None], dtype=float)
    data = data[~np.isnan(data)]
    if len(data) < 2:
        return (math.nan, math.nan)
    if np.all(data == data[0]):  # BCa is undefined on a constant sample; the answer is not
        value = float(stat(data, axis=-1))
        return (value, value)
    result = bootstrap((data,), stat, confidence_level=confidence, n_resamples=n_resamples,
                       method="BCa", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # BCa can fail on very skewed data: percentile
        result = bootstrap((data,), stat, confidence_level=confidence, n_resamples=n_resamples,
                           method="percentile", rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high)


# -- pass/fail per item --------------------------------------------------------------------------

# -- repeats -------------------------------------------------------------------------------------

def per_item_consistency(items: pd.DataFrame | Sequence[pd.DataFrame],
                         scorer: str | None = None) -> pd.DataFrame:
    """How often each item passed over repeated runs: item_id, passes, repeats, pass_rate,
    flaky (passed some repeats and failed others).

    ``items`` is a list of runs' ``.items`` frames, or one frame holding every repeat (rows with
    the same ``item_id``), with a ``passed`` column or a ``scores`` column. Flaky items first."""
    import pandas as pd

    frames = [items] if isinstance(items, pd.DataFrame) else list(items)
    rows = []
    for frame in frames:
        passed = item_passed(frame, scorer)
        rows.extend(zip(frame["item_id"].astype(str), passed, strict=True))
    long = pd.DataFrame(rows, columns=["item_id", "passed"])
    long = long[long["passed"].notna()]
    if long.empty:
        return pd.DataFrame(columns=["item_id", "passes", "repeats", "pass_rate", "flaky"])
    grouped = long.groupby("item_id", sort=False)["passed"]
    out = pd.DataFrame({"passes": grouped.sum().astype(int), "repeats": grouped.size()})
    out["pass_rate"] = out["passes"] / out["repeats"]
    out["flaky"] = (out["passes"] > 0) & (out["passes"] < out["repeats"])
    out = out.reset_index()
    return out.sort_values(["flaky", "pass_rate"], ascending=[False, True], kind="stable") \
        .reset_index(drop=True)


def run_repeats(project: Project, prompt_name: str, repeats: int = 3, **options: Any) -> list[Run]:
    """Run the same prompt ``repeats`` times with the cache off (a cached repeat would only
    measure the cache). Options go to ``start_run``; feed the runs' items to
    ``per_item_consistency``."""
    from workbench.runs import start_run

    if repeats < 2:
        raise ValueError("Repeats need at least 2 runs to show anything.")
    options["cache"] = False
    name = options.pop("name", None) or prompt_name
    return [start_run(project, prompt_name, name=f"{name} repeat {i + 1}/{repeats}", **options)
            for i in range(repeats)]


# -- paired comparisons --------------------------------------------------------------------------

@dataclass(frozen=True)
class Comparison:
    """A paired comparison of A and B over the same items.

    ``difference`` is B minus A (pass rate or mean score); ``interval`` its confidence interval;
    ``verdict`` says in a sentence whether the difference is real or within noise."""

    test: str
    statistic: float
    p_value: float
    difference: float
    interval: tuple[float, float]
    n: int
    verdict: str
    a_only: int | None = None  # pass/fail: items only A passed
    b_only: int | None = None  # pass/fail: items only B passed

    @property
    def significant(self) -> bool:
        return self.p_value == self.p_value and self.p_value < ALPHA

    def __str__(self) -> str:
        return self.verdict


def format_p(p: float) -> str:
    if p != p:
        return "p = n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2f}" if p >= 0.01 else f"p = {p:.3f}"


def _verdict(difference: float, p: float, names: tuple[str, str], higher_is_better: bool) -> str:
    a, b = names
    if p != p:
        return f"There is nothing to compare: {a} and {b} agree on every item."
    if p >= ALPHA or difference == 0:
        return f"The difference is within noise ({format_p(p)})."
    better = b if (difference > 0) == higher_is_better else a
    worse = a if better == b else b
    sentence = f"{better} is better than {worse} ({format_p(p)})."
    return sentence[0].upper() + sentence[1:]


def _paired_values(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[Any, Any]]:
    if len(a) != len(b):
        raise ValueError(f"A paired test needs the same items: A has {len(a)}, B {len(b)}.")
    return [(x, y) for x, y in zip(a, b, strict=True)
            if x is not None and y is not None and x == x and y == y]


def paired_test(a: Sequence[Any], b: Sequence[Any], *, names: tuple[str, str] = ("A", "B"),
                higher_is_better: bool = True, confidence: float = 0.95) -> Comparison:
    """Compare A and B item by item (same items, same order; pairs with a missing side are left
    out). Booleans get McNemar's exact test, numbers the Wilcoxon signed-rank test."""
    pairs = _paired_values(a, b)
    if pairs and all(isinstance(x, (bool,)) or type(x).__name__ == "bool_" for p in pairs
                     for x in p):
        return _mcnemar(pairs, names, higher_is_better, confidence)
    return _wilcoxon(pairs, names, higher_is_better, confidence)


def _mcnemar(pairs: list[tuple[Any, Any]], names: tuple[str, str], higher_is_better: bool,
             confidence: float) -> Comparison:
    from scipy.stats import binomtest

    n = len(pairs)
    a_only = sum(1 for x, y in pairs if x and not y)
    b_only = sum(1 for x, y in pairs if y and not x)
    discordant = a_only + b_only
    difference = (b_only - a_only) / n if n else math.nan
    if n == 0:
        return Comparison("McNemar exact", 0.0, math.nan, math.nan, (math.nan, math.nan), 0,
                          "There are no paired items to compare.", 0, 0)
    if discordant == 0:
        # Nothing differs, but few items cannot prove nothing would: the share of items that
        # could disagree is at most the exact upper bound for 0 of n.
        upper = float(binomtest(0, n).proportion_ci(confidence, method="exact").high)
        return Comparison("McNemar exact", 0.0, 1.0, 0.0, (-upper, upper), n,
                          _verdict(0.0, 1.0, names, higher_is_better), 0, 0)
    test = binomtest(b_only, discordant, 0.5)
    p = float(test.pvalue)
    # The interval that goes with the exact test: given the discordant items, B wins each with
    # probability pi (Clopper-Pearson interval, the inversion of this binomial test), and the
    # difference in pass rates is (discordant / n) * (2 pi - 1).
    ci = test.proportion_ci(confidence, method="exact")
    share = discordant / n
    interval = (share * (2 * float(ci.low) - 1), share * (2 * float(ci.high) - 1))
    return Comparison("McNemar exact", float(min(a_only, b_only)), p, difference, interval, n,
                      _verdict(difference, p, names, higher_is_better), a_only, b_only)


def _wilcoxon(pairs: list[tuple[Any, Any]], names: tuple[str, str], higher_is_better: bool,
              confidence: float) -> Comparison:
    import numpy as np
    from scipy.stats import wilcoxon

    n = len(pairs)
    if n == 0:
        return Comparison("Wilcoxon signed-rank", math.nan, math.nan, math.nan,
                          (math.nan, math.nan), 0, "There are no paired items to compare.")
    diffs = np.asarray([float(y) - float(x) for x, y in pairs])
    difference = float(diffs.mean())
    if np.all(diffs == 0):
        return Comparison("Wilcoxon signed-rank", 0.0, 1.0, 0.0, (0.0, 0.0), n,
                          _verdict(0.0, 1.0, names, higher_is_better))
    from scipy.stats import rankdata

    result = wilcoxon(diffs, zero_method="wilcox")
    interval = bootstrap_interval(diffs, confidence=confidence)
    p = float(result.pvalue)
    # The test ranks the differences: its direction is the side with the larger rank sum, which
    # can differ from the sign of the mean when a few items moved a lot the other way.
    moved = diffs[diffs != 0]
    ranks = rankdata(np.abs(moved))
    direction = float(ranks[moved > 0].sum() - ranks[moved < 0].sum())
    verdict = _verdict(direction, p, names, higher_is_better)
    if p < ALPHA and direction * difference < 0:
        verdict += (f" The mean difference points the other way ({difference:+.3g}): a few "
                    "items moved a lot against most of the others.")
    return Comparison("Wilcoxon signed-rank", float(result.statistic), p, difference, interval, n,
                      verdict)


def compare_runs(project: Project, run_a: str, run_b: str, *, scorer: str | None = None,
                 field: str = "passed") -> Comparison:
    """Paired comparison of two runs over the items they share: ``field="passed"`` (McNemar on
    pass/fail) or a numeric item column such as ``"latency_s"``, ``"cost_usd"`` or
    ``"score.<scorer>"`` (Wilcoxon; lower is better for latency and cost)."""
    from workbench.runs import load_run

    a_items, b_items = load_run(project, run_a).items, load_run(project, run_b).items
    if field == "passed":  # both runs judged by the same scorer
        scorer = scorer or primary_scorer(a_items) or primary_scorer(b_items)
        a_items = a_items.assign(_v=item_passed(a_items, scorer))
        b_items = b_items.assign(_v=item_passed(b_items, scorer))
    else:
        a_items, b_items = a_items.assign(_v=a_items[field]), b_items.assign(_v=b_items[field])
    merged = a_items[["item_id", "_v"]].merge(b_items[["item_id", "_v"]], on="item_id",
                                              suffixes=("_a", "_b"))
    lower_better = field in ("latency_s", "cost_usd", "prompt_tokens", "completion_tokens")
    return paired_test(list(merged["_v_a"]), list(merged["_v_b"]), names=(run_a, run_b),
                       higher_is_better=not lower_better)


# -- a run's aggregates with intervals -----------------------------------------------------------

def _p95(x: Any, axis: int = -1) -> Any:
    import numpy as np

    return np.percentile(x, 95, axis=axis)


def _correct_labels(run: Run, items: pd.DataFrame) -> list[bool]:
    """Per item, whether the parsed label is the expected one (as classification_report
    counts it: a failed call or parse is wrong)."""
    from workbench.evaluate.scorers import canonical_label

    rows = items[items["expected"].notna()]
    known = sorted({str(e) for e in rows["expected"]} | set(run.config.get("labels") or ()))
    out = []
    for expected, parsed, ok, output in zip(rows["expected"], rows["parsed"], rows["parse_ok"],
                                            rows["output"], strict=True):
        predicted = parsed if output is not None and ok is not False else None
        out.append(canonical_label(predicted, known) == str(expected))
    return out


def aggregate_with_intervals(run: Run | Any, confidence: float = 0.95,
                             n_resamples: int = 2000) -> pd.DataFrame:
    """Each aggregate of a run with its interval: metric, value, low, high, n, method.

    Proportions (accuracy, each scorer's pass rate, parse rate, error rate) use Wilson;
    latency, p95 latency and cost per request use the bootstrap."""
    import numpy as np
    import pandas as pd

    items = run.items
    rows: list[dict[str, Any]] = []

    def proportion(metric: str, flags: Sequence[bool]) -> None:
        n, k = len(flags), int(sum(bool(f) for f in flags))
        low, high = wilson_interval(k, n, confidence)
        rows.append({"metric": metric, "value": k / n if n else math.nan, "low": low,
                     "high": high, "n": n, "method": "Wilson"})

    def spread(metric: str, values: Sequence[float], stat: Callable[..., Any]) -> None:
        data = [float(v) for v in values if v is not None and v == v]
        value = float(stat(np.asarray(data), axis=-1)) if data else math.nan
        low, high = bootstrap_interval(data, stat, confidence, n_resamples)
        rows.append({"metric": metric, "value": value, "low": low, "high": high,
                     "n": len(data), "method": "bootstrap (BCa)"})

    if run.config.get("task_type") == "classification" and "expected" in items:
        proportion("accuracy", _correct_labels(run, items))
    scorer_keys: list[str] = []
    for scores in items["scores"]:
        for key in (scores or {}):
            if key not in scorer_keys:
                scorer_keys.append(key)
    for key in scorer_keys:
        passed = [p for p in item_passed(items, key) if p is not None]
        if passed:
            proportion(key, passed)
    answered = items[items["output"].notna()]
    proportion("parse_rate", [ok is not False for ok in answered["parse_ok"]])
    proportion("error_rate", [e is not None for e in items["error"]])
    fresh = answered[answered["cached"] != True]  # noqa: E712 (None counts as not cached)
    latencies = list((fresh if len(fresh) else answered)["latency_s"])
    spread("mean_latency_s", latencies, np.mean)
    spread("p95_latency_s", latencies, _p95)
    spread("cost_per_request_usd", list(answered["cost_usd"]), np.mean)
    return pd.DataFrame(rows, columns=["metric", "value", "low", "high", "n", "method"])


def interval_text(value: float, low: float, high: float, fmt: str = ".2f") -> str:
    """``0.80 [0.49, 0.94]`` — how notebooks and reports show a value with its interval."""
    if value != value:
        return "n/a"
    if low != low:
        return format(value, fmt)
    return f"{value:{fmt}} [{low:{fmt}}, {high:{fmt}}]"
