"""The semantic cache: a request close enough in meaning to one answered before gets that answer,
without calling the model. Off by default, and it cannot be turned on blind.

An exact cache can only be wrong when the model is; a semantic cache is wrong whenever two
requests are close in meaning but need different answers ("I was charged twice" / "I was not
charged"). How often that happens depends on the data and the threshold, so the workbench
measures it on the project's own labelled data first:

1. ``measure_semantic_cache`` (``workbench cache measure``) embeds each labelled item with the
   bundled embedding model and finds the most similar *other* item (different text: identical
   text is the exact cache's business), as a cache warm with every other item would. At each
   threshold it counts **hits** (the neighbour is at least that similar) and **false hits**
   (a hit whose neighbour's expected output differs, compared case- and space-insensitively:
   the cached answer would be served to a request that needs another). It records the figures
   (``SemanticCacheMeasurement``) and draws the curve (``figure()``).
2. ``plan_deployment(..., semantic_cache=0.95)`` (``workbench deploy --semantic-cache 0.95``)
   refuses unless a measurement at exactly that threshold is recorded; the threshold and the
   measured hit and false-hit rates are written into the deployment.
3. The service (``SemanticCache``) embeds each request's fields, answers from the most similar
   entry of the same deployment at or above the threshold (traced as a cache hit with its
   similarity), and stores each new parsed answer. Entries are shared by the service's
   processes: in the project database (one machine), or in Redis when the service has it
   (replicas).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.records import Record
from workbench.serve.deployment import DeploymentRefused

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.project import Project
    from workbench.records import Stored
    from workbench.serve.service import Service

MEASUREMENT = "semantic-cache"  # the record name measurements are saved under
DEFAULT_THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
MAX_ENTRIES = 20_000  # per deployment and process; past it, new answers are not added
SHOWN_FALSE_HITS = 10  # pairs a measurement keeps as examples


class SemanticCacheNotMeasured(DeploymentRefused):
    """The semantic cache was asked for at a threshold nobody measured."""


class SemanticCacheMeasurement(Record):
    """Hit and false-hit rates of a semantic cache over one labelled dataset, per threshold.

    ``hit_rate``: share of items served from another item's entry. ``false_hit_rate``: share of
    items served another item's entry whose expected output differs (wrong answers served, per
    request). ``false_share_of_hits``: false hits per hit."""

    kind: ClassVar[str] = "semantic_cache_measurement"
    dataset: str
    dataset_version: int
    split: str
    field: str
    embedding_model: str
    items: int
    exact_duplicates: int  # items whose text another item has (the exact cache's hits)
    thresholds: list[float]
    hits: list[int]
    false_hits: list[int]
    hit_rate: list[float]
    false_hit_rate: list[float]
    false_share_of_hits: list[float]
    examples: list[dict[str, Any]] = []  # the most similar pairs with different outputs

    def at(self, threshold: float) -> dict[str, Any] | None:
        """The figures at ``threshold``, or None when it was not measured."""
        for i, measured in enumerate(self.thresholds):
            if abs(measured - threshold) < 1e-9:
                return {"threshold": measured, "hit_rate": self.hit_rate[i],
                        "false_hit_rate": self.false_hit_rate[i],
                        "false_share_of_hits": self.false_share_of_hits[i],
                        "hits": self.hits[i], "false_hits": self.false_hits[i],
                        "items": self.items}
        return None

    def table(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({"threshold": self.thresholds, "hits": self.hits,
                             "hit_rate": self.hit_rate, "false_hits": self.false_hits,
                             "false_hit_rate": self.false_hit_rate,
                             "false_share_of_hits": self.false_share_of_hits})

    def figure(self):
        """Hit rate and false-hit rate against the threshold (plotly)."""
        import plotly.graph_objects as go

        fig = go.Figure()
        fig.add_trace(go.Scatter(x=self.thresholds, y=self.hit_rate, name="hit rate",
                                 mode="lines+markers"))
        fig.add_trace(go.Scatter(x=self.thresholds, y=self.false_hit_rate,
                                 name="false-hit rate (wrong answers served)",
                                 mode="lines+markers", line={"color": "#b42318"}))
        fig.update_layout(
            title=f"Semantic cache on {self.dataset} v{self.dataset_version} ({self.split}, "
                  f"{self.items} items)",
            xaxis_title="similarity threshold (cosine)", yaxis_title="share of requests",
            yaxis_tickformat=".0%", template="plotly_white", hovermode="x unified")
        return fig


def _normalised(value: Any) -> str:
    return re.sub(r"\s+", " ", str(value)).strip().casefold()


def _default_dataset(project: Project) -> str:
    from workbench.data.versions import find_split
    from workbench.serve.deployment import NotDeployed, latest_deployment

    try:
        run_id = latest_deployment(project).value.evidence_run
    except NotDeployed:
        run_id = None
    if run_id:
        from workbench.runs import load_run

        dataset = load_run(project, run_id).config.get("dataset")
        if dataset:
            return dataset
    found = find_split(project)
    if found is None:
        raise DeploymentRefused("The project has no labelled dataset to measure the semantic "
                                "cache on.", "Import and split one first (notebook 02, or "
                                "`workbench import FILE --dataset NAME --expected COLUMN`).")
    return found.name


def _nearest_other(vectors: np.ndarray, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the most similar other row with a different text, and the similarity
    (-inf when there is none). In blocks, so memory stays small for large sets."""
    import numpy as np

    n = len(texts)
    ids = {}
    group = np.array([ids.setdefault(t, len(ids)) for t in texts])
    best = np.full(n, -1)
    similarity = np.full(n, -np.inf, dtype=np.float32)
    for start in range(0, n, 1024):
        block = vectors[start:start + 1024] @ vectors.T
        block[group[start:start + 1024, None] == group[None, :]] = -np.inf  # self, same text
        best[start:start + 1024] = block.argmax(axis=1)
        similarity[start:start + 1024] = block.max(axis=1)
    return best, similarity


def measure_semantic_cache(project: Project, dataset: str | None = None, *,
                           version: int | str | None = None, split: str = "all",
                           field: str = "input",
                           thresholds: tuple[float, ...] | list[float] = DEFAULT_THRESHOLDS,
                           record: bool = True) -> Stored[SemanticCacheMeasurement] | \
        SemanticCacheMeasurement:
    """Measure hit and false-hit rates of a semantic cache on ``dataset`` (default: the
    dataset the deployment was evaluated on, else the newest split one), ``split`` (``"all"``
    or one split), per threshold. Recorded in the project (``record``), which is what lets a
    deployment turn the cache on at one of these thresholds."""
    import numpy as np

    from workbench.data.versions import get_version, load
    from workbench.llm.embeddings import EMBEDDING_MODEL, embed

    dataset = dataset or _default_dataset(project)
    stored = get_version(project, dataset, version)
    frame = load(project, dataset, stored.version)
    if split != "all":
        if "split" not in frame.columns:
            raise DeploymentRefused(f"{dataset} v{stored.version} has not been split.",
                                    "Measure on split='all', or split the dataset first.")
        frame = frame[frame["split"] == split]
    for column in (field, "expected"):
        if column not in frame.columns:
            raise DeploymentRefused(
                f"{dataset} v{stored.version} has no '{column}' column, so nothing says which "
                "answers would be wrong.", "Measure on a labelled dataset (with 'expected').")
    frame = frame[frame["expected"].notna() & frame[field].notna()]
    if len(frame) < 2:
        raise DeploymentRefused(f"{dataset} v{stored.version} ({split}) has {len(frame)} "
                                "labelled item(s); a cache needs pairs.",
                                "Measure on a dataset with more labelled items.")
    thresholds = sorted({round(float(t), 6) for t in thresholds})
    if not thresholds or any(not 0 < t <= 1 for t in thresholds):
        raise DeploymentRefused(f"Thresholds must be cosine similarities in (0, 1] (got "
                                f"{thresholds}).", "Pass e.g. thresholds=[0.9, 0.95].")
    texts = frame[field].astype(str).tolist()
    labels = [_normalised(v) for v in frame["expected"].tolist()]
    vectors = embed(texts)
    best, similarity = _nearest_other(vectors, texts)
    wrong = np.array([best[i] >= 0 and labels[best[i]] != labels[i] for i in range(len(texts))])
    n = len(texts)
    hits = [int((similarity >= t).sum()) for t in thresholds]
    false_hits = [int(((similarity >= t) & wrong).sum()) for t in thresholds]
    order = np.argsort(-similarity)
    examples, seen = [], set()
    for i in order:
        if len(examples) >= SHOWN_FALSE_HITS or not np.isfinite(similarity[i]):
            break
        j = int(best[i])
        if wrong[i] and (j, int(i)) not in seen:
            seen.add((int(i), j))
            examples.append({"request": texts[i], "expected": str(frame["expected"].iloc[i]),
                             "served_from": texts[j],
                             "its_expected": str(frame["expected"].iloc[j]),
                             "similarity": round(float(similarity[i]), 4)})
    measurement = SemanticCacheMeasurement(
        dataset=dataset, dataset_version=stored.version, split=split, field=field,
        embedding_model=EMBEDDING_MODEL, items=n,
        exact_duplicates=sum(c for c in Counter(texts).values() if c > 1),
        thresholds=thresholds, hits=hits, false_hits=false_hits,
        hit_rate=[h / n for h in hits], false_hit_rate=[f / n for f in false_hits],
        false_share_of_hits=[f / h if h else 0.0 for f, h in zip(false_hits, hits)],
        examples=examples)
    return project.records.save(MEASUREMENT, measurement) if record else measurement


def measured_at(project: Project, threshold: float) -> Stored[SemanticCacheMeasurement]:
    """The newest recorded measurement that covers ``threshold``; refused otherwise, with the
    command that measures it."""
    from workbench.records import RecordNotFound

    try:
        recorded = project.records.versions(SemanticCacheMeasurement, MEASUREMENT)
    except RecordNotFound:
        recorded = []
    for stored in sorted(recorded, key=lambda s: s.version, reverse=True):
        if stored.value.at(threshold) is not None:
            return stored
    measured = sorted({t for s in recorded for t in s.value.thresholds})
    raise SemanticCacheNotMeasured(
        f"The semantic cache's false-hit rate at threshold {threshold:g} has not been measured "
        "on this project's data" + (f" (measured: {', '.join(f'{t:g}' for t in measured)})"
                                    if measured else "") + ": it could serve wrong answers "
        "at an unknown rate.",
        f"Measure it first: `workbench cache measure --thresholds {threshold:g}` (or "
        "workbench.serve.measure_semantic_cache), read the false-hit rate, then deploy again.")


def deployment_fields(project: Project, threshold: float | None) -> dict[str, Any]:
    """What ``plan_deployment`` records for ``semantic_cache=threshold``."""
    if threshold is None:
        return {}
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0 < threshold <= 1:
        raise DeploymentRefused(f"The semantic cache threshold must be a cosine similarity in "
                                f"(0, 1] (got {threshold!r}).", "Pass e.g. 0.95.")
    stored = measured_at(project, threshold)
    m = stored.value
    return {"semantic_cache": threshold, "semantic_cache_measured": {
        **m.at(threshold), "measurement_version": stored.version, "dataset": m.dataset,
        "dataset_version": m.dataset_version, "split": m.split,
        "embedding_model": m.embedding_model}}


# -- serving ---------------------------------------------------------------------------------------

@dataclass
class Hit:
    result: Any  # workbench.prompts.run.ItemResult
    model: str
    similarity: float


def _item_text(item: dict[str, Any]) -> str:
    """What is embedded for a request: its one field, or each field named, in order."""
    if len(item) == 1:
        return str(next(iter(item.values())))
    return "\n".join(f"{name}: {item[name]}" for name in sorted(item))


class _SqliteLog:
    """Entries in the project database (every process on this machine sees them)."""

    def __init__(self, project: Project, deployment: int):
        self.store, self.deployment = project.store, deployment

    def append(self, entry: dict[str, Any]) -> None:
        self.store.defer("INSERT INTO semantic_cache (deployment, entry, created) VALUES "
                         "(?, ?, ?)", (self.deployment, json.dumps(entry), time.time()))

    def since(self, cursor: int) -> tuple[list[dict[str, Any]], int]:
        rows = self.store.db.execute(
            "SELECT rowid, entry FROM semantic_cache WHERE deployment = ? AND rowid > ? "
            "ORDER BY rowid LIMIT 5000", (self.deployment, cursor)).fetchall()
        return [json.loads(r[1]) for r in rows], (rows[-1][0] if rows else cursor)


class _RedisLog:
    """Entries in Redis (every replica sees them); a failing Redis is a miss, not an error."""

    def __init__(self, shared: Any, deployment: int):
        self.client, self.key = shared.client, f"{shared.prefix}semantic:{deployment}"
        self.cache = shared.cache  # for its warning, once a minute

    def append(self, entry: dict[str, Any]) -> None:
        try:
            self.client.rpush(self.key, json.dumps(entry))
        except Exception as exc:  # noqa: BLE001 (any Redis failure: the answer still goes out)
            self.cache._warn(exc)

    def since(self, cursor: int) -> tuple[list[dict[str, Any]], int]:
        try:
            rows = self.client.lrange(self.key, cursor, cursor + 4999)
        except Exception as exc:  # noqa: BLE001
            self.cache._warn(exc)
            return [], cursor
        return [json.loads(r) for r in rows], cursor + len(rows)


class SemanticCache:
    """One deployment's semantic cache in a service process: the entries as a matrix of unit
    vectors, kept up to date with the shared log before each lookup."""

    def __init__(self, project: Project, deployment: int, threshold: float,
                 shared: Any = None):
        import numpy as np

        from workbench.llm.embeddings import DIMENSIONS, embed

        self.threshold, self.deployment = threshold, deployment
        self.log = _RedisLog(shared, deployment) if shared is not None else \
            _SqliteLog(project, deployment)
        self._embed = embed
        self._vectors = np.zeros((0, DIMENSIONS), dtype=np.float32)
        self._answers: list[dict[str, Any]] = []
        self._cursor = 0
        self._lock = threading.Lock()
        embed("warm up")  # load the model now, not on the first request

    @classmethod
    def for_service(cls, service: Service) -> SemanticCache | None:
        threshold = getattr(service.spec, "semantic_cache", None)
        if threshold is None:
            return None
        return cls(service.project, service.deployed_version, threshold, service.shared)

    def _catch_up(self) -> None:
        import numpy as np

        entries, self._cursor = self.log.since(self._cursor)
        if not entries:
            return
        room = MAX_ENTRIES - len(self._answers)
        entries = entries[:max(0, room)]
        if entries:
            vectors = np.frombuffer(b"".join(base64.b64decode(e["vector"]) for e in entries),
                                    dtype=np.float32).reshape(len(entries), -1)
            self._vectors = np.vstack([self._vectors, vectors])
            self._answers.extend(e["answer"] for e in entries)

    def lookup(self, item: dict[str, Any]) -> tuple[Hit | None, Any]:
        """The hit for ``item`` (or None) and the item's vector (to store a new answer)."""
        vector = self._embed(_item_text(item))
        with self._lock:
            self._catch_up()
            if not self._answers:
                return None, vector
            scores = self._vectors @ vector
            best = int(scores.argmax())
            similarity = float(scores[best])
            answer = self._answers[best] if similarity >= self.threshold else None
        if answer is None:
            return None, vector
        return Hit(_result(answer), answer["model"], similarity), vector

    def store(self, vector: Any, model: str, result: Any) -> None:
        """Add a parsed answer; other processes pick it up on their next lookup."""
        if len(self._answers) >= MAX_ENTRIES or result.completion is None:
            return
        completion = result.completion
        self.log.append({"vector": base64.b64encode(vector.astype("float32").tobytes())
                         .decode("ascii"),
                         "answer": {"model": model, "completion": completion.model_dump(
                             mode="json"), "parsed": result.parsed.value,
                             "parse_ok": result.parsed.ok}})


def _result(answer: dict[str, Any]) -> Any:
    """An ``ItemResult`` for a cached answer: served at no cost, marked cached."""
    from workbench.prompts.parsing import Parsed
    from workbench.prompts.run import ItemResult
    from workbench.records import Completion

    completion = Completion.model_validate(answer["completion"]).model_copy(
        update={"cached": True, "cost_usd": 0.0, "latency_s": 0.0})
    return ItemResult([], completion, Parsed(answer["parsed"], answer["parse_ok"]), 0, None,
                      completions=[completion])
