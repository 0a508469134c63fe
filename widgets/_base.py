"""What the project widgets share, written once: their front end's helpers and their project.

- ``front_end("x.js")``: the widget's ES module with the shared helpers of ``static/_dom.js``
  written in place of its ``import { ... } from "./_dom.js";`` line. anywidget sends each
  widget's ``_esm`` as one string and the browser loads it from a blob, so a relative import has
  nothing to resolve against (in JupyterLab, marimo or a saved notebook alike): the module must
  arrive whole. The files stay plain ES modules that import what they use.
- ``ProjectWidget``: a widget over one project, given as an open ``workbench.Project``, a folder
  path, or ``None`` for ``WORKBENCH_PROJECT``. It opens the project on first use and keeps it.
- ``problem_message``: any problem a widget can meet (a ``WorkbenchError``, a disk error, an
  SQLite error) as one sentence that says what went wrong and what to do, shown in the widget
  instead of a traceback.
- ``jsonable``: values as the comm carries them (NaN as None).
"""

from __future__ import annotations

import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import anywidget
import traitlets

import workbench
from workbench.errors import WorkbenchError
from workbench.project import DB_FILE, ENV_PROJECT

STATIC = Path(__file__).parent / "static"
HELPERS = "_dom.js"
# What a widget may meet while reading or writing its project; anything else is a bug to see.
PROBLEMS = (WorkbenchError, OSError, sqlite3.Error)

_IMPORT = re.compile(r'^import \{([\w\s,]*)\} from "\./' + re.escape(HELPERS) + r'";[ \t]*\n',
                     re.M)
_EXPORTED = re.compile(r"^export function (\w+)", re.M)
_TOP_LEVEL = re.compile(r"^(?:async\s+)?(?:function\*?|const|let|var|class)\s+(\w+)", re.M)


def helper_names() -> list[str]:
    """The functions ``static/_dom.js`` exports."""
    return _EXPORTED.findall((STATIC / HELPERS).read_text(encoding="utf-8"))


def front_end(name: str) -> str:
    """``static/<name>`` ready to be a widget's ``_esm``: its import of the shared helpers
    replaced by the helpers themselves (exported names unexported, so the module's only export
    stays its default). A widget that imports a helper that does not exist, or defines one of
    the helpers' names itself, fails here, when its class is defined."""
    source = (STATIC / name).read_text(encoding="utf-8")
    helpers = (STATIC / HELPERS).read_text(encoding="utf-8")
    found = _IMPORT.findall(source)
    if len(found) > 1:
        raise ValueError(f"static/{name} imports ./{HELPERS} more than once; use one line.")
    if not found:
        return source
    shared = set(helper_names())
    wanted = {n.strip() for n in found[0].split(",") if n.strip()}
    if unknown := sorted(wanted - shared):
        raise ValueError(f"static/{name} imports {unknown} from ./{HELPERS}, which exports only "
                         f"{sorted(shared)}.")
    if clash := sorted(shared & set(_TOP_LEVEL.findall(_IMPORT.sub("", source)))):
        raise ValueError(f"static/{name} defines {clash} itself; ./{HELPERS} already does: "
                         "import it from there instead.")
    inlined = (f"// ---- static/{HELPERS}, written in by widgets/_base.py ----\n"
               + re.sub(r"^export ", "", helpers, flags=re.M)
               + f"// ---- end of static/{HELPERS} ----\n")
    return _IMPORT.sub(lambda _m: inlined, source, count=1)


def jsonable(value: Any) -> Any:
    """Plain JSON values for the comm: NaN becomes None, anything else unknown its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


# -- storage problems as sentences ------------------------------------------------------------
# (what went wrong, what to do), by SQLite's error name; the text of older SQLite builds is
# matched as a fallback, since Python only names the error from 3.11 on.
_DB = f"the project's database ({DB_FILE} in the project folder)"
_SQLITE_PROBLEMS: list[tuple[tuple[str, ...], tuple[str, ...], str, str]] = [
    (("SQLITE_BUSY", "SQLITE_LOCKED"), ("locked", "busy"),
     f"{_DB} is locked by another program using it (a long run, `workbench serve`, a backup "
     "or another notebook)",
     "Wait for it to finish (or stop it), then try again."),
    (("SQLITE_CORRUPT", "SQLITE_NOTADB"), ("malformed", "not a database"),
     f"{_DB} is damaged",
     f"Copy the project folder somewhere safe, then restore {DB_FILE} from a backup "
     f"({DB_FILE}.bak-* beside it, if any, or your own copy); the workbench never overwrites "
     "it."),
    (("SQLITE_READONLY",), ("readonly", "read-only"),
     f"{_DB} is read-only here",
     f"Make the project folder and its {DB_FILE} (with the -wal and -shm files beside it) "
     "writable by you, or copy the project to a folder you own and open that; then try again."),
    (("SQLITE_CANTOPEN",), ("unable to open",),
     f"{_DB} cannot be opened",
     "Check the project folder still exists, is mounted and is readable by you, then try "
     "again."),
    (("SQLITE_FULL",), ("disk is full",),
     "the disk holding the project is full",
     "Free some space (old runs, checkpoints, caches), then try again."),
    (("SQLITE_IOERR",), ("disk i/o error",),
     f"the disk failed while reading or writing {_DB}",
     "Check the disk (or the network folder) holding the project, then try again."),
    ((), ("no such table", "no such column"),
     f"{_DB} lacks a table or column the workbench needs (another program changed it, or it "
     "is a partial copy)",
     f"Restore {DB_FILE} from a backup ({DB_FILE}.bak-* beside it, if any), or copy the "
     "project again from where it came."),
]


def storage_problem(exc: sqlite3.Error) -> tuple[str, str]:
    """What an SQLite error means for the user's project, and what to do about it."""
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = str(exc).lower()
    for names, phrases, what, fix in _SQLITE_PROBLEMS:
        if any(name.startswith(n) for n in names) or any(p in text for p in phrases):
            return what, fix
    return (f"{_DB} could not be used",
            "Check the project folder exists and is readable and writable by you, then try "
            "again.")


def problem_message(exc: BaseException, subject: str = "The project",
                    verb: str = "read") -> str:
    """One sentence for the widget: ``<subject> could not be <verb>: what went wrong. What to
    do.`` with SQLite's or the system's own words last, for whoever digs further. A
    ``WorkbenchError`` already says both, so it is shown as it is."""
    if isinstance(exc, WorkbenchError):
        return exc.one_line()
    if isinstance(exc, sqlite3.Error):
        what, fix = storage_problem(exc)
        return (f"{subject} could not be {verb}: {what}. {fix} "
                f"(SQLite: {type(exc).__name__}: {exc})")
    if isinstance(exc, OSError):
        where = f" ({exc.filename})" if exc.filename else ""
        return (f"{subject} could not be {verb}: {exc.strerror or exc}{where}. Check the project "
                "folder exists and you may read and write it, then try again.")
    return f"{subject} could not be {verb}: {type(exc).__name__}: {exc}"


class ProjectWidget(anywidget.AnyWidget):
    """A widget over one project: ``project`` is an open ``workbench.Project``, a folder path,
    or ``None`` for ``WORKBENCH_PROJECT``. Nothing is opened until the widget first needs the
    project (``open_project``); from then on it keeps the same one. A project that cannot be
    opened is a problem to show (``problem_message``), never raised into the notebook cell."""

    project_path = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.project: workbench.Project | None = None
        self._source = project

    def open_project(self) -> workbench.Project:
        """The project, opened the first time (raises what ``workbench.open_project`` raises)."""
        if self.project is None:
            self.project = (self._source if isinstance(self._source, workbench.Project)
                            else workbench.open_project(self._source))
            self.project_path = str(self.project.path)
        return self.project

    def where(self) -> str:
        """The project's folder as far as it is known, opened or not, for a message beside an
        error (the folder the user gave, or ``WORKBENCH_PROJECT``)."""
        if self.project is not None:
            return str(self.project.path)
        if isinstance(self._source, workbench.Project):
            return str(self._source.path)
        if isinstance(self._source, str | os.PathLike):
            return str(Path(self._source).expanduser())
        return os.environ.get(ENV_PROJECT, "")
