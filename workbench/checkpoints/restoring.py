"""Restoring a checkpoint: a new project at any phase, or one phase's work added to a project.

Rows keep the ids they were built with (a run id is the same on every laptop of a workshop,
so an instructor can say "open run 2026...", and the dataset cases made from feedback keep
pointing at their feedback); times are shifted together so the newest event restored happens
now: the monitoring window of the last hour shows the traffic, and runs list as recent.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.checkpoints import snapshot
from workbench.checkpoints.snapshot import FORMAT, MANIFEST
from workbench.errors import WorkbenchError


class CheckpointError(WorkbenchError):
    """A checkpoint cannot be read or used here."""


class CheckpointConflict(CheckpointError):
    """Adding a checkpoint's work would change something the project already holds."""


def checkpoints_dir() -> Path:
    from workbench.bundled import datasets_dir

    return datasets_dir() / "checkpoints"


def load_manifest(source: Path | None = None) -> dict[str, Any]:
    import json

    source = Path(source) if source else checkpoints_dir()
    path = source / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"The prepared checkpoints are missing ({path} does not exist).",
                              "Reinstall the workbench, or make them in a checkout with "
                              "`python datasets/tools/make_checkpoints.py`.") from None
    except ValueError as exc:
        raise CheckpointError(f"{path} is not valid JSON ({exc}).",
                              "Restore the file from git, or make the checkpoints again with "
                              "`python datasets/tools/make_checkpoints.py`.") from exc
    if manifest.get("format") != FORMAT:
        raise CheckpointError(
            f"The checkpoints in {source} use format {manifest.get('format')}; this workbench "
            f"reads format {FORMAT}.",
            "Make them again with this workbench: `python datasets/tools/make_checkpoints.py`.")
    return manifest


def pending_migrations(manifest: dict[str, Any]) -> list[str]:
    """The migrations a restored project needs on top of the checkpoint's schema: none when it
    is current, the newer ones when it is older. A schema this workbench does not know (newer,
    or another history) is refused."""
    from workbench.store import migration_names

    current, theirs = migration_names(), list(manifest.get("schema") or [])
    unknown = [m for m in theirs if m not in current]
    if theirs and not unknown:
        # Migrations apply by name (Store.migrate), so one numbered below the checkpoint's
        # newest but merged later is applied like any other missing one.
        return [m for m in current if m not in theirs]
    raise CheckpointError(
        f"The checkpoints were made with database schema {len(theirs)}"
        + (f", with migrations this workbench does not have ({', '.join(unknown)})"
           if unknown else ", which names no migration")
        + f"; this workbench is at schema {len(current)}.",
        "Make them again with this workbench: `python datasets/tools/make_checkpoints.py` "
        "(or upgrade the workbench).")


def phases_before(at: int) -> list[int]:
    """The phases before ``at`` on the learning path (1, 2, 4, 3, 6, 7, 8, 9, 5)."""
    from workbench.phases import LEARNING_PATH

    if at not in LEARNING_PATH:
        raise CheckpointError(f"There is no phase {at}.",
                              "Pick a phase from 1 to 9, e.g. --at 6.")
    return list(LEARNING_PATH[:LEARNING_PATH.index(at)])


@dataclass
class Loaded:
    """Stages read and applied one after the other, in memory."""

    rows: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # project path -> source file
    card_set: dict[str, Any] = field(default_factory=dict)
    card_append: dict[str, list[Any]] = field(default_factory=dict)
    card_drop: set[str] = field(default_factory=set)


def _stage_entry(manifest: dict[str, Any], phase: int) -> dict[str, Any] | None:
    return next((s for s in manifest["stages"] if s["phase"] == phase), None)


def read_stages(source: Path, manifest: dict[str, Any], phases: list[int],
                keys: dict[str, list[str]], *, check: bool = True) -> Loaded:
    """The stages of ``phases`` applied in order. ``check``: refuse a stage whose files do not
    match the manifest's digest (edited by hand, or cut short)."""
    loaded = Loaded()
    for phase in phases:
        entry = _stage_entry(manifest, phase)
        if entry is None:
            continue  # a phase that leaves nothing in the sample (none today)
        folder = source / entry["folder"]
        if check and snapshot.folder_digest(folder) != entry["digest"]:
            raise CheckpointError(
                f"The checkpoint of phase {phase} ({folder}) does not match its manifest: a "
                "file was changed, added or removed.",
                "Restore the folder from git, or make the checkpoints again with "
                "`python datasets/tools/make_checkpoints.py`.")
        meta = snapshot.loads((folder / snapshot.STAGE_FILE).read_text(encoding="utf-8"))
        with open(folder / snapshot.ROWS_FILE, encoding="utf-8") as fh:
            for line in fh:
                op = snapshot.loads(line)
                table = op["table"]
                if table not in keys:
                    raise CheckpointError(
                        f"The checkpoint of phase {phase} has rows for a table '{table}' this "
                        "workbench's database does not have.",
                        "Make the checkpoints again with this workbench.")
                found = loaded.rows.setdefault(table, {})
                if "delete" in op:
                    found.pop(snapshot.key_of(op["delete"], keys[table]), None)
                else:
                    found[snapshot.key_of(op["row"], keys[table])] = op["row"]
        files = folder / snapshot.FILES_DIR
        for path in sorted(files.rglob("*")) if files.is_dir() else ():
            if path.is_file():
                loaded.files[path.relative_to(files).as_posix()] = path
        for rel in meta["deleted_files"]:
            loaded.files.pop(rel, None)
        card = meta["card"]
        for name in card["drop"]:
            loaded.card_set.pop(name, None)
            loaded.card_append.pop(name, None)
            loaded.card_drop.add(name)
        for name, value in card["set"].items():
            loaded.card_set[name] = value
            loaded.card_append.pop(name, None)
            loaded.card_drop.discard(name)
        for name, entries in card["append"].items():
            if name in loaded.card_set:
                loaded.card_set[name] = [*loaded.card_set[name], *entries]
            else:
                loaded.card_append[name] = [*loaded.card_append.get(name, []), *entries]
    return loaded


# -- times -------------------------------------------------------------------------------------

def newest_time(rows: dict[str, dict[str, dict[str, Any]]]) -> float | None:
    times = [v for found in rows.values() for row in found.values() for k, v in row.items()
             if snapshot.is_time_column(k) and isinstance(v, (int, float))]
    return max(times) if times else None


def _month_shift(month: str, months: int) -> str:
    year, mon = (int(p) for p in month.split("-")[:2])
    index = year * 12 + mon - 1 + months
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def shifted(table: str, row: dict[str, Any], shift: float, months: int) -> dict[str, Any]:
    """``row`` with its times moved by ``shift`` seconds (minute buckets stay on minutes; a
    calendar month, the spend table's, moves by ``months``)."""
    out = dict(row)
    for name, value in row.items():
        if snapshot.is_time_column(name) and isinstance(value, (int, float)):
            out[name] = value + shift
            if name == "minute":
                out[name] = float(int(out[name] // 60) * 60)
        elif name == "month" and isinstance(value, str) and months:
            out[name] = _month_shift(value, months)
    return out


def _months_between(then: float, now: float) -> int:
    a = dt.datetime.fromtimestamp(then, dt.timezone.utc)
    b = dt.datetime.fromtimestamp(now, dt.timezone.utc)
    return (b.year - a.year) * 12 + b.month - a.month


def _days_between(then: float, now: float) -> int:
    a = dt.datetime.fromtimestamp(then, dt.timezone.utc).date()
    b = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
    return (b - a).days


def shift_card_dates(value: Any, days: int) -> Any:
    """Dates in card tables (the decision log's) moved by ``days``."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value + dt.timedelta(days=days)
    if isinstance(value, list):
        return [shift_card_dates(v, days) for v in value]
    if isinstance(value, dict):
        return {k: shift_card_dates(v, days) for k, v in value.items()}
    return value


# -- a new project -----------------------------------------------------------------------------

def describe_start(at: int) -> str:
    """What a project restored ``--at`` ``at`` holds, in words."""
    from workbench.phases import PHASES

    titles = {p.number: p.title.lower() for p in PHASES}
    before = phases_before(at)
    done = ", ".join(f"{n} {titles[n]}" for n in before) or "nothing yet"
    return (f"at phase {at} ({titles[at]}): it holds what the phases before it on the learning "
            f"path leave ({done}); open notebooks/{_notebook(at)} next.")


def _notebook(at: int) -> str:
    from workbench.phases import PHASES

    return next(p.notebook for p in PHASES if p.number == at)


@dataclass
class Restored:
    at: int
    phases: list[int]
    rows: dict[str, int]
    files: int
    migrated: list[str]
    seconds: float = 0.0

    def summary(self) -> str:
        text = describe_start(self.at)
        if self.migrated:
            text += (f" The checkpoint was made with an older database schema and was "
                     f"migrated ({', '.join(self.migrated)}).")
        return text


def _create_db(path: Path, migrations: list[str]) -> sqlite3.Connection:
    """A project database at the schema of ``migrations`` (the checkpoint's), so its rows go in
    as they were made; ``Store.open`` then migrates it like any older project."""
    from workbench.store import APP_ID, MIGRATIONS

    by_name = {fn.__name__: fn for fn in MIGRATIONS}
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("BEGIN")
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
    now = time.time()
    for name in migrations:
        by_name[name](db)
        db.execute("INSERT INTO _migrations VALUES (?, ?)", (name, now))
    db.execute("INSERT INTO meta VALUES ('app', ?)", (APP_ID,))
    db.execute("INSERT INTO meta VALUES ('created_at', ?)", (str(now),))
    return db


def _insert(db: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    db.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                   [tuple(r[c] for c in columns) for r in rows])


def restore(folder: str | Path, at: int, *, name: str | None = None,
            source: Path | None = None, now: float | None = None) -> Restored:
    """Write the project ``--at`` ``at`` into ``folder`` (new and empty: ``init_project`` hands
    its staging folder): card, database and files of every phase before ``at`` on the path."""
    from workbench import tomlcard
    from workbench.bundled import sample_card_text
    from workbench.project import CARD_FILE, DB_FILE, SUBDIRS

    started = time.perf_counter()
    folder = Path(folder)
    source = Path(source) if source else checkpoints_dir()
    manifest = load_manifest(source)
    pending = pending_migrations(manifest)
    phases = phases_before(at)
    now = time.time() if now is None else now

    db = _create_db(folder / DB_FILE, manifest["schema"])
    try:
        tables = snapshot.tables(db)
        keys = {t: snapshot.columns_and_key(db, t)[1] for t in tables}
        loaded = read_stages(source, manifest, phases, keys)
        newest = newest_time(loaded.rows)
        shift = now - newest if newest is not None else 0.0
        months = _months_between(newest, now) if newest is not None else 0
        counts = {}
        for table in tables:
            rows = [shifted(table, r, shift, months)
                    for r in loaded.rows.get(table, {}).values()]
            _insert(db, table, rows)
            if rows:
                counts[table] = len(rows)
        if "monitor_buckets" in {r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}:
            from workbench import monitor_aggregates

            monitor_aggregates.rebuild_db(db, now=now)  # the dashboards read these
        db.execute("COMMIT")
    finally:
        db.close()
    for sub in SUBDIRS:
        (folder / sub).mkdir(exist_ok=True)
    for rel, path in loaded.files.items():
        target = folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)

    template = sample_card_text()
    sample = tomllib.loads(template)
    card: dict[str, Any] = {
        "workbench": {**sample["workbench"],
                      "created": dt.datetime.fromtimestamp(now, dt.timezone.utc)
                      .isoformat(timespec="seconds")},
        "project": dict(sample["project"], **({"name": name} if name else {})),
    }
    days = _days_between(newest, now) if newest is not None else 0
    for table, value in loaded.card_set.items():
        card[table] = shift_card_dates(value, days)
    for table, entries in loaded.card_append.items():
        card[table] = [*card.get(table, []), *shift_card_dates(entries, days)]
    (folder / CARD_FILE).write_text(tomlcard.dumps(card, template), encoding="utf-8")

    if pending:
        from workbench.store import Store

        Store.open(folder / DB_FILE).close()  # the migrations an old project gets
        for backup in folder.glob(DB_FILE + ".bak-*"):
            backup.unlink()  # a copy of the checkpoint, not of anyone's work
    return Restored(at, phases, counts, len(loaded.files), pending,
                    time.perf_counter() - started)


# -- one phase's work added to an existing project ---------------------------------------------

@dataclass
class Added:
    phase: int
    rows: dict[str, int]
    files: list[str]
    card: list[str]


def stage_rows(project, phase: int, *, source: Path | None = None,
               check: bool = True) -> tuple[Loaded, dict[str, list[str]]]:
    """The rows, files and card tables of one stage, keyed for ``project``'s database."""
    source = Path(source) if source else checkpoints_dir()
    manifest = load_manifest(source)
    pending_migrations(manifest)
    db = project.store.db
    keys = {t: snapshot.columns_and_key(db, t)[1] for t in snapshot.tables(db)}
    return read_stages(source, manifest, [phase], keys, check=check), keys


def holds(project, rows: list[dict[str, Any]]) -> bool:
    """Whether ``project`` holds these record rows exactly (same versions, same content)."""
    db = project.store.db
    for row in rows:
        found = db.execute("SELECT content_hash FROM records WHERE kind=? AND name=? AND "
                           "version=?", (row["kind"], row["name"], row["version"])).fetchone()
        if found is None or found[0] != row["content_hash"]:
            return False
    return True


def _same(table: str, mine: dict[str, Any], theirs: dict[str, Any]) -> bool:
    if table == "records":
        return mine["content_hash"] == theirs["content_hash"]
    return all(mine.get(k) == v for k, v in theirs.items() if not snapshot.is_time_column(k))


def add_stage(project, phase: int, *, keep: Callable[[str, dict[str, Any]], bool] | None = None,
              keep_file: Callable[[str], bool] | None = None,
              card_tables: tuple[str, ...] | None = None, source: Path | None = None,
              now: float | None = None) -> Added:
    """Add what phase ``phase`` left in the sample to ``project``, never changing what it
    holds: rows it already has unchanged are skipped, a row or file it holds differently
    raises ``CheckpointConflict`` before anything is written; card tables are set only where
    the card lacks them, and log entries appended. ``keep``/``keep_file`` pick rows and files;
    ``card_tables`` limits the card tables (None: all the stage touches)."""
    from workbench.fsutil import atomic_write_bytes

    loaded, keys = stage_rows(project, phase, source=source)
    picked = {table: [r for r in found.values() if keep is None or keep(table, r)]
              for table, found in loaded.rows.items()}
    db = project.store.db
    todo: dict[str, list[dict[str, Any]]] = {}
    for table, rows in picked.items():
        for row in rows:
            where = " AND ".join(f'"{k}" = ?' for k in keys[table])
            cur = db.execute(f'SELECT * FROM "{table}" WHERE {where}',
                             tuple(row[k] for k in keys[table]))
            mine = cur.fetchone()
            if mine is None:
                todo.setdefault(table, []).append(row)
            elif not _same(table, dict(zip([c[0] for c in cur.description], mine,
                                           strict=True)), row):
                what = (f"{row['kind']} '{row['name']}' v{row['version']}" if table == "records"
                        else f"a {table} row ({', '.join(str(row[k]) for k in keys[table])})")
                raise CheckpointConflict(
                    f"The project already holds {what}, different from the sample's.",
                    "Your own work is kept: finish that phase in its notebook, or start the "
                    "sample in a new folder (`workbench init PATH --sample --at N`).")
    files = [rel for rel in loaded.files if keep_file is None or keep_file(rel)]
    new_files = []
    for rel in files:
        target = project.path / rel
        if target.exists():
            if snapshot.file_digest(target) != snapshot.file_digest(loaded.files[rel]):
                raise CheckpointConflict(
                    f"The project already has a file {rel}, different from the sample's.",
                    "Your own file is kept: move it away first if the sample's should go "
                    "there.")
            continue
        new_files.append(rel)

    newest = newest_time({t: {str(i): r for i, r in enumerate(rows)}
                          for t, rows in todo.items()})
    now = time.time() if now is None else now
    shift = now - newest if newest is not None else 0.0
    months = _months_between(newest, now) if newest is not None else 0
    for rel in new_files:  # data first: a record never points at a missing file
        (project.path / rel).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(project.path / rel, loaded.files[rel].read_bytes())
    spans = [r["span_id"] for r in todo.get("spans", [])]
    with project.store.write() as w:
        for table in keys:
            _insert(w, table, [shifted(table, r, shift, months) for r in todo.get(table, [])])
        if spans and "monitor_buckets" in {r[0] for r in w.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}:
            from workbench import monitor_aggregates

            for i in range(0, len(spans), 500):  # the dashboards read these, not the spans
                chunk = spans[i:i + 500]
                monitor_aggregates.add_stored(
                    w, project.store, f"span_id IN ({', '.join('?' * len(chunk))})",
                    tuple(chunk))

    card_changed = []
    wanted = {k: v for k, v in loaded.card_set.items()
              if card_tables is None or k in card_tables}
    appended = {k: v for k, v in loaded.card_append.items()
                if card_tables is None or k in card_tables}
    if wanted or appended:
        days = _days_between(newest, now) if newest is not None else 0

        def change(card: dict[str, Any]) -> None:
            for table, value in wanted.items():
                if table not in card:
                    card[table] = shift_card_dates(value, days)
                    card_changed.append(table)
            for table, entries in appended.items():
                card[table] = [*card.get(table, []), *shift_card_dates(entries, days)]
                card_changed.append(table)

        project.update_card(change)
    return Added(phase, {t: len(r) for t, r in todo.items() if r}, new_files, card_changed)
