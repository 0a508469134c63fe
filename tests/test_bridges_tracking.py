"""Runs out to MLflow (a real local tracking store, read back with MLflow's client) and to W&B
offline run folders (read back with wandb's own transaction-log reader, and accepted by
``wandb sync --dry-run``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.bridges import BridgeError


@pytest.fixture
def run_of(project, fake_model):
    """A finished run of three items on a fake model, with two scorers."""
    import pandas as pd

    from workbench.data import import_data
    from workbench.evaluate import contains, normalized_match
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    fake_model("tracker", lambda messages: "billing")
    import_data(project, pd.DataFrame({"text": ["Refund me", "App crashes", "Card charged"],
                                       "label": ["billing", "technical", "billing"]}),
                name="tickets", input="text", expected="label")
    save_prompt(project, "triage", PromptVersion(template="Label: {{ input }}",
                                                 labels=["billing", "technical"]))
    run = start_run(project, "triage", dataset="tickets", split=None, model="fake/tracker",
                    scorers=[normalized_match(), contains(text="bill")], progress=False,
                    name="triage on tracker", temperature=0)
    return run


def test_runs_go_to_a_local_mlflow_store_and_read_back_whole(project, run_of, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from workbench.bridges.tracking import export_to_mlflow

    [done] = export_to_mlflow(project, [run_of.run_id])
    assert done.location == f"sqlite:///{project.path / 'exports' / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=done.location)
    got = client.get_run(done.tracked_id)
    assert got.info.status == "FINISHED" and got.info.run_name == "triage on tracker"
    assert got.data.tags["workbench.run_id"] == run_of.run_id
    assert {k: got.data.params[k] for k in ("prompt", "model", "dataset", "scorers",
                                            "option.temperature")} == {
        "prompt": "triage", "model": "fake/tracker", "dataset": "tickets",
        "scorers": "normalized_match, contains", "option.temperature": "0"}
    metrics = got.data.metrics
    assert metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["score.normalized_match"] == pytest.approx(2 / 3)
    assert metrics["score.contains"] == 1.0 and metrics["n"] == 3
    assert all(v == v for v in metrics.values())  # nothing unmeasured written as a number
    experiment = client.get_experiment(got.info.experiment_id)
    assert experiment.name == project.name
    assert Path(experiment.artifact_location.removeprefix("file://")).is_relative_to(
        project.path)
    table = client.load_table(got.info.experiment_id, "items.json", run_ids=[done.tracked_id])
    assert list(table["input"]) == ["Refund me", "App crashes", "Card charged"]
    assert list(table["score.normalized_match"]) == [1, 0, 1]
    prompt = json.loads(Path(client.download_artifacts(done.tracked_id, "prompt.json",
                                                       str(tmp_path))).read_text())
    assert prompt["template"] == "Label: {{ input }}" and prompt["version"] == 1

    # again: the tracked run is found by its tag, no duplicate is made
    [again] = export_to_mlflow(project, run_of.run_id)
    assert again.already and again.tracked_id == done.tracked_id
    assert len(client.search_runs([got.info.experiment_id])) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_mlflow_server_that_does_not_answer_is_a_clear_error(project, run_of, tmp_path):
    pytest.importorskip("mlflow")
    from workbench.bridges.tracking import export_runs

    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(BridgeError) as caught:
        export_runs(project, [run_of.run_id], to="mlflow", tracking_uri=uri)
    assert "does not answer" in caught.value.message and "nothing was exported" in \
        caught.value.message
    assert not (project.path / "exports" / "mlflow").exists()
    with pytest.raises(BridgeError):
        export_runs(project, [run_of.run_id], to="neptune")

    # a folder store, by plain path, works too (MLflow's file store, allowed for this call)
    [done] = export_runs(project, run_of.run_id, to="mlflow", tracking_uri=str(tmp_path / "mr"))
    assert done.location.startswith("file://") and (tmp_path / "mr").is_dir()
    assert os.environ.get("MLFLOW_ALLOW_FILE_STORE") is None


def test_runs_go_to_wandb_offline_folders_that_wandb_reads_and_sync_accepts(project, run_of):
    pytest.importorskip("wandb")
    from workbench.bridges.tracking import export_to_wandb, wandb_run_id

    [done] = export_to_wandb(project, [run_of.run_id])
    folder = Path(done.location)
    assert folder.parent == project.path / "exports" / "wandb"
    assert folder.name.endswith(wandb_run_id(run_of.run_id))
    assert not list(folder.parent.glob(".staging-*"))  # the temporary folder is gone
    [log] = folder.glob("run-*.wandb")
    wandb_cli = str(Path(sys.executable).with_name("wandb"))
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    read = subprocess.run([wandb_cli, "leet", "inspect", "--summary", "--json", str(log)],
                          capture_output=True, text=True, timeout=120, env=env)
    assert read.returncode == 0, read.stderr
    summary = json.loads(read.stdout)
    assert summary["state"] == "finished" and summary["name"] == "triage on tracker"
    assert summary["config"]["model"] == "fake/tracker"
    assert summary["summary"]["accuracy"] == pytest.approx(2 / 3)
    assert summary["summary"]["workbench.run_id"] == run_of.run_id
    items = summary["summary"]["items"]
    assert items["_type"] == "table-file" and items["nrows"] == 3
    table = json.loads((folder / "files" / items["path"]).read_text())
    assert [row[table["columns"].index("input")] for row in table["data"]] == \
        ["Refund me", "App crashes", "Card charged"]
    assert (folder / "files" / "prompt.json").is_file()
    sync = subprocess.run([wandb_cli, "sync", "--dry-run", str(folder)], capture_output=True,
                          text=True, timeout=120, env=env)
    assert sync.returncode == 0 and "Would sync 1 run" in sync.stdout + sync.stderr

    # exporting again replaces the folder of that run, it does not add a second one
    export_to_wandb(project, run_of.run_id)
    assert len(list(folder.parent.glob(f"offline-run-*-{wandb_run_id(run_of.run_id)}"))) == 1


def test_runs_export_cli(project, run_of, tmp_path, capsys):
    pytest.importorskip("wandb")
    from workbench.cli import main

    code = main(["runs", "export", run_of.run_id, "--to", "wandb", "--out", str(tmp_path),
                 "--project", str(project.path), "--json"])
    assert code == 0
    [done] = json.loads(capsys.readouterr().out)
    assert done["target"] == "wandb" and Path(done["location"]).parent == tmp_path
    assert main(["runs", "export", "no-such-run", "--to", "wandb",
                 "--project", str(project.path)]) == 1
    assert "There is no run 'no-such-run'" in capsys.readouterr().err
    assert main(["runs", "--project", str(project.path), "--json"]) == 0  # listing still works
