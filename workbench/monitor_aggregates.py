"""Per-minute and per-hour aggregates of traffic, so the dashboard never reads every span.

Each ``serve.request`` span (a request to the service) and each ``llm.call`` span (a model
call) adds to the rows of ``monitor_buckets`` that hold its minute and its hour: once for the
whole traffic and once for each of its dimensions (``model``, ``prompt_version``, ``arm``,
``client``). A row keeps counts (requests, answered, errors, refused, rate limited, cache hits,
fallbacks, parsed answers, tokens, cost) and two mergeable summaries (``monitor_sketch``): a
latency histogram for p50/p95/p99 and a sketch of the distinct users.

- ``add(project, span)`` is the hook ``tracing.write_span`` calls for every span, before the
  span is stored: it replaces a raw end-user id (``workbench.user``) by a keyed hash
  (``workbench.user_hash``; HMAC-SHA256 with the project's salt, so the raw id is stored
  nowhere) and queues the span's figures for the project's background writer, which merges
  them into the rows in the same transaction as the span.
- ``rebuild(project)`` recomputes every row from the spans (the migration that introduced
  the aggregates ran it once; ``workbench monitor --rebuild`` runs it again).
- ``collect(...)`` reads a window: whole hours from hourly rows, whole minutes from minute
  rows, and the seconds at the window's ragged edges from the spans themselves, so a window
  is exact whatever its bounds (percentiles within 1%).

Minute rows are kept for ``MINUTE_KEEP_S`` (3 days), hourly rows for as long as the project
lives; under the card's trace retention rule the user sketches of buckets past it are
dropped with the traces (the counts stay). Days are UTC days.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import sqlite3
import sys
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple

from workbench import monitor_sketch as sketch

if TYPE_CHECKING:
    import numpy as np

    from workbench.project import Project
    from workbench.store import Store
    from workbench.tracing import Span

SOURCES = {"serve.request": "service", "llm.call": "calls"}
SPAN_OF = {source: name for name, source in SOURCES.items()}
HOUR, MINUTE = 3600, 60
MINUTE_KEEP_S = 3 * 86400
DIMENSIONS = ("model", "prompt_version", "arm", "client")
REFUSED = (400, 401, 402, 403, 404, 405, 413, 422, 429)  # statuses of requests the service refused
USER_ATTRIBUTE = "workbench.user"  # the raw end-user id the service passes in
USER_HASH_ATTRIBUTE = "workbench.user_hash"  # what is stored instead
ARM_ATTRIBUTE = "workbench.arm"
ARMS = ("live", "canary", "shadow")
SALT_KEY = "user_salt"
DEPLOYMENT_RECORD = "service"  # workbench.serve.DEPLOYMENT (not imported: serve is heavy)
PREDICT_ROUTE = "/v1/predict"
# The service's routes that answer with the deployed prompt (its answering_routes): their
# requests are the predictions latency, errors and cost are measured on.
ANSWERING_ROUTES = (PREDICT_ROUTE, "/v1/chat/completions")

COUNTERS = ("requests", "answered", "errors", "refused", "rate_limited", "cached", "fallback",
            "parsed", "parse_n", "cost_usd", "cost_n", "input_tokens", "output_tokens",
            "latency_sum")
_COLUMNS = ", ".join(COUNTERS)
_REPLACE = ("INSERT OR REPLACE INTO monitor_buckets (source, bucket_s, start, dim, value, "
            f"{_COLUMNS}, latency, users) VALUES ({', '.join('?' * (len(COUNTERS) + 7))})")
_PENDING_MAX = 20_000  # model calls' tokens waiting for their request span (per process)
_PRUNE_EVERY_S = 3600.0


# -- end users -------------------------------------------------------------------------------------

_salts: weakref.WeakKeyDictionary[Store, bytes] = weakref.WeakKeyDictionary()


def create_salt(db: sqlite3.Connection) -> None:
    """Give the project its user-hashing salt (once; the migration calls this)."""
    db.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (SALT_KEY, secrets.token_hex(32)))


def _read_salt(db: sqlite3.Connection) -> bytes:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (SALT_KEY,)).fetchone()
    if row is None:  # a database the migration has not reached: never store the raw id
        raise RuntimeError("the project has no user salt; open it with this workbench")
    return bytes.fromhex(row[0])


def _salt_of(store: Store) -> bytes:
    salt = _salts.get(store)
    if salt is None:
        salt = _salts[store] = _read_salt(store.db)
    return salt


def hash_user(salt: bytes, raw: str) -> str:
    """The stored form of an end-user id: hex HMAC-SHA256 under the project's salt (128 bits).
    Without the salt, which stays in the project, a hash cannot be tested against guesses."""
    return hmac.new(salt, raw.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def user_hash(project: Project, raw: str) -> str:
    """What ``add`` stores for the end-user id ``raw`` in this project (to find a user's
    requests by the id they sent)."""
    return hash_user(_salt_of(project.store), str(raw))


# -- one span's figures ----------------------------------------------------------------------------

class Fact(NamedTuple):
    """What one span adds to its buckets."""

    store: Store | None  # the project's store (None while a migration rebuilds)
    source: str  # "service" or "calls"
    start: float
    status: int
    prediction: bool  # a request for an answer (not a feedback post, not a model-less route)
    latency: float
    cost: float | None
    cached: bool
    fallback: bool
    parse_ok: bool | None
    input_tokens: int
    output_tokens: int
    user: int | None  # 64 bits of the hashed end-user id
    model: str
    prompt_version: str
    arm: str
    client: str
    deployment: int | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _tokens(attributes: dict[str, Any]) -> tuple[int, int]:
    return (int(_number(attributes.get("gen_ai.usage.input_tokens")) or 0),
            int(_number(attributes.get("gen_ai.usage.output_tokens")) or 0))


def _text(value: Any) -> str:
    return "" if value is None else str(value)[:200]


def fact_of(store: Store | None, name: str, start: float, end: float, status: str,
            attributes: dict[str, Any], tokens: tuple[int, int] | None = None,
            salt: bytes | None = None) -> Fact:
    """The figures of one stored (or about to be stored) span. ``tokens`` are a service
    request's model calls' tokens (its own span has none)."""
    a = attributes
    user = a.get(USER_HASH_ATTRIBUTE)
    if user is None and a.get(USER_ATTRIBUTE) not in (None, "") and salt is not None:
        user = hash_user(salt, str(a[USER_ATTRIBUTE]))  # a span stored before the hook
    try:
        user64 = sketch.user_id64(user) if isinstance(user, str) and user else None
    except ValueError:
        user64 = None
    arm = _text(a.get(ARM_ATTRIBUTE))
    if SOURCES.get(name) == "service":
        code = _number(a.get("http.response.status_code"))
        code = int(code) if code is not None else (500 if status == "error" else 200)
        route = a.get("http.route")
        prediction = route is None or route in ANSWERING_ROUTES
        version = a.get("workbench.prompt_version")
        if a.get("workbench.prompt") and version is not None:  # the arm's own prompt
            version = f"{a['workbench.prompt']} v{version}"
        deployment = _number(a.get("workbench.deployment"))
        model = a.get("workbench.model")
        if not model and code >= 500:  # no model answered: the arm's own primary failed
            model = a.get("workbench.primary_model")
        return Fact(store, "service", float(start), code, prediction, float(end - start),
                    _number(a.get("workbench.cost_usd")), bool(a.get("workbench.cache_hit")),
                    bool(a.get("workbench.fallback_used")),
                    None if a.get("workbench.parse_ok") is None
                    else bool(a.get("workbench.parse_ok")),
                    *(tokens or (0, 0)), user64,
                    _text(model) if prediction else "",
                    _text(version) if prediction else "",
                    (arm or "live") if prediction else "", _text(a.get("workbench.client")),
                    int(deployment) if deployment is not None and prediction else None)
    return Fact(store, "calls", float(start), 500 if status == "error" else 200, True,
                float(end - start), _number(a.get("workbench.cost_usd")),
                bool(a.get("workbench.cache_hit")), False, None, *_tokens(a), user64,
                _text(a.get("gen_ai.request.model")), _text(a.get("workbench.prompt_version")),
                arm, _text(a.get("workbench.client")), None)


# -- the hook --------------------------------------------------------------------------------------

_pending: OrderedDict[tuple[str, str], list[int]] = OrderedDict()
_pending_lock = threading.Lock()
_retention: weakref.WeakKeyDictionary[Store, int | None] = weakref.WeakKeyDictionary()


_UNKNOWN = object()


def add(project: Project | None, span: Span, retention_days: Any = _UNKNOWN) -> None:
    """The hook of ``tracing.write_span``, called before the span is stored: hash the span's
    end-user id in place, and queue its figures for the project's aggregates (written by the
    background writer, in the transaction that stores the span). ``retention_days`` is the
    card's trace retention, when the caller has read the privacy policy already."""
    if project is None:
        return
    a = span.attributes
    key = str(project.store.path)
    if USER_ATTRIBUTE in a:
        raw = a.pop(USER_ATTRIBUTE)
        if raw not in (None, ""):
            a[USER_HASH_ATTRIBUTE] = hash_user(_salt_of(project.store), str(raw))
    source = SOURCES.get(span.name)
    if source is None:
        return
    tokens = None
    if source == "calls":
        if span.parent_id and a.get(PURPOSE_ATTRIBUTE) != "moderation":
            # maybe inside a request to the service: keep its tokens for it (a moderation
            # model's call is the content filter's, not the answer's)
            used = _tokens(a)
            with _pending_lock:
                total = _pending.setdefault((key, span.trace_id), [0, 0])
                total[0] += used[0]
                total[1] += used[1]
                while len(_pending) > _PENDING_MAX:
                    _pending.popitem(last=False)
    else:
        with _pending_lock:
            found = _pending.pop((key, span.trace_id), None)
        tokens = (found[0], found[1]) if found else (0, 0)
    if retention_days is _UNKNOWN:
        from workbench.privacy import project_policy

        # Cached by the privacy module (re-read when the card changes).
        retention_days = project_policy(project).trace_retention_days
    _retention[project.store] = retention_days
    end = span.end_time or span.start_time
    project.store.defer(_apply, fact_of(project.store, span.name, span.start_time, end,
                                        span.status, a, tokens))


# -- accumulating and writing rows -----------------------------------------------------------------

def _contribution(f: Fact) -> tuple[list[tuple[int, float]], int | None]:
    """What a span adds to ``COUNTERS`` (as (index, amount) pairs) and its latency bin (None
    unless it was answered): errors are failed answers (5xx), refused requests (4xx) count
    apart, and latency, cost, parse, cache and fallback are counted over answered ones."""
    pairs: list[tuple[int, float]] = [(0, 1)]
    if f.status in REFUSED:
        pairs.append((3, 1))
        if f.status == 429:
            pairs.append((4, 1))
    if f.input_tokens:
        pairs.append((11, f.input_tokens))
    if f.output_tokens:
        pairs.append((12, f.output_tokens))
    if not f.prediction or 400 <= f.status < 500:
        return pairs, None
    if f.status >= 500:
        pairs.append((2, 1))
        return pairs, None
    pairs += [(1, 1), (13, f.latency)]
    if f.cached:
        pairs.append((5, 1))
    if f.fallback:
        pairs.append((6, 1))
    if f.parse_ok is not None:
        pairs += [(7, int(f.parse_ok)), (8, 1)]
    if f.cost is not None:
        pairs += [(9, f.cost), (10, 1)]
    return pairs, sketch.latency_bin(f.latency)


class Totals:
    """Counts, a latency histogram and the user sketches of one group of buckets (and spans)."""

    __slots__ = ("counts", "hist", "user_blobs", "user_ids")

    def __init__(self) -> None:
        self.counts = [0.0] * len(COUNTERS)
        self.hist: dict[int, int] | np.ndarray | None = None
        self.user_blobs: list[bytes] = []
        self.user_ids: set[int] = set()

    # -- from spans
    def add_fact(self, f: Fact) -> None:
        self.add(*_contribution(f), f.user)

    def add(self, pairs: list[tuple[int, float]], bucket: int | None,
            user: int | None) -> None:
        c = self.counts
        for i, amount in pairs:
            c[i] += amount
        if user is not None:
            self.user_ids.add(user)
        if bucket is None:
            return
        if isinstance(self.hist, dict):
            self.hist[bucket] = self.hist.get(bucket, 0) + 1
        elif self.hist is None:
            self.hist = {bucket: 1}
        else:
            self.hist[bucket] += 1

    # -- from stored rows
    def add_row(self, counts: Iterable[float], latency: bytes | None,
                users: bytes | None) -> None:
        for i, value in enumerate(counts):
            self.counts[i] += value or 0
        if latency:
            self._dense()
            sketch.add_histogram(self.hist, latency)
        if users:
            self.user_blobs.append(users)

    def _dense(self) -> np.ndarray:
        import numpy as np

        if not isinstance(self.hist, np.ndarray):
            dense = np.zeros(sketch.NBINS, dtype=np.int64)
            for bucket, n in (self.hist or {}).items():
                dense[bucket] += n
            self.hist = dense
        return self.hist

    # -- out
    def latency_blob(self) -> bytes | None:
        if self.hist is None:
            return None
        if isinstance(self.hist, dict):
            return sketch.encode_histogram(self.hist)
        nonzero = self.hist.nonzero()[0]
        if not len(nonzero):
            return None
        return (b"h" + nonzero.astype("<u2").tobytes()
                + self.hist[nonzero].astype("<u4").tobytes())

    def users_blob(self) -> bytes | None:
        parts = list(self.user_blobs)
        if self.user_ids:
            parts.append(sketch.users_blob(self.user_ids))
        if len(parts) == 1:
            return parts[0]
        return sketch.merge_users(parts)

    def users(self) -> int:
        return sketch.count_users(self.users_blob())

    def metrics(self) -> dict[str, Any]:
        """The card-named metrics of these requests: errors are failed answers (5xx); refused
        requests (4xx) count apart; latency, cost, parse, cache and fallback rates are over
        answered requests."""
        c = dict(zip(COUNTERS, self.counts, strict=True))
        answered, errors = int(c["answered"]), int(c["errors"])
        p50, p95, p99 = sketch.quantiles(self._dense(), (50, 95, 99))
        nan = math.nan
        return {
            "requests": int(c["requests"]), "answered": answered, "errors": errors,
            "refused": int(c["refused"]), "rate_limited": int(c["rate_limited"]),
            "error_rate": errors / (answered + errors) if answered + errors else nan,
            "p50_latency": p50, "p95_latency": p95, "p99_latency": p99,
            "mean_latency": c["latency_sum"] / answered if answered else nan,
            "cost_per_request": c["cost_usd"] / c["cost_n"] if c["cost_n"] else nan,
            "cost_usd": float(c["cost_usd"]),
            "parse_rate": c["parsed"] / c["parse_n"] if c["parse_n"] else nan,
            "cache_hit_rate": c["cached"] / answered if answered else nan,
            "fallback_rate": c["fallback"] / answered if answered else nan,
            "input_tokens": int(c["input_tokens"]), "output_tokens": int(c["output_tokens"]),
            "users": self.users(),
        }


Deployments = dict[int, tuple[str, str]]
_deployments: weakref.WeakKeyDictionary[Store, Deployments] = weakref.WeakKeyDictionary()


def _deployment(db: sqlite3.Connection, cache: Deployments, version: int) -> tuple[str, str]:
    """(primary model, "prompt vN") of a deployment version; records never change."""
    found = cache.get(version)
    if found is None:
        row = db.execute("SELECT body FROM records WHERE kind = 'deployment' AND name = ? AND "
                         "version = ?", (DEPLOYMENT_RECORD, version)).fetchone()
        if row is None:
            return "", ""
        body = json.loads(row[0])
        found = (str(body.get("model", "")),
                 f"{body.get('prompt', '?')} v{body.get('prompt_version', '?')}")
        cache[version] = found
    return found


def deployment_of(project: Project, version: int) -> tuple[str, str]:
    """(primary model, "prompt vN") of deployment ``version`` ("" where it is unknown)."""
    return _deployment(project.store.db, _deployments.setdefault(project.store, {}), version)


def _dimensions(db: sqlite3.Connection, f: Fact,
                cache: Deployments) -> Iterator[tuple[str, str]]:
    """("", "") for the whole traffic, then each dimension the span has a value for. A shadow
    call answered nobody: it counts only on its arm, never as traffic (``rollout``)."""
    if f.arm == "shadow":
        yield "arm", "shadow"
        return
    yield "", ""
    model, version = f.model, f.prompt_version
    if f.deployment is not None:
        primary, deployed = _deployment(db, cache, f.deployment)
        # A failed request has no answering model: it counts against the deployment's own.
        model = model or (primary if f.status >= 500 else "")
        if not version:
            version = deployed
        elif version.isdigit() and deployed:
            version = f"{deployed.rsplit(' v', 1)[0]} v{version}"
    for dim, value in (("model", model), ("prompt_version", version), ("arm", f.arm),
                       ("client", f.client)):
        if value:
            yield dim, value


def _accumulate(db: sqlite3.Connection, facts: Iterable[Fact], now: float, cache: Deployments,
                into: dict[tuple, Totals] | None = None) -> dict[tuple, Totals]:
    groups = {} if into is None else into
    minute_from = now - MINUTE_KEEP_S
    for f in facts:
        dims = list(_dimensions(db, f, cache))
        pairs, bucket = _contribution(f)
        hour = float(int(f.start // HOUR) * HOUR)
        keys = [(f.source, HOUR, hour)]
        if f.start >= minute_from:
            keys.append((f.source, MINUTE, float(int(f.start // MINUTE) * MINUTE)))
        for source, resolution, start in keys:
            for dim, value in dims:
                key = (source, resolution, start, dim, value)
                totals = groups.get(key)
                if totals is None:
                    totals = groups[key] = Totals()
                totals.add(pairs, bucket, f.user)
    return groups


def _write(db: sqlite3.Connection, groups: dict[tuple, Totals], *, fresh: bool = False) -> None:
    """Merge groups into their rows (``fresh``: the rows do not exist yet)."""
    rows = []
    for key, totals in groups.items():
        stored = None if fresh else db.execute(
            f"SELECT {_COLUMNS}, latency, users FROM monitor_buckets WHERE source = ? AND "
            "bucket_s = ? AND start = ? AND dim = ? AND value = ?", key).fetchone()
        if stored is None:
            rows.append((*key, *totals.counts, totals.latency_blob(), totals.users_blob()))
            continue
        counts = [a + (b or 0) for a, b in zip(totals.counts, stored, strict=False)]
        hist = totals.hist if isinstance(totals.hist, dict) else {}
        rows.append((*key, *counts, sketch.merge_histogram(stored[-2], hist),
                     sketch.add_users(stored[-1], totals.user_ids)))
    db.executemany(_REPLACE, rows)


_last_prune: weakref.WeakKeyDictionary[Store, float] = weakref.WeakKeyDictionary()


_failed: weakref.WeakSet[Store] = weakref.WeakSet()


def _apply(db: sqlite3.Connection, facts: list[Fact]) -> None:
    """The background writer's part: merge a batch of spans' figures into their rows. Under a
    savepoint: should this ever fail, the aggregates of the batch are rolled back and the
    spans themselves are still stored (``rebuild`` repairs the aggregates)."""
    now = time.time()
    store = facts[0].store  # one writer per store
    db.execute("SAVEPOINT monitor_aggregates")
    try:
        _write(db, _accumulate(db, facts, now, _deployments.setdefault(store, {})))
        if now - _last_prune.get(store, 0.0) >= _PRUNE_EVERY_S:
            _last_prune[store] = now
            prune(db, now=now, retention_days=_retention.get(store))
    except Exception as exc:  # noqa: BLE001 (never lose the spans for the aggregates' sake)
        db.execute("ROLLBACK TO monitor_aggregates")
        if store not in _failed:
            _failed.add(store)
            print(f"workbench: monitoring aggregates not updated ({exc}); the spans are "
                  "stored: run `workbench monitor --rebuild`", file=sys.stderr)
    finally:
        db.execute("RELEASE monitor_aggregates")


def prune(db: sqlite3.Connection, *, now: float | None = None,
          retention_days: int | None = None) -> None:
    """Drop minute rows past ``MINUTE_KEEP_S`` (with an hour's margin: readers use minute rows
    up to ``MINUTE_KEEP_S`` back), and the user sketches of buckets past the retention rule."""
    now = time.time() if now is None else now
    db.execute("DELETE FROM monitor_buckets WHERE bucket_s = ? AND start < ?",
               (MINUTE, now - MINUTE_KEEP_S - HOUR))
    if retention_days is not None:
        db.execute("UPDATE monitor_buckets SET users = NULL WHERE users IS NOT NULL AND "
                   "start + bucket_s <= ?", (now - retention_days * 86400,))


# -- rebuilding from the spans ---------------------------------------------------------------------

_CHUNK = 20_000


PURPOSE_ATTRIBUTE = "workbench.purpose"  # "moderation": a content filter's model call
_TOKEN_FIELDS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")
_FIELDS = ("http.route", "http.response.status_code", "workbench.model", "workbench.cost_usd",
           "workbench.cache_hit", "workbench.fallback_used", "workbench.parse_ok",
           "workbench.client", USER_HASH_ATTRIBUTE, USER_ATTRIBUTE, ARM_ATTRIBUTE,
           "workbench.prompt_version", "workbench.deployment", "gen_ai.request.model",
           "workbench.prompt", "workbench.primary_model",
           "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens")


def _extract(fields: tuple[str, ...]) -> str:
    """SQL reading only ``fields`` of a span's attributes, in one parse (SQLite's JSON is C;
    the messages a span holds are never parsed in Python)."""
    return "json_extract(attributes, " + ", ".join(f"'$.\"{f}\"'" for f in fields) + ")"


def _service_tokens(db: sqlite3.Connection, trace_ids: list[str]) -> dict[str, tuple[int, int]]:
    """The tokens of the model calls inside each service request (by trace id)."""
    out: dict[str, list[int]] = {}
    for i in range(0, len(trace_ids), 500):
        chunk = trace_ids[i:i + 500]
        for trace_id, used in db.execute(
                f"SELECT trace_id, {_extract(_TOKEN_FIELDS)} FROM spans WHERE name = 'llm.call' "
                "AND parent_id IS NOT NULL AND coalesce(json_extract(attributes, "
                f"'$.\"{PURPOSE_ATTRIBUTE}\"'), '') != 'moderation' "
                f"AND trace_id IN ({', '.join('?' * len(chunk))})",
                chunk):
            tokens = json.loads(used)
            total = out.setdefault(trace_id, [0, 0])
            total[0] += int(_number(tokens[0]) or 0)
            total[1] += int(_number(tokens[1]) or 0)
    return {k: (v[0], v[1]) for k, v in out.items()}


def span_facts(db: sqlite3.Connection, store: Store | None, where: str = "",
               params: tuple = ()) -> Iterator[Fact]:
    """The figures of stored spans (those ``where`` selects, of both kinds), chunk by chunk."""
    salt = _read_salt(db)
    cursor = db.execute("SELECT name, trace_id, start_time, end_time, status, "
                        f"{_extract(_FIELDS)} FROM spans WHERE name IN ('serve.request', "
                        "'llm.call')"
                        + (f" AND {where}" if where else ""), params)
    while True:
        rows = cursor.fetchmany(_CHUNK)
        if not rows:
            return
        service = [r[1] for r in rows if r[0] == "serve.request"]
        tokens = _service_tokens(db, service) if service else {}
        for name, trace_id, start, end, status, attributes in rows:
            yield fact_of(store, name, start, end, status,
                          dict(zip(_FIELDS, json.loads(attributes), strict=True)),
                          tokens.get(trace_id, (0, 0)) if name == "serve.request" else None,
                          salt)


def _vector_rows(db: sqlite3.Connection, facts: list[Fact], now: float,
                 cache: Deployments) -> list[tuple]:
    """Every row the facts make, computed column-wise (pandas group-bys) rather than span by
    span: the rebuild of a million spans is bound by reading them, not by adding them up.
    It counts exactly what ``_contribution`` counts (a test holds the two to each other)."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(facts, columns=Fact._fields).drop(columns="store")
    columns: dict[str, list[str]] = {dim: [""] * len(facts) for dim in DIMENSIONS}
    in_total = np.zeros(len(facts), bool)  # counted in the whole traffic (a shadow is not)
    for i, f in enumerate(facts):
        for dim, value in _dimensions(db, f, cache):
            if dim:
                columns[dim][i] = value
            else:
                in_total[i] = True
    for dim in DIMENSIONS:
        frame[dim] = columns[dim]
    status = frame["status"].to_numpy()
    prediction = frame["prediction"].to_numpy(bool)
    served = prediction & ((status < 400) | (status >= 500))
    answered = served & (status < 400)
    parse = frame["parse_ok"]
    cost = pd.to_numeric(frame["cost"], errors="coerce").to_numpy(float)
    has_cost = answered & ~np.isnan(cost)
    c = pd.DataFrame({
        "requests": 1, "answered": answered.astype(int),
        "errors": (served & (status >= 500)).astype(int),
        "refused": np.isin(status, REFUSED).astype(int),
        "rate_limited": (status == 429).astype(int),
        "cached": (answered & frame["cached"].to_numpy(bool)).astype(int),
        "fallback": (answered & frame["fallback"].to_numpy(bool)).astype(int),
        "parsed": (answered & parse.eq(True).to_numpy()).astype(int),
        "parse_n": (answered & parse.notna().to_numpy()).astype(int),
        "cost_usd": np.where(has_cost, cost, 0.0), "cost_n": has_cost.astype(int),
        "input_tokens": frame["input_tokens"].to_numpy(), "output_tokens":
            frame["output_tokens"].to_numpy(),
        "latency_sum": np.where(answered, frame["latency"].to_numpy(float), 0.0)})
    latency = frame["latency"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        bins = np.ceil(np.log(latency / sketch.MIN_S) / math.log(sketch.GAMMA))
    c["bin"] = np.where(answered, np.clip(np.nan_to_num(bins, nan=0.0), 0, sketch.NBINS - 1),
                        -1).astype(int)
    c["bin"] = np.where(answered & ~(latency > sketch.MIN_S), 0, c["bin"])
    users = frame["user"]
    c["user"] = users.fillna(0).astype("uint64") if users.notna().any() else np.uint64(0)
    c["has_user"] = users.notna().to_numpy()
    c["source"] = frame["source"]
    starts = frame["start"].to_numpy(float)
    rows = []
    for resolution in (HOUR, MINUTE):
        keep = np.ones(len(frame), bool) if resolution == HOUR else starts >= now - MINUTE_KEEP_S
        c["bucket"] = np.floor(starts / resolution) * resolution
        for dim in ("", *DIMENSIONS):
            c["value"] = frame[dim] if dim else ""
            part = c[keep & ((c["value"] != "").to_numpy() if dim else in_total)]
            if part.empty:
                continue
            keys = ["source", "bucket", "value"]
            sums = part.groupby(keys, sort=False)[list(COUNTERS)].sum()
            answered_part = part[part["bin"] >= 0]
            hist = answered_part.groupby([*keys, "bin"], sort=False).size()
            hists: dict[tuple, dict[int, int]] = {}
            for (source, bucket, value, b), n in hist.items():
                hists.setdefault((source, bucket, value), {})[int(b)] = int(n)
            seen = part[part["has_user"]].drop_duplicates([*keys, "user"])
            people: dict[tuple, np.ndarray] = {}
            if len(seen):
                grouped = seen.groupby(keys, sort=True)
                codes = grouped.ngroup().to_numpy()
                order = np.argsort(codes, kind="stable")
                ids = seen["user"].to_numpy(np.uint64)[order]
                bounds = np.searchsorted(codes[order], np.arange(grouped.ngroups + 1))
                for i, key in enumerate(grouped.size().index):
                    people[key] = ids[bounds[i]:bounds[i + 1]]
            for key, counts in zip(sums.index, sums.itertuples(index=False), strict=True):
                source, bucket, value = key
                ids = people.get(key)
                rows.append((source, resolution, float(bucket), dim, value,
                             *(float(x) if i in (9, 13) else int(x)
                               for i, x in enumerate(counts)),
                             sketch.encode_histogram(hists.get(key, {})),
                             None if ids is None else sketch.users_blob(ids.tolist())))
    return rows


def rebuild_db(db: sqlite3.Connection, *, now: float | None = None) -> int:
    """Recompute every aggregate row from the spans, inside the caller's write transaction.
    Returns how many spans were read."""
    now = time.time() if now is None else now
    first, last = db.execute("SELECT MIN(start_time), MAX(start_time) FROM spans WHERE name IN "
                             "('serve.request', 'llm.call')").fetchone()
    # Rows before the first stored span stay: their spans may have been swept by the card's
    # retention rule, and the aggregates keep what they counted (spend, baselines).
    if first is None:
        return 0
    db.execute("DELETE FROM monitor_buckets WHERE start >= ?",
               (math.floor(first / HOUR) * HOUR,))
    read, cache = 0, {}
    # A day at a time (days hold whole hours and minutes): memory stays a day's spans.
    for day in range(int(first // 86400) * 86400, int(last) + 1, 86400):
        facts = list(span_facts(db, None, "start_time >= ? AND start_time < ?",
                                (day, day + 86400)))
        if facts:
            db.executemany(_REPLACE, _vector_rows(db, facts, now, cache))
            read += len(facts)
    return read


def add_stored(db: sqlite3.Connection, store: Store | None, where: str,
               params: tuple = ()) -> int:
    """Merge the figures of spans already in the table (those ``where`` selects) into the
    aggregates, inside the caller's write transaction: for spans written straight into it (a
    prepared checkpoint's) rather than through the tracer's hook. Returns how many were read."""
    facts = list(span_facts(db, store, where, params))
    if facts:
        cache = _deployments.setdefault(store, {}) if store is not None else {}
        _write(db, _accumulate(db, facts, time.time(), cache))
    return len(facts)


def rebuild(project: Project) -> int:
    """Recompute the project's aggregates from its spans (after spans were written by a
    process without the hook, or to repair them). Returns how many spans were read."""
    project.store.flush()
    with project.store.write() as db:
        return rebuild_db(db)


# -- reading a window ------------------------------------------------------------------------------

def _floor(t: float, step: int) -> float:
    return float(math.floor(t / step) * step)


def _ceil(t: float, step: int) -> float:
    return float(math.ceil(t / step) * step)


def plan(since: float, until: float, *, bucket_s: int | None = None,
         now: float | None = None) -> list[tuple[int | None, float, float]]:
    """How to read [since, until): ``(3600, lo, hi)`` from hourly rows, ``(60, lo, hi)`` from
    minute rows, ``(None, lo, hi)`` from the spans. Rows are only used when each lies in one
    bucket of ``bucket_s`` seconds (buckets aligned on the epoch)."""
    now = time.time() if now is None else now
    out: list[tuple[int | None, float, float]] = []
    if since >= until:
        return out
    rest = [(since, until)]
    if bucket_s is None or bucket_s % HOUR == 0:
        low, high = _ceil(since, HOUR), _floor(until, HOUR)
        if low < high:
            out.append((HOUR, low, high))
            rest = [(since, low), (high, until)]
    minutes_from = now - MINUTE_KEEP_S
    for lo, hi in rest:
        if lo >= hi:
            continue
        low, high = _ceil(max(lo, minutes_from), MINUTE), _floor(hi, MINUTE)
        if (bucket_s is None or bucket_s % MINUTE == 0) and low < high:
            out.append((MINUTE, low, high))
            out += [(None, a, b) for a, b in ((lo, low), (high, hi)) if a < b]
        else:
            out.append((None, lo, hi))
    return out


def extent(project: Project, source: str) -> tuple[float, float] | None:
    """The first and last hour holding traffic of ``source`` (None when there is none)."""
    row = project.store.db.execute(
        "SELECT MIN(start), MAX(start) FROM monitor_buckets WHERE source = ? AND bucket_s = ? "
        "AND dim = ''", (source, HOUR)).fetchone()
    return None if row is None or row[0] is None else (float(row[0]), float(row[1]) + HOUR)


def any_traffic(project: Project, source: str) -> bool:
    return project.store.db.execute(
        "SELECT 1 FROM monitor_buckets WHERE source = ? LIMIT 1", (source,)).fetchone() is not None


def collect(project: Project, source: str, *, since: float | None = None,
            until: float | None = None, dim: str = "", bucket_s: int | None = None,
            now: float | None = None) -> dict[tuple[float | None, str], Totals]:
    """The traffic of ``source`` ("service" or "calls") in [since, until), grouped by bucket
    (``bucket_s`` seconds aligned on the epoch, or None for the whole window) and by the
    value of ``dim`` (one of ``DIMENSIONS``, or "" for the whole traffic)."""
    if dim and dim not in DIMENSIONS:
        raise ValueError(f"dim must be one of {DIMENSIONS}")
    project.store.flush()
    if since is None or until is None:
        span = extent(project, source)
        if span is None:
            return {}
        since = span[0] if since is None else since
        until = span[1] if until is None else until
    db = project.store.db
    groups: dict[tuple[float | None, str], Totals] = {}
    cache = _deployments.setdefault(project.store, {})

    def group(start: float, value: str) -> Totals:
        key = (_floor(start, bucket_s) if bucket_s else None, value)
        totals = groups.get(key)
        if totals is None:
            totals = groups[key] = Totals()
        return totals

    for resolution, lo, hi in plan(since, until, bucket_s=bucket_s, now=now):
        if resolution is not None:
            for row in db.execute(
                    f"SELECT start, value, {_COLUMNS}, latency, users FROM monitor_buckets "
                    "WHERE source = ? AND bucket_s = ? AND dim = ? AND start >= ? AND start < ?",
                    (source, resolution, dim, lo, hi)):
                group(row[0], row[1]).add_row(row[2:2 + len(COUNTERS)], row[-2], row[-1])
            continue
        for f in span_facts(db, project.store, "name = ? AND start_time >= ? AND start_time < ?",
                            (SPAN_OF[source], lo, hi)):
            for d, value in _dimensions(db, f, cache):
                if d == dim:
                    group(f.start, value).add_fact(f)
    return groups
