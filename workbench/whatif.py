"""Cost what-if from real traffic: what a month of this service would cost on each model, with the
response cache, and with easy requests routed to a cheaper model.

    >>> plan = cost_what_if(project)                 # the last 7 days of served requests
    >>> plan.frame                                   # one row per scenario
    >>> plan.figure()                                # monthly cost per scenario vs the budget

The basis is measured, not guessed: every answered request to the service (``serve.request``
spans) with the tokens its model calls used (the ``llm.call`` spans of its trace; repair turns
included), the cache's hit rate over those requests, and the request rate over the window
(requests per day × 30.4). Each model's price per token comes from the gateway's pricing
(litellm's bundled price map for hosted ids; the bundled and other on-machine models are free;
fake models cost what they were registered with). Token counts are the deployed model's: another
model's tokenizer counts the same text somewhat differently, so treat a projection for another
model as ±20%.

Scenarios:

- **as served**: the costs the service actually recorded (cache hits cost nothing);
- **all on M**: every request on model M, without the cache and with its measured hit rate;
- **route short inputs**: requests of at most ``short_tokens`` input tokens (default: the
  median) to the cheap model, the rest to the deployed one;
- **cascade** (``confident_sample=N``): the cheap model answers first and the deployed model
  only when the cheap one's answer does not parse; the share it answers, and how often it then
  agrees with what was served, are measured by running it on N of the window's real requests.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.monitor_aggregates import ANSWERING_ROUTES

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.project import Project

DAYS_PER_MONTH = 30.4
DAY_S = 86400.0
MIN_OBSERVED_S = 3600.0  # a rate measured over less than an hour is taken over an hour
COLUMNS = ["scenario", "model", "routed_share", "price_in_per_1m", "price_out_per_1m",
           "cost_per_request", "requests_per_month", "monthly_cost", "monthly_cost_with_cache",
           "monthly_cost_at_card_traffic", "note"]
TRAFFIC_COLUMNS = ["time", "trace_id", "model", "cached", "input_tokens", "output_tokens",
                   "cost_usd", "variables", "output"]


class WhatIfError(WorkbenchError):
    """The cost what-if cannot be computed as asked."""


def traffic_tokens(project: Project, *, since: float | None = None,
                   until: float | None = None) -> pd.DataFrame:
    """One row per answered request to the service in [since, until): its model, whether the
    cache answered, its input and output tokens (from the span itself when it carries them,
    else summed over the model calls of its trace), the cost recorded, its variables and the
    answer given."""
    import pandas as pd

    where, params = ["name = 'serve.request'"], []
    if since is not None:
        where.append("start_time >= ?")
        params.append(since)
    if until is not None:
        where.append("start_time < ?")
        params.append(until)
    project.store.flush()
    requests = []
    for row in project.store.query("SELECT trace_id, start_time, attributes FROM spans WHERE "
                                   + " AND ".join(where) + " ORDER BY start_time",
                                   tuple(params)):
        a = json.loads(row["attributes"])
        if (a.get("http.route") not in ANSWERING_ROUTES or a.get("workbench.arm") == "shadow"
                or int(a.get("http.response.status_code") or 0) != 200):
            continue  # a shadow call is the operator's experiment, not traffic
        requests.append((row, a))
    calls = _call_tokens(project, [row["trace_id"] for row, _ in requests])
    out = []
    for row, a in requests:
        tokens_in = a.get("gen_ai.usage.input_tokens")
        tokens_out = a.get("gen_ai.usage.output_tokens")
        if tokens_in is None or tokens_out is None:
            tokens_in, tokens_out = calls.get(row["trace_id"], (None, None))
        out.append({"time": row["start_time"], "trace_id": row["trace_id"],
                    "model": a.get("workbench.model"), "cached": bool(a.get("workbench.cache_hit")),
                    "input_tokens": tokens_in, "output_tokens": tokens_out,
                    "cost_usd": a.get("workbench.cost_usd"),
                    "variables": a.get("workbench.request") or {},
                    "output": a.get("workbench.output")})
    return pd.DataFrame(out, columns=TRAFFIC_COLUMNS)


def _call_tokens(project: Project, trace_ids: list[str]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for start in range(0, len(trace_ids), 500):
        chunk = trace_ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in project.store.query(
                "SELECT trace_id, attributes FROM spans WHERE name = 'llm.call' AND "
                f"trace_id IN ({marks})", tuple(chunk)):
            a = json.loads(row["attributes"])
            if a.get("gen_ai.usage.input_tokens") is None or \
                    a.get("workbench.purpose") == "moderation":  # the filter's, not the answer's
                continue
            seen = totals.setdefault(row["trace_id"], [0, 0])
            seen[0] += int(a.get("gen_ai.usage.input_tokens") or 0)
            seen[1] += int(a.get("gen_ai.usage.output_tokens") or 0)
    return {k: (v[0], v[1]) for k, v in totals.items()}


def price(model: str) -> tuple[float, float, bool]:
    """USD per input token and per output token of ``model`` (the gateway's pricing), and
    whether it is known."""
    from workbench.costs import price_per_token

    return price_per_token(model)


@dataclass
class CostWhatIf:
    """The scenarios (``frame``), the traffic they were computed from, and the measured basis:
    requests per month, cache hit rate, the window."""

    frame: pd.DataFrame
    traffic: pd.DataFrame = field(repr=False)
    requests_per_month: float
    cache_hit_rate: float
    since: float
    until: float
    budget_usd: float | None = None
    cascade: dict[str, Any] | None = None

    @property
    def sentence(self) -> str:
        if self.traffic.empty:
            return ("No answered request to the service in this window, so there is nothing "
                    "to project from.")
        served = self.frame.iloc[0]
        known = self.frame[self.frame["monthly_cost_with_cache"].notna()]
        cheapest = known.sort_values("monthly_cost_with_cache").iloc[0] if len(known) else None
        text = (f"{len(self.traffic):,} answered requests ({self.requests_per_month:,.0f} a "
                f"month at this rate, cache hit rate {self.cache_hit_rate:.0%}): as served, "
                f"${served['monthly_cost']:,.2f} a month")
        if self.budget_usd is not None:
            text += f" against a budget of ${self.budget_usd:,.2f}"
        text += "."
        if cheapest is not None:
            text += (f" Cheapest: {cheapest['scenario']} at "
                     f"${cheapest['monthly_cost_with_cache']:,.2f} a month with the cache.")
        return text

    def _repr_markdown_(self) -> str:
        return self.sentence

    def figure(self) -> go.Figure:
        """Monthly cost per scenario, without and with the cache, against the card's budget."""
        import plotly.graph_objects as go

        frame = self.frame[self.frame["monthly_cost"].notna()]
        fig = go.Figure()
        fig.add_bar(x=frame["scenario"], y=frame["monthly_cost"], name="no cache")
        fig.add_bar(x=frame["scenario"], y=frame["monthly_cost_with_cache"],
                    name=f"with the cache ({self.cache_hit_rate:.0%} hits)")
        if self.budget_usd is not None:
            fig.add_hline(y=self.budget_usd, line_dash="dash", line_color="red",
                          annotation_text="monthly budget")
        fig.update_layout(barmode="group", template="plotly_white", height=440,
                          title=f"Projected monthly cost ({self.requests_per_month:,.0f} "
                                "requests a month, measured)",
                          yaxis_title="USD per month", xaxis_tickangle=-20)
        return fig


def _models(project: Project, deployed: str, models: list[str] | None) -> list[str]:
    if models is not None:
        return list(dict.fromkeys([deployed, *models]))
    from workbench.llm.registry import SUGGESTED_HOSTED
    from workbench.switch import candidate_models

    return list(dict.fromkeys([deployed, *candidate_models(project),
                               *(m for m, _ in SUGGESTED_HOSTED)]))


def _money(value: float) -> float:
    return float(value) if value == value else math.nan


def cost_what_if(project: Project, *, models: list[str] | None = None,
                 since: float | None = None, until: float | None = None,
                 cheap_model: str | None = None, short_tokens: int | None = None,
                 confident_sample: int = 0,
                 requests_per_month: float | None = None) -> CostWhatIf:
    """The scenarios of the module docstring over the service's answered requests in
    [since, until) (default: the last 7 days). ``models``: the choices to price (default: the
    deployed model, the phase-3 candidates and the suggested hosted models); ``cheap_model``:
    where routing sends easy requests (default: the cheapest priced choice other than the
    deployed model); ``requests_per_month`` replaces the measured rate."""
    import numpy as np
    import pandas as pd

    from workbench.serve import latest_deployment

    until = time.time() if until is None else float(until)
    since = until - 7 * DAY_S if since is None else float(since)
    if since >= until:
        raise WhatIfError("The window is empty: since is not before until.",
                          "Pass since earlier than until.")
    if confident_sample < 0:
        raise WhatIfError(f"confident_sample={confident_sample} is negative.",
                          "Pass 0 (no cascade) or the number of requests to try.")
    spec = latest_deployment(project).value
    traffic = traffic_tokens(project, since=since, until=until)
    constraints = project.card().get("constraints") or {}
    budget = constraints.get("monthly_budget_usd")
    per_day = constraints.get("expected_requests_per_day")
    card_month = float(per_day) * DAYS_PER_MONTH if per_day else None
    counted = traffic.dropna(subset=["input_tokens", "output_tokens"])
    if counted.empty:
        return CostWhatIf(pd.DataFrame(columns=COLUMNS), traffic, 0.0, math.nan, since, until,
                          float(budget) if budget is not None else None)
    observed = max(until - max(since, float(traffic["time"].min())), MIN_OBSERVED_S)
    rate = float(requests_per_month) if requests_per_month is not None else \
        len(traffic) / (observed / DAY_S) * DAYS_PER_MONTH
    hit_rate = float(traffic["cached"].mean())
    tokens_in = counted["input_tokens"].to_numpy(dtype=float)
    tokens_out = counted["output_tokens"].to_numpy(dtype=float)
    rows: list[dict[str, Any]] = []

    def add(scenario: str, model: str, share: float, per_request: float, note: str,
            prices: tuple[float, float] = (math.nan, math.nan), cached_share: float = hit_rate):
        monthly = per_request * rate
        rows.append({"scenario": scenario, "model": model, "routed_share": share,
                     "price_in_per_1m": prices[0] * 1e6, "price_out_per_1m": prices[1] * 1e6,
                     "cost_per_request": per_request, "requests_per_month": rate,
                     "monthly_cost": monthly,
                     "monthly_cost_with_cache": monthly * (1 - cached_share),
                     "monthly_cost_at_card_traffic": per_request * card_month * (1 - cached_share)
                     if card_month else math.nan, "note": note})

    recorded = [float(c) for c in traffic["cost_usd"] if c is not None and c == c]
    served = sum(recorded) / len(recorded) if recorded else math.nan
    add("as served (measured)", spec.model, 1.0, served,
        "the costs the service recorded; cache hits already cost nothing", cached_share=0.0)
    per_model: dict[str, float] = {}
    priced: dict[str, tuple[float, float, bool]] = {}
    for model in _models(project, spec.model, models):
        cin, cout, known = price(model)
        priced[model] = (cin, cout, known)
        per_request = float(np.mean(tokens_in * cin + tokens_out * cout)) if known else math.nan
        per_model[model] = per_request
        add(f"all on {model}", model, 1.0, _money(per_request),
            ("deployed" if model == spec.model else "tokens counted by the deployed model")
            if known else "no price known for this model id", (cin, cout))
    cheap = cheap_model or _cheapest(per_model, spec.model)
    if cheap is not None and cheap not in per_model:
        cin, cout, known = price(cheap)
        priced[cheap] = (cin, cout, known)
        per_model[cheap] = float(np.mean(tokens_in * cin + tokens_out * cout)) if known \
            else math.nan
    cascade = None
    if cheap is not None and cheap != spec.model:
        threshold = int(short_tokens) if short_tokens is not None else int(np.median(tokens_in))
        short = tokens_in <= threshold
        cin, cout, _ = priced[cheap]
        din, dout, _ = priced[spec.model]
        mixed = np.where(short, tokens_in * cin + tokens_out * cout,
                         tokens_in * din + tokens_out * dout)
        add(f"route inputs ≤ {threshold} tokens to {cheap}", f"{cheap} + {spec.model}",
            float(short.mean()), _money(float(mixed.mean())),
            f"{short.mean():.0%} of requests have at most {threshold} input tokens",
            (cin, cout))
        if confident_sample:
            cascade = _cascade(project, spec, traffic, cheap, confident_sample)
            share = cascade["confident_share"]
            per_request = per_model[cheap] + (1 - share) * per_model[spec.model]
            add(f"cascade: {cheap} first", f"{cheap} → {spec.model}", share,
                _money(per_request),
                f"{cheap} gave a valid answer to {cascade['confident']} of "
                f"{cascade['tried']} real requests and agreed with the answer served on "
                f"{cascade['agreed']} of those; the rest go on to {spec.model}", (cin, cout))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return CostWhatIf(frame, traffic, rate, hit_rate, since, until,
                      float(budget) if budget is not None else None, cascade)


def _cheapest(per_model: dict[str, float], deployed: str) -> str | None:
    priced = [(cost, model) for model, cost in per_model.items()
              if model != deployed and cost == cost]
    if not priced:
        return None
    cheapest = min(priced)
    return cheapest[1] if cheapest[0] < per_model.get(deployed, math.inf) or \
        per_model.get(deployed) != per_model.get(deployed) else None


def _cascade(project: Project, spec: Any, traffic: pd.DataFrame, cheap: str,
             sample: int) -> dict[str, Any]:
    """Run ``cheap`` on up to ``sample`` of the window's requests (evenly spread) with the
    deployed prompt: how many it answers validly, and how many of those agree with what was
    served."""
    from workbench.prompts import load_prompt
    from workbench.prompts.parsing import parse_output
    from workbench.prompts.run import complete_item

    prompt = load_prompt(project, spec.prompt, spec.prompt_version).value
    train = None
    if spec.few_shot_dataset:
        from workbench.data.splitting import load_split

        train = load_split(project, spec.few_shot_dataset, "train",
                           version=spec.few_shot_version)
    rows = traffic.to_dict("records")
    step = max(1, len(rows) // sample)
    picked = rows[::step][:sample]
    confident = agreed = 0
    for row in picked:
        result = complete_item(project, prompt, dict(row["variables"]), model=cheap,
                               train=train)
        if result.completion is None or not result.parsed.ok:
            continue
        confident += 1
        served = parse_output(prompt, row["output"] or "")
        if served.ok and _same(served.value, result.parsed.value):
            agreed += 1
    return {"model": cheap, "tried": len(picked), "confident": confident,
            "confident_share": confident / len(picked) if picked else 0.0, "agreed": agreed}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return " ".join(a.casefold().split()) == " ".join(b.casefold().split())
    return a == b
