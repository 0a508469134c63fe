"""Phase 4: prompt versions (or models) side by side on the same items: the comparison grid of
items × versions with the items that flipped between them, and techniques saved and run in one
call.

    grid = compare_prompts(project, [run_v1, run_v2])   # items × versions, flipped items
    techniques = compare_prompt_versions(project, "triage", starter_prompts(labels),
                                         dataset="support")

``grid_from_frames`` takes plain DataFrames, so it is tested and reused without a project.
Whether an item passed is ``workbench.evaluate.verdicts.item_passed``, as in every phase.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError
from workbench.evaluate.verdicts import item_passed
from workbench.run_table import (
    QUALITY_METRICS,
    CompareError,
    as_number,
    comparison_table,
    load_run,
    run_config,
    run_totals,
)

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project


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
    runs = [load_run(project, run_id) for run_id in run_ids]
    configs = [run_config(run) for run in runs]
    labels = _column_labels(configs, run_ids)
    frames, meta = {}, {}
    for label, run, config, run_id in zip(labels, runs, configs, run_ids, strict=True):
        totals = run_totals(run)
        frames[label] = run.items
        quality = next((m for m in QUALITY_METRICS if totals.get(m) is not None), None)
        meta[label] = {"run_id": run_id, "model": config.get("model"),
                       "prompt": config.get("prompt"),
                       "prompt_version": config.get("prompt_version"),
                       "metric": quality,
                       "metric_value": as_number(totals.get(quality)) if quality else None,
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
