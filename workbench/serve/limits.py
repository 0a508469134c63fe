"""The limits a service applies per caller, all kept through one small storage contract.

``Counters`` is that contract: token buckets (``take``) and expiring totals (``add``, ``get``).
``MemoryCounters`` keeps them in this process; ``workbench.serve.shared_state.RedisCounters``
shares them between workers. ``ServiceLimits`` builds every limit on it:

- **requests per minute**: a token bucket per key: the key's own ``rate_limit_per_minute`` (its
  burst is the deployment's, at most that rate), else the deployment's rate and burst;
- **tokens per minute**: the model tokens a key used (prompt and completion tokens of every
  model call an answer made; cache hits use none) in a sliding minute, estimated from this
  minute's count and the previous one's, weighted by how much of it is still inside the window.
  A request is admitted while that estimate is under the key's limit, and what it actually used
  is debited once it is answered: the usage is not known before the model answers, so one
  request may take the key past its limit, and the key then waits (429 with Retry-After) until
  the window slides back under it. A request is never cut short midway;
- **monthly budgets** in US dollars: a key's ``monthly_budget_usd`` and the whole service's, the
  card's ``constraints.monthly_budget_usd`` (re-read when the card changes). A budget is spent
  when this calendar month's spend (UTC) reaches it: later requests get **402 Payment
  Required** until the month ends. 402, not 429: nothing changes by retrying within minutes,
  and HTTP clients (the OpenAI SDK among them) retry a 429 on their own. Requests already in
  progress when it is reached still finish, so a budget is overrun by at most what they cost.
  A budget of $0 on the card refuses only once something has cost money (a free local model
  keeps answering).

Spend survives a restart: every answered request adds its cost, tokens and one request to the
project's ``spend`` table (per month and client, through the store's background writer), and a
starting service seeds its counters from this month's rows. A table rather than a sum over the
``serve.request`` traces: traces may be deleted by a retention rule or by hand, and summing a
month of them would make every start slower as traffic grows.
"""

from __future__ import annotations

import calendar
import logging
import math
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from workbench.errors import WorkbenchError
from workbench.serve.deployment import NotDeployed

log = logging.getLogger("workbench.serve")

if TYPE_CHECKING:
    from workbench.project import Project
    from workbench.serve.deployment import DeploymentSpec
    from workbench.serve.keys import Caller


class Counters(Protocol):
    def take(self, bucket: str, *, rate_per_s: float, burst: float,
             cost: float = 1.0) -> float:
        """Token bucket: 0.0 when `cost` tokens were taken now, else the seconds until
        they could be (nothing taken)."""

    def add(self, name: str, amount: float, *, ttl_s: float) -> float:
        """Add to a named total (created at 0, expiring ttl_s after creation); the new
        total."""

    def get(self, name: str) -> float:
        """A named total (0 when absent or expired)."""


class MemoryCounters:
    """``Counters`` in this process's memory, safe to use from many threads. Buckets start
    full; past ``MAX_BUCKETS`` the longest-idle half is forgotten (a forgotten bucket is full
    again, which only ever errs towards letting a request through); expired totals are swept
    as new ones are made."""

    MAX_BUCKETS = 10_000

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # bucket -> (tokens, when)
        self._totals: dict[str, tuple[float, float]] = {}  # name -> (total, expires at)
        self._sweep_at = 1024  # sweep expired totals when there are this many
        self._lock = threading.Lock()

    def take(self, bucket: str, *, rate_per_s: float, burst: float,
             cost: float = 1.0) -> float:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(bucket, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate_per_s)
            taken = tokens >= cost
            self._buckets[bucket] = (tokens - cost if taken else tokens, now)
            if len(self._buckets) > self.MAX_BUCKETS:
                by_age = sorted(self._buckets, key=lambda b: self._buckets[b][1])
                for old in by_age[:len(by_age) // 2]:
                    del self._buckets[old]
        if taken:
            return 0.0
        if cost > burst or rate_per_s <= 0:
            return math.inf  # never: the bucket cannot hold that many
        return (cost - tokens) / rate_per_s

    def add(self, name: str, amount: float, *, ttl_s: float) -> float:
        now = time.monotonic()
        with self._lock:
            total, expires = self._totals.get(name, (0.0, 0.0))
            if expires <= now:
                total, expires = 0.0, now + ttl_s
            total += amount
            self._totals[name] = (total, expires)
            if len(self._totals) >= self._sweep_at:
                self._totals = {k: v for k, v in self._totals.items() if v[1] > now}
                self._sweep_at = max(1024, 2 * len(self._totals))
        return total

    def get(self, name: str) -> float:
        with self._lock:
            total, expires = self._totals.get(name, (0.0, 0.0))
        return total if expires > time.monotonic() else 0.0


# -- what the limits say ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Refusal:
    """Why a request is not answered: the status, what the caller is told, and the headers."""

    status: int
    message: str
    fix: str
    reason: str  # what the trace records
    headers: dict[str, str] = field(default_factory=dict)


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def month_of(when: float) -> str:
    """The calendar month (UTC) a budget counts ``when`` in: ``YYYY-MM``."""
    return time.strftime("%Y-%m", time.gmtime(when))


def month_end(when: float) -> float:
    """When the month of ``when`` ends (UTC), as a Unix time: when budgets reset."""
    t = time.gmtime(when)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))


class _Months:
    """``month_of`` and ``month_end`` for a time, computed once a month (they are asked on
    every request)."""

    def __init__(self) -> None:
        self._current = ("", 0.0, 0.0)  # (month, start, end): one tuple, replaced whole

    def __call__(self, now: float) -> tuple[str, float]:
        month, start, end = self._current
        if not start <= now < end:
            t = time.gmtime(now)
            start = float(calendar.timegm((t.tm_year, t.tm_mon, 1, 0, 0, 0)))
            month, end = month_of(now), month_end(now)
            self._current = (month, start, end)
        return month, end


def _utc(when: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(when))


def _usd(value: float) -> str:
    """Dollars and cents, with more digits only when cents would misstate it ($0.025)."""
    cents = f"{value:,.2f}"
    if abs(float(cents.replace(",", "")) - value) < 1e-9:
        return "$" + cents
    return "$" + f"{value:,.6f}".rstrip("0")


_RECORD_SPEND = ("INSERT INTO spend VALUES (?, ?, ?, ?, 1) ON CONFLICT (month, client) DO UPDATE "
                 "SET usd = usd + excluded.usd, tokens = tokens + excluded.tokens, "
                 "requests = requests + 1")
TOKEN_WINDOW_S = 60.0
CARD_CHECK_S = 1.0  # how often the card's budget is looked at (a stat; read when it changed)


class _CardBudget:
    """The card's ``constraints.monthly_budget_usd``, read again when ``workbench.toml``
    changes (looked at at most once a second): an operator who raises it unblocks a running
    service. A card that cannot be read keeps the last budget read, and says so once."""

    def __init__(self, project: Project):
        self.project = project
        self._checked = time.monotonic()
        self._stamp = self._file_stamp()
        self.usd = self._read(on_start=True)

    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.project.card_path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def _read(self, *, on_start: bool = False) -> float | None:
        try:
            value = (self.project.card().get("constraints") or {}).get("monthly_budget_usd")
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, int | float) or \
                    not math.isfinite(value) or value < 0:
                raise ValueError(f"monthly_budget_usd = {value!r} is not an amount in USD")
            return float(value)
        except Exception as exc:
            if on_start:
                raise NotDeployed(f"The card's budget cannot be read: {exc}.",
                                  "Fix [constraints] monthly_budget_usd in workbench.toml (a "
                                  "number of US dollars, or remove it for no budget).") from exc
            print(f"workbench: the card's budget cannot be read ({exc}); the service keeps "
                  f"the last one read.", file=sys.stderr)
            return self.usd

    def current(self) -> float | None:
        now = time.monotonic()
        if now - self._checked >= CARD_CHECK_S:
            self._checked = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                self.usd = self._read()
        return self.usd


class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, refilled at ``per_minute``; the
    buckets live in ``counters`` (``workbench.serve.limits``: this process's memory unless
    given, Redis when the service runs several workers)."""

    def __init__(self, per_minute: int, burst: int, *, counters: Counters | None = None,
                 prefix: str = "rate:"):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.counters = counters if counters is not None else MemoryCounters()
        self.prefix = prefix

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        return self.counters.take(self.prefix + client, rate_per_s=self.rate, burst=self.burst)


class ServiceLimits:
    """Every per-caller limit of one service, kept in ``counters``: ``admit`` before a
    request, ``debit`` after an answer, ``describe`` for ``GET /v1/info``."""

    def __init__(self, project: Project, spec: DeploymentSpec, counters: Counters):
        self.project = project
        self.spec = spec
        self.counters = counters
        self.requests = RateLimiter(spec.rate_limit_per_minute, spec.burst, counters=counters)
        self.card_budget = _CardBudget(project)
        self._months = _Months()
        self._seed_spend(time.time())

    # -- spend: persisted per month and client, counted in ``counters`` -------------------------
    @staticmethod
    def _spend_name(month: str, client: str | None = None) -> str:
        return f"spend:{month}" + (f":{client}" if client else "")

    def _seed_spend(self, now: float) -> None:
        """Counters start with this month's spend from the ``spend`` table. Only the first
        service to start on a set of counters seeds them (shared counters already hold what the
        others added since)."""
        month = month_of(now)
        ttl = month_end(now) - now + 86_400
        self.project.store.flush()  # this process's own writes first (a restart in a notebook)
        rows = self.project.store.query("SELECT client, usd FROM spend WHERE month = ?",
                                        (month,))
        if self.counters.add(f"spend-seeded:{month}", 1.0, ttl_s=ttl) != 1.0:
            return
        for row in rows:
            if row["usd"]:
                self.counters.add(self._spend_name(month, row["client"]), row["usd"], ttl_s=ttl)
        total = sum(row["usd"] for row in rows)
        if total:
            self.counters.add(self._spend_name(month), total, ttl_s=ttl)

    def spent(self, client: str | None = None, *, now: float | None = None) -> float:
        """This month's spend of ``client``, or of the whole service."""
        return self.counters.get(self._spend_name(self._months(now or time.time())[0], client))

    def debit(self, client: str, *, tokens: int, usd: float) -> None:
        """Count what an answer used: its model tokens in the key's minute, its cost in the
        key's and the service's month, and one request, tokens and cost in the ``spend``
        table."""
        now = time.time()
        month, end = self._months(now)
        # The project's record first: the answer was made and paid for, whatever happens next.
        self.project.store.defer(_RECORD_SPEND, (month, client, float(usd), int(tokens)))
        try:
            if tokens:
                self.counters.add(f"tpm:{client}:{int(now // TOKEN_WINDOW_S)}", float(tokens),
                                  ttl_s=3 * TOKEN_WINDOW_S)
            if usd > 0:
                ttl = end - now + 86_400
                self.counters.add(self._spend_name(month, client), usd, ttl_s=ttl)
                self.counters.add(self._spend_name(month), usd, ttl_s=ttl)
        except WorkbenchError as exc:  # shared counters (Redis) down after the model answered
            # The caller still gets the answer it paid for; the next request's admission
            # check answers 503 while the counters cannot be read.
            log.warning("workbench: could not count what an answer used (%s)", exc.one_line())

    def debit_result(self, client: str, result: Any) -> None:
        """``debit`` what a ``workbench.prompts.run.ItemResult`` used (a cache hit uses no
        tokens and costs nothing)."""
        calls = [c for c in getattr(result, "completions", ()) if not c.cached]
        self.debit(client, tokens=sum(c.usage.total_tokens for c in calls),
                   usd=sum(c.cost_usd for c in calls))

    # -- tokens a minute: a sliding window over two fixed minutes -------------------------------
    def _token_window(self, client: str, now: float) -> tuple[float, float, float]:
        """(the estimate of tokens used in the last minute, this minute's count, the share of
        this minute gone)."""
        minute = int(now // TOKEN_WINDOW_S)
        gone = now / TOKEN_WINDOW_S - minute
        current = self.counters.get(f"tpm:{client}:{minute}")
        previous = self.counters.get(f"tpm:{client}:{minute - 1}")
        return previous * (1 - gone) + current, current, gone

    @staticmethod
    def _token_wait(limit: float, current: float, previous_weighted: float,
                    gone: float) -> float:
        """Seconds until the sliding estimate falls under ``limit``."""
        if current < limit and previous_weighted > 0:
            previous = previous_weighted / (1 - gone)
            # previous * (1 - g) + current < limit  <=>  g > 1 - (limit - current) / previous
            return max(0.0, (1 - (limit - current) / previous) - gone) * TOKEN_WINDOW_S
        # this minute alone is over: wait for the next minute, then for it to slide out enough
        return ((1 - gone) + max(0.0, 1 - limit / current)) * TOKEN_WINDOW_S

    # -- admitting a request ---------------------------------------------------------------------
    def admit(self, caller: Caller, *, answering: bool) -> Refusal | None:
        """None when ``caller`` may go ahead (a request token is then taken), else why not.
        Budgets and tokens are checked only on routes that call a model, and before the request
        token is taken, so a refused caller keeps hearing the same reason."""
        now = time.time()
        if answering:
            refusal = self._over_budget(caller, now) or self._over_tokens(caller, now)
            if refusal is not None:
                return refusal
        own = caller.rate_limit_per_minute
        if own:
            burst = min(self.spec.burst, own)
            wait = self.counters.take(f"rpm:{caller.client}", rate_per_s=own / 60.0,
                                      burst=burst)
            rate = own
        else:
            wait = self.requests.take(caller.client)
            rate, burst = self.spec.rate_limit_per_minute, self.spec.burst
        if wait:
            return Refusal(429, f"Rate limit of {rate} requests a minute (burst {burst}) "
                                "reached for this key.",
                           f"Retry after {wait:.1f} s, or ask for a higher limit.",
                           "rate limited", _retry_after(wait))
        return None

    def _over_budget(self, caller: Caller, now: float) -> Refusal | None:
        budget = caller.monthly_budget_usd
        if budget is not None:
            spent = self.spent(caller.client, now=now)
            if spent >= budget:
                resets = _utc(self._months(now)[1])
                return Refusal(
                    402, f"The monthly budget of key '{caller.name}' ({_usd(budget)}) is "
                         f"spent: {_usd(spent)} this month. It resets on {resets}.",
                    f"Wait until {resets}, or ask the service's operator for a larger budget.",
                    "key budget spent")
        budget = self.card_budget.current()
        if budget is not None:
            spent = self.spent(now=now)
            if spent > 0 and spent >= budget:
                resets = _utc(self._months(now)[1])
                return Refusal(
                    402, f"The service's monthly budget is spent. It resets on {resets}.",
                    f"Wait until {resets}; the service's operator can raise the budget "
                    "(constraints.monthly_budget_usd in the project card).",
                    "service budget spent")
        return None

    def _over_tokens(self, caller: Caller, now: float) -> Refusal | None:
        limit = caller.tokens_per_minute
        if not limit:
            return None
        used, current, gone = self._token_window(caller.client, now)
        if used < limit:
            return None
        wait = self._token_wait(limit, current, used - current, gone)
        return Refusal(429, f"Token limit of {limit:,} tokens a minute reached for this key "
                            f"(about {used:,.0f} used in the last minute).",
                       f"Retry after {wait:.1f} s, or ask for a higher limit.",
                       "token limit", _retry_after(wait))

    # -- what a caller may read about itself --------------------------------------------------
    def describe(self, caller: Caller) -> dict[str, Any]:
        """The caller's own key: its name, limits and what is left of them (never another
        key's)."""
        now = time.time()
        own = caller.rate_limit_per_minute
        described: dict[str, Any] = {
            "name": caller.name, "kind": caller.kind,
            "rate_limit_per_minute": own or self.spec.rate_limit_per_minute,
            "burst": min(self.spec.burst, own) if own else self.spec.burst,
            "tokens_per_minute": caller.tokens_per_minute,
            "monthly_budget_usd": caller.monthly_budget_usd,
            "spent_this_month_usd": round(self.spent(caller.client, now=now), 6),
            "budget_resets_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                              time.gmtime(month_end(now)))}
        if caller.tokens_per_minute:
            described["tokens_used_last_minute"] = round(
                self._token_window(caller.client, now)[0])
        if caller.monthly_budget_usd is not None:
            described["budget_left_usd"] = round(
                max(0.0, caller.monthly_budget_usd - described["spent_this_month_usd"]), 6)
        return described
