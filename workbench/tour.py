"""The main job: make the sample project, run every guided notebook on it, write a report."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from workbench.create import init_project
from workbench.phases import next_step, notebooks_dir
from workbench.project import ENV_PROJECT, Project, is_project, open_project

NOTEBOOK_TIMEOUT_S = 1800


@dataclass
class NotebookRun:
    notebook: str
    ok: bool
    seconds: float
    error: str = ""


def guided_notebooks(only: list[str] | None = None) -> list[Path]:
    """The guided notebooks in order; ``only`` keeps those whose name or number prefix is listed
    (``["00", "02_data.py"]``)."""
    found = sorted(notebooks_dir().glob("[0-9][0-9]_*.py"))
    if not only:
        return found
    wanted = {w.strip() for w in only if w.strip()}
    picked = [nb for nb in found if nb.name in wanted or nb.stem in wanted
              or nb.name[:2] in wanted]
    unknown = sorted(w for w in wanted if not any(
        w in (nb.name, nb.stem, nb.name[:2]) for nb in found))
    if unknown:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(f"No guided notebook matches {', '.join(unknown)}.",
                             "Use names or numbers from: "
                             + ", ".join(nb.name for nb in found) + ".")
    return picked


def run_notebook(notebook: Path, project: Project) -> NotebookRun:
    """Run a marimo notebook as a script on the project (the same as `python notebook.py`)."""
    env = dict(os.environ, **{ENV_PROJECT: str(project.path), "MARIMO_SKIP_UPDATE_CHECK": "1"})
    started = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(notebook)], env=env, cwd=project.path,
                              capture_output=True, text=True, timeout=NOTEBOOK_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return NotebookRun(notebook.name, False, time.perf_counter() - started,
                           f"did not finish within {NOTEBOOK_TIMEOUT_S} s")
    seconds = time.perf_counter() - started
    failed = proc.returncode != 0 or "Traceback (most recent call last)" in proc.stderr
    error = "\n".join(proc.stderr.strip().splitlines()[-15:]) if failed else ""
    return NotebookRun(notebook.name, not failed, seconds, error)


def _phase1_sections(project: Project) -> list[tuple[str, object]]:
    """The card's architecture sketch and the baseline, when phase 1 has made them."""
    from workbench.errors import WorkbenchError

    out: list[tuple[str, object]] = []
    try:
        from workbench.card import load_card
        from workbench.sketch import architecture_sketch

        out.append(("Architecture (from the project card)", architecture_sketch(load_card(project))))
    except WorkbenchError:
        pass  # no valid card yet: nothing to draw
    if project.records.count("baseline"):
        from workbench.baseline import latest_baseline

        baseline = latest_baseline(project).value
        out.append(("Classical baseline against the targets",
                    f"<p>{baseline.method}: {baseline.verdict}</p>"
                    + baseline.checks_frame().to_html(index=False, border=0, na_rep="")))
    return out


def write_tour_report(project: Project, runs: list[NotebookRun]) -> Path:
    import pandas as pd
    import plotly.express as px

    from workbench.phases import project_status
    from workbench.report import write_report
    from workbench.tracing import spans_frame

    status = project_status(project)
    phases = pd.DataFrame([{"phase": p["number"], "title": p["title"], "state": p["state"],
                            "holds": p["summary"], "notebook": p["notebook"]}
                           for p in status["phases"]])
    notebooks = pd.DataFrame([{"notebook": r.notebook, "result": "ok" if r.ok else "FAILED",
                               "seconds": round(r.seconds, 1), "error": r.error} for r in runs])
    calls = spans_frame(project, name="llm.call")
    sections: list[tuple[str, object]] = [("Phases", phases), ("Notebooks run", notebooks)]
    sections += _phase1_sections(project)
    if not calls.empty:
        calls = calls.sort_values("time")
        fig = px.scatter(calls, x="time", y="latency_s", color="model", symbol="cache_hit",
                         title="Model calls: latency (s)", labels={"latency_s": "latency (s)"})
        summary = (calls.groupby("model")
                   .agg(calls=("span_id", "count"), cache_hits=("cache_hit", "sum"),
                        output_tokens=("output_tokens", "sum"), cost_usd=("cost_usd", "sum"))
                   .reset_index())
        # Latency of real model calls only: a cache hit is not the model's speed.
        called = calls[calls["cache_hit"] != True]  # noqa: E712 (a column of booleans/None)
        summary = summary.merge(called.groupby("model")["latency_s"].median()
                                .rename("p50_latency_s_uncached").reset_index(),
                                on="model", how="left")
        sections += [("Model calls", summary), ("Latency of each call", fig)]
    step = next_step(status["phases"])
    if step:
        sections.append(("What next", f"<p>Phase {step['number']}: {step['title']} — "
                                      f"{step['purpose']}</p>"))
    return write_report(project.reports_dir / "tour.html", f"Tour of {project.name}", sections,
                        subtitle=str(project.path))


def _workbench_command() -> str:
    """`workbench` when that resolves to this installation, else the full path to it."""
    import shutil

    here = Path(sys.executable).parent / "workbench"
    found = shutil.which("workbench")
    if found and Path(found).resolve() == here.resolve():
        return "workbench"
    return str(here) if here.exists() else "workbench"


def run_tour(path: str | os.PathLike, keep_going: bool = True,
             only: list[str] | None = None) -> int:
    target = Path(path).expanduser().resolve()
    if is_project(target):
        project = open_project(target)
        print(f"Using the project at {target}")
    else:
        project = init_project(target, sample=True)
        print(f"Created the sample project at {target}")

    from workbench.llm.local import build_engine_cache

    notebooks = guided_notebooks(only)  # a bad --only fails before any work
    build_engine_cache()
    started = time.perf_counter()
    runs: list[NotebookRun] = []
    for i, notebook in enumerate(notebooks, 1):
        print(f"[{i}/{len(notebooks)}] {notebook.name} ...", end=" ", flush=True)
        run = run_notebook(notebook, project)
        runs.append(run)
        print(f"{'ok' if run.ok else 'FAILED'} ({run.seconds:.1f} s)", flush=True)
        if not run.ok:
            print(run.error, file=sys.stderr)
            if not keep_going:
                break
    report = write_tour_report(project, runs)
    failed = [r.notebook for r in runs if not r.ok]
    total = time.perf_counter() - started
    finetune = sum(r.seconds for r in runs if r.notebook.startswith("05_"))
    print()
    print(f"Tour: {len(runs)} notebook(s) in {total / 60:.1f} min ({total:.0f} s"
          + (f"; {total - finetune:.0f} s without the phase-5 fine-tune)" if finetune else ")"))
    print(f"Project: {project.path}")
    print(f"Report:  {report}  (open it in any browser; it works offline)")
    exe = _workbench_command()
    print(f"Notebooks: {exe} notebooks --project {project.path}            (marimo)")
    print(f"           {exe} notebooks --project {project.path} --jupyter  (JupyterLab)")
    if failed:
        print(f"{len(failed)} notebook(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
