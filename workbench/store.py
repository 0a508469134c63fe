"""The project database: SQLite in WAL mode, append-only named migrations.

Every schema change is a function in ``MIGRATIONS``; the ``_migrations`` table records which ran.
A database is "ours" only if it has that table and the ``meta`` row naming the workbench, so a
stranger's SQLite file is never migrated or written to.
"""

from __future__ import annotations

import atexit
import os
import sqlite3
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.errors import CorruptProject, NotAProject, ProjectBusy, ProjectTooNew

APP_ID = "llmops-workbench"
BUSY_TIMEOUT_MS = 60_000
GATHER_S = 0.02  # how long the background writer lets deferred rows accumulate

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append(fn)
    return fn


@migration
def m001_initial(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute(
        """CREATE TABLE records (
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            schema_version INTEGER NOT NULL,
            content_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY (kind, name, version)
        )"""
    )
    db.execute("CREATE TABLE tags (kind TEXT, name TEXT, tag TEXT, version INTEGER NOT NULL,"
               " PRIMARY KEY (kind, name, tag))")


@migration
def m002_traces(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE spans (
            span_id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            parent_id TEXT,
            name TEXT NOT NULL,
            start_time REAL NOT NULL,
            end_time REAL NOT NULL,
            status TEXT NOT NULL,
            error TEXT,
            attributes TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX spans_by_trace ON spans (trace_id)")
    db.execute("CREATE INDEX spans_by_start ON spans (start_time)")


@migration
def m003_llm_cache(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE llm_cache (
            key TEXT PRIMARY KEY,
            model TEXT NOT NULL,
            response TEXT NOT NULL,
            created_at REAL NOT NULL
        )"""
    )


@migration
def m004_runs(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            name TEXT,
            prompt TEXT NOT NULL,
            prompt_version INTEGER,
            model TEXT NOT NULL,
            dataset TEXT NOT NULL,
            dataset_version INTEGER,
            split TEXT,
            status TEXT NOT NULL,
            config TEXT NOT NULL,
            totals TEXT
        )"""
    )
    db.execute(
        """CREATE TABLE run_items (
            run_id TEXT NOT NULL REFERENCES runs (run_id),
            item_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            messages TEXT,
            output TEXT,
            parsed TEXT,
            parse_ok INTEGER,
            prompt_tokens INTEGER,
            completion_tokens INTEGER,
            latency_s REAL,
            cost_usd REAL,
            cached INTEGER,
            error TEXT,
            scores TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (run_id, item_id)
        )"""
    )
    db.execute("CREATE INDEX runs_by_created ON runs (created_at)")


@migration
def m005_monitoring(db: sqlite3.Connection) -> None:
    db.execute(
        """CREATE TABLE feedback (
            feedback_id TEXT PRIMARY KEY,
            trace_id TEXT NOT NULL,
            request_id TEXT,
            created_at REAL NOT NULL,
            rating INTEGER NOT NULL,
            comment TEXT,
            correction TEXT,
            source TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX feedback_by_created ON feedback (created_at)")
    db.execute(
        """CREATE TABLE alerts (
            alert_id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            fired_at REAL NOT NULL,
            value REAL,
            threshold REAL,
            window_s REAL NOT NULL,
            message TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX alerts_by_fired ON alerts (fired_at)")


@migration
def m006_refusal_counts(db: sqlite3.Connection) -> None:
    """Refusals the service counts instead of tracing each one (a key over its rate limit,
    unknown paths): per minute, client, route and status, how many were NOT written as
    ``serve.request`` spans (the first of each per minute is). Monitoring adds them to the
    spans it counts (``workbench.monitor.traffic``)."""
    db.execute(
        """CREATE TABLE refusal_counts (
            minute REAL NOT NULL,
            client TEXT NOT NULL,
            route TEXT NOT NULL,
            status INTEGER NOT NULL,
            untraced INTEGER NOT NULL,
            PRIMARY KEY (minute, client, route, status)
        )"""
    )


@migration
def m007_api_keys(db: sqlite3.Connection) -> None:
    """API keys made with ``workbench keys create`` (``workbench.serve.keys``): the SHA-256 of
    each key, never the key, with its limits, budget and when it was created, last used and
    revoked; names stay unique, revoked ones too, so traces and spend stay attributable.
    ``version`` numbers the table's changes in commit order (a row takes the next one when it is
    created or revoked), so a running service reads only the rows that changed.
    ``spend`` is what the service's answers cost per calendar month (UTC) and client (a key's
    ``key-...`` id, or an anonymous caller), so budgets survive a restart."""
    db.execute(
        """CREATE TABLE api_keys (
            name TEXT PRIMARY KEY,
            key_hash TEXT NOT NULL UNIQUE,
            hint TEXT NOT NULL,
            created_at REAL NOT NULL,
            version INTEGER NOT NULL,
            rate_limit_per_minute INTEGER,
            tokens_per_minute INTEGER,
            monthly_budget_usd REAL,
            last_used_at REAL,
            revoked_at REAL
        )"""
    )
    db.execute("CREATE INDEX api_keys_by_version ON api_keys (version)")
    db.execute(
        """CREATE TABLE spend (
            month TEXT NOT NULL,
            client TEXT NOT NULL,
            usd REAL NOT NULL,
            tokens INTEGER NOT NULL,
            requests INTEGER NOT NULL,
            PRIMARY KEY (month, client)
        )"""
    )


@migration
def m009_monitoring_aggregates(db: sqlite3.Connection) -> None:
    """Phase 8 at scale: the dashboard reads per-minute and per-hour aggregates of the spans
    (``workbench.monitor_aggregates``), kept up to date as spans are written and rebuilt here
    from the spans a project already holds; a per-project salt for hashing end-user ids; a
    kind (and details) for every alert; the online judge's verdicts, drift checks, and what
    the notifier last sent."""
    db.execute(
        """CREATE TABLE monitor_buckets (
            source TEXT NOT NULL,
            bucket_s INTEGER NOT NULL,
            start REAL NOT NULL,
            dim TEXT NOT NULL,
            value TEXT NOT NULL,
            requests INTEGER NOT NULL,
            answered INTEGER NOT NULL,
            errors INTEGER NOT NULL,
            refused INTEGER NOT NULL,
            rate_limited INTEGER NOT NULL,
            cached INTEGER NOT NULL,
            fallback INTEGER NOT NULL,
            parsed INTEGER NOT NULL,
            parse_n INTEGER NOT NULL,
            cost_usd REAL NOT NULL,
            cost_n INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            latency_sum REAL NOT NULL,
            latency BLOB,
            users BLOB,
            PRIMARY KEY (source, bucket_s, dim, start, value)
        )"""
    )
    db.execute("ALTER TABLE alerts ADD COLUMN kind TEXT NOT NULL DEFAULT 'threshold'")
    db.execute("ALTER TABLE alerts ADD COLUMN details TEXT")
    db.execute(
        """CREATE TABLE monitor_judgements (
            trace_id TEXT NOT NULL,
            judge_name TEXT NOT NULL,
            judged_at REAL NOT NULL,
            request_time REAL NOT NULL,
            score INTEGER,
            passed INTEGER,
            parsed_ok INTEGER NOT NULL,
            normalised REAL,
            reason TEXT,
            trust TEXT NOT NULL,
            model TEXT,
            prompt_version TEXT,
            arm TEXT,
            PRIMARY KEY (trace_id, judge_name)
        )"""
    )
    db.execute("CREATE INDEX judgements_by_request ON monitor_judgements (request_time)")
    db.execute(
        """CREATE TABLE monitor_drift (
            drift_id TEXT PRIMARY KEY,
            computed_at REAL NOT NULL,
            since REAL NOT NULL,
            until REAL NOT NULL,
            inputs INTEGER NOT NULL,
            dataset TEXT NOT NULL,
            dataset_version INTEGER NOT NULL,
            method TEXT NOT NULL,
            statistic REAL NOT NULL,
            threshold REAL NOT NULL,
            p_value REAL NOT NULL,
            drifted INTEGER NOT NULL,
            details TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX drift_by_computed ON monitor_drift (computed_at)")
    db.execute(
        """CREATE TABLE alert_notifications (
            key TEXT PRIMARY KEY,
            firing INTEGER NOT NULL,
            last_sent REAL NOT NULL,
            message TEXT NOT NULL
        )"""
    )
    from workbench import monitor_aggregates

    monitor_aggregates.create_salt(db)
    monitor_aggregates.rebuild_db(db)


@migration
def m010_otlp_export(db: sqlite3.Connection) -> None:
    """What ``workbench traces export`` sent where: the endpoint (never its credentials), the
    spans' rowid range (``from_rowid`` < rowid <= ``to_rowid``, so ``--since last`` sends
    only newer spans; rowids of spans are stable because the workbench never VACUUMs), counts
    and status (running, finished, failed, interrupted)."""
    db.execute(
        """CREATE TABLE otlp_exports (
            export_id TEXT PRIMARY KEY,
            endpoint TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            since REAL,
            from_rowid INTEGER NOT NULL,
            to_rowid INTEGER NOT NULL,
            spans INTEGER NOT NULL,
            rejected INTEGER NOT NULL,
            status TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX otlp_exports_by_endpoint ON otlp_exports (endpoint, to_rowid)")


@migration
def m012_semantic_cache(db: sqlite3.Connection) -> None:
    """The served semantic cache's entries, per deployment version (``workbench.serve.
    semantic_cache``): the request's embedding and the answer, as JSON. Each service process
    reads the rows added since it last looked, so processes on one machine share them."""
    db.execute(
        """CREATE TABLE semantic_cache (
            deployment INTEGER NOT NULL,
            entry TEXT NOT NULL,
            created REAL NOT NULL
        )"""
    )
    db.execute("CREATE INDEX semantic_cache_by_deployment ON semantic_cache (deployment)")


@migration
def m013_exercises(db: sqlite3.Connection) -> None:
    """Every check of a guided notebook's exercise (``workbench.exercises.check``): which
    exercise, the attempt's number, when, whether it passed and the hint it gave. Checks are
    events, not versions of a value, so they are rows here rather than records; the
    instructor's view (``workbench class``) reads them from copies of students' projects."""
    db.execute(
        """CREATE TABLE exercise_checks (
            exercise TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            checked_at REAL NOT NULL,
            passed INTEGER NOT NULL,
            hint TEXT NOT NULL,
            workbench_version TEXT NOT NULL,
            PRIMARY KEY (exercise, attempt)
        )"""
    )


def migration_names() -> list[str]:
    return [fn.__name__ for fn in MIGRATIONS]


_live_stores: weakref.WeakSet = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for store in list(_live_stores):
        store.flush()


class _DeferredWriter:
    """Writes queued rows from a background thread, many per transaction.

    Traces and cache entries take this path so a model call never waits on a disk write; the
    thread writes what accumulated every few milliseconds, so rows land within ~20 ms, and
    ``flush`` (called before reads and at exit) waits for them.

    The queue is a deque, not a ``queue.Queue``: a caller's ``put`` is one append (and, when
    the thread sleeps, one wake-up), with no lock taken per row; at tens of thousands of spans
    a second the Queue's two locks per row were a tenth of the cost. ``flush`` appends a
    marker and waits until the thread has committed everything before it."""

    def __init__(self, store: Store):
        self.store = store
        self.pid = os.getpid()
        self.queue: deque[tuple[str | Callable, Any] | threading.Event] = deque()
        self.wake = threading.Event()
        self.busy = False
        self.failed = False
        self.thread = threading.Thread(target=self._run, name="workbench-store-writer",
                                       daemon=True)
        self.thread.start()

    def put(self, sql: str, params: tuple) -> None:
        self.queue.append((sql, params))
        if not self.wake.is_set():
            self.wake.set()

    def flush(self) -> None:
        if not self.queue and not self.busy:
            return  # nothing queued, nothing being written
        marker = threading.Event()
        self.queue.append(marker)
        self.wake.set()
        marker.wait()

    def _run(self) -> None:
        queue, wake = self.queue, self.wake
        while True:
            wake.wait()
            # Let a few milliseconds of rows pile up: one transaction for many rows keeps this
            # thread from contending with the caller for the GIL on every single call. Someone
            # waiting in flush() is not kept waiting for more rows.
            if not (queue and type(queue[-1]) is threading.Event):
                time.sleep(GATHER_S)
            wake.clear()  # before draining: a row appended after this wakes the next round
            self.busy = True  # before draining: flush() must not see "empty" and "idle"
            by_statement: dict[str | Callable, list] = {}
            markers: list[threading.Event] = []
            while queue:
                item = queue.popleft()
                if type(item) is tuple:
                    rows = by_statement.get(item[0])
                    if rows is None:
                        rows = by_statement[item[0]] = []
                    rows.append(item[1])
                else:
                    markers.append(item)
            try:
                if by_statement:
                    with self.store.write() as db:
                        for sql, rows in by_statement.items():
                            if callable(sql):  # a function that merges its rows itself
                                sql(db, rows)
                            else:
                                db.executemany(sql, rows)
            except Exception as exc:  # noqa: BLE001 (never kill the thread; said once)
                if not self.failed:
                    print(f"workbench: could not record traces in {self.store.path}: {exc}",
                          file=sys.stderr)
                    self.failed = True
            finally:
                self.busy = False
                for marker in markers:
                    marker.set()


def _locked(exc: sqlite3.OperationalError) -> bool:
    """Whether SQLite gave up waiting for another connection's lock (not a damaged file)."""
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class Store:
    """One project database. Connections are per thread and per process (safe after fork)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        self._writer: _DeferredWriter | None = None
        self._writer_lock = threading.Lock()
        _live_stores.add(self)

    # -- deferred writes (traces, cache) -------------------------------------------------------
    def defer(self, sql: str | Callable[[sqlite3.Connection, list], None],
              params: Any) -> None:
        """Queue a row for the background writer: ``sql`` with ``params``, or a function that
        gets the write connection and the params of every call queued alongside (say, to merge
        counters into rows it reads first), in the same transaction as the rows queued with
        them."""
        writer = self._writer
        if writer is None or writer.pid != os.getpid():
            with self._writer_lock:
                writer = self._writer
                if writer is None or writer.pid != os.getpid():
                    writer = self._writer = _DeferredWriter(self)
        writer.put(sql, params)

    def flush(self) -> None:
        """Wait until every deferred write of this process is in the database."""
        writer = self._writer
        if writer is not None and writer.pid == os.getpid():
            writer.flush()

    # -- connections -------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                             check_same_thread=False)
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        db.execute("PRAGMA synchronous = NORMAL")
        db.execute("PRAGMA foreign_keys = ON")
        return db

    @property
    def db(self) -> sqlite3.Connection:
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
        return local.conn

    def close(self) -> None:
        self.flush()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction. BEGIN IMMEDIATE takes the write lock up front, so two writers wait
        for each other (busy timeout) instead of failing with "database is locked" on upgrade."""
        db = self.db
        try:
            for attempt in range(50):
                try:
                    db.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:  # busy beyond the timeout: keep waiting
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise
                    time.sleep(min(0.05 * (attempt + 1), 1.0))
            else:  # pragma: no cover - would need a writer holding the lock for many minutes
                raise sqlite3.OperationalError("database is locked")
            yield db
        except BaseException:
            # Also when Ctrl-C lands right after BEGIN: never leave the write lock held.
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        else:
            db.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        cur = self.db.execute(sql, params)
        cur.row_factory = sqlite3.Row
        return cur.fetchall()

    # -- creation and checks -----------------------------------------------------------------
    @classmethod
    def create(cls, path: Path) -> Store:
        store = cls(path)
        db = store.db
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
        store.migrate()
        with store.write() as w:
            w.execute("INSERT OR REPLACE INTO meta VALUES ('app', ?)", (APP_ID,))
            w.execute("INSERT OR REPLACE INTO meta VALUES ('created_at', ?)", (str(time.time()),))
        return store

    @classmethod
    def open(cls, path: Path) -> Store:
        """Open an existing project database, checking it is ours and migrating it if old."""
        path = Path(path)
        if not path.is_file():
            raise NotAProject(f"{path} is missing.",
                              "Create a project with `workbench init PATH` or init_project(path).")
        store = cls(path)
        try:
            tables = {r[0] for r in store.db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "_migrations" not in tables or "meta" not in tables:
                raise NotAProject(
                    f"{path} is an SQLite database, but not a workbench project database.",
                    "Leave it alone and create the project in another folder.")
            app = store.db.execute("SELECT value FROM meta WHERE key = 'app'").fetchone()
            if not app or app[0] != APP_ID:
                raise NotAProject(f"{path} belongs to another application ({app and app[0]}).",
                                  "Create the project in another folder.")
            store.migrate()
        except sqlite3.OperationalError as exc:
            store.close()
            if _locked(exc):  # busy, not broken: restoring a backup would be the wrong advice
                raise ProjectBusy(
                    f"{path} is locked by another program and stayed locked for "
                    f"{BUSY_TIMEOUT_MS / 1000:g} s ({exc}).",
                    "Wait for the other program (another notebook, `workbench serve`, a sqlite "
                    "shell with an open transaction) to finish, or close it, then open the "
                    "project again.") from exc
            raise CorruptProject(
                f"{path} cannot be read as a project database ({exc}).",
                "Restore it from a backup (workbench.db.bak-* beside it, if any); "
                "the workbench never overwrites it.") from exc
        except sqlite3.DatabaseError as exc:
            store.close()
            raise CorruptProject(
                f"{path} cannot be read as a project database ({exc}).",
                "Restore it from a backup (workbench.db.bak-* beside it, if any); "
                "the workbench never overwrites it.") from exc
        except BaseException:
            store.close()
            raise
        return store

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT name FROM _migrations ORDER BY rowid")]

    @property
    def schema_version(self) -> int:
        return len(self.applied_migrations())

    def migrate(self) -> list[str]:
        """Apply the migrations this database lacks; returns their names.

        An existing database is copied to ``workbench.db.bak-<version>`` first, so a failed
        upgrade loses nothing."""
        known = migration_names()
        applied = self.applied_migrations()
        unknown = [name for name in applied if name not in known]
        if unknown:
            raise ProjectTooNew(
                f"{self.path} was written by a newer workbench (migrations {unknown}).",
                "Upgrade the workbench package (pip install -U llmops-workbench).")
        pending = [fn for fn in MIGRATIONS if fn.__name__ not in applied]
        if not pending:
            return []
        if applied:
            self._backup(f"{self.path}.bak-{len(applied)}")
        done = []
        with self.write() as db:
            # Another process may have migrated between our check and the write lock.
            applied = {r[0] for r in db.execute("SELECT name FROM _migrations")}
            for fn in MIGRATIONS:
                if fn.__name__ in applied:
                    continue
                fn(db)
                db.execute("INSERT INTO _migrations VALUES (?, ?)", (fn.__name__, time.time()))
                done.append(fn.__name__)
        return done

    def _backup(self, target: str) -> None:
        if os.path.exists(target):
            return
        tmp = target + ".tmp"
        dest = sqlite3.connect(tmp)
        try:
            self.db.backup(dest)
        finally:
            dest.close()
        os.replace(tmp, target)

