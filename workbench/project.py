"""The project folder: everything a notebook, the CLI or the server knows lives here.

```
my-project/
  workbench.toml   project card
  workbench.db     SQLite (WAL): records, traces, cache, ...
  data/ adapters/ deploy/ reports/
```
``open_project`` never creates; ``init_project`` never overwrites. ``WORKBENCH_PROJECT`` names the
default project.
"""

from __future__ import annotations

import os
import sys
import threading
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.errors import (
    InvalidCard,
    NotAProject,
    ProjectNotFound,
)
from workbench.fsutil import atomic_write_text
from workbench.store import Store

CARD_FILE = "workbench.toml"
DB_FILE = "workbench.db"
SUBDIRS = ("data", "adapters", "deploy", "reports")
CARD_FORMAT = 1
ENV_PROJECT = "WORKBENCH_PROJECT"


class Project:
    """An open project folder."""

    def __init__(self, path: Path, store: Store):
        self.path = Path(path).resolve()
        self.store = store
        self._card_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r})"

    # -- folders -----------------------------------------------------------------------------
    @property
    def card_path(self) -> Path:
        return self.path / CARD_FILE

    @property
    def data_dir(self) -> Path:
        return self.path / "data"

    @property
    def adapters_dir(self) -> Path:
        return self.path / "adapters"

    @property
    def deploy_dir(self) -> Path:
        return self.path / "deploy"

    @property
    def reports_dir(self) -> Path:
        return self.path / "reports"

    @property
    def name(self) -> str:
        return self.card().get("project", {}).get("name") or self.path.name

    # -- the card ----------------------------------------------------------------------------
    def card(self) -> dict[str, Any]:
        return read_card(self.card_path)

    def update_card(self, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """Read, change and atomically rewrite the card under a lock shared with other processes."""
        from workbench import tomlcard

        with self._card_lock, _file_lock(self.path / ".workbench.lock"):
            before = self.card_path.read_text(encoding="utf-8")
            card = self.card()
            change(card)
            _check_card(card, self.card_path)
            atomic_write_text(self.card_path, tomlcard.dumps(card, before))
        return card

    # -- stored things -----------------------------------------------------------------------
    @property
    def records(self):
        from workbench.records import Records

        return Records(self.store)

    def status(self) -> dict[str, Any]:
        """What the project folder holds, as plain data: records, model calls, cache, reports.
        Which phases are done is read above the project: ``workbench.phases.project_status``
        (this and the phases, what ``workbench status`` prints and the overview shows)."""
        self.store.flush()
        db = self.store.db
        spans = db.execute("SELECT COUNT(*), MIN(start_time), MAX(start_time) FROM spans"
                           " WHERE name = 'llm.call'").fetchone()
        return {
            "path": str(self.path),
            "name": self.name,
            "schema_version": self.store.schema_version,
            "records": self.records.count(),
            "model_calls": spans[0],
            "last_call": _iso(spans[2]) if spans[2] else None,
            "cache_entries": db.execute("SELECT COUNT(*) FROM llm_cache").fetchone()[0],
            "reports": sorted(p.name for p in self.reports_dir.glob("*.html")),
        }

    def close(self) -> None:
        self.store.close()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    from filelock import FileLock

    with FileLock(str(path), timeout=60):
        yield


def read_card(path: Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise NotAProject(f"{path} is missing.", "Create a project with `workbench init PATH`.")
    try:
        card = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidCard(f"{path} is not valid TOML: {exc}.",
                          "Fix the file by hand (a quote or bracket is usually missing).") from exc
    _check_card(card, path)
    return card


def _check_card(card: dict[str, Any], path: Path) -> None:
    meta = card.get("workbench")
    if not isinstance(meta, dict) or "format" not in meta:
        raise InvalidCard(f"{path} has no [workbench] table with a format number.",
                          "Restore the [workbench] table (format = 1) at the top of the file.")
    if meta["format"] > CARD_FORMAT:
        raise InvalidCard(f"{path} uses card format {meta['format']}, newer than this workbench.",
                          "Upgrade the workbench package.")


def new_card(name: str, description: str = "") -> dict[str, Any]:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return {
        "workbench": {"format": CARD_FORMAT, "created": now},
        "project": {"name": name, "description": description},
    }


# -- opening and creating ----------------------------------------------------------------------

_active: Project | None = None
_open_cache: dict[Path, Project] = {}
_open_lock = threading.Lock()


def _resolve(path: str | os.PathLike | None) -> Path:
    if path is None:
        env = os.environ.get(ENV_PROJECT)
        if not env:
            raise ProjectNotFound(
                "No project given and WORKBENCH_PROJECT is not set.",
                "Pass a path, or set WORKBENCH_PROJECT=/path/to/project "
                "(create one with `workbench init PATH --sample`).")
        path = env
    return Path(path).expanduser().resolve()


def is_project(path: str | os.PathLike) -> bool:
    path = Path(path)
    return (path / CARD_FILE).is_file() and (path / DB_FILE).is_file()


def open_project(path: str | os.PathLike | None = None, *, activate: bool = True) -> Project:
    """Open an existing project (``WORKBENCH_PROJECT`` when no path is given). Never creates.

    The opened project becomes the active one: model calls are traced and cached there."""
    global _active
    resolved = _resolve(path)
    with _open_lock:
        project = _open_cache.get(resolved)
        if project is None:
            if not resolved.exists():
                raise ProjectNotFound(f"There is no folder at {resolved}.",
                                      f"Create the project with `workbench init {resolved}`.")
            if not (resolved / CARD_FILE).is_file():
                raise NotAProject(
                    f"{resolved} is not a workbench project (it has no {CARD_FILE}).",
                    "Create one with `workbench init PATH`, or point at the project folder.")
            read_card(resolved / CARD_FILE)
            store = Store.open(resolved / DB_FILE)
            for sub in SUBDIRS:
                (resolved / sub).mkdir(exist_ok=True)
            project = Project(resolved, store)
            _open_cache[resolved] = project
            from workbench.privacy import sweep_traces

            sweep_traces(project, force=True)  # the card's trace retention, if it sets one
    if activate:
        _active = project
    return project


_default_failed: str | None = None


def active_project() -> Project | None:
    """The project model calls are recorded in: the last one opened, else WORKBENCH_PROJECT."""
    global _active, _default_failed
    env = os.environ.get(ENV_PROJECT)
    if _active is None and env and env != _default_failed:
        try:
            _active = open_project()
        except Exception as exc:  # a bad default must not break a model call; say so once
            print(f"workbench: not recording calls: {exc}", file=sys.stderr)
            _default_failed = env
    return _active


@contextmanager
def use_project(project: Project | None) -> Iterator[Project | None]:
    """Make ``project`` the active one for a block (``None``: record nothing)."""
    global _active
    before = _active
    _active = project
    try:
        yield project
    finally:
        _active = before


def forget_open_projects() -> None:
    """Close every cached project (tests and long-lived servers that delete folders use it)."""
    global _active
    with _open_lock:
        for project in _open_cache.values():
            project.close()
        _open_cache.clear()
        _active = None
