"""Which version of a prompt people work on unless they pick another."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project


def default_version(project: Project, name: str) -> tuple[int, str]:
    """The version of prompt ``name`` a notebook works on unless the person picks another, and
    why: the deployed one, else the one tagged ``production``, then ``candidate``, else the one
    behind the blessed baseline, else the newest."""
    from workbench.evaluate.baseline_runs import blessed
    from workbench.prompts.versions import load_prompt
    from workbench.runs import load_run
    from workbench.serve import latest_deployment

    try:
        spec = latest_deployment(project).value
        if spec.prompt == name:
            return spec.prompt_version, "deployed"
    except WorkbenchError:
        pass
    for tag in ("production", "candidate"):
        try:
            return load_prompt(project, name, tag).version, f"tagged {tag}"
        except WorkbenchError:
            continue
    run_id = blessed(project, name)
    if run_id is not None:
        run = load_run(project, run_id)
        if run.prompt == name and run.prompt_version is not None:
            return run.prompt_version, "the blessed baseline's"
    return load_prompt(project, name).version, "newest"


def default_prompt(project: Project, prefer: str | None = None) -> str | None:
    """The prompt a notebook works on unless the person picks another: the deployed one, else
    ``prefer`` (the sample's name) when the project has it, else the most recently saved one;
    None when the project has no prompt yet. Notebooks pick from every prompt the project
    holds and start here, so they work on a project that never had the sample's prompt."""
    from workbench.prompts.versions import list_prompts
    from workbench.serve import latest_deployment

    names = list_prompts(project)
    if not names:
        return None
    try:
        deployed = latest_deployment(project).value.prompt
        if deployed in names:
            return deployed
    except WorkbenchError:
        pass
    if prefer in names:
        return prefer
    from workbench.prompts.versions import PromptVersion

    latest = {name: project.records.get(PromptVersion, name).created_at for name in names}
    return max(names, key=lambda name: latest[name])
