"""Phases 3 and 4: compare models on one prompt, and prompt versions on the same items.

Model selection (phase 3)::

    cmp = compare_models(project, "triage", ["local/smollm2-135m", "fake/always-billing"],
                         dataset="support")
    table = cmp.table()               # one row per model + the classical baseline, vs the card
    decision_matrix(table, {"cost": 0.5})   # weighted, normalised, ranked
    pareto_plot(table)                # quality vs cost, size/colour = p95 latency
    choose(project, "local/smollm2-135m", "meets accuracy at $0; p95 under target")

Prompt engineering (phase 4)::

    grid = compare_prompts(project, [run_v1, run_v2])   # items × versions, flipped items

The functions that compute (``build_table``, ``decision_matrix``, ``pareto_front``,
``pareto_plot``, ``grid_from_frames``) take plain DataFrames and dicts, so they are tested and
reused without a project; the kernel calls around them only load runs and the card.

pandas and plotly are imported inside the functions, so ``import workbench`` stays light.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

# Whether an item passed is decided in one place for every phase (re-exported here).
from workbench.evaluate.verdicts import PASS_THRESHOLD, item_passed, score_columns  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.card import ProjectCard
    from workbench.project import Project

BASELINE_LABEL = "baseline (classical)"

# Quality metrics a run can report, in the order one is picked as "the" quality criterion when the
# card names none of them.
QUALITY_METRICS = ("accuracy", "macro_f1", "exact_match", "token_f1", "semantic_similarity",
                   "judge_score", "precision", "recall")
TABLE_METRICS = ("parse_rate", "p50_latency", "p95_latency", "cost_per_request", "cost_per_1k")

# criterion -> (column, better)
CRITERIA: dict[str, tuple[str | None, str]] = {
    "quality": (None, "higher"),  # the table's quality metric (see quality_metric)
    "latency": ("p95_latency", "lower"),
    "cost": ("cost_per_request", "lower"),
    "parse_rate": ("parse_rate", "higher"),
}
DEFAULT_WEIGHTS: dict[str, float] = {"quality": 0.5, "latency": 0.25, "cost": 0.25,
                                     "parse_rate": 0.0}


class CompareError(WorkbenchError):
    """Runs cannot be compared as asked."""


class InvalidWeights(CompareError):
    pass


# -- loading runs (kept behind one function so tests can stand in for the run engine) -----------

def _load_run(project: Project, run_id: str):
    from workbench.runs import load_run

    return load_run(project, run_id)


def _start_run(project: Project, prompt_name: str, **kwargs):
    from workbench.runs import start_run

    return start_run(project, prompt_name, **kwargs)


def _config(run: Any) -> dict[str, Any]:
    config = getattr(run, "config", None) or {}
    if not isinstance(config, Mapping):  # a record rather than a dict
        config = config.model_dump() if hasattr(config, "model_dump") else vars(config)
    return dict(config)


# The run engine stores some totals with their unit in the name; the table uses the card's names.
_TOTAL_ALIASES = {"p50_latency_s": "p50_latency", "p95_latency_s": "p95_latency",
                  "cost_per_request_usd": "cost_per_request",
                  "cost_per_1k_requests_usd": "cost_per_1k"}


def flat_totals(totals: Mapping[str, Any]) -> dict[str, Any]:
    """A run's totals as one flat dict in the card's metric names (``metrics`` merged in)."""
    out = {_TOTAL_ALIASES.get(k, k): v for k, v in totals.items() if k != "metrics"}
    metrics = totals.get("metrics")
    if isinstance(metrics, Mapping):
        out.update(metrics)
    return out


def _totals(run: Any) -> dict[str, Any]:
    totals = getattr(run, "totals", None) or {}
    return flat_totals(totals if isinstance(totals, Mapping) else vars(totals))


def _number(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _count(value: Any) -> int:
    number = _number(value)
    return 0 if math.isnan(number) else int(number)


def _try_card(project: Project) -> tuple[ProjectCard | None, str | None]:
    from workbench.card import load_card

    try:
        return load_card(project), None
    except WorkbenchError as exc:
        return None, f"The card could not be read, so no targets are shown: {exc.message}"


# -- phase 3: the comparison table ---------------------------------------------------------------

def quality_metric(table: pd.DataFrame, card: ProjectCard | None = None) -> str | None:
    """The quality column a comparison ranks on: the card's first quality target that the table
    measures, else the first of ``QUALITY_METRICS`` it has."""
    chosen = table.attrs.get("quality_metric") if hasattr(table, "attrs") else None
    if chosen in table.columns:
        return chosen
    names = [m.name for m in card.metrics] if card is not None else []
    for name in [*names, *QUALITY_METRICS]:
        if name in QUALITY_METRICS and name in table.columns \
                and table[name].notna().any():
            return name
    return None


def _label(config: Mapping[str, Any], run_id: str, taken: set[str]) -> str:
    label = str(config.get("model") or run_id)
    if label in taken:  # the same model twice: tell the rows apart by prompt version, then run
        version = config.get("prompt_version")
        label = f"{label} (v{version})" if version is not None else label
        if label in taken:
            label = f"{label} [{run_id}]"
    taken.add(label)
    return label


def build_table(runs: Mapping[str, Mapping[str, Any]], *,
                configs: Mapping[str, Mapping[str, Any]] | None = None,
                baseline: Mapping[str, float] | None = None,
                baseline_method: str = "",
                card: ProjectCard | None = None) -> pd.DataFrame:
    """The comparison table from run totals: ``runs`` maps a run id to its ``totals`` dict
    (flat, or as the run engine stores them with a ``metrics`` dict),
    ``configs`` a run id to its config (model, prompt, prompt_version, dataset, split).

    One row per run (label = the model), then a ``baseline (classical)`` row from the
    baseline's metrics when given. With a card, each of its targets adds a ``<metric>_status``
    column (pass / fail / not measured) and ``meets_targets`` says whether every measured target
    passes. ``attrs`` holds ``quality_metric``, ``targets`` (canonical units) and ``notes``."""
    import pandas as pd

    from workbench.card import compare_to_targets

    configs = configs or {}
    rows: list[dict[str, Any]] = []
    taken: set[str] = set()
    for run_id, totals in runs.items():
        totals = flat_totals(totals)
        config = dict(configs.get(run_id, {}))
        row: dict[str, Any] = {
            "label": _label(config, run_id, taken), "kind": "model", "run_id": run_id,
            "model": config.get("model"), "prompt": config.get("prompt"),
            "prompt_version": config.get("prompt_version"),
            "n": _count(totals.get("n")), "errors": _count(totals.get("errors")),
        }
        for name in (*QUALITY_METRICS, *TABLE_METRICS):
            if name in totals:
                row[name] = _number(totals[name])
        if "cost_per_1k" not in row and "cost_per_request" in row:
            row["cost_per_1k"] = row["cost_per_request"] * 1000
        rows.append(row)
    if baseline:
        row = {"label": BASELINE_LABEL, "kind": "baseline", "run_id": None,
               "model": baseline_method or None, "prompt": None, "prompt_version": None,
               "n": None, "errors": None}
        for name, value in baseline.items():
            if name in (*QUALITY_METRICS, *TABLE_METRICS):
                row[name] = _number(value)
        if "cost_per_request" in row:
            row["cost_per_1k"] = row["cost_per_request"] * 1000
        rows.append(row)

    base = ["label", "kind", "run_id", "model", "prompt", "prompt_version", "n", "errors"]
    present = [m for m in (*QUALITY_METRICS, *TABLE_METRICS) if any(m in r for r in rows)]
    df = pd.DataFrame(rows, columns=base + present)
    for column in present:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    for column in ("n", "errors"):  # the baseline row has no run: keep whole numbers whole
        df[column] = df[column].astype("Int64")

    targets: dict[str, dict[str, Any]] = {}
    if card is not None:
        for metric in card.metrics:
            targets[metric.name] = {"target": metric.target_in_canonical_unit(),
                                    "direction": metric.direction, "text": str(metric)}
        statuses = []
        for row in df.to_dict("records"):
            measured = {k: row[k] for k in present
                        if row.get(k) is not None and not math.isnan(row[k])}
            checks = compare_to_targets(card, measured)
            statuses.append({f"{c['metric']}_status": c["status"] for c in checks})
        status_df = pd.DataFrame(statuses, index=df.index)
        for column in status_df.columns:
            df[column] = status_df[column]
        if len(status_df.columns):
            measured = status_df.where(status_df != "not measured")
            df["meets_targets"] = [
                bool(len(r.dropna())) and bool((r.dropna() == "pass").all())
                for _, r in measured.iterrows()]
    df.attrs["targets"] = targets
    df.attrs["quality_metric"] = None
    df.attrs["quality_metric"] = quality_metric(df, card)
    df.attrs["notes"] = []
    return df


def comparison_table(project: Project, run_ids: Sequence[str] | Mapping[str, str],
                     *, baseline: bool = True) -> pd.DataFrame:
    """One row per run (model): quality metric(s), p50/p95 latency, cost per request and per
    1,000 requests, parse rate, errors — beside the phase-1 classical baseline and the card's
    targets (``<metric>_status`` columns and ``meets_targets``). ``run_ids`` may also be the
    ``{model: run_id}`` of a ``Comparison``."""
    from workbench.baseline import latest_baseline

    ids = list(run_ids.values()) if isinstance(run_ids, Mapping) else list(run_ids)
    if not ids:
        raise CompareError("No runs to compare.", "Pass the run ids of at least one run "
                           "(list_runs(project) lists them).")
    runs, configs = {}, {}
    for run_id in ids:
        run = _load_run(project, run_id)
        runs[run_id], configs[run_id] = _totals(run), _config(run)
    card, note = _try_card(project)
    stored = latest_baseline(project) if baseline else None
    table = build_table(runs, configs=configs, card=card,
                        baseline=stored.value.metrics if stored else None,
                        baseline_method=stored.value.method if stored else "")
    if note:
        table.attrs["notes"].append(note)
    if baseline and stored is None:
        table.attrs["notes"].append("No classical baseline yet: phase 1 trains one "
                                    "(run_baseline) to show what an LLM must beat.")
    return table


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
    from workbench.runs import CostNotConfirmed

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
    from workbench.runs import CostNotConfirmed, estimate_cost

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


# -- phase 4: the comparison grid ----------------------------------------------------------------

# Item columns that are not scores.


@dataclass
class GridData:
    """Items × columns (prompt versions or models) for the comparison grid.

    ``columns``: one dict per run (``key``, ``label``, ``run_id``, ``model``, ``prompt``,
    ``prompt_version``, ``score`` = share of items passed, ``passed``, ``n`` and the run's
    quality metric when it has one). ``items``: one dict per item (``item_id``, ``input``,
    ``expected``, ``cells`` = one per column with ``output``, ``passed``, ``error``; ``flipped``
    and ``flips``). ``flipped`` lists the ids of items whose pass/fail changed between two
    consecutive columns."""

    columns: list[dict[str, Any]]
    items: list[dict[str, Any]]
    flipped: list[str]

    def frame(self) -> pd.DataFrame:
        """Items as rows and one output column (and one pass column) per version."""
        import pandas as pd

        rows = []
        for item in self.items:
            row = {"item_id": item["item_id"], "input": item["input"],
                   "expected": item["expected"], "flipped": item["flipped"]}
            for column, cell in zip(self.columns, item["cells"], strict=True):
                row[column["label"]] = cell["output"]
                row[f"{column['label']} passed"] = cell["passed"]
            rows.append(row)
        return pd.DataFrame(rows)

    def scores(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(self.columns)

    def _repr_html_(self) -> str:
        return self.frame().to_html(index=False)


def _plain(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def grid_from_frames(frames: Mapping[str, pd.DataFrame], *,
                     meta: Mapping[str, Mapping[str, Any]] | None = None,
                     score: str | None = None) -> GridData:
    """Build the grid from each column's items (``frames``: label -> the run's items, in column
    order). ``meta`` adds fields to each column (run id, model, prompt version, totals)."""
    meta = meta or {}
    columns: list[dict[str, Any]] = []
    by_item: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    passes: list[dict[str, bool | None]] = []
    cells: list[dict[str, dict[str, Any]]] = []
    for key, items in frames.items():
        id_column = "item_id" if "item_id" in items.columns else "id"
        passed = item_passed(items, score)
        column_cells: dict[str, dict[str, Any]] = {}
        column_pass: dict[str, bool | None] = {}
        for (_, row), ok in zip(items.iterrows(), passed, strict=True):
            item_id = str(row[id_column])
            if item_id not in by_item:
                by_item[item_id] = {"item_id": item_id, "input": _plain(row.get("input")),
                                    "expected": _plain(row.get("expected"))}
                order.append(item_id)
            output = row.get("parsed") if row.get("parse_ok") is True and \
                isinstance(row.get("parsed"), str) else row.get("output")
            column_cells[item_id] = {"output": _plain(output), "raw": _plain(row.get("output")),
                                     "passed": ok, "error": _plain(row.get("error")) or None}
            column_pass[item_id] = ok
        cells.append(column_cells)
        passes.append(column_pass)
        judged = [v for v in column_pass.values() if v is not None]
        info = dict(meta.get(key, {}))
        columns.append({"key": key, "label": str(info.pop("label", key)),
                        **{k: _plain(v) for k, v in info.items()},
                        "n": len(column_pass), "passed": sum(bool(v) for v in judged),
                        "score": round(sum(bool(v) for v in judged) / len(judged), 4)
                        if judged else None})
    items_out = []
    flipped: list[str] = []
    for item_id in order:
        row_cells, flips = [], []
        for i, column in enumerate(columns):
            row_cells.append(cells[i].get(item_id, {"output": None, "raw": None,
                                                    "passed": None, "error": "not in this run"}))
            if i:
                before, after = passes[i - 1].get(item_id), passes[i].get(item_id)
                if before is not None and after is not None and before != after:
                    flips.append({"from": columns[i - 1]["label"], "to": column["label"],
                                  "direction": "fixed" if after else "broke"})
        items_out.append({**by_item[item_id], "cells": row_cells, "flipped": bool(flips),
                          "flips": flips})
        if flips:
            flipped.append(item_id)
    return GridData(columns, items_out, flipped)


def _column_labels(configs: list[dict[str, Any]], run_ids: list[str]) -> list[str]:
    """Name each column by what differs between the runs: the prompt version, the model, or
    both; the run id when nothing does."""
    def differs(key: str) -> bool:
        return len({str(c.get(key)) for c in configs}) > 1

    labels = []
    for config, run_id in zip(configs, run_ids, strict=True):
        parts = []
        if differs("prompt"):
            parts.append(str(config.get("prompt")))
        if differs("prompt") or differs("prompt_version") or not differs("model"):
            if config.get("prompt_version") is not None:
                parts.append(f"v{config['prompt_version']}")
        if differs("model"):
            parts.append(str(config.get("model")))
        label = " ".join(parts) or run_id
        labels.append(label)
    counts = {label: labels.count(label) for label in labels}
    # The same version run twice still gets two columns.
    return [f"{label} [{run_id}]" if counts[label] > 1 else label
            for label, run_id in zip(labels, run_ids, strict=True)]


def compare_prompts(project: Project, run_ids: Sequence[str], *,
                    score: str | None = None) -> GridData:
    """The comparison grid of phase 4: runs of prompt versions (or models) on the same items,
    in the order given (oldest version first, so "flipped" reads as before → after)."""
    run_ids = list(run_ids)
    if not run_ids:
        raise CompareError("No runs to compare.", "Pass the run ids of two or more runs "
                           "(list_runs(project) lists them).")
    runs = [_load_run(project, run_id) for run_id in run_ids]
    configs = [_config(run) for run in runs]
    labels = _column_labels(configs, run_ids)
    frames, meta = {}, {}
    for label, run, config, run_id in zip(labels, runs, configs, run_ids, strict=True):
        totals = _totals(run)
        frames[label] = run.items
        quality = next((m for m in QUALITY_METRICS if totals.get(m) is not None), None)
        meta[label] = {"run_id": run_id, "model": config.get("model"),
                       "prompt": config.get("prompt"),
                       "prompt_version": config.get("prompt_version"),
                       "metric": quality,
                       "metric_value": _number(totals.get(quality)) if quality else None,
                       "parse_rate": totals.get("parse_rate")}
    return grid_from_frames(frames, meta=meta, score=score)


@dataclass
class TechniqueComparison:
    """``compare_prompt_versions``' result: each label's saved prompt version and its run."""

    project: Project
    prompt_name: str
    versions: dict[str, int]
    run_ids: dict[str, str]
    failures: dict[str, str] = field(default_factory=dict)

    def table(self) -> pd.DataFrame:
        """One row per label: version, quality, parse rate, latency, cost (no baseline row)."""
        table = comparison_table(self.project, self.run_ids, baseline=False)
        label_of = {run_id: label for label, run_id in self.run_ids.items()}
        table["label"] = [label_of.get(r, r) for r in table["run_id"]]
        table.insert(1, "version", [self.versions.get(label) for label in table["label"]])
        return table

    def grid(self, *, score: str | None = None) -> GridData:
        return compare_prompts(self.project, list(self.run_ids.values()), score=score)


def compare_prompt_versions(project: Project, prompt_name: str,
                            prompts: Mapping[str, Any], *, dataset: str,
                            split: str = "validation", model: str | None = None,
                            limit: int | None = None, concurrency: int = 8,
                            confirm: bool = False, progress: bool = False) -> TechniqueComparison:
    """Save each of ``prompts`` (label → ``PromptVersion``) as a version of ``prompt_name`` and run
    it on the same items with the same model: techniques side by side, one call.

    An unchanged prompt reuses its existing version; a prompt that cannot run is reported in
    ``failures`` and the others go on."""
    from workbench.errors import WorkbenchError
    from workbench.prompts import save_prompt
    from workbench.runs import start_run

    versions: dict[str, int] = {}
    run_ids: dict[str, str] = {}
    failures: dict[str, str] = {}
    for label, prompt in prompts.items():
        stored = save_prompt(project, prompt_name, prompt)
        versions[label] = stored.version
        try:
            run = start_run(project, prompt_name, version=stored.version, dataset=dataset,
                            split=split, model=model, limit=limit, concurrency=concurrency,
                            confirm=confirm, progress=progress, name=label)
        except WorkbenchError as exc:
            failures[label] = exc.one_line()
            continue
        run_ids[label] = run.run_id
    if not run_ids and failures:
        label, why = next(iter(failures.items()))
        raise CompareError(f"No prompt ran; '{label}' failed: {why}",
                           "Fix that prompt (or the model) and run again.")
    return TechniqueComparison(project, prompt_name, versions, run_ids, failures)
