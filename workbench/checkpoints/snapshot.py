"""A project's state as plain rows, files and card tables, and what changed between two states.

A checkpoint stage is such a change, written as text a person can read and git can diff:

```
stage-N/
  stage.json   the phase, the card tables it set or appended to, files it deleted, row counts
  rows.jsonl   one database row a line: {"table": ..., "row": {...}} (or "delete": {key})
  files/...    files it added or changed, at their project paths (data/*.parquet, deploy/*)
```

Every table of the project database is included except the response cache (a cache, not
work: it would triple the size), the monitoring aggregates (made again from the spans when a
checkpoint is restored) and the bookkeeping tables; a table a later migration adds is
included without a change here. ``reports/`` is left out: reports are views of the records
(plotly inlined, megabytes each) and any notebook writes them again.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# monitor_buckets (and any table named here) is derived from the spans: restoring makes it again.
FORMAT = 1  # of a checkpoint folder: a reader refuses another
MANIFEST = "manifest.json"  # the file naming the schema, the inputs' and each stage's digest
EXCLUDED_TABLES = frozenset({"meta", "_migrations", "llm_cache", "monitor_buckets"})
EXCLUDED_TOP = frozenset({"reports", "workbench.toml", ".workbench.lock"})
CARD_META = "workbench"  # the card's [workbench] table (format, created) belongs to the project
STAGE_FILE = "stage.json"
ROWS_FILE = "rows.jsonl"
FILES_DIR = "files"


def _encode(value: Any) -> Any:
    """TOML dates and times (the decision log's dates) as tagged JSON values."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    raise TypeError(f"{type(value).__name__} cannot be written to a checkpoint")


def _decode(obj: dict[str, Any]) -> Any:
    import datetime as dt

    if len(obj) == 1:
        if "$date" in obj:
            return dt.date.fromisoformat(obj["$date"])
        if "$datetime" in obj:
            return dt.datetime.fromisoformat(obj["$datetime"])
    return obj


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_encode, **kwargs)


def loads(text: str) -> Any:
    return json.loads(text, object_hook=_decode)


def is_time_column(name: str) -> bool:
    """Columns holding Unix times: shifted together when a checkpoint is restored."""
    return name == "minute" or name.endswith(("_at", "_time"))


def tables(db: sqlite3.Connection) -> list[str]:
    """The exported tables in creation order (so a referenced table comes first)."""
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
    return [r[0] for r in rows if r[0] not in EXCLUDED_TABLES and not r[0].startswith("sqlite_")]


def columns_and_key(db: sqlite3.Connection, table: str) -> tuple[list[str], list[str]]:
    info = db.execute(f'PRAGMA table_info("{table}")').fetchall()
    columns = [r[1] for r in info]
    key = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    return columns, key or columns


def key_of(row: dict[str, Any], key: list[str]) -> str:
    return json.dumps([row[k] for k in key], separators=(",", ":"))


@dataclass
class State:
    """Everything a checkpoint carries of one project at one moment."""

    rows: dict[str, dict[str, dict[str, Any]]]  # table -> key -> row
    keys: dict[str, list[str]]
    files: dict[str, str]  # project-relative path -> sha256
    card: dict[str, Any]


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def project_files(root: Path) -> dict[str, str]:
    """The project's files a checkpoint carries (data, deploy files, adapters), by path."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or rel.parts[0] in EXCLUDED_TOP or \
                rel.parts[0].startswith("workbench.db") or \
                any(part.startswith(".") for part in rel.parts):
            continue
        out[rel.as_posix()] = file_digest(path)
    return out


def capture(project) -> State:
    project.store.flush()
    db = project.store.db
    rows: dict[str, dict[str, dict[str, Any]]] = {}
    keys: dict[str, list[str]] = {}
    for table in tables(db):
        columns, key = columns_and_key(db, table)
        keys[table] = key
        found = {}
        for values in db.execute(f'SELECT * FROM "{table}"'):
            row = dict(zip(columns, values, strict=True))
            found[key_of(row, key)] = row
        rows[table] = found
    card = {k: v for k, v in project.card().items() if k != CARD_META}
    return State(rows, keys, project_files(project.path), card)


@dataclass
class Stage:
    """What one phase added to the project: the rows it wrote or changed (and removed), its
    files, and its card tables — set whole, or entries appended to a list (the decision log)."""

    phase: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"table", "row"|"delete"}
    files: list[str] = field(default_factory=list)
    deleted_files: list[str] = field(default_factory=list)
    card_set: dict[str, Any] = field(default_factory=dict)
    card_append: dict[str, list[Any]] = field(default_factory=dict)
    card_drop: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for op in self.rows:
            out[op["table"]] = out.get(op["table"], 0) + 1
        return out


def changes(phase: int, before: State, after: State) -> Stage:
    stage = Stage(phase)
    for table, found in after.rows.items():
        old = before.rows.get(table, {})
        ordered = sorted(found.items(), key=lambda kv: _order(kv[1], kv[0]))
        stage.rows += [{"table": table, "row": row} for key, row in ordered
                       if old.get(key) != row]
        stage.rows += [{"table": table, "delete": {k: old[key][k] for k in after.keys[table]}}
                       for key in sorted(old) if key not in found]
    stage.files = sorted(p for p, digest in after.files.items()
                         if before.files.get(p) != digest)
    stage.deleted_files = sorted(set(before.files) - set(after.files))
    for name, value in after.card.items():
        was = before.card.get(name)
        if was == value:
            continue
        if isinstance(was, list) and isinstance(value, list) and value[:len(was)] == was:
            stage.card_append[name] = value[len(was):]
        else:
            stage.card_set[name] = value
    stage.card_drop = sorted(set(before.card) - set(after.card))
    return stage


def _order(row: dict[str, Any], key: str) -> tuple:
    """Rows in the order they were written (then by key): a stage reads as a story."""
    times = [v for k, v in row.items() if is_time_column(k) and isinstance(v, (int, float))]
    return (min(times) if times else 0.0, key)


def write_stage(stage: Stage, folder: Path, project_path: Path, title: str) -> None:
    import shutil

    folder.mkdir(parents=True)
    meta = {"phase": stage.phase, "title": title, "counts": stage.counts(),
            "card": {"set": stage.card_set, "append": stage.card_append,
                     "drop": stage.card_drop},
            "deleted_files": stage.deleted_files}
    (folder / STAGE_FILE).write_text(dumps(meta, indent=1) + "\n", encoding="utf-8")
    with open(folder / ROWS_FILE, "w", encoding="utf-8") as fh:
        for op in stage.rows:
            fh.write(dumps(op, separators=(",", ":")) + "\n")
    for rel in stage.files:
        target = folder / FILES_DIR / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(project_path / rel, target)


def folder_digest(folder: Path) -> str:
    """One digest of every file in a stage folder (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_digest(path).encode() + b"\n")
    return digest.hexdigest()


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
