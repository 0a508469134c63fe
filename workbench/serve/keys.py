"""API keys kept in the project: ``workbench keys create|list|revoke`` and the service's view of
them (``KeyRing``).

A key is made with ``secrets`` (256 random bits after the ``wb_`` prefix, which lets people and
secret scanners recognise one) and shown once, when it is created. The project keeps only its
SHA-256, a hint to tell keys apart (``wb_AbCd…``: the prefix and four characters) and the key's
name, limits, budget, and when it was created, last used and revoked. A fast, unsalted hash is
enough here, unlike for passwords: salts and slow hashes (bcrypt, argon2) defend guessable
secrets against precomputed tables and offline guessing, and nobody can guess 256 random bits,
however fast each try; a fast hash also lets every request be checked in microseconds.

Names are unique for good, revoked keys' too, so what traces and the ``spend`` table record for
a key (its ``key-...`` id) always means one key.

A running service (``KeyRing``) sees a key created or revoked by any process without a restart:
at most every ``REFRESH_S`` seconds, on the request path, it asks for the table's latest change
number (one indexed look-up, microseconds) and reads the rows changed since the last it saw. Keys in
``WORKBENCH_API_KEYS`` (or passed as ``api_keys``) keep working beside them, with the
deployment's limits.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import math
import re
import secrets
import sqlite3
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import os

    from workbench.project import Project

    ProjectLike = Project | str | os.PathLike | None

KEY_PREFIX = "wb_"
KEY_BYTES = 32  # 256 random bits
HINT_CHARS = len(KEY_PREFIX) + 4
REFRESH_S = 0.5  # a revoked key is refused at most this long after the revocation
TOUCH_S = 60.0  # last_used_at is written at most once a minute per key (not on every request)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class KeyProblem(WorkbenchError):
    """A key cannot be created or revoked as asked."""


class KeyNotFound(KeyProblem):
    """No key has that name."""


@dataclass(frozen=True)
class ApiKey:
    """A key as the project keeps it: never the key itself."""

    name: str
    key_id: str  # what traces and the spend table record: "key-" and 16 hex digits of its hash
    hint: str  # "wb_AbCd…": enough to tell keys apart, far too little to use
    created_at: float
    rate_limit_per_minute: int | None = None  # None: the deployment's
    tokens_per_minute: int | None = None  # None: no limit
    monthly_budget_usd: float | None = None  # None: no budget of its own
    last_used_at: float | None = None  # to the minute
    revoked_at: float | None = None
    spent_this_month_usd: float = 0.0
    requests_this_month: int = 0

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class Caller:
    """Who is calling the service, and the limits that apply to them."""

    client: str  # what traces, feedback and counters record: key-..., or anonymous-ADDRESS
    kind: Literal["project", "environment", "anonymous"]
    name: str | None = None  # a project key's name
    rate_limit_per_minute: int | None = None  # None: the deployment's
    tokens_per_minute: int | None = None
    monthly_budget_usd: float | None = None


def key_hash(key: str | bytes) -> str:
    """The SHA-256 of a key, in hex: what the project stores."""
    return hashlib.sha256(key.encode() if isinstance(key, str) else key).hexdigest()


def key_id(digest_hex: str) -> str:
    """The id traces record for the key of this hash (the same as for a key in
    ``WORKBENCH_API_KEYS``)."""
    return "key-" + digest_hex[:16]


def _opened(project: ProjectLike) -> Project:
    """A project, or a path to one (None: ``WORKBENCH_PROJECT``)."""
    from workbench.project import Project, open_project

    return project if isinstance(project, Project) else open_project(project)


def _whole(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value < 1 or value != int(value):
        raise KeyProblem(f"{name} must be a whole number of at least 1 (got {value!r}).",
                         f"Pass a whole number for {name}, or leave it out.")
    return int(value)


def _budget(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or \
            not math.isfinite(value) or value <= 0:
        raise KeyProblem(f"The monthly budget must be an amount of US dollars above 0 (got "
                         f"{value!r}).", "Pass e.g. 25 or 0.5, or leave it out for no budget "
                                         "of the key's own (to stop a key, revoke it).")
    return float(value)


def create_key(project: ProjectLike, name: str, *, rate_limit_per_minute: int | None = None,
               tokens_per_minute: int | None = None,
               monthly_budget_usd: float | None = None) -> str:
    """Make a key named ``name`` and return it: this is the only time it is shown (the project
    keeps its hash). Limits left out are the deployment's (requests a minute) or none."""
    project = _opened(project)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise KeyProblem(f"{name!r} cannot name a key.",
                         "Use 1 to 64 letters, digits, '.', '_' or '-', starting with a letter "
                         "or digit (e.g. 'alice' or 'mobile-app').")
    rate = _whole("rate_limit_per_minute", rate_limit_per_minute)
    tokens = _whole("tokens_per_minute", tokens_per_minute)
    budget = _budget(monthly_budget_usd)
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    now = time.time()
    with project.store.write() as db:
        taken = db.execute("SELECT created_at, revoked_at FROM api_keys WHERE name = ?",
                           (name,)).fetchone()
        if taken is not None:
            state = (f"revoked on {_utc(taken[1])}" if taken[1] is not None else
                     f"created on {_utc(taken[0])}")
            raise KeyProblem(f"A key named '{name}' already exists ({state}); names stay "
                             "unique, revoked keys' too, so traces and spend name one key.",
                             "Choose another name (e.g. " + f"'{name}-2').")
        db.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                   (name, key_hash(key), key[:HINT_CHARS] + "…", now, _next_version(db), rate,
                    tokens, budget))
    return key


def _next_version(db: sqlite3.Connection) -> int:
    """The number of the change being written (inside the write transaction: writers take
    turns, so numbers follow the order changes are committed in)."""
    return db.execute("SELECT coalesce(max(version), 0) + 1 FROM api_keys").fetchone()[0]


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


def list_keys(project: ProjectLike) -> list[ApiKey]:
    """Every key of the project, oldest first, revoked ones included, with this month's spend
    and requests (never a key itself)."""
    from workbench.serve.limits import month_of

    project = _opened(project)
    project.store.flush()
    spend = {row["client"]: row for row in project.store.query(
        "SELECT client, usd, requests FROM spend WHERE month = ?", (month_of(time.time()),))}
    keys = []
    for row in project.store.query("SELECT * FROM api_keys ORDER BY created_at, name"):
        client = key_id(row["key_hash"])
        used = spend.get(client)
        keys.append(ApiKey(
            name=row["name"], key_id=client, hint=row["hint"], created_at=row["created_at"],
            rate_limit_per_minute=row["rate_limit_per_minute"],
            tokens_per_minute=row["tokens_per_minute"],
            monthly_budget_usd=row["monthly_budget_usd"], last_used_at=row["last_used_at"],
            revoked_at=row["revoked_at"],
            spent_this_month_usd=float(used["usd"]) if used else 0.0,
            requests_this_month=int(used["requests"]) if used else 0))
    return keys


def revoke_key(project: ProjectLike, name: str) -> ApiKey:
    """Revoke the key named ``name``: a running service refuses it within ``REFRESH_S``
    seconds, without a restart. Returns the key as it is now."""
    project = _opened(project)
    now = time.time()
    with project.store.write() as db:
        row = db.execute("SELECT revoked_at FROM api_keys WHERE name = ?", (name,)).fetchone()
        if row is None:
            names = [r[0] for r in db.execute("SELECT name FROM api_keys")]
            close = difflib.get_close_matches(str(name), names, n=1)
            raise KeyNotFound(f"There is no key named '{name}'.",
                              (f"Did you mean '{close[0]}'? " if close else "")
                              + "See the keys with `workbench keys list`.")
        if row[0] is not None:
            raise KeyProblem(f"The key '{name}' was already revoked on {_utc(row[0])}.",
                             "Nothing to do; `workbench keys list` shows every key.")
        db.execute("UPDATE api_keys SET revoked_at = ?, version = ? WHERE name = ?",
                   (now, _next_version(db), name))
    return next(k for k in list_keys(project) if k.name == name)


# -- the service's view ----------------------------------------------------------------------------

@dataclass
class _Entry:
    digest: bytes
    caller: Caller
    revoked: bool = False
    touched: float = 0.0  # when last_used_at was last written (monotonic)


class KeyRing:
    """The keys a running service accepts: ``environment`` (``WORKBENCH_API_KEYS`` or
    ``api_keys``, the deployment's limits) and the project's, re-read when the table changes.

    A key is found by its SHA-256 digest, then compared with ``hmac.compare_digest``; the one
    dictionary look-up costs the same whatever the number of keys. Timing can tell an attacker
    at most something about the digest of a key they sent, and a digest does not give back a
    key."""

    def __init__(self, project: Project, environment: list[str]):
        self.project = project
        self._environment = {}
        for key in environment:
            digest = hashlib.sha256(key.encode()).digest()
            self._environment[digest] = _Entry(digest, Caller(client=key_id(digest.hex()),
                                                              kind="environment"))
        self._entries: dict[bytes, _Entry] = {}
        self._version = 0  # the latest change read
        self._checked = -math.inf
        self._failed = False
        self.refresh(force=True)

    @property
    def active_project_keys(self) -> int:
        return sum(1 for e in self._entries.values() if not e.revoked)

    def latest_version(self) -> int:
        return self.project.store.db.execute(
            "SELECT coalesce(max(version), 0) FROM api_keys").fetchone()[0]

    def refresh(self, *, force: bool = False) -> None:
        """Read the keys created or revoked since the last look (looked at at most every
        ``REFRESH_S`` seconds unless ``force``)."""
        now = time.monotonic()
        if not force and now - self._checked < REFRESH_S:
            return
        self._checked = now
        try:
            if self.latest_version() == self._version:
                return
            rows = self.project.store.query("SELECT * FROM api_keys WHERE version > ?",
                                            (self._version,))
        except sqlite3.Error as exc:
            if force:
                raise
            if not self._failed:  # keep the keys read last; say it once
                print(f"workbench: could not read the API keys ({exc}); the service keeps "
                      "the ones read last.", file=sys.stderr)
                self._failed = True
            return
        self._failed = False
        for row in rows:
            digest = bytes.fromhex(row["key_hash"])
            old = self._entries.get(digest)
            self._entries[digest] = _Entry(
                digest, Caller(client=key_id(row["key_hash"]), kind="project", name=row["name"],
                               rate_limit_per_minute=row["rate_limit_per_minute"],
                               tokens_per_minute=row["tokens_per_minute"],
                               monthly_budget_usd=row["monthly_budget_usd"]),
                revoked=row["revoked_at"] is not None, touched=old.touched if old else 0.0)
            self._version = max(self._version, row["version"])

    def match(self, offered: bytes) -> tuple[Caller | None, str | None]:
        """``(caller, None)`` for a key the service accepts; ``(None, why)`` otherwise (``why``
        is None for a key it never knew)."""
        self.refresh()
        digest = hashlib.sha256(offered).digest()
        entry = self._environment.get(digest) or self._entries.get(digest)
        if entry is None or not hmac.compare_digest(entry.digest, digest):
            return None, None
        if entry.revoked:
            return None, "the key was revoked"
        now = time.monotonic()
        if entry.caller.kind == "project" and now - entry.touched >= TOUCH_S:
            entry.touched = now
            self.project.store.defer("UPDATE api_keys SET last_used_at = ? WHERE name = ?",
                                     (time.time(), entry.caller.name))
        return entry.caller, None
