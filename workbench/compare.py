"""Phase 3: compare models on one prompt, rank them on the card's criteria, and choose one.

    cmp = compare_models(project, "triage", ["local/smollm2-135m", "fake/always-billing"],
                         dataset="support")
    table = cmp.table()               # one row per model + the classical baseline, vs the card
    decision_matrix(table, {"cost": 0.5})   # weighted, normalised, ranked
    pareto_plot(table)                # quality vs cost, size/colour = p95 latency
    choose(project, "local/smollm2-135m", "meets accuracy at $0; p95 under target")

The table is ``workbench.run_table``'s; ``cmp.grid()`` is phase 4's comparison grid
(``workbench.prompt_grid``) over the models' runs. The functions that compute
(``decision_matrix``, ``pareto_front``, ``pareto_plot``) take plain DataFrames, so they are
tested and reused without a project; the kernel calls around them only load runs and the card.

pandas and plotly are imported inside the functions, so ``import workbench`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

# Whether an item passed is decided in one place for every phase (re-exported here).
from workbench.errors import WorkbenchError
from workbench.evaluate.verdicts import PASS_THRESHOLD, item_passed, score_columns  # noqa: F401
from workbench.prompt_grid import GridData, compare_prompts
from workbench.run_table import (  # noqa: F401  (the table phase 3 ranks, named here too)
    BASELINE_LABEL,
    QUALITY_METRICS,
    TABLE_METRICS,
    CompareError,
    as_count,
    as_number,
    build_table,
    card_or_none,
    comparison_table,
    flat_totals,
    load_run,
    quality_metric,
    run_config,
    run_totals,
)

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.card import ProjectCard
    from workbench.project import Project

# criterion -> (column, better)
CRITERIA: dict[str, tuple[str | None, str]] = {
    "quality": (None, "higher"),  # the table's quality metric (see quality_metric)
    "latency": ("p95_latency", "lower"),
    "cost": ("cost_per_request", "lower"),
    "parse_rate": ("parse_rate", "higher"),
}
DEFAULT_WEIGHTS: dict[str, float] = {"quality": 0.5, "latency": 0.25, "cost": 0.25,
                                     "parse_rate": 0.0}


class InvalidWeights(CompareError):
    pass


def _start_run(project: Project, prompt_name: str, **kwargs):
    from workbench.runs import start_run

    return start_run(project, prompt_name, **kwargs)


# -- the decision matrix -------------------------------------------------------------------------

def _weights(weights: Mapping[str, float] | None) -> dict[str, float]:
    import difflib

    if weights is None:
        weights = {}
    if not isinstance(weights, Mapping):
        raise InvalidWeights(f"Weights must be a dict of criterion weights, not "
                             f"{type(weights).__name__}.", 'Pass e.g. {"quality": 2, "cost": 1}.')
    merged = dict(DEFAULT_WEIGHTS)
    for key, value in weights.items():
        if key not in CRITERIA:
            close = difflib.get_close_matches(str(key), CRITERIA, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise InvalidWeights(f"The weights name an unknown criterion '{key}'.{hint}",
                                 f"The criteria are {', '.join(CRITERIA)}.")
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or not math.isfinite(value):
            raise InvalidWeights(f"The weight of {key} is {value!r}, which is not a number.",
                                 "Write a plain number such as 0.5.")
        if value < 0:
            raise InvalidWeights(f"The weight of {key} is {value:g}; weights cannot be negative.",
                                 "Use 0 to ignore a criterion.")
        merged[key] = float(value)
    total = sum(merged.values())
    if total <= 0:
        raise InvalidWeights("Every weight is 0, so no model can be ranked.",
                             "Give at least one criterion a positive weight.")
    return {k: round(v / total, 6) for k, v in merged.items()}


def _normalise(values: pd.Series, better: str) -> pd.Series:
    """Min-max to 0 (worst candidate) .. 1 (best); equal values all score 1; unmeasured 0."""
    low, high = values.min(), values.max()
    if values.isna().all():
        return values.fillna(0.0) * 0.0
    if high == low:
        out = values.where(values.isna(), 1.0)
    elif better == "higher":
        out = (values - low) / (high - low)
    else:
        out = (high - values) / (high - low)
    return out.fillna(0.0).astype(float)


def decision_matrix(table: pd.DataFrame, weights: Mapping[str, float] | None = None, *,
                    include_baseline: bool = False) -> pd.DataFrame:
    """Rank the candidate models on weighted, normalised criteria.

    Criteria: ``quality`` (the table's quality metric, higher is better), ``latency`` (p95,
    lower is better), ``cost`` (per request, lower is better) and ``parse_rate`` (weight 0 by
    default). Each criterion is scaled across the candidates to 0 (worst) .. 1 (best); equal
    values all score 1 and an unmeasured value scores 0. ``weights`` override the defaults
    (``DEFAULT_WEIGHTS``) entry by entry and are normalised to sum to 1, so
    ``decision_matrix(table, {"cost": 0})`` ignores cost. The baseline row is a reference, not
    a candidate, unless ``include_baseline``.

    Returns one row per candidate, best first: ``rank``, ``label``, ``model``, the raw value and
    the normalised ``<criterion>_score`` of each criterion, and ``total`` (0-1).
    ``attrs["weights"]`` holds the weights used."""
    import pandas as pd

    used = _weights(weights)
    if "label" not in table.columns:
        raise CompareError("decision_matrix() needs the table comparison_table() returns.",
                           "Call decision_matrix(comparison_table(project, run_ids)).")
    rows = table if include_baseline or "kind" not in table.columns \
        else table[table["kind"] != "baseline"]
    if rows.empty:
        raise CompareError("The table has no candidate models to rank.",
                           "Run at least one model (compare_models) first.")
    quality = quality_metric(table)
    out = pd.DataFrame({"label": rows["label"].to_numpy(),
                        "model": rows["model"].to_numpy() if "model" in rows else None})
    total = pd.Series(0.0, index=out.index)
    notes = []
    for criterion, (column, better) in CRITERIA.items():
        column = quality if criterion == "quality" else column
        if column is not None and column in rows.columns:
            raw = pd.to_numeric(rows[column], errors="coerce").reset_index(drop=True)
        else:
            raw = pd.Series([math.nan] * len(out), dtype=float)
            if used[criterion] > 0:
                notes.append(f"No {criterion} values in the table: every candidate scores 0 "
                             "on it.")
        out[criterion] = raw.to_numpy()
        out[f"{criterion}_score"] = _normalise(raw, better).round(4).to_numpy()
        total += used[criterion] * out[f"{criterion}_score"]
    out["total"] = total.round(4)
    out = out.sort_values(["total", "label"], ascending=[False, True], kind="stable")
    out = out.reset_index(drop=True)
    out.insert(0, "rank", range(1, len(out) + 1))
    out.attrs["weights"] = used
    out.attrs["quality_metric"] = quality
    out.attrs["notes"] = notes
    return out


# -- Pareto front and plot -----------------------------------------------------------------------

def _candidates(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["kind"] != "baseline"] if "kind" in table.columns else table


def recommend(table: pd.DataFrame, ranked: pd.DataFrame) -> tuple[str | None, str]:
    """The model to suggest, and why: the best-ranked candidate that meets every target; when
    none does, the one with the best quality (a fast model that gets everything wrong must not
    win on speed). Fake models are suggested only when nothing else ran."""
    if ranked is None or ranked.empty:
        return None, "no candidate ran"
    order = [m for m in ranked["model"] if not str(m).startswith("fake/")] or \
        list(ranked["model"])
    rows = table.set_index("model") if "model" in table.columns else table
    if "meets_targets" in rows.columns:
        meeting = [m for m in order if m in rows.index and bool(rows.at[m, "meets_targets"])]
        if meeting:
            return meeting[0], "best weighted score among the models that meet every target"
    metric = table.attrs.get("quality_metric")
    if metric and metric in rows.columns:
        best = max(order, key=lambda m: (rows.at[m, metric] if m in rows.index and
                                         rows.at[m, metric] == rows.at[m, metric] else -1))
        return best, (f"no candidate meets every target yet; best {metric} "
                      f"({rows.at[best, metric]:.2f})")
    return order[0], "best weighted score (no quality metric measured)"


def pareto_front(table: pd.DataFrame) -> list[str]:
    """The labels of candidates no other candidate beats on quality, cost and p95 latency at
    once (at least as good on all three, better on one). Rows missing a value are left out."""
    quality = quality_metric(table)
    columns = [c for c in (quality, "cost_per_request", "p95_latency") if c in table.columns]
    if quality is None or not columns:
        return []
    rows = _candidates(table).dropna(subset=columns)
    # Turn every criterion into "higher is better" so dominance is one comparison.
    points = [(r["label"], tuple(r[c] if c == quality else -r[c] for c in columns))
              for _, r in rows.iterrows()]
    front = []
    for label, p in points:
        dominated = any(all(qi >= pi for qi, pi in zip(q, p, strict=True)) and q != p
                        for other, q in points if other != label)
        if not dominated:
            front.append(label)
    return front


def pareto_plot(table: pd.DataFrame) -> go.Figure:
    """Quality (y) against cost per request (x); marker size and colour show p95 latency.

    Pareto-optimal models are drawn as stars joined by a line; the classical baseline's quality
    and the card's quality and cost targets are dashed reference lines."""
    import plotly.graph_objects as go

    quality = quality_metric(table)
    if quality is None:
        raise CompareError("The table has no quality metric to plot.",
                           "Compare runs scored with a metric such as accuracy.")
    candidates = _candidates(table)
    front = set(pareto_front(table))
    latency = candidates["p95_latency"] if "p95_latency" in candidates else None
    cost = candidates["cost_per_request"] if "cost_per_request" in candidates \
        else candidates[quality] * 0
    top = float(latency.max()) if latency is not None and latency.notna().any() else 0.0
    sizes = [14 + 26 * (float(v) / top) if top > 0 and v == v else 14
             for v in (latency if latency is not None else [math.nan] * len(candidates))]
    on_front = [label in front for label in candidates["label"]]

    fig = go.Figure()
    fig.add_scatter(
        x=cost, y=candidates[quality], mode="markers+text", text=candidates["label"],
        textposition="top center", name="models",
        customdata=list(zip(candidates["label"],
                            latency if latency is not None else [None] * len(candidates),
                            on_front, strict=True)),
        marker={"size": sizes, "symbol": ["star" if f else "circle" for f in on_front],
                "color": latency if latency is not None else None, "colorscale": "Viridis",
                "showscale": latency is not None,
                "colorbar": {"title": "p95 latency (s)"},
                "line": {"width": [2 if f else 0.5 for f in on_front], "color": "#111"}},
        hovertemplate=("%{customdata[0]}<br>" + quality + " %{y:.3f}<br>cost/request "
                       "$%{x:.6f}<br>p95 latency %{customdata[1]:.2f} s<br>Pareto-optimal: "
                       "%{customdata[2]}<extra></extra>"),
    )
    if len(front) > 1:
        ordered = candidates[on_front].sort_values("cost_per_request" if "cost_per_request"
                                                   in candidates else quality)
        fig.add_scatter(x=ordered.get("cost_per_request", ordered[quality] * 0),
                        y=ordered[quality], mode="lines", name="Pareto front",
                        line={"dash": "dot", "color": "#666"}, hoverinfo="skip")

    baseline = table[table["kind"] == "baseline"] if "kind" in table.columns else table.iloc[0:0]
    if len(baseline) and quality in baseline and baseline[quality].notna().any():
        value = float(baseline[quality].iloc[0])
        fig.add_hline(y=value, line={"dash": "dash", "color": "#9ca3af"},
                      annotation_text=f"{BASELINE_LABEL}: {quality} {value:.3g}",
                      annotation_position="bottom left")
    targets = table.attrs.get("targets", {}) if hasattr(table, "attrs") else {}
    if quality in targets:
        fig.add_hline(y=targets[quality]["target"], line={"dash": "dash", "color": "#16a34a"},
                      annotation_text=f"target {targets[quality]['text']}",
                      annotation_position="top left")
    if "cost_per_request" in targets:
        fig.add_vline(x=targets["cost_per_request"]["target"],
                      line={"dash": "dash", "color": "#dc2626"},
                      annotation_text=f"target {targets['cost_per_request']['text']}",
                      annotation_position="top right")
    subtitle = ""
    if "p95_latency" in targets:
        subtitle = f" (latency target: {targets['p95_latency']['text']})"
    fig.update_layout(title=f"{quality} vs cost per request; size and colour = p95 latency"
                            f"{subtitle}",
                      xaxis={"title": "cost per request (USD)", "rangemode": "tozero"},
                      yaxis={"title": quality},
                      showlegend=False, height=420, margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig


# -- the kernel calls of phase 3 -----------------------------------------------------------------

@dataclass
class Comparison:
    """The runs of one ``compare_models`` call. ``run_ids`` maps each model to its run;
    ``failures`` maps a model that could not run to the reason."""

    project: Project
    prompt_name: str
    run_ids: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)

    def table(self, *, baseline: bool = True) -> pd.DataFrame:
        table = comparison_table(self.project, self.run_ids, baseline=baseline)
        table.attrs["notes"].extend(f"{model} did not run: {why}"
                                    for model, why in self.failures.items())
        return table

    def matrix(self, weights: Mapping[str, float] | None = None) -> pd.DataFrame:
        return decision_matrix(self.table(), weights)

    def pareto_front(self) -> list[str]:
        return pareto_front(self.table())

    def plot(self) -> go.Figure:
        return pareto_plot(self.table())

    def grid(self, *, score: str | None = None) -> GridData:
        """The models' outputs side by side, item by item (the phase-4 comparison grid)."""
        return compare_prompts(self.project, list(self.run_ids.values()), score=score)

    def _repr_html_(self) -> str:
        return self.table().to_html(index=False, na_rep="–")


def compare_models(project: Project, prompt_name: str, models: Sequence[str], *, dataset: str,
                   split: str = "validation", version: int | str | None = None,
                   concurrency: int = 8, limit: int | None = None, confirm: bool = False,
                   progress: bool = True) -> Comparison:
    """Run the same prompt version on the same split with each model (one run per model).

    A model that cannot run (no key, an unknown id) is reported in ``failures`` and the others
    go on; if none runs, the first failure is raised. Cost confirmation is checked by each run
    (``confirm=True`` to go ahead with paid models)."""
    models = list(dict.fromkeys(m.strip() for m in models if m and m.strip()))
    if not models:
        raise CompareError("No models to compare.",
                           'Pass model ids, e.g. ["local/smollm2-135m", "fake/echo"] '
                           "(workbench.llm.models() lists those usable here).")
    from workbench.costs import CostNotConfirmed

    if not confirm:
        _check_costs(project, prompt_name, models, dataset=dataset, split=split,
                     version=version, limit=limit)
    run_ids: dict[str, str] = {}
    failures: dict[str, str] = {}
    first_error: WorkbenchError | None = None
    for model in models:
        try:
            run = _start_run(project, prompt_name, version=version, dataset=dataset, split=split,
                             model=model, concurrency=concurrency, limit=limit, confirm=confirm,
                             progress=progress)
        except CostNotConfirmed:
            raise  # a cost gate stops the whole comparison, not one model
        except WorkbenchError as exc:
            failures[model] = exc.one_line()
            first_error = first_error or exc
            continue
        run_ids[model] = run.run_id
    if not run_ids and first_error is not None:
        raise first_error
    return Comparison(project, prompt_name, run_ids, failures)


def _check_costs(project: Project, prompt_name: str, models: list[str], *, dataset: str,
                 split: str, version: int | str | None, limit: int | None) -> None:
    """Refuse before the first run when any model's run would need ``confirm=True``, so a
    comparison does not stop half-way with some models run and paid for."""
    from workbench.data.splitting import load_split
    from workbench.prompts import load_prompt
    from workbench.costs import CostNotConfirmed, estimate_cost

    prompt = load_prompt(project, prompt_name, version).value
    items = load_split(project, dataset, split)
    if limit is not None:
        items = items.head(limit)
    for model in models:
        try:
            estimate = estimate_cost(project, prompt, items, model)
        except WorkbenchError:
            continue  # the run itself reports what is wrong with this model
        if estimate.needs_confirm:
            raise CostNotConfirmed(estimate)


def choose(project: Project, model_id: str, reason: str) -> ProjectCard:
    """Record ``model_id`` as the project's model in the card, with the reason (and log it)."""
    from workbench.card import choose_model

    if model_id == BASELINE_LABEL:
        raise CompareError("The classical baseline is a reference, not a model the workbench "
                           "can serve.", "Choose one of the compared models.")
    if not reason or not reason.strip():
        raise CompareError(f"Choosing {model_id} needs a reason.",
                           'Say why, e.g. "meets accuracy at the lowest cost".')
    return choose_model(project, model_id, reason.strip(), phase=3)
