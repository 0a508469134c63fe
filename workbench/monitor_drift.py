"""Drift: are today's inputs still like the data the deployment was built and tested on?

The inputs the service received in a window (``workbench.request`` of its answered and failed
requests, each distinct text once: a message asked fifty times is one input) are embedded with
the bundled embeddings model (``workbench.llm.embed``) and compared with the deployment's
training data (the **train** split of the dataset its evidence run used):

- the statistic is the **distance between mean embeddings** (the linear-kernel MMD): how far
  the average meaning of the window's inputs moved from the training data's;
- its threshold is learned, not guessed: the **validation** split stands for "new inputs like
  the training data", so the statistic of ``BOOTSTRAP`` draws of as many validation inputs as
  the window has (with replacement) is the distance chance alone gives; the window drifted
  when its distance is above the ``QUANTILE`` (95%) of those (``p_value`` says how often the
  draws went as far).

Small windows wobble more, so the threshold is learned for each window's size. A drifted
window lists its least familiar inputs (lowest similarity to any training input) by trace id,
to read in the traces; the stored check keeps ids, never the text. Under "do not log raw
inputs" the traces hold redacted text, and drift is measured on that (placeholders are a
little unlike the training data's names and numbers). False and missed alarms on the bundled
data: ``benchmarks/bench_monitor.py``.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.monitor import Alert
    from workbench.project import Project

METHOD = "mean-embedding distance, validation bootstrap"
BOOTSTRAP = 1000
QUANTILE = 0.95
MAX_INPUTS = 1000  # distinct inputs embedded per check (a random sample beyond)
MIN_VALIDATION = 10
UNFAMILIAR = 5  # least familiar inputs listed in a drifted check


class DriftError(WorkbenchError):
    """Drift cannot be measured (no deployment, no split dataset to compare with)."""


@dataclass(frozen=True)
class Reference:
    dataset: str
    version: int
    columns: list[str]
    train: list[str]
    validation: list[str]


@dataclass(frozen=True)
class DriftResult:
    """One drift check. ``status``: "drift", "no drift" or "no data" (too few inputs)."""

    status: str
    statistic: float
    threshold: float
    p_value: float
    inputs: int
    dataset: str
    dataset_version: int
    since: float
    until: float
    method: str = METHOD
    details: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    @property
    def sentence(self) -> str:
        where = f"{self.dataset} v{self.dataset_version} (train split)"
        if self.status == "no data":
            return (f"{self.inputs} distinct inputs in the window: too few to compare with "
                    f"{where} (needs {self.details.get('min_inputs')}).")
        verdict = "have drifted from" if self.drifted else "are in line with"
        return (f"The window's {self.inputs} distinct inputs {verdict} {where}: distance "
                f"{self.statistic:.4f} against a threshold of {self.threshold:.4f} learned "
                f"from the validation split (p = {self.p_value:.3f}).")


def _text(values: dict[str, Any], columns: list[str]) -> str | None:
    present = [str(values[c]) for c in columns if values.get(c) not in (None, "")]
    return "\n".join(present) if present else None


def reference(project: Project) -> Reference:
    """The training and validation inputs of what is deployed: the dataset of the deployment's
    evidence run (else its few-shot dataset, else the latest split dataset)."""
    from workbench.data.split import load_split
    from workbench.data.versions import find_split, get_version
    from workbench.serve import NotDeployed, latest_deployment

    try:
        spec = latest_deployment(project).value
    except NotDeployed:
        raise DriftError("Drift compares the service's inputs with its training data, and "
                         "this project has no deployment.",
                         "Deploy first (phase 7): workbench deploy PROMPT.") from None
    name = version = None
    if spec.evidence_run:
        row = project.store.db.execute("SELECT dataset, dataset_version FROM runs WHERE "
                                       "run_id = ?", (spec.evidence_run,)).fetchone()
        if row:
            name, version = row
    if name is None and spec.few_shot_dataset:
        name, version = spec.few_shot_dataset, spec.few_shot_version
    stored = get_version(project, name, version) if name else find_split(project)
    if stored is None or not stored.value.splits:
        raise DriftError("There is no split dataset to compare the service's inputs with.",
                         "Split the dataset the deployment was evaluated on (phase 2).")
    columns = [c for c in spec.variables if c in stored.value.columns] or (
        ["input"] if "input" in stored.value.columns else [])
    if not columns:
        raise DriftError(f"{stored.name} has none of the deployment's inputs "
                         f"({', '.join(spec.variables)}).",
                         "Deploy a prompt whose variables are columns of its dataset.")
    texts = {}
    for split in ("train", "validation"):
        rows = load_split(project, stored.name, split, version=stored.version)
        texts[split] = [t for t in (_text(r, columns) for r in rows.to_dict("records")) if t]
    if len(texts["validation"]) < MIN_VALIDATION or not texts["train"]:
        raise DriftError(f"{stored.name} v{stored.version} has {len(texts['validation'])} "
                         f"validation inputs; learning a drift threshold needs "
                         f"{MIN_VALIDATION}.", "Split a larger dataset (phase 2).")
    return Reference(stored.name, stored.version, columns, texts["train"], texts["validation"])


_embedded: OrderedDict[tuple, np.ndarray] = OrderedDict()
_embedded_lock = threading.Lock()


def _embed_reference(project: Project, ref: Reference, split: str) -> np.ndarray:
    from workbench.llm import embed

    key = (str(project.path), ref.dataset, ref.version, tuple(ref.columns), split)
    with _embedded_lock:
        if key in _embedded:
            _embedded.move_to_end(key)
            return _embedded[key]
    vectors = embed(getattr(ref, split))
    with _embedded_lock:
        _embedded[key] = vectors
        while len(_embedded) > 8:
            _embedded.popitem(last=False)
    return vectors


def live_inputs(project: Project, columns: list[str], since: float,
                until: float) -> dict[str, str]:
    """The distinct inputs of the service's requests in [since, until): text -> the trace id
    of its last request."""
    project.store.flush()
    out: dict[str, str] = {}
    # SQLite's JSON reads the request alone: the rest of each span is never parsed here.
    for trace_id, request in project.store.db.execute(
            "SELECT trace_id, json_extract(attributes, '$.\"workbench.request\"') FROM spans "
            "WHERE name = 'serve.request' AND start_time >= ? AND start_time < ? AND "
            "json_extract(attributes, '$.\"http.route\"') IN ('/v1/predict', "
            "'/v1/chat/completions') "
            "ORDER BY start_time", (since, until)):
        request = json.loads(request) if request else None
        if not isinstance(request, dict):
            continue
        text = _text(request, columns)
        if text:
            out[" ".join(text.split()).casefold()] = trace_id
    return out


def null_distances(validation: np.ndarray, centre: np.ndarray, n: int, *,
                   draws: int = BOOTSTRAP, seed: int = 0) -> np.ndarray:
    """The statistic of ``draws`` samples of ``n`` validation inputs (with replacement)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n, np.full(len(validation), 1 / len(validation)), size=draws)
    means = counts @ validation / n
    return np.linalg.norm(means - centre, axis=1)


def check_drift(project: Project, *, window_s: float | None = None, since: float | None = None,
                until: float | None = None, now: float | None = None,
                min_inputs: int | None = None, draws: int = BOOTSTRAP, seed: int = 0,
                record: bool = True) -> DriftResult:
    """Compare the service's inputs of a window (default: the last ``drift_window_h`` hours of
    the card's ``[monitoring]``, 24) with the deployment's training data; stored with
    ``record``. Raises ``DriftError`` when there is nothing to compare with."""
    import numpy as np

    from workbench.monitor_config import settings

    now = time.time() if now is None else now
    config = settings(project)
    until = now if until is None else until
    if since is None:
        since = until - (window_s if window_s is not None else config.drift_window_h * 3600)
    min_inputs = config.drift_min_inputs if min_inputs is None else min_inputs
    ref = reference(project)
    found = live_inputs(project, ref.columns, since, until)
    texts = list(found)
    rng = np.random.default_rng(seed)
    if len(texts) > MAX_INPUTS:
        texts = [texts[i] for i in sorted(rng.choice(len(texts), MAX_INPUTS, replace=False))]
    base = {"min_inputs": min_inputs, "distinct_inputs": len(found), "compared": len(texts)}
    if len(texts) < min_inputs:
        result = DriftResult("no data", math.nan, math.nan, math.nan, len(texts), ref.dataset,
                             ref.version, since, until, details=base)
    else:
        from workbench.llm import embed

        train = _embed_reference(project, ref, "train")
        validation = _embed_reference(project, ref, "validation")
        live = embed(texts)
        centre = train.mean(axis=0)
        statistic = float(np.linalg.norm(live.mean(axis=0) - centre))
        null = null_distances(validation, centre, len(texts), draws=draws, seed=seed)
        threshold = float(np.quantile(null, QUANTILE))
        p_value = float((1 + np.sum(null >= statistic)) / (draws + 1))
        drifted = statistic > threshold
        familiar = (live @ train.T).max(axis=1)
        order = np.argsort(familiar)[:UNFAMILIAR]
        details = {**base, "train_inputs": len(train), "validation_inputs": len(validation),
                   "null_median": float(np.median(null)), "draws": draws,
                   "unfamiliar": [{"trace_id": found[texts[i]],
                                   "similarity": round(float(familiar[i]), 4)}
                                  for i in order] if drifted else []}
        result = DriftResult("drift" if drifted else "no drift", statistic, threshold, p_value,
                             len(texts), ref.dataset, ref.version, since, until,
                             details=details)
    if record:
        with project.store.write() as db:
            db.execute("INSERT INTO monitor_drift VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (uuid.uuid4().hex[:16], now, since, until, result.inputs, result.dataset,
                        result.dataset_version, result.method,
                        _finite(result.statistic), _finite(result.threshold),
                        _finite(result.p_value), int(result.drifted),
                        json.dumps({"status": result.status, **result.details})))
    return result


def _finite(value: float) -> float:
    return -1.0 if math.isnan(value) else value  # "no data" rows: the columns are NOT NULL


def drift_frame(project: Project, *, limit: int = 200) -> pd.DataFrame:
    """The drift checks, oldest first: when, the window, inputs, statistic, threshold,
    p-value, status."""
    import pandas as pd

    rows = project.store.query("SELECT * FROM monitor_drift ORDER BY computed_at DESC LIMIT ?",
                               (limit,))
    out = []
    for r in reversed(rows):
        details = json.loads(r["details"])
        nodata = details.get("status") == "no data"
        out.append({"computed_at": pd.Timestamp(r["computed_at"], unit="s", tz="UTC"),
                    "since": r["since"], "until": r["until"], "inputs": r["inputs"],
                    "dataset": f"{r['dataset']} v{r['dataset_version']}",
                    "statistic": math.nan if nodata else r["statistic"],
                    "threshold": math.nan if nodata else r["threshold"],
                    "p_value": math.nan if nodata else r["p_value"],
                    "status": details.get("status", "drift" if r["drifted"] else "no drift"),
                    "unfamiliar": [u["trace_id"] for u in details.get("unfamiliar", [])]})
    return pd.DataFrame(out, columns=["computed_at", "since", "until", "inputs", "dataset",
                                      "statistic", "threshold", "p_value", "status",
                                      "unfamiliar"])


def drift_alerts(project: Project, *, now: float | None = None,
                 settings: Any = None) -> list[Alert]:
    """The latest drift check as an alert (kind ``drift``), if one ran within two drift
    windows; "no data" otherwise."""
    from workbench.monitor import Alert, AlertRule

    now = time.time() if now is None else now
    hours = getattr(settings, "drift_window_h", 24.0)
    row = project.store.db.execute(
        "SELECT computed_at, inputs, dataset, dataset_version, statistic, threshold, p_value, "
        "drifted, details FROM monitor_drift WHERE computed_at >= ? AND computed_at <= ? "
        "ORDER BY computed_at DESC LIMIT 1", (now - 2 * hours * 3600, now)).fetchone()
    details = json.loads(row[8]) if row else {}
    if row is None or details.get("status") == "no data":
        why = ("the last drift check had too few inputs" if row else
               f"no drift check in the last {2 * hours:g} hours (run `workbench monitor "
               "--drift`)")
        return [Alert(AlertRule("input_drift", "<=", math.nan, "validation bootstrap",
                                kind="drift"), "no data", math.nan, f"input_drift: {why}.")]
    _, inputs, dataset, version, statistic, threshold, p_value, drifted, _ = row
    text = (f"input_drift: {inputs} distinct inputs {'drifted from' if drifted else 'match'} "
            f"{dataset} v{version}: distance {statistic:.4f}, threshold {threshold:.4f}, "
            f"p = {p_value:.3f}")
    return [Alert(AlertRule("input_drift", "<=", threshold, "validation bootstrap",
                            kind="drift"), "firing" if drifted else "ok", statistic, text,
                  {"p_value": p_value, "inputs": inputs,
                   "unfamiliar": [u["trace_id"] for u in details.get("unfamiliar", [])]})]
