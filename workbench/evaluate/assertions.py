"""Per-item checks: the assertions a test suite (a promptfoo config) attaches to each test.

A workbench scorer applies to every item of a run alike; a promptfoo test carries its own
assertions ("this answer contains 'refund'", "this one matches /^\\d+ days$/"). The ``assertions``
scorer holds them by item id (``checks``) plus the ones every item gets (``every``), so a run of an
imported suite is scored test by test, and its spec (plain JSON) rebuilds it from the run's log.

Check types, with promptfoo's meaning (each also negated with a ``not-`` prefix): ``equals``
(the whole output; a JSON value is compared as data), ``contains``, ``icontains``,
``contains-any``, ``contains-all``, ``icontains-any``, ``icontains-all``, ``starts-with``,
``regex`` (searched anywhere) and ``is-json`` (the whole output is JSON; with a JSON Schema as
value, it must also validate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from workbench.evaluate.scorers import Score, _show, register_scorer

CHECK_TYPES = ("equals", "contains", "icontains", "contains-any", "contains-all",
               "icontains-any", "icontains-all", "starts-with", "regex", "is-json")


def supported(kind: str) -> bool:
    """Whether a check type (``not-`` prefixed or not) can be scored here."""
    return isinstance(kind, str) and kind.removeprefix("not-") in CHECK_TYPES


def _many(value: Any) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def _is_json(output: str, schema: Any) -> tuple[bool, str]:
    try:
        data = json.loads(output)
    except ValueError as exc:
        return False, f"is not JSON ({exc.msg} at character {exc.pos})"
    if isinstance(schema, Mapping) and schema:
        import jsonschema

        try:
            jsonschema.validate(data, dict(schema))
        except jsonschema.ValidationError as exc:
            return False, f"is JSON but does not fit the schema ({exc.message})"
    return True, "is JSON"


def check(kind: str, value: Any, output: str) -> tuple[bool, str]:
    """Whether ``output`` passes one check, and why it does not (a phrase, "" when it does)."""
    negate = kind.startswith("not-")
    base = kind.removeprefix("not-")
    why = ""
    if base == "equals":
        if isinstance(value, (dict, list)):
            try:
                ok = json.loads(output) == value
            except ValueError:
                ok = False
        else:
            ok = output == str(value)
    elif base in ("contains", "icontains"):
        fold = base == "icontains"
        ok = (str(value).casefold() in output.casefold()) if fold else str(value) in output
    elif base in ("contains-any", "contains-all", "icontains-any", "icontains-all"):
        fold = base.startswith("i")
        wanted = _many(value)
        hay = output.casefold() if fold else output
        found = [w for w in wanted if (w.casefold() if fold else w) in hay]
        ok = bool(found) if base.endswith("any") else len(found) == len(wanted)
    elif base == "starts-with":
        ok = output.startswith(str(value))
    elif base == "regex":
        ok = re.search(str(value), output) is not None
    elif base == "is-json":
        ok, why = _is_json(output, value)
    else:
        raise ValueError(f"unknown check type {kind!r}")
    if ok != negate:
        return True, ""
    shown = "" if value is None or (base == "is-json" and not isinstance(value, Mapping)) \
        else " " + (f"/{value}/" if base == "regex" else _show(value))
    detail = f" (it {why})" if why and not negate else ""
    return False, f"fails {kind}{shown}{detail}"


@register_scorer
def assertions(checks: dict[str, list[dict[str, Any]]] | None = None,
               every: list[dict[str, Any]] | None = None) -> Callable[..., Score]:
    """Each item's own checks (``checks[item_id]``, a list of ``{"type", "value"}``) and the
    checks of ``every`` item; 1 when all pass, else the share that passed."""
    by_item = {str(k): list(v) for k, v in (checks or {}).items()}
    common = list(every or [])
    for entry in [c for cs in by_item.values() for c in cs] + common:
        if not supported(entry.get("type")):
            raise ValueError(f"check type {entry.get('type')!r} is not supported; the types "
                             f"are {', '.join(CHECK_TYPES)} (and not-...)")
        if entry["type"].removeprefix("not-") == "regex":
            re.compile(str(entry.get("value")))  # a bad pattern fails when the scorer is made

    def score(output, expected, parsed, parse_ok, item=None) -> Score:
        wanted: Sequence[dict[str, Any]] = common + by_item.get(
            str((item or {}).get("id")), [])
        if not wanted:
            return Score(None, None, "The item has no checks")
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        results = [check(c["type"], c.get("value"), output) for c in wanted]
        passed = sum(ok for ok, _ in results)
        failed = [why for ok, why in results if not ok]
        if not failed:
            return Score(1.0, True, f"Output {_show(output)} passes all {len(results)} "
                                    f"check{'s' if len(results) != 1 else ''}")
        return Score(passed / len(results), False,
                     f"Output {_show(output)} " + "; ".join(failed) +
                     f" ({passed} of {len(results)} checks passed)")

    return score


__all__ = ["CHECK_TYPES", "assertions", "check", "supported"]
