"""Typed, immutable, versioned records.

A record is a plain value (a frozen pydantic model). Its identity — kind, name, version, creation
time — is a storage concern kept in the ``records`` table, never inside the value. Saving a value
equal to the latest version of the same name makes no new version.

Each record class declares ``kind`` and ``schema_version``; when a class changes shape it bumps
``schema_version`` and teaches ``upgrade`` how to read older bodies, so old projects stay readable.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import RecordNotFound

if TYPE_CHECKING:
    from workbench.store import Store

_KINDS: dict[str, type[Record]] = {}


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("kind"):
            _KINDS[cls.kind] = cls

    @classmethod
    def upgrade(cls, body: dict[str, Any], from_version: int) -> dict[str, Any]:
        """Turn a body saved by an older schema version into the current shape."""
        return body

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def content_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


R = TypeVar("R", bound=Record)


@dataclass(frozen=True)
class Stored(Generic[R]):
    """A record value together with its identity in the project."""

    kind: str
    name: str
    version: int
    created_at: float
    content_hash: str
    value: R

    @property
    def created(self) -> datetime:
        return datetime.fromtimestamp(self.created_at, tz=timezone.utc)


def record_class(kind: str) -> type[Record]:
    return _KINDS[kind]


class Records:
    """Append-only record storage over a project's ``Store``."""

    def __init__(self, store: Store):
        self.store = store

    def save(self, name: str, value: R) -> Stored[R]:
        kind = type(value).kind
        if not kind:
            raise TypeError(f"{type(value).__name__} has no kind; set `kind = '...'` on the class")
        body = value.canonical_json()
        digest = hashlib.sha256(body.encode()).hexdigest()
        with self.store.write() as db:
            latest = db.execute(
                "SELECT version, content_hash, created_at FROM records WHERE kind=? AND name=?"
                " ORDER BY version DESC LIMIT 1", (kind, name)).fetchone()
            if latest and latest[1] == digest:
                return Stored(kind, name, latest[0], latest[2], digest, value)
            version = (latest[0] if latest else 0) + 1
            now = time.time()
            db.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (kind, name, version, type(value).schema_version, digest, now, body))
        return Stored(kind, name, version, now, digest, value)

    def _row_to_stored(self, cls: type[R], row: tuple) -> Stored[R]:
        name, version, schema_version, digest, created_at, body = row
        data = json.loads(body)
        if schema_version != cls.schema_version:
            data = cls.upgrade(data, schema_version)
        return Stored(cls.kind, name, version, created_at, digest, cls.model_validate(data))

    def get(self, cls: type[R], name: str, version: int | str | None = None) -> Stored[R]:
        """Latest version, a version number, or a tag (e.g. ``"production"``)."""
        if isinstance(version, str):
            row = self.store.db.execute("SELECT version FROM tags WHERE kind=? AND name=? AND tag=?",
                                        (cls.kind, name, version)).fetchone()
            if row is None:
                raise RecordNotFound(f"No {cls.kind} '{name}' is tagged '{version}'.",
                                     f"Tag a version first, or list versions of '{name}'.")
            version = row[0]
        sql = ("SELECT name, version, schema_version, content_hash, created_at, body FROM records"
               " WHERE kind=? AND name=?")
        params: tuple = (cls.kind, name)
        if version is None:
            sql += " ORDER BY version DESC LIMIT 1"
        else:
            sql += " AND version=?"
            params += (version,)
        row = self.store.db.execute(sql, params).fetchone()
        if row is None:
            which = f"version {version} of " if version is not None else ""
            raise RecordNotFound(f"No {which}{cls.kind} named '{name}' in this project.",
                                 f"List what exists with names({cls.__name__}).")
        return self._row_to_stored(cls, row)

    def versions(self, cls: type[R], name: str) -> list[Stored[R]]:
        rows = self.store.db.execute(
            "SELECT name, version, schema_version, content_hash, created_at, body FROM records"
            " WHERE kind=? AND name=? ORDER BY version", (cls.kind, name)).fetchall()
        return [self._row_to_stored(cls, r) for r in rows]

    def names(self, cls: type[Record]) -> list[str]:
        rows = self.store.db.execute("SELECT DISTINCT name FROM records WHERE kind=? ORDER BY name",
                                     (cls.kind,)).fetchall()
        return [r[0] for r in rows]

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return self.store.db.execute("SELECT COUNT(*) FROM records").fetchone()[0]
        return self.store.db.execute("SELECT COUNT(*) FROM records WHERE kind=?",
                                     (kind,)).fetchone()[0]

    def tags(self, cls: type[Record], name: str) -> dict[int, list[str]]:
        """The tags of every version of ``name`` that has any: {version: [tags, sorted]}."""
        rows = self.store.db.execute("SELECT tag, version FROM tags WHERE kind=? AND name=? "
                                     "ORDER BY tag", (cls.kind, name)).fetchall()
        out: dict[int, list[str]] = {}
        for tag, version in rows:
            out.setdefault(version, []).append(tag)
        return out

    def tag(self, cls: type[Record], name: str, version: int, tag: str) -> None:
        self.get(cls, name, version)  # must exist
        with self.store.write() as db:
            db.execute("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)",
                       (cls.kind, name, tag, version))


# -- wire shapes shared by every phase ---------------------------------------------------------

Role = Literal["system", "user", "assistant", "tool"]


class Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    role: Role
    content: str


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Completion(BaseModel):
    """What every model call returns, whichever provider answered."""

    model_config = ConfigDict(frozen=True)
    model: str
    text: str
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    finish_reason: str | None = None
    trace_id: str | None = None

    def __str__(self) -> str:
        return self.text


class ProjectNote(Record):
    """A decision or remark kept with the project (the decision log of phase 1 builds on it)."""

    kind: ClassVar[str] = "note"
    text: str
    phase: int | None = None
