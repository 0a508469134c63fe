"""Every guided notebook runs headless as a script on a fresh sample project with the bundled
model, passes `marimo check`, and has a Jupyter twin that executes too."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import workbench
from workbench import sample
from workbench.checkpoints import phases_before
from workbench.phases import next_step, notebooks_dir, phase_status
from workbench.tour import guided_notebooks

pytestmark = pytest.mark.model

NOTEBOOKS = guided_notebooks()
MARIMO = str(Path(sys.executable).parent / "marimo")


def run_script(notebook: Path, project_path: Path | None, cwd: Path):
    env = dict(os.environ, MARIMO_SKIP_UPDATE_CHECK="1")
    env.pop("WORKBENCH_PROJECT", None)
    if project_path:
        env["WORKBENCH_PROJECT"] = str(project_path)
    return subprocess.run([sys.executable, str(notebook)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=1200)


def test_there_are_notebooks():
    assert [n.name for n in NOTEBOOKS][:1] == ["00_start.py"]


def done_phases(project) -> set[int]:
    return {p["number"] for p in phase_status(project) if p["state"] == "done"}


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_as_a_script_at_its_phase(notebook, tmp_path):
    """A workshop that starts at phase N (`workbench init --sample --at N`): the project's
    status shows the phases before N on the learning path done and N next, nothing is left to
    fill, and the notebook of phase N runs headless on it right away. Notebook 00 runs on a
    fresh sample project. (The fill button's path runs in the Jupyter twins' test and the
    tour, on fresh sample projects.)"""
    phase = int(notebook.name[:2])
    if phase == 0:
        project = workbench.init_project(tmp_path / "p", sample=True)
    else:
        project = workbench.init_project(tmp_path / "p", at=phase)
        assert done_phases(project) == set(phases_before(phase))
        assert next_step(phase_status(project))["number"] == phase
        assert sample.missing_prerequisites(project, phase) == []
    proc = run_script(notebook, project.path, tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if phase == 0:  # its model call ran and was traced in the project
        assert project.status()["model_calls"] >= 1
    else:  # what the earlier phases left is still there
        assert done_phases(project) >= set(phases_before(phase))


def test_evaluation_notebook_keeps_a_blessed_baseline_and_evaluates_the_tagged_version(
        tmp_path):
    """Blessing is a decision: notebook 06 run again must not re-bless, and it evaluates the
    version tagged for release, not whatever was saved last."""
    from workbench.evaluate.baseline_runs import bless, blessed
    from workbench.prompts import load_prompt, save_prompt, tag_prompt
    from workbench.runs import list_runs, start_run

    project = workbench.init_project(tmp_path / "p", sample=True)
    sample.fill_prerequisites(project, 6)
    tagged = load_prompt(project, sample.SAMPLE_PROMPT)
    tag_prompt(project, sample.SAMPLE_PROMPT, tagged.version, "candidate")
    kept = start_run(project, sample.SAMPLE_PROMPT, dataset=sample.SAMPLE_DATASET,
                     split="test", model="fake/echo", limit=4, progress=False).run_id
    bless(project, kept)
    newer = save_prompt(project, sample.SAMPLE_PROMPT,
                        tagged.value.model_copy(update={"system": tagged.value.system + " "
                                                        "Answer with the label only."}))
    assert newer.version > tagged.version
    before = {r["run_id"] for r in list_runs(project).to_dict("records")}
    proc = run_script(notebooks_dir() / "06_evaluation.py", project.path, tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert blessed(project, sample.SAMPLE_PROMPT) == kept
    repeats = [r for r in list_runs(project).to_dict("records")
               if r["run_id"] not in before and "repeat" in str(r["name"])]
    assert repeats and {r["prompt_version"] for r in repeats} == {tagged.version}


def test_start_notebook_without_a_project_offers_the_sample_and_makes_nothing(tmp_path):
    proc = run_script(notebooks_dir() / "00_start.py", None, tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_notebooks_run_when_opened_in_the_editor():
    """`workbench notebooks` opens marimo's editor, which by default leaves every cell
    unrun; notebooks/pyproject.toml turns autorun on for these notebooks (marimo's own config
    reader decides)."""
    from marimo._config.manager import get_default_config_manager

    for notebook in NOTEBOOKS:
        config = get_default_config_manager(current_path=str(notebook)).get_config()
        assert config["runtime"]["auto_instantiate"] is True, notebook.name


def test_marimo_check_passes():
    proc = subprocess.run([MARIMO, "check", *map(str, NOTEBOOKS)], capture_output=True,
                          text=True, env=dict(os.environ, MARIMO_SKIP_UPDATE_CHECK="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_jupyter_twin_executes(notebook, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    twin = notebooks_dir() / "jupyter" / notebook.with_suffix(".ipynb").name
    assert twin.is_file(), f"{notebook.name} has no Jupyter twin at {twin}"
    project = workbench.init_project(tmp_path / "p", sample=True)
    monkeypatch.setenv("WORKBENCH_PROJECT", str(project.path))
    nb = nbformat.read(twin, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells for o in cell.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors == []
    if notebook.name == "00_start.py":
        assert project.status()["model_calls"] >= 1


def test_tour_runs_every_notebook_and_writes_an_offline_report(tmp_path):
    exe = Path(sys.executable).parent / "workbench"
    env = dict(os.environ)
    env.pop("WORKBENCH_PROJECT", None)
    proc = subprocess.run([str(exe), "tour", str(tmp_path / "tour")], capture_output=True,
                          text=True, env=env, timeout=3600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for notebook in NOTEBOOKS:
        assert f"{notebook.name} ... ok" in proc.stdout
    report = tmp_path / "tour" / "reports" / "tour.html"
    assert f"Report:  {report}" in proc.stdout
    html = report.read_text()
    assert "Plotly" in html and "<script src=" not in html  # plotly inlined: opens offline
    status = json.loads(subprocess.run([str(exe), "status", str(tmp_path / "tour"), "--json"],
                                       capture_output=True, text=True).stdout)
    assert status["model_calls"] >= 1
    # a second tour reuses the project and is harmless (one notebook is enough to show it)
    again = subprocess.run([str(exe), "tour", str(tmp_path / "tour"), "--only", "00"],
                           capture_output=True, text=True, env=env, timeout=3600)
    assert again.returncode == 0 and "Using the project" in again.stdout
    assert "[1/1] 00_start.py ... ok" in again.stdout
    bad = subprocess.run([str(exe), "tour", str(tmp_path / "tour"), "--only", "42"],
                         capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 1 and "No guided notebook matches 42" in bad.stderr
