"""The build-vs-buy matrix: hosted API, self-hosted open model or no LLM, on weighted criteria.

Each option is scored 1 (poor) to 5 (excellent) on each criterion — higher is always better, so
"cost 5" means cheap. The weighted total (also 1-5) ranks the options. Scores and weights are
judgements: the defaults are a starting point for a discussion, and the user changes any of them.

With a project card, ``score_options(card=card)`` adjusts the defaults to it:

- **cost** is scored from the card's traffic and budget: a hosted API costs per request (the
  card's ``cost_per_request`` target, else ``HOSTED_USD_PER_REQUEST``); a self-hosted model costs
  a GPU all month (``SELF_HOSTED_USD_PER_MONTH``) whatever the traffic; no LLM costs a CPU
  (``CLASSICAL_USD_PER_MONTH``). Each monthly figure is scored against ``monthly_budget_usd``.
- a privacy rule that forbids PII in external APIs doubles the **privacy** weight, and the hosted
  API's privacy score drops to 1 (it needs a PII filter in front of it, and trust in the vendor);
- a latency budget under one second doubles the **latency** weight.

Every adjustment is listed in the result's ``attrs["notes"]`` so a notebook can say why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.card import ProjectCard

CRITERIA: dict[str, str] = {
    "quality": "how well it is likely to do the task",
    "cost": "running cost at the expected traffic (5 = cheapest)",
    "latency": "time to answer one request (5 = fastest)",
    "privacy": "how little data leaves your control (5 = none)",
    "time_to_build": "how soon it can be in production (5 = soonest)",
    "control": "freedom to change, pin and inspect the model",
}
OPTIONS: dict[str, str] = {
    "hosted_api": "Hosted LLM API",
    "self_hosted": "Self-hosted open model",
    "no_llm": "No LLM (classical ML or rules)",
}
DEFAULT_SCORES: dict[str, dict[str, float]] = {
    "hosted_api": {"quality": 5, "cost": 3, "latency": 3, "privacy": 2, "time_to_build": 5,
                   "control": 2},
    "self_hosted": {"quality": 3, "cost": 3, "latency": 4, "privacy": 5, "time_to_build": 2,
                    "control": 5},
    "no_llm": {"quality": 2, "cost": 5, "latency": 5, "privacy": 5, "time_to_build": 4,
               "control": 4},
}
DEFAULT_WEIGHTS: dict[str, float] = {
    "quality": 0.30, "cost": 0.20, "latency": 0.15, "privacy": 0.15, "time_to_build": 0.10,
    "control": 0.10,
}
# Rough monthly figures for the card-based cost score; change them to your own quotes.
HOSTED_USD_PER_REQUEST = 0.001
SELF_HOSTED_USD_PER_MONTH = 600.0  # one small GPU on demand, all month
CLASSICAL_USD_PER_MONTH = 20.0  # a small CPU instance


class InvalidMatrix(WorkbenchError):
    pass


def defaults_for(card: ProjectCard | None = None) -> tuple[dict[str, dict[str, float]],
                                                          dict[str, float], list[str]]:
    """Default scores and weights, adjusted to ``card`` as the module docstring explains."""
    scores = {option: dict(row) for option, row in DEFAULT_SCORES.items()}
    weights = dict(DEFAULT_WEIGHTS)
    notes: list[str] = []
    if card is None:
        return scores, weights, notes
    from workbench.card import privacy_forbids_external_pii

    c = card.constraints
    if c.expected_requests_per_day is not None and c.monthly_budget_usd:
        cost_target = card.metric("cost_per_request")
        per_request = (cost_target.target if cost_target and cost_target.unit == "USD"
                       else HOSTED_USD_PER_REQUEST)
        monthly = {"hosted_api": per_request * c.expected_requests_per_day * 30,
                   "self_hosted": SELF_HOSTED_USD_PER_MONTH, "no_llm": CLASSICAL_USD_PER_MONTH}
        for option, usd in monthly.items():
            scores[option]["cost"] = _cost_score(usd, c.monthly_budget_usd)
        notes.append("Cost scored against the ${:,.0f} monthly budget at {:,} requests a day: "
                     "hosted ≈ ${:,.0f}, self-hosted ≈ ${:,.0f}, no LLM ≈ ${:,.0f} a month."
                     .format(c.monthly_budget_usd, c.expected_requests_per_day,
                             monthly["hosted_api"], monthly["self_hosted"], monthly["no_llm"]))
    if privacy_forbids_external_pii(card):
        weights["privacy"] *= 2
        scores["hosted_api"]["privacy"] = 1
        notes.append("A privacy rule forbids PII in external APIs: privacy weighs double and "
                     "the hosted API scores 1 on privacy (it needs a PII filter in front).")
    if c.latency_budget_s is not None and c.latency_budget_s < 1:
        weights["latency"] *= 2
        notes.append(f"The latency budget is {c.latency_budget_s:g} s (under one second): "
                     "latency weighs double.")
    return scores, weights, notes


def _cost_score(monthly_usd: float, budget: float) -> int:
    share = monthly_usd / budget
    for limit, score in ((0.25, 5), (0.5, 4), (1.0, 3), (2.0, 2)):
        if share <= limit:
            return score
    return 1


def score_options(scores: Mapping[str, Mapping[str, float]] | pd.DataFrame | None = None,
                  weights: Mapping[str, float] | None = None, *,
                  card: ProjectCard | None = None) -> pd.DataFrame:
    """Rank the options by weighted score.

    ``scores`` and ``weights`` override the defaults (from ``card`` when given) entry by entry,
    so ``score_options(weights={"privacy": 3})`` changes one weight. A new option must score
    every criterion. Weights may be any non-negative numbers; they are normalised to sum to 1.
    Scores may be a dict ``{option: {criterion: score}}`` or a DataFrame (options as index).

    Returns one row per option, best first: ``rank``, ``option``, ``label``, a column per
    criterion and ``total`` (1-5). ``attrs["weights"]`` holds the weights used and
    ``attrs["notes"]`` the adjustments made from the card.
    """
    import pandas as pd

    base_scores, base_weights, notes = defaults_for(card)
    merged_scores = _merge_scores(base_scores, _as_mapping(scores))
    merged_weights = _merge_weights(base_weights, weights or {})

    rows = []
    for option, row in merged_scores.items():
        total = sum(merged_weights[c] * row[c] for c in CRITERIA)
        rows.append({"option": option, "label": OPTIONS.get(option, option), **row,
                     "total": round(total, 3)})
    df = pd.DataFrame(rows).sort_values(["total", "option"], ascending=[False, True],
                                        kind="stable").reset_index(drop=True)
    df.insert(0, "rank", range(1, len(df) + 1))
    df.attrs["weights"] = merged_weights
    df.attrs["notes"] = notes
    return df


def _as_mapping(scores: Any) -> Mapping[str, Mapping[str, float]]:
    if scores is None:
        return {}
    if hasattr(scores, "to_dict") and hasattr(scores, "index"):  # a DataFrame
        return {str(k): v for k, v in scores.to_dict(orient="index").items()}
    if not isinstance(scores, Mapping):
        raise InvalidMatrix(f"Scores must be a dict of options to criterion scores, not "
                            f"{type(scores).__name__}.",
                            'Pass e.g. {"hosted_api": {"privacy": 1}}.')
    return scores


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidMatrix(f"{what} is {value!r}, which is not a number.",
                            "Write a plain number such as 3.")
    return float(value)


def _unknown_criterion(key: str, what: str) -> InvalidMatrix:
    import difflib

    close = difflib.get_close_matches(key, CRITERIA, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return InvalidMatrix(f"{what} names an unknown criterion '{key}'.{hint}",
                         f"The criteria are {', '.join(CRITERIA)}.")


def _merge_scores(base: dict[str, dict[str, float]],
                  given: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    merged = {option: dict(row) for option, row in base.items()}
    problems = []
    for option, row in given.items():
        if not isinstance(row, Mapping):
            raise InvalidMatrix(f"The scores of '{option}' must be a dict of criterion scores.",
                                'Pass e.g. {"quality": 4, "cost": 2}.')
        for key, value in row.items():
            if key not in CRITERIA:
                raise _unknown_criterion(key, f"The scores of '{option}'")
            score = _number(value, f"The {key} score of '{option}'")
            if not 1 <= score <= 5:
                problems.append(f"the {key} score of '{option}' is {score:g}")
        if option not in merged:
            missing = [c for c in CRITERIA if c not in row]
            if missing:
                raise InvalidMatrix(f"The new option '{option}' has no score for "
                                    f"{', '.join(missing)}.",
                                    "A new option must score every criterion from 1 to 5.")
            merged[option] = {}
        merged[option].update({k: float(v) for k, v in row.items()})
    if problems:
        raise InvalidMatrix("Scores run from 1 (poor) to 5 (excellent), but "
                            + "; ".join(problems) + ".",
                            "Change those scores to a number from 1 to 5.")
    return merged


def _merge_weights(base: dict[str, float], given: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(given, Mapping):
        raise InvalidMatrix(f"Weights must be a dict of criterion weights, not "
                            f"{type(given).__name__}.", 'Pass e.g. {"privacy": 0.3}.')
    merged = dict(base)
    for key, value in given.items():
        if key not in CRITERIA:
            raise _unknown_criterion(key, "The weights")
        weight = _number(value, f"The weight of {key}")
        if weight < 0:
            raise InvalidMatrix(f"The weight of {key} is {weight:g}; weights cannot be negative.",
                                "Use 0 to ignore a criterion.")
        merged[key] = weight
    total = sum(merged.values())
    if total <= 0:
        raise InvalidMatrix("Every weight is 0, so no option can be ranked.",
                            "Give at least one criterion a positive weight.")
    return {key: round(value / total, 6) for key, value in merged.items()}


def plot(df: pd.DataFrame) -> go.Figure:
    """A stacked bar per option: each segment is one criterion's weighted contribution, so the
    chart shows both the ranking and why."""
    import plotly.graph_objects as go

    if "total" not in df or not set(CRITERIA) <= set(df.columns):
        raise InvalidMatrix("plot() needs the table score_options() returns.",
                            "Call plot(score_options(...)).")
    weights = df.attrs.get("weights") or DEFAULT_WEIGHTS
    ordered = df.sort_values("total")  # plotly draws horizontal bars bottom-up: best on top
    labels = ordered["label"] if "label" in ordered else ordered["option"]
    fig = go.Figure()
    for criterion in CRITERIA:
        contribution = ordered[criterion] * weights[criterion]
        fig.add_bar(y=labels, x=contribution, name=criterion.replace("_", " "),
                    orientation="h", customdata=ordered[criterion],
                    hovertemplate=(f"{criterion.replace('_', ' ')}: score %{{customdata}} × "
                                   f"weight {weights[criterion]:.2f} = %{{x:.2f}}<extra></extra>"))
    for label, total in zip(labels, ordered["total"], strict=True):
        fig.add_annotation(x=total, y=label, text=f"{total:.2f}", showarrow=False,
                           xanchor="left", xshift=6)
    fig.update_layout(barmode="stack", title="Build vs buy: weighted score (1-5)",
                      xaxis={"title": "weighted score", "range": [0, 5.6]},
                      legend={"orientation": "h", "y": -0.2}, height=320,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig
