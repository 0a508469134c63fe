"""Runs side by side in one table, in the card's metric names: quality, parse rate, latency and
cost per run, the classical baseline as a row, the card's targets beside them. Phase 3 ranks
models on it (``workbench.compare``) and phase 4 compares prompt versions with it
(``workbench.prompt_grid``).

``build_table`` takes plain dicts, so it is tested and reused without a project; pandas is
imported inside the functions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.card import ProjectCard
    from workbench.project import Project

BASELINE_LABEL = "baseline (classical)"

# Quality metrics a run can report, in the order one is picked as "the" quality criterion when the
# card names none of them.
QUALITY_METRICS = ("accuracy", "macro_f1", "exact_match", "token_f1", "semantic_similarity",
                   "judge_score", "precision", "recall")
TABLE_METRICS = ("parse_rate", "p50_latency", "p95_latency", "cost_per_request", "cost_per_1k")


class CompareError(WorkbenchError):
    """Runs cannot be compared as asked."""


def load_run(project: Project, run_id: str):
    """The stored run ``run_id`` (``workbench.runs.load_run``, imported when called)."""
    from workbench.runs import load_run as load

    return load(project, run_id)


def run_config(run: Any) -> dict[str, Any]:
    """A run's configuration as a plain dict (from a ``Run`` or a stand-in with ``config``)."""
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


def run_totals(run: Any) -> dict[str, Any]:
    """A run's totals, flat and in the card's metric names (``flat_totals``)."""
    totals = getattr(run, "totals", None) or {}
    return flat_totals(totals if isinstance(totals, Mapping) else vars(totals))


def as_number(value: Any) -> float:
    """A stored value as a float: NaN for None, booleans and what is not a number."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def as_count(value: Any) -> int:
    """A stored value as a whole count (0 when missing)."""
    number = as_number(value)
    return 0 if math.isnan(number) else int(number)


def card_or_none(project: Project) -> tuple[ProjectCard | None, str | None]:
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
            "n": as_count(totals.get("n")), "errors": as_count(totals.get("errors")),
        }
        for name in (*QUALITY_METRICS, *TABLE_METRICS):
            if name in totals:
                row[name] = as_number(totals[name])
        if "cost_per_1k" not in row and "cost_per_request" in row:
            row["cost_per_1k"] = row["cost_per_request"] * 1000
        rows.append(row)
    if baseline:
        row = {"label": BASELINE_LABEL, "kind": "baseline", "run_id": None,
               "model": baseline_method or None, "prompt": None, "prompt_version": None,
               "n": None, "errors": None}
        for name, value in baseline.items():
            if name in (*QUALITY_METRICS, *TABLE_METRICS):
                row[name] = as_number(value)
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
        run = load_run(project, run_id)
        runs[run_id], configs[run_id] = run_totals(run), run_config(run)
    card, note = card_or_none(project)
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
