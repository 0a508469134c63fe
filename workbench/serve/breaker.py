"""A circuit breaker per model: a model that keeps failing is skipped for a while, so the
fallbacks answer at once instead of after its timeouts and retries, and it gets one trial
request when the while is over.

States, per model:

- **closed**: requests go to it. ``failures`` failures in a row, or a share of at least
  ``failure_rate`` among its last ``window`` requests, **open** it.
- **open**: it is skipped (the next model answers) until ``cooloff_s`` seconds have passed.
- **half-open**: the first request after the cool-off tries it (only that one: the others
  still skip it). Success closes the circuit; failure opens it for another cool-off.

A failure is a request the model did not answer (timeout, rate limit, server error, refused
key): not a template error (the model was never called) and not a request whose time had run
out before this model's turn (a slow first model is not the second one's fault). The state is
per process; with several workers each keeps its own (each learns within ``failures``
requests).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from workbench.prompts.run import ItemResult

State = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 5  # failures in a row that open the circuit; 0 switches the breaker off
    failure_rate: float = 0.5  # ... or this share of failures among the last `window` requests
    window: int = 20
    cooloff_s: float = 30.0

    @classmethod
    def of(cls, spec: Any) -> BreakerSettings:
        """The settings of a deployment spec (defaults for fields an older one lacks)."""
        default = cls()
        return cls(*(getattr(spec, f"breaker_{name}", getattr(default, name))
                     for name in ("failures", "failure_rate", "window", "cooloff_s")))

    @property
    def enabled(self) -> bool:
        return self.failures > 0


@dataclass
class _Circuit:
    settings: BreakerSettings
    state: State = "closed"
    in_a_row: int = 0
    recent: deque = field(default_factory=deque)  # True for a failure, newest last
    reopens_at: float = 0.0  # monotonic
    trial_since: float | None = None  # monotonic start of the half-open trial in flight
    opened: int = 0  # how many times it has opened

    def __post_init__(self) -> None:
        self.recent = deque(maxlen=max(1, self.settings.window))


class Breakers:
    """The circuits of a deployment's models. Thread-safe: requests are answered on a pool of
    threads. ``clock`` is ``time.monotonic`` (tests may pass another)."""

    def __init__(self, models: Iterable[str], settings: BreakerSettings | None = None, *,
                 clock: Callable[[], float] = time.monotonic):
        self.settings = settings or BreakerSettings()
        self.clock = clock
        self._lock = threading.Lock()
        self._circuits = {m: _Circuit(self.settings) for m in dict.fromkeys(models)}

    @classmethod
    def for_spec(cls, spec: Any) -> Breakers:
        return cls([spec.model, *spec.fallbacks], BreakerSettings.of(spec))

    def _circuit(self, model: str) -> _Circuit:
        circuit = self._circuits.get(model)
        if circuit is None:
            circuit = self._circuits[model] = _Circuit(self.settings)
        return circuit

    def allow(self, model: str) -> bool:
        """Whether a request may call ``model`` now. After the cool-off the first caller gets
        the half-open trial and must ``record`` how it went."""
        if not self.settings.enabled:
            return True
        now = self.clock()
        with self._lock:
            c = self._circuit(model)
            if c.state == "closed":
                return True
            if c.state == "open" and now < c.reopens_at:
                return False
            # A trial that never reported back (its request failed on a bug) is given up
            # after a cool-off, so one lost request cannot keep the model skipped for good.
            if c.state == "half_open" and c.trial_since is not None and \
                    now - c.trial_since < self.settings.cooloff_s:
                return False
            c.state, c.trial_since = "half_open", now
            return True

    def record(self, model: str, result: ItemResult | None, *, counted: bool = True) -> None:
        """Count how a call to ``model`` went. ``counted=False`` (no time was left when its turn
        came) and template errors (``result.messages`` empty: no call was made) count for
        nothing, except that a half-open trial that did not happen is released."""
        if not self.settings.enabled:
            return
        ok = result is not None and result.completion is not None
        attempted = counted and result is not None and bool(result.messages)
        with self._lock:
            c = self._circuit(model)
            if not ok and not attempted:
                if c.state == "half_open":
                    c.state, c.reopens_at, c.trial_since = "open", self.clock(), None
                return
            if ok:
                self._close(c)
                return
            c.in_a_row += 1
            c.recent.append(True)
            if c.state == "half_open":
                self._open(c)
                return
            failed = sum(c.recent)
            s = self.settings
            if c.in_a_row >= s.failures or (len(c.recent) >= s.window
                                             and failed / len(c.recent) >= s.failure_rate):
                self._open(c)

    def _close(self, c: _Circuit) -> None:
        if c.state != "closed":
            c.recent.clear()
        c.state, c.in_a_row, c.trial_since = "closed", 0, None
        c.recent.append(False)

    def _open(self, c: _Circuit) -> None:
        c.state, c.trial_since = "open", None
        c.reopens_at = self.clock() + self.settings.cooloff_s
        c.opened += 1

    def retry_after(self, models: Iterable[str]) -> float:
        """Seconds until the first of ``models`` may be tried again (0 when one may now)."""
        now = self.clock()
        with self._lock:
            waits = [max(0.0, self._circuit(m).reopens_at - now) for m in models]
        return min(waits, default=0.0)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Each model's circuit, as ``GET /v1/info`` shows it: ``state``, failures in a row and
        in the window, how often it opened, and when it is tried again (``reopens_at``, UTC
        ISO 8601, while open)."""
        import datetime as dt

        now, wall = self.clock(), time.time()
        out = {}
        with self._lock:
            for model, c in self._circuits.items():
                state = c.state
                if state == "open" and now >= c.reopens_at:
                    state = "half_open"  # the next request tries it
                entry: dict[str, Any] = {
                    "state": state, "failures_in_a_row": c.in_a_row,
                    "failures_in_window": sum(c.recent), "calls_in_window": len(c.recent),
                    "opened": c.opened, "reopens_at": None, "reopens_in_s": None}
                if c.state == "open" and now < c.reopens_at:
                    at = wall + (c.reopens_at - now)
                    entry["reopens_at"] = dt.datetime.fromtimestamp(
                        at, dt.UTC).isoformat(timespec="milliseconds")
                    entry["reopens_in_s"] = round(c.reopens_at - now, 3)
                out[model] = entry
        return out


def resting(wait: float) -> tuple[str, str]:
    """The message and fix of a request no model could take: every one is resting."""
    import math

    seconds = max(1, math.ceil(wait))
    message = (f"Every model of this service failed repeatedly and is resting; it is tried "
               f"again in {seconds} s.")
    fix = (f"Retry after {seconds} s; if it keeps happening, give the service's operator this "
           "request_id.")
    return message, fix
