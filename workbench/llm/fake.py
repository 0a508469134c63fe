"""Fake models for tests, benchmarks and teaching: no weights, no network, fully scripted.

A fake model id is ``fake/<behaviour>[:option=value,...]``:

- ``fake/echo`` replies with the last user message;
- ``fake/<name>`` for a model registered with ``register_fake(name, replies)`` — replies is a
  list (cycled), a dict (first key found in the last user message wins), or a function of the
  messages;
- options: ``latency=0.05`` (seconds, or ``50ms``), ``fail=timeout|429|500``, ``fail_rate=0.3``
  (fraction of calls that fail, seeded), ``fail_first=2`` (the first N calls fail), ``seed=0``.

e.g. ``fake/echo:latency=50ms,fail=429,fail_rate=0.1`` — ten percent rate limits, 50 ms each call.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import UnknownModel

Replies = list[str] | dict[str, str] | Callable[[list[dict[str, str]]], str]

_registry: dict[str, Replies] = {}
_prices: dict[str, tuple[float, float]] = {}
_lock = threading.Lock()
_call_counts: dict[str, int] = {}
_rngs: dict[str, random.Random] = {}

FAILURES = ("timeout", "429", "500")


def register_fake(name: str, replies: Replies, *, input_cost_per_token: float = 0.0,
                  output_cost_per_token: float = 0.0) -> str:
    """Register scripted replies under ``fake/<name>``; returns the model id.

    A price per token (USD, as in litellm's price map) makes the fake model bill like a hosted
    one: costs, budgets and cost confirmations can then be practised without spending money."""
    name = name.removeprefix("fake/")
    if name == "echo" or ":" in name:
        raise ValueError(f"'{name}' cannot be used as a fake model name")
    if input_cost_per_token < 0 or output_cost_per_token < 0:
        raise ValueError("prices per token cannot be negative")
    _registry[name] = replies
    if input_cost_per_token or output_cost_per_token:
        _prices[name] = (float(input_cost_per_token), float(output_cost_per_token))
    else:
        _prices.pop(name, None)
    return f"fake/{name}"


def unregister_fake(name: str) -> None:
    """Forget ``fake/<name>`` and its price (nothing happens if it was never registered)."""
    _registry.pop(name.removeprefix("fake/"), None)
    _prices.pop(name.removeprefix("fake/"), None)


Snapshot = dict[str, tuple[Replies, tuple[float, float] | None]]


def snapshot() -> Snapshot:
    """The registered fake models, each with its replies and price, to hand to ``restore``
    later: code that registers fakes for a while (a test, a demo) can leave the registry as it
    found it, including a fake it replaced under the same name."""
    return {name: (replies, _prices.get(name)) for name, replies in _registry.items()}


def restore(saved: Snapshot, names: Iterable[str] | None = None) -> None:
    """Put the registry back as ``snapshot`` found it: fakes registered since are removed, and
    those replaced or removed since come back with their price. ``names`` (with or without
    ``fake/``) limits this to those fake models."""
    chosen = set(_registry) | set(saved) if names is None else {
        n.removeprefix("fake/") for n in names}
    for name in chosen:
        if name not in saved:
            unregister_fake(name)
            continue
        replies, cost = saved[name]
        _registry[name] = replies
        if cost is None:
            _prices.pop(name, None)
        else:
            _prices[name] = cost


def price(model: str) -> tuple[float, float]:
    """USD per prompt token and per completion token of a fake model ($0 unless registered)."""
    behaviour = model.removeprefix("fake/").partition(":")[0]
    return _prices.get(behaviour, (0.0, 0.0))


def registered_fakes() -> list[str]:
    return ["fake/echo", *(f"fake/{n}" for n in sorted(_registry))]


@dataclass(frozen=True)
class FakeSpec:
    behaviour: str
    latency: float = 0.0
    fail: str | None = None
    fail_rate: float = 1.0
    fail_first: int = 0
    seed: int = 0
    options: dict[str, str] = field(default_factory=dict)


def _seconds(value: str) -> float:
    value = value.strip()
    if value.endswith("ms"):
        return float(value[:-2]) / 1000
    return float(value.removesuffix("s"))


def parse(model: str) -> FakeSpec:
    """Parse the part after ``fake/``."""
    behaviour, _, opts = model.removeprefix("fake/").partition(":")
    options: dict[str, str] = {}
    for part in filter(None, opts.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise UnknownModel(f"Fake model option '{part}' in 'fake/{model}' has no value.",
                               "Write options as key=value, e.g. fake/echo:latency=50ms.")
        options[key.strip()] = value.strip()
    if behaviour != "echo" and behaviour not in _registry:
        raise UnknownModel(f"There is no fake model 'fake/{behaviour}'.",
                           "Use fake/echo, or register_fake(name, replies) first.")
    fail = options.pop("fail", None)
    try:
        spec = FakeSpec(
            behaviour=behaviour,
            latency=_seconds(options.pop("latency", "0")),
            fail=fail,
            fail_rate=float(options.pop("fail_rate", "1")),
            fail_first=int(options.pop("fail_first", "0")),
            seed=int(options.pop("seed", "0")),
        )
    except ValueError as exc:
        raise UnknownModel(f"Bad option value in 'fake/{model}': {exc}.",
                           "latency takes seconds or ms, fail_rate a fraction, fail_first and "
                           "seed whole numbers.") from exc
    if options:
        raise UnknownModel(f"Unknown fake model options {sorted(options)} in 'fake/{model}'.",
                           "Known options: latency, fail, fail_rate, fail_first, seed.")
    if spec.fail is not None and spec.fail not in FAILURES:
        raise UnknownModel(f"fail={spec.fail} is not a failure fake models can simulate.",
                           f"Use one of {', '.join(FAILURES)}.")
    return spec


def _last_user(messages: list[dict[str, Any]]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            content = msg.get("content")
            return content if isinstance(content, str) else json.dumps(content)
    return ""


def reply(spec: FakeSpec, messages: list[dict[str, Any]], call_number: int) -> str:
    if spec.behaviour == "echo":
        return _last_user(messages)
    script = _registry[spec.behaviour]
    if callable(script):
        return script(messages)
    if isinstance(script, dict):
        text = _last_user(messages)
        for key, value in script.items():
            if key in text:
                return value
        return script.get("*", "")
    return script[call_number % len(script)] if script else ""


def next_call(model: str, spec: FakeSpec) -> tuple[int, bool]:
    """Count this call and decide whether it should fail. Returns (call number, fails)."""
    with _lock:
        n = _call_counts.get(model, 0)
        _call_counts[model] = n + 1
        rng = _rngs.setdefault(model, random.Random(spec.seed))
        roll = rng.random()
    if spec.fail is None:
        return n, False
    if spec.fail_first:
        return n, n < spec.fail_first
    return n, roll < spec.fail_rate


def reset_counters() -> None:
    with _lock:
        _call_counts.clear()
        _rngs.clear()


def count_tokens(text: str) -> int:
    """Fake models count whitespace-separated words as tokens: simple and predictable."""
    return len(text.split())
