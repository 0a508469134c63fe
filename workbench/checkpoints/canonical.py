"""Checkpoints told apart from what differs between two builds of the same work.

Two builds of the recipe with the same model hold the same work: the same dataset rows, the
same prompts, the same model outputs and scores. They differ in what is made fresh or measured
each time: ids (runs, spans, traces, requests, feedback, the keys of simulated users),
timestamps, latencies and throughputs, and whatever is derived from those (content hashes,
the service limits sized from measured speed). ``canonical`` maps a checkpoint folder to a
value where those are replaced — ids by their order of first appearance, so two rows that
point at the same run still do — and the rest is kept, so a real change (an output, a score,
a row more or less, a changed file) shows as a difference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from workbench.checkpoints import snapshot

# Made fresh on every build: run ids (20261205T010433_triage_52b97b), random hex ids (spans,
# traces, requests, feedback, keys' ids), content hashes of rows that hold any of those.
_ID = re.compile(r"\d{8}T\d{6}_[\w.-]+?_[0-9a-f]{6}\b|\b[0-9a-f]{64}\b|\b[0-9a-f]{32}\b"
                 r"|\b[0-9a-f]{16}\b")
# Measured, not made: keys whose values are timings (any nesting), and text that quotes them.
_MEASURED_KEYS = frozenset({
    "wall_s", "items_per_s", "train_seconds", "started", "seconds", "limits_basis",
    "max_waiting", "content_hash", "duration_s", "tokens_per_s", "$date", "$datetime",
})
_MEASURED_TEXT = (
    re.compile(r"(latency\S*\s*)[+−-]?\d[\d.,]*(\s*(?:ms|s)\b)"),
    re.compile(r"\d[\d.,]*( (?:ms|s) a call alone|\s*calls/s|\s*tokens/s)"),
)
# Whether a latency target is met depends on how busy the machine was: a gate's latency
# reason ("p95_latency misses its target: ... fail") and an alert on latency are measured too.
_LATENCY_REASON = re.compile(r"\s*\w*latency misses its target:.*?: (?:pass|fail)")


class _Ids:
    """Ids in order of first appearance: the same id maps to the same placeholder."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}

    def sub(self, text: str) -> str:
        def one(match: re.Match) -> str:
            return self.seen.setdefault(match.group(0), f"<id{len(self.seen) + 1}>")

        return _ID.sub(one, text)


def _measured_key(name: str) -> bool:
    return (name in _MEASURED_KEYS or "latency" in name or snapshot.is_time_column(name)
            or name == "created")


def _text(value: str, ids: _Ids) -> str:
    value = _LATENCY_REASON.sub("", value)
    for pattern in _MEASURED_TEXT:  # the numbers inside each match: measured, not made
        value = pattern.sub(lambda m: re.sub(r"[+−-]?\d[\d.,]*", "<t>", m.group(0)), value)
    return ids.sub(value)


def _value(value: Any, ids: _Ids) -> Any:
    if isinstance(value, str):
        stripped = value.lstrip()
        if stripped[:1] in "{[":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if isinstance(parsed, (dict, list)):
                return {"$json": _value(parsed, ids)}
        return _text(value, ids)
    if isinstance(value, dict):
        # A check or metric about latency: its value is measured ({"check": "target
        # p95_latency", "value": 0.0006, ...}).
        timed = any(isinstance(value.get(k), str) and "latency" in value[k]
                    for k in ("check", "name", "metric"))
        return {k: _value(v, ids) for k, v in sorted(value.items())
                if not _measured_key(k) and not (timed and k in ("value", "status", "text"))}
    if isinstance(value, list):
        items = [_value(v, ids) for v in value
                 if not (isinstance(v, str) and "latency" in v and "target" in v)]
        # Lists of ids (the feedback a dataset version was made from, the items a run took)
        # may put fresh ids in id order, which is random: those compare as a set, in place.
        if items and all(isinstance(v, str) for v in items):
            where = [i for i, v in enumerate(items) if "<id" in v]
            for i, v in zip(where, sorted(items[i] for i in where), strict=True):
                items[i] = v
        return items
    if isinstance(value, float):
        return round(value, 9)
    return value


def _file(path: Path, ids: _Ids) -> Any:
    """A file's content as a comparable value: Parquet as its rows, text as text."""
    if path.suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        return {"columns": list(frame.columns),
                "rows": _value(json.loads(frame.to_json(orient="records")), ids)}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return {"sha256": snapshot.file_digest(path)}
    return _value(text, ids)


def canonical(folder: str | Path) -> dict[str, Any]:
    """The checkpoints in ``folder`` (a manifest and its stages) without what differs between
    builds: ``canonical(a) == canonical(b)`` when both hold the same work."""
    from workbench.checkpoints.restoring import load_manifest

    folder = Path(folder)
    manifest = load_manifest(folder)
    ids = _Ids()
    out: dict[str, Any] = {
        "schema": manifest["schema"], "path": manifest["path"], "model": manifest["model"],
        "inputs": manifest["inputs"], "stages": {},
    }
    for entry in manifest["stages"]:
        stage = folder / entry["folder"]
        meta = snapshot.loads((stage / snapshot.STAGE_FILE).read_text(encoding="utf-8"))
        ops = [snapshot.loads(line) for line in
               (stage / snapshot.ROWS_FILE).read_text(encoding="utf-8").splitlines()]
        ops = [op for op in ops if not (op["table"] == "alerts"
                                        and "latency" in json.dumps(op.get("row", {})))]
        rows = [_value(op, ids) for op in ops]
        counts: dict[str, int] = {}
        for op in ops:
            counts[op["table"]] = counts.get(op["table"], 0) + 1
        files_dir = stage / snapshot.FILES_DIR
        files = {ids.sub(p.relative_to(files_dir).as_posix()): _file(p, ids)
                 for p in sorted(files_dir.rglob("*")) if p.is_file()} \
            if files_dir.is_dir() else {}
        card = json.loads(snapshot.dumps(meta["card"]))  # dates as tagged strings
        out["stages"][entry["phase"]] = {
            "title": entry["title"], "counts": counts,
            "card": _value(card, ids), "deleted_files": meta["deleted_files"],
            "rows": rows, "files": files,
        }
    return out


def differences(a: dict[str, Any], b: dict[str, Any], limit: int = 20) -> list[str]:
    """Where two canonical values differ, as paths a person can follow (at most ``limit``)."""
    found: list[str] = []

    def walk(x: Any, y: Any, where: str) -> None:
        if len(found) >= limit:
            return
        if isinstance(x, dict) and isinstance(y, dict):
            for key in sorted(set(x) | set(y), key=str):
                if key not in x or key not in y:
                    found.append(f"{where}.{key}: only in {'second' if key in y else 'first'}")
                else:
                    walk(x[key], y[key], f"{where}.{key}")
        elif isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y):
                found.append(f"{where}: {len(x)} entries against {len(y)}")
            for i, (u, v) in enumerate(zip(x, y, strict=False)):
                walk(u, v, f"{where}[{i}]")
        elif x != y:
            found.append(f"{where}: {str(x)[:120]!r} against {str(y)[:120]!r}")

    walk(a, b, "")
    return found
