"""The comparison grid widget, driven through its traits (no browser)."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.prompt_grid import grid_from_frames


def frame(outputs, expected=("billing", "technical", "account")):
    return pd.DataFrame([{"item_id": f"T{i}", "input": f"message {i}", "expected": e,
                          "output": o, "parsed": o, "parse_ok": True, "error": None,
                          "scores": {"normalized_match": {"value": float(o == e),
                                                          "passed": o == e}}}
                         for i, (o, e) in enumerate(zip(outputs, expected, strict=True))])


def test_grid_shows_columns_rows_and_filters_flipped_items():
    from widgets import ComparisonGrid

    data = grid_from_frames({"v1": frame(["billing", "billing", "account"]),
                             "v2": frame(["billing", "technical", "billing"])})
    w = ComparisonGrid(grid=data)
    assert [(c["label"], c["passed"], c["score"]) for c in w.columns] == [
        ("v1", 2, 0.6667), ("v2", 2, 0.6667)]
    assert (w.total_rows, w.flipped, w.error) == (3, ["T1", "T2"], "")
    assert [r["item_id"] for r in w.rows] == ["T0", "T1", "T2"]
    assert [[c["passed"] for c in r["cells"]] for r in w.rows] == [
        [True, True], [False, True], [True, False]]

    w.only_flipped = True  # the front end's tick
    assert [r["item_id"] for r in w.rows] == ["T1", "T2"]
    assert [r["flips"][0]["direction"] for r in w.rows] == ["fixed", "broke"]
    w.only_flipped = False
    assert len(w.rows) == 3


def test_grid_without_runs_or_with_an_unknown_run_says_so(sample_project):
    pytest.importorskip("workbench.runs", reason="the run engine is not in this checkout yet")
    from widgets import ComparisonGrid

    assert "No runs to compare" in ComparisonGrid(sample_project).error
    w = ComparisonGrid(sample_project, ["no-such-run"])
    assert "There is no run 'no-such-run'" in w.error
    assert w.rows == [] and w.columns == []


def test_grid_loads_runs_and_refreshes(make_split_project, fake_model):
    pytest.importorskip("workbench.runs", reason="the run engine is not in this checkout yet")
    from widgets import ComparisonGrid
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    labels = ["billing", "technical", "account"]
    project = make_split_project(labels, 40)
    fake_model("grid-reader",
               lambda m: next((lb for lb in labels if lb in m[-1]["content"]), "none"))
    fake_model("grid-billing", ["billing"])
    v1 = save_prompt(project, "triage", PromptVersion(labels=labels, model="fake/grid-billing"))
    v2 = save_prompt(project, "triage", PromptVersion(labels=labels, model="fake/grid-reader"))
    r1 = start_run(project, "triage", version=v1.version, dataset="tiny", progress=False)
    r2 = start_run(project, "triage", version=v2.version, dataset="tiny", progress=False)

    w = ComparisonGrid(project, [r1.run_id, r2.run_id])
    assert w.error == ""
    assert [c["label"] for c in w.columns] == ["v1 fake/grid-billing", "v2 fake/grid-reader"]
    assert [c["score"] for c in w.columns] == [0.3333, 1.0]
    assert w.columns[1]["metric"] == "accuracy"
    assert (len(w.flipped), w.total_rows) == (4, 6)  # the non-billing items were fixed
    assert w.project_path == str(project.path)
    w.refresh_requests += 1  # the same runs again: same grid
    assert len(w.rows) == 6
