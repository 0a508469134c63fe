"""Prepared checkpoints: `workbench init PATH --sample --at N` and the notebooks' fill button
restore what the learning path's earlier phases leave in the sample, in well under a second,
and the shipped checkpoints are what datasets/tools/make_checkpoints.py makes."""

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import workbench
from workbench import checkpoints, sample
from workbench.checkpoints import build, canonical, restoring, snapshot
from workbench.phases import LEARNING_PATH, next_step, phase_status
from workbench.store import migration_names

ROOT = Path(__file__).resolve().parents[1]
REMAKE = "python datasets/tools/make_checkpoints.py"


def states(project) -> dict[int, str]:
    return {p["number"]: p["state"] for p in phase_status(project)}


def test_the_shipped_checkpoints_are_current():
    """Fails when the sample, the recipe's inputs or the database schema changed since the
    checkpoints were made: run the script again and commit what it writes."""
    manifest = checkpoints.load_manifest()
    assert manifest["schema"] == migration_names(), f"the schema changed: run `{REMAKE}`"
    assert manifest["inputs"] == build.input_digests(), f"the sample changed: run `{REMAKE}`"
    assert [s["phase"] for s in manifest["stages"]] == [p for p in LEARNING_PATH if p != 5]
    for stage in manifest["stages"]:
        folder = checkpoints.checkpoints_dir() / stage["folder"]
        assert snapshot.folder_digest(folder) == stage["digest"], stage["folder"]
    size = sum(p.stat().st_size for p in checkpoints.checkpoints_dir().rglob("*") if p.is_file())
    assert size < 3_000_000  # they ship in the package


@pytest.mark.parametrize("at", range(1, 10))
def test_init_at_phase_holds_what_the_phases_before_it_leave(tmp_path, at):
    started = time.perf_counter()
    project = workbench.init_project(tmp_path / "p", at=at)
    seconds = time.perf_counter() - started
    assert seconds < 10
    before = set(checkpoints.phases_before(at))
    found = states(project)
    assert {n for n, s in found.items() if s == "done"} == before, found
    assert next_step(phase_status(project))["number"] == at
    # The notebook of phase N has what it needs right away: nothing to fill.
    assert sample.missing_prerequisites(project, at) == []
    assert project.card()["project"]["name"] == "Help desk triage"


def test_restored_work_happened_just_now_and_keeps_its_links(tmp_path):
    from workbench.data.versioning import find_split
    from workbench.evaluate.baseline_runs import blessed
    from workbench.monitor import traffic
    from workbench.runs import list_runs
    from workbench.serve import latest_deployment

    project = workbench.init_project(tmp_path / "p", at=9, name="Workshop")
    assert project.card()["project"]["name"] == "Workshop"
    newest = restoring.newest_time({"spans": {
        str(i): {"end_time": r[0]} for i, r in enumerate(
            project.store.db.execute("SELECT end_time FROM spans"))}})
    assert abs(newest - time.time()) < 60
    counted = traffic(project)  # the monitoring dashboard's last hour shows the traffic
    assert counted.source == "service" and counted.total >= 10
    deployment = latest_deployment(project).value
    runs = set(list_runs(project)["run_id"])
    assert deployment.evidence_run in runs and blessed(project, deployment.prompt) in runs
    split = find_split(project, prefer=sample.SAMPLE_DATASET)
    for rel in ("data/" + Path(split.value.file).name, "deploy/Dockerfile"):
        assert (project.path / rel).is_file()
    decisions = project.card()["decisions"]
    assert any(d["phase"] == 7 for d in decisions)
    assert max(d["date"] for d in decisions).isoformat() == time.strftime("%Y-%m-%d",
                                                                          time.gmtime())


def test_an_unknown_phase_is_refused_and_makes_nothing(tmp_path):
    for at in (0, 10):
        with pytest.raises(workbench.WorkbenchError, match=f"no phase {at}"):
            workbench.init_project(tmp_path / "p", at=at)
    assert list(tmp_path.iterdir()) == []


def test_cli_init_at(tmp_path):
    import os

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WORKBENCH_PROJECT", None)
    made = subprocess.run([sys.executable, "-m", "workbench.cli", "init", str(tmp_path / "p"),
                           "--sample", "--at", "6"], capture_output=True, text=True, env=env)
    assert made.returncode == 0, made.stderr
    assert "at phase 6 (evaluation)" in made.stdout and "06_evaluation.py" in made.stdout
    assert "1 problem definition, 2 data preparation, 4 prompt engineering, 3 model selection" \
        in made.stdout
    bad = subprocess.run([sys.executable, "-m", "workbench.cli", "init", str(tmp_path / "q"),
                          "--at", "12"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "no phase 12" in bad.stderr and "Traceback" not in bad.stderr


@pytest.fixture
def copied(tmp_path):
    target = tmp_path / "checkpoints"
    shutil.copytree(checkpoints.checkpoints_dir(), target)
    return target


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / build.MANIFEST).read_text())
    change(manifest)
    (folder / build.MANIFEST).write_text(json.dumps(manifest))


def test_a_changed_checkpoint_is_refused(tmp_path, copied):
    rows = copied / "stage-4" / snapshot.ROWS_FILE
    rows.write_text(rows.read_text().replace('"triage"', '"triage2"', 1))
    (tmp_path / "p").mkdir()
    with pytest.raises(checkpoints.CheckpointError, match="does not match its manifest"):
        checkpoints.restore(tmp_path / "p", 6, source=copied)


def test_checkpoints_of_an_older_schema_are_migrated(tmp_path, copied):
    newest = migration_names()[-1]
    _edit_manifest(copied, lambda m: m.update(schema=[n for n in m["schema"] if n != newest]))
    (tmp_path / "p").mkdir()
    restored = checkpoints.restore(tmp_path / "p", 9, source=copied)
    assert restored.migrated == [newest] and "older database schema" in restored.summary()
    project = workbench.open_project(tmp_path / "p")
    assert project.store.applied_migrations() == migration_names()
    assert not list((tmp_path / "p").glob("workbench.db.bak-*"))


def test_checkpoints_of_an_unknown_schema_are_refused(tmp_path, copied):
    _edit_manifest(copied, lambda m: m["schema"].append("m999_from_the_future"))
    (tmp_path / "p").mkdir()
    with pytest.raises(checkpoints.CheckpointError, match="m999_from_the_future"):
        checkpoints.restore(tmp_path / "p", 3, source=copied)


def test_fill_button_restores_instead_of_recomputing(sample_project, monkeypatch):
    """A class that joins at phase 9 on a fresh sample project: the fill adds the sample's
    data, prompt, deployment and traffic from the checkpoints; nothing is computed."""
    def computed(*args, **kwargs):
        raise AssertionError("computed instead of restored")

    for name in ("prepare_sample_data", "save_sample_prompt", "deploy_sample", "play_users"):
        monkeypatch.setattr(sample, name, computed)
    started = time.perf_counter()
    filled = sample.fill_prerequisites(sample_project, 9)
    assert time.perf_counter() - started < 5
    assert len(filled) == 4 and sample.missing_prerequisites(sample_project, 9) == []
    found = states(sample_project)
    assert found[2] == found[4] == found[7] == found[8] == "done"
    assert sample_project.status()["model_calls"] > 0  # the sample's traced calls came along
    from workbench.monitor import traffic

    counted = traffic(sample_project)  # the dashboard's aggregates include the added traffic
    assert counted.source == "service" and counted.total >= 10
    assert sample.fill_prerequisites(sample_project, 9) == []  # a second click changes nothing


def test_fill_keeps_the_users_own_data_and_makes_the_prompt_for_it(project, monkeypatch):
    """A project with its own split dataset: the sample's prompt versions (written for the
    sample's dataset) are not restored; the starter prompt is made with the project's labels."""
    import pandas as pd

    from workbench.data import import_data, split
    from workbench.prompts import load_prompt

    rows = pd.DataFrame({"text": [f"message {i}" for i in range(40)],
                         "label": ["spam" if i % 2 else "ham" for i in range(40)]})
    rows.to_csv(project.path / "mine.csv", index=False)
    import_data(project, project.path / "mine.csv", name="mail", input="text",
                expected="label")
    split(project, "mail")
    filled = sample.fill_prerequisites(project, 6)
    assert filled[0] == "the sample project card" and "prompt" in filled[1]
    assert load_prompt(project, sample.SAMPLE_PROMPT).value.labels == ["ham", "spam"]
    assert project.records.count("run") == 0  # no sample runs over someone else's data


def test_adding_a_stage_never_changes_what_the_project_holds(sample_project):
    from workbench.prompts import save_prompt

    sample.fill_prerequisites(sample_project, 4)  # the sample's data, from its checkpoint
    starter = sample.save_sample_prompt(sample_project).value  # the user's own v1 and v2
    save_prompt(sample_project, sample.SAMPLE_PROMPT,
                starter.model_copy(update={"system": "My own words."}))
    with pytest.raises(checkpoints.CheckpointConflict, match="prompt 'triage' v1"):
        checkpoints.add_stage(sample_project, 4)
    assert sample_project.records.count("prompt") == 2
    assert sample_project.records.count("run") == 0


def test_canonical_ignores_ids_and_times_but_not_work(tmp_path, copied):
    shipped = canonical.canonical(checkpoints.checkpoints_dir())
    assert canonical.differences(shipped, canonical.canonical(copied)) == []
    # Another build: every run id is new, every time later; the work is the same.
    run_id = next(json.loads(line)["row"]["run_id"]
                  for line in (copied / "stage-3" / snapshot.ROWS_FILE).open()
                  if json.loads(line)["table"] == "runs")
    fresh = run_id[:-6] + "0f0f0f"
    for path in copied.rglob(snapshot.ROWS_FILE):
        text = path.read_text().replace(run_id, fresh)
        text = text.replace('"created_at":17', '"created_at":18')
        path.write_text(text)
    assert canonical.differences(shipped, canonical.canonical(copied)) == []
    # A model output that changed is a difference.
    rows = copied / "stage-6" / snapshot.ROWS_FILE
    lines = rows.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line)["table"] == "run_items")
    op = json.loads(lines[at])
    op["row"]["output"] = "a different answer"
    lines[at] = json.dumps(op)
    rows.write_text("\n".join(lines) + "\n")
    found = canonical.differences(shipped, canonical.canonical(copied))
    assert len(found) == 1 and "a different answer" in found[0]


@pytest.mark.model
@pytest.mark.slow
def test_the_shipped_checkpoints_are_what_the_script_makes(tmp_path):
    """The recipe run again with the bundled model (about a minute and a half on two cores)
    holds the same work as the shipped checkpoints; only ids, times and latencies differ."""
    made = build.build(tmp_path / "made", log=lambda _line: None)
    assert made["schema"] == migration_names()
    found = canonical.differences(canonical.canonical(checkpoints.checkpoints_dir()),
                                  canonical.canonical(tmp_path / "made"))
    assert found == [], f"run `{REMAKE}` and commit datasets/checkpoints"


def test_what_next_follows_the_path_and_never_names_a_missing_notebook(tmp_path, monkeypatch):
    """At phase 5 every other phase is done; with 05's notebook missing (an older checkout or
    a trimmed workshop copy) nobody is sent there, and the overview lists the path's order."""
    import workbench.phases as phases

    project = workbench.init_project(tmp_path / "p", at=5)
    status = phase_status(project)
    assert [p["number"] for p in status] == list(LEARNING_PATH)
    assert next_step(status)["notebook"] == "05_finetuning.py"
    trimmed = tmp_path / "notebooks"
    trimmed.mkdir()
    for phase in phases.PHASES:
        if phase.number != 5:
            (trimmed / phase.notebook).write_text("")
    monkeypatch.setattr(phases, "notebooks_dir", lambda: trimmed)
    status = phase_status(project)
    assert next_step(status) is None
    at_six = workbench.init_project(tmp_path / "q", at=6)
    assert next_step(phase_status(at_six))["number"] == 6
