"""The install files agree with each other, and new dependencies show up in review."""

import tomllib
from pathlib import Path

import yaml  # shipped with jupyter's dependencies
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def declared() -> dict[str, Requirement]:
    project = pyproject()["project"]
    reqs = [*project["dependencies"],
            *(r for extra in project["optional-dependencies"].values() for r in extra)]
    return {Requirement(r).name: Requirement(r) for r in reqs}


def test_environment_yml_matches_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = {Requirement(r).name: Requirement(r) for r in pip_section}
    ours = declared()
    assert set(conda) == set(ours)
    for name, req in ours.items():
        if name == "torch":  # pinned to the CPU build in the environment, a range in pyproject
            pinned = next(iter(conda[name].specifier)).version
            assert req.specifier.contains(pinned)
        else:
            assert conda[name].specifier == req.specifier, name


def test_dependency_snapshot():
    """A new dependency must be added to tests/snapshots/dependencies.txt on purpose."""
    snapshot = (ROOT / "tests/snapshots/dependencies.txt").read_text().split()
    assert sorted(str(r) for r in declared().values()) == snapshot


def test_console_script_and_packages():
    project = pyproject()
    assert project["project"]["scripts"] == {"workbench": "workbench.cli:main"}
    wheel = project["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["workbench", "widgets"]


def test_readme_commands_are_the_ones_ci_runs():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci/run").read_text()
    assert "bash scripts/setup.sh" in readme and "bash scripts/setup.sh" in ci
    assert ".venv/bin/python -m pytest" in readme and ".venv/bin/python -m pytest" in ci
