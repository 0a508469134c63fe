"""State that several service processes share: rate limits, budgets and the response cache in
Redis, for ``workbench serve --workers N`` and for replicas behind a load balancer.

One process keeps its token buckets and totals in memory. Several processes with memory of their
own would each grant the whole limit (four workers: four times the rate limit, four times the
budget), so with more than one they share them through Redis instead (``--redis URL``, or
``WORKBENCH_REDIS_URL``):

- ``RedisCounters`` implements the ``Counters`` protocol: a token bucket that one Lua script
  reads, refills and takes from atomically, on the Redis server's clock (replicas whose clocks
  disagree still share one bucket), and totals added with ``INCRBYFLOAT`` that expire a fixed
  time after they were created (a month's budget);
- ``RedisResponseCache`` sits in front of the project's SQLite response cache, under the same
  keys (``workbench.llm.gateway``), so an answer one process got is a hit in every other at once.

Every key starts with a prefix naming the project (``workbench:<project name>:``, or
``WORKBENCH_REDIS_PREFIX``), so one Redis can serve several projects. When Redis stops answering,
counters raise ``SharedStateUnavailable`` (the service answers 503: it never grants a request it
cannot count) and the cache counts as a miss (a slower answer, never a wrong one).
"""

from __future__ import annotations

import math
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.project import Project

ENV_REDIS_URL = "WORKBENCH_REDIS_URL"
ENV_REDIS_PREFIX = "WORKBENCH_REDIS_PREFIX"
ENV_CACHE_TTL = "WORKBENCH_REDIS_CACHE_TTL_S"
DEFAULT_CACHE_TTL_S = 7 * 24 * 3600.0  # a week: Redis memory is not the project's disk
SOCKET_TIMEOUT_S = 1.0  # a Redis that takes longer is treated as down, not waited for


class SharedStateUnavailable(WorkbenchError):
    """Redis (the state the service's processes share) cannot be reached."""


try:  # the keys work defines the protocol beside its in-memory implementation
    from workbench.serve.limits import Counters  # type: ignore[import-not-found]
except ImportError:
    @runtime_checkable
    class Counters(Protocol):
        """Counters the service's limits and budgets keep: in memory for one process, in Redis
        for several."""

        def take(self, bucket: str, *, rate_per_s: float, burst: float,
                 cost: float = 1.0) -> float:
            """Token bucket: 0.0 when `cost` tokens were taken now, else the seconds until
            they could be (nothing taken)."""

        def add(self, name: str, amount: float, *, ttl_s: float) -> float:
            """Add to a named total (created at 0, expiring ttl_s after creation); the new
            total."""

        def get(self, name: str) -> float:
            """A named total (0 when absent or expired)."""


# KEYS[1]: the bucket. ARGV: tokens per second, burst, cost. The bucket is a hash of the tokens
# left and when they were counted; it expires once it would be full again (nothing to remember).
# Numbers cross the script boundary as strings: Redis turns a Lua number into an integer.
_TAKE = """
local rate, burst, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if tokens == nil or at == nil then tokens, at = burst, now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if cost > burst then
  wait = -1
elseif tokens >= cost then
  tokens = tokens - cost
else
  wait = (cost - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'at', string.format('%.17g', now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return string.format('%.17g', wait)
"""

# KEYS[1]: the total. ARGV: amount, time to live in ms (set once, when the total is created).
_ADD = """
local total = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return total
"""


def _redis_module():
    try:
        import redis
    except ImportError:
        raise SharedStateUnavailable(
            "Sharing limits and the cache between processes needs the redis client, which is "
            "not installed.", "Install it with: pip install redis") from None
    return redis


def _shown(url: str) -> str:
    """A Redis URL without its password, as messages may show it."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}:" if parts.username else ":"
    return parts._replace(netloc=f"{user}***@{host}{port}").geturl()


def connect(url: str):
    """A Redis client for ``url`` that has answered a PING (a wrong URL fails here, at start,
    rather than on the first request)."""
    redis = _redis_module()
    try:
        client = redis.Redis.from_url(url, socket_timeout=SOCKET_TIMEOUT_S,
                                      socket_connect_timeout=SOCKET_TIMEOUT_S,
                                      health_check_interval=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise SharedStateUnavailable(
            f"Redis at {_shown(url)} does not answer: {exc}.",
            "Start Redis (e.g. `redis-server`, or the redis service of deploy/compose.yaml) "
            "or pass the right URL with --redis / WORKBENCH_REDIS_URL "
            "(redis://HOST:6379/0).") from None
    return client


class RedisCounters:
    """``Counters`` in Redis: every process of the service sees the same buckets and totals."""

    def __init__(self, client: Any, prefix: str = "workbench:"):
        self.client = client
        self.prefix = prefix
        self._take = client.register_script(_TAKE)
        self._add = client.register_script(_ADD)
        self._errors = _redis_module().RedisError

    def _down(self, exc: Exception) -> SharedStateUnavailable:
        return SharedStateUnavailable(f"Redis did not answer: {type(exc).__name__}.",
                                      "Check that Redis is running and reachable from the "
                                      "service.")

    def take(self, bucket: str, *, rate_per_s: float, burst: float, cost: float = 1.0) -> float:
        """Token bucket: 0.0 when ``cost`` tokens were taken now, else the seconds until they
        could be (nothing taken); ``inf`` when ``cost`` is more than the bucket holds."""
        if rate_per_s <= 0 or burst <= 0:
            raise ValueError("rate_per_s and burst must be above 0")
        try:
            wait = float(self._take(keys=[self.prefix + "bucket:" + bucket],
                                    args=[repr(float(rate_per_s)), repr(float(burst)),
                                          repr(float(cost))]))
        except self._errors as exc:
            raise self._down(exc) from None
        return math.inf if wait < 0 else wait

    def add(self, name: str, amount: float, *, ttl_s: float) -> float:
        """Add to a named total (created at 0, expiring ``ttl_s`` after creation); the new
        total."""
        try:
            total = self._add(keys=[self.prefix + "total:" + name],
                              args=[repr(float(amount)), max(1, math.ceil(ttl_s * 1000))])
        except self._errors as exc:
            raise self._down(exc) from None
        return float(total)

    def get(self, name: str) -> float:
        """A named total (0 when absent or expired)."""
        try:
            value = self.client.get(self.prefix + "total:" + name)
        except self._errors as exc:
            raise self._down(exc) from None
        return float(value) if value is not None else 0.0


class RedisResponseCache:
    """The gateway's response cache in Redis, under the gateway's own keys: answers one process
    got are hits in every other. Entries expire after ``ttl_s``; the project's SQLite cache
    behind it keeps them all."""

    def __init__(self, client: Any, prefix: str = "workbench:", ttl_s: float =
                 DEFAULT_CACHE_TTL_S):
        self.client = client
        self.prefix = prefix + "cache:"
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self._errors = _redis_module().RedisError
        self._warned = 0.0

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned > 60:  # once a minute at most: the log is not flooded
            self._warned = now
            print(f"workbench: the shared response cache (Redis) failed ({type(exc).__name__}: "
                  f"{exc}); answering without it.", file=sys.stderr)

    def get(self, key: str) -> str | None:
        try:
            body = self.client.get(self.prefix + key)
        except self._errors as exc:
            self._warn(exc)
            return None
        return body.decode() if body is not None else None

    def put(self, key: str, body: str) -> None:
        try:
            self.client.set(self.prefix + key, body, px=self.ttl_ms)
        except self._errors as exc:
            self._warn(exc)


class SharedState:
    """What a service process shares with the others: the counters and the response cache."""

    def __init__(self, url: str, prefix: str, client: Any, cache_ttl_s: float):
        self.url = url
        self.prefix = prefix
        self.client = client
        self.counters = RedisCounters(client, prefix)
        self.cache = RedisResponseCache(client, prefix, cache_ttl_s)

    def __repr__(self) -> str:
        return f"SharedState({_shown(self.url)!r}, prefix={self.prefix!r})"


_shared: dict[tuple[str, str], SharedState] = {}
_shared_lock = threading.Lock()


def redis_url_from_env() -> str | None:
    import os

    return os.environ.get(ENV_REDIS_URL, "").strip() or None


def default_prefix(project: Project) -> str:
    import os

    chosen = os.environ.get(ENV_REDIS_PREFIX, "").strip()
    return chosen or f"workbench:{project.name}:"


def shared_state(project: Project, url: str | None = None) -> SharedState | None:
    """The shared state for ``project`` in Redis at ``url`` (default ``WORKBENCH_REDIS_URL``),
    connected and checked; None when no URL is given. The response cache of the project's
    gateway calls goes through Redis from then on in this process."""
    import os

    url = url or redis_url_from_env()
    if not url:
        return None
    prefix = default_prefix(project)
    with _shared_lock:
        state = _shared.get((url, prefix))
        if state is None:
            ttl = float(os.environ.get(ENV_CACHE_TTL, "") or DEFAULT_CACHE_TTL_S)
            state = _shared[(url, prefix)] = SharedState(url, prefix, connect(url), ttl)
    from workbench.llm.gateway import share_cache

    share_cache(project, state.cache)
    return state
