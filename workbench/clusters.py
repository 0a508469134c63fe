"""Failure patterns: what users complained about and what the service failed on, grouped by
meaning, named, counted and trended per day.

    >>> found = cluster_failures(project, since=time.time() - 7 * 86400)
    >>> found.clusters            # one row per pattern: name, size, share, trend, examples, ...
    >>> found.figure()            # failures per day, stacked by pattern (plotly)

A failure is a thumbs-down answer (``monitor.feedback_frame``) or a request the service failed on
(HTTP 5xx) or answered unparsably (``monitor.requests_frame``); one request is one failure,
whichever ways it failed. Inputs are embedded with the bundled sentence model
(``workbench.llm.embed``) and grouped by average-linkage agglomerative clustering on cosine
distance, cut at ``DISTANCE`` — no number of clusters to guess, and the same inputs always give
the same groups. Each group is named by its keywords (class-based TF-IDF: words frequent in the
group and rare in the other failures) and shown by its most typical members (closest to the
group's centroid).

``DISTANCE`` was chosen on ``datasets/failure_clusters_tune.jsonl`` (60 failing support
messages in 6 themes: adjusted Rand index 1.00 between 0.65 and 0.70) and measured on the
independently written ``datasets/failure_clusters_eval.jsonl`` (48 messages in 6 other themes:
0.87, with 9 groups for the 6 themes: a theme is sometimes split, rarely merged);
``benchmarks/bench_clusters.py`` prints both.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

    from workbench.project import Project

DISTANCE = 0.65  # cosine distance at which groups stop merging (see the module docstring)
TYPICAL = 3  # examples that name a cluster
KEYWORDS = 4
DAY_S = 86400.0
FAILURE_COLUMNS = ["time", "trace_id", "kind", "input", "output", "expected", "comment",
                   "feedback_id", "status", "error"]
CLUSTER_COLUMNS = ["cluster", "name", "size", "share", "trend", "keywords", "examples",
                   "kinds", "first_seen", "last_seen", "trace_ids"]

_STOPWORDS = frozenset("""
a about after again all am an and any are as at be because been before being but by can cannot
could did do does doing don done for from get got had has have having he her here hi hello his how
i i'm if in into is isn it it's its just me my no not now of on once only or our out over own
please same she should so some still such than thanks thank that the their them then there these
they this those through to too under until up very was we were what when where which while who
why will with would you your yours yet already also been both each few more most other ive im
dont cant doesnt didnt isnt wont hey team one two get's
""".split())
_PLACEHOLDER = re.compile(r"<[A-Z_]+>")  # what the PII redactor leaves in a text
_WORD = re.compile(r"[a-z][a-z0-9']+")


class ClusterError(WorkbenchError):
    """Failures could not be grouped as asked."""


# -- the failures ---------------------------------------------------------------------------------

def _input_of(variables: Any) -> str | None:
    if not isinstance(variables, dict):
        return None
    if "input" in variables:
        return str(variables["input"])
    import json

    return json.dumps(variables, ensure_ascii=False, sort_keys=True)


def failure_frame(project: Project, *, since: float | None = None,
                  until: float | None = None) -> pd.DataFrame:
    """Every failure in [since, until), oldest first: thumbs-down feedback (``kind`` "thumbs
    down", ``expected`` the user's correction) and requests the service failed on ("HTTP 5xx")
    or could not parse ("unparsable"). A request that failed in several ways is one row with
    its kinds joined by " + "."""
    import pandas as pd

    from workbench.monitor import feedback_frame, requests_frame

    rows: dict[str, dict[str, Any]] = {}
    said = feedback_frame(project, since=since, until=until)
    for r in said[(said["rating"] < 0) & said["input"].notna()].to_dict("records"):
        correction = r["correction"] if isinstance(r["correction"], str) and \
            r["correction"].strip() else None
        rows[r["trace_id"]] = {"time": r["time"], "trace_id": r["trace_id"],
                               "kind": "thumbs down", "input": str(r["input"]),
                               "output": r["output"], "expected": correction,
                               "comment": r["comment"], "feedback_id": r["feedback_id"],
                               "status": None, "error": None}
    requests = requests_frame(project, since=since, until=until, source="service")
    if len(requests):
        parse_failed = requests["parse_ok"].map(lambda v: v is not None and v == v
                                                 and not bool(v))
        failed = requests[(requests["status"] >= 500) | parse_failed]
        attributes = _request_attributes(project, list(failed["trace_id"]))
        for r in failed.to_dict("records"):
            a = attributes.get(r["trace_id"], {})
            text = _input_of(a.get("workbench.request"))
            if text is None:
                continue
            kind = f"HTTP {r['status']}" if r["status"] >= 500 else "unparsable"
            known = rows.get(r["trace_id"])
            if known is not None:
                known["kind"] = f"{known['kind']} + {kind}"
                known.update(status=r["status"], error=r["error"], time=min(known["time"],
                                                                            r["time"]))
                continue
            rows[r["trace_id"]] = {"time": r["time"], "trace_id": r["trace_id"], "kind": kind,
                                   "input": text, "output": a.get("workbench.output"),
                                   "expected": None, "comment": None, "feedback_id": None,
                                   "status": r["status"], "error": r["error"]}
    frame = pd.DataFrame(list(rows.values()), columns=FAILURE_COLUMNS)
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _request_attributes(project: Project, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The ``serve.request`` span attributes of these traces, by trace id."""
    import json

    out: dict[str, dict[str, Any]] = {}
    for start in range(0, len(trace_ids), 500):  # SQLite's bound-parameter limit
        chunk = trace_ids[start:start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in project.store.query(
                "SELECT trace_id, attributes FROM spans WHERE name = 'serve.request' AND "
                f"trace_id IN ({marks})", tuple(chunk)):
            out[row["trace_id"]] = json.loads(row["attributes"])
    return out


# -- grouping (pure functions: vectors and texts in, labels out) ---------------------------------

def cluster_vectors(vectors: np.ndarray, distance: float = DISTANCE) -> list[int]:
    """A group number per row of unit-length ``vectors``: average-linkage agglomerative
    clustering on cosine distance, merging until groups are ``distance`` apart. Groups are
    numbered by size, largest first (ties: the one seen first)."""
    if not 0 < distance <= 2:
        raise ClusterError(f"distance={distance} is not a cosine distance in (0, 2].",
                           f"Use a value such as {DISTANCE} (larger merges more).")
    n = len(vectors)
    if n == 0:
        return []
    if n == 1:
        return [0]
    from sklearn.cluster import AgglomerativeClustering

    raw = AgglomerativeClustering(n_clusters=None, distance_threshold=distance, metric="cosine",
                                  linkage="average").fit_predict(vectors)
    sizes = Counter(raw)
    first = {}
    for i, label in enumerate(raw):
        first.setdefault(label, i)
    order = sorted(sizes, key=lambda label: (-sizes[label], first[label]))
    renumber = {label: rank for rank, label in enumerate(order)}
    return [renumber[label] for label in raw]


def _stem(word: str) -> str:
    """A plural's singular, roughly (``payments`` and ``payment`` count as one word)."""
    if len(word) <= 4:
        return word
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("shes", "ches", "xes", "sses", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _words(text: str) -> list[str]:
    text = _PLACEHOLDER.sub(" ", str(text)).lower()
    words = (w.strip("'") for w in _WORD.findall(text))
    return [_stem(w) for w in words if w not in _STOPWORDS and len(w) > 2 and not w.isdigit()]


def keywords(texts: list[str], labels: list[int], k: int = KEYWORDS) -> dict[int, list[str]]:
    """The ``k`` words that set each group apart (class-based TF-IDF): frequent in the group,
    rare among all the texts; in a group of several texts, a word must appear in two of them."""
    per_group: dict[int, Counter] = {}
    docs: dict[int, Counter] = {}
    sizes = Counter(labels)
    for text, label in zip(texts, labels, strict=True):
        words = _words(text)
        per_group.setdefault(label, Counter()).update(words)
        docs.setdefault(label, Counter()).update(set(words))
    overall: Counter = Counter()
    for counts in per_group.values():
        overall.update(counts)
    average = sum(overall.values()) / max(len(per_group), 1)
    out = {}
    for label, counts in per_group.items():
        total = sum(counts.values()) or 1
        shared = 2 if sizes[label] > 1 else 1
        scored = [(counts[w] / total * math.log(1 + average / overall[w])
                   * docs[label][w] / sizes[label], w)
                  for w in counts if docs[label][w] >= shared]
        out[label] = [w for _, w in sorted(scored, key=lambda s: (-s[0], s[1]))[:k]]
    return out


def typical(vectors: np.ndarray, members: list[int], n: int = TYPICAL) -> list[tuple[int, float]]:
    """The ``n`` members closest to the group's centroid, as (row, cosine similarity)."""
    import numpy as np

    centroid = vectors[members].mean(axis=0)
    norm = float(np.linalg.norm(centroid)) or 1.0
    similarity = vectors[members] @ (centroid / norm)
    ranked = sorted(zip(members, similarity.tolist(), strict=True), key=lambda m: -m[1])
    return [(row, float(s)) for row, s in ranked[:n]]


def trend(times: list[float], since: float, until: float) -> str:
    """"new", "rising", "falling" or "steady": the later half of the window against the earlier
    half ("rising" needs at least twice as many and two more); "—" when the window is shorter
    than two days, too short for a trend per day."""
    if until - since < 2 * DAY_S:
        return "—"
    middle = since + (until - since) / 2
    earlier = sum(1 for t in times if t < middle)
    later = len(times) - earlier
    if earlier == 0 and later:
        return "new"
    if later >= 2 * earlier and later - earlier >= 2:
        return "rising"
    if earlier >= 2 * later and earlier - later >= 2:
        return "falling"
    return "steady"


# -- the kernel call ------------------------------------------------------------------------------

@dataclass
class FailureClusters:
    """What ``cluster_failures`` found: ``failures`` (one row per failure, with its ``cluster``
    and ``similarity`` to the cluster's centroid), ``clusters`` (one row per pattern, largest
    first) and ``daily`` (failures per UTC day and cluster) over [since, until)."""

    failures: pd.DataFrame
    clusters: pd.DataFrame
    daily: pd.DataFrame
    since: float
    until: float
    distance: float = DISTANCE

    @property
    def sentence(self) -> str:
        n = len(self.failures)
        if not n:
            return "No failures in this window: no thumbs down, no failed request."
        top = self.clusters.iloc[0]
        rising = [str(c) for c in self.clusters.loc[self.clusters["trend"].isin(
            ["rising", "new"]), "name"]]
        text = (f"{n} failure{'s' if n != 1 else ''} in {len(self.clusters)} pattern"
                f"{'s' if len(self.clusters) != 1 else ''}; the largest, “{top['name']}”, holds "
                f"{top['size']} ({top['share']:.0%}).")
        if rising:
            text += " Rising or new: " + ", ".join(f"“{name}”" for name in rising[:3]) + "."
        return text

    def _repr_markdown_(self) -> str:
        return self.sentence

    def figure(self, top: int = 8) -> go.Figure:
        """Failures per day, stacked by cluster (the ``top`` largest; the rest as "other")."""
        import plotly.graph_objects as go

        fig = go.Figure()
        daily = self.daily
        names = dict(zip(self.clusters["cluster"], self.clusters["name"], strict=True))
        shown = list(self.clusters["cluster"][:top])
        for cluster in shown:
            fig.add_bar(x=daily.index, y=daily[cluster], name=f"{cluster}: {names[cluster]}")
        rest = [c for c in daily.columns if c not in shown]
        if rest:
            fig.add_bar(x=daily.index, y=daily[rest].sum(axis=1), name="other patterns")
        fig.update_layout(barmode="stack", template="plotly_white", height=420,
                          title="Failure patterns per day", xaxis_title="day (UTC)",
                          yaxis_title="failures", legend_title="pattern")
        return fig


def cluster_failures(project: Project, *, since: float | None = None,
                     until: float | None = None, distance: float = DISTANCE) -> FailureClusters:
    """Group the failures of [since, until) (default: the last 7 days) by meaning; see the
    module docstring. Embeds with the bundled sentence model."""
    import numpy as np
    import pandas as pd

    until = time.time() if until is None else float(until)
    since = until - 7 * DAY_S if since is None else float(since)
    if since >= until:
        raise ClusterError(f"The window is empty: since ({since}) is not before until "
                           f"({until}).", "Pass since earlier than until.")
    failures = failure_frame(project, since=since, until=until)
    if failures.empty:
        empty = pd.DataFrame(columns=CLUSTER_COLUMNS)
        return FailureClusters(failures.assign(cluster=[], similarity=[]), empty,
                               pd.DataFrame(), since, until, distance)
    from workbench.llm import embed

    texts = [str(t) for t in failures["input"]]
    vectors = np.asarray(embed(texts))
    labels = cluster_vectors(vectors, distance)
    words = keywords(texts, labels)
    names = {label: f"C{label + 1}" for label in set(labels)}
    similarity = np.zeros(len(texts))
    rows = []
    for label in sorted(set(labels)):
        members = [i for i, g in enumerate(labels) if g == label]
        best = typical(vectors, members, n=len(members))
        for row, s in best:
            similarity[row] = s
        examples = list(dict.fromkeys(texts[row] for row, _ in best))[:TYPICAL]
        picked = failures.iloc[members]
        kinds = Counter(k for kind in picked["kind"] for k in kind.split(" + "))
        rows.append({
            "cluster": names[label],
            "name": ", ".join(words[label][:3]) or _short(examples[0], 40),
            "size": len(members), "share": len(members) / len(texts),
            "trend": trend(list(picked["time"]), since, until),
            "keywords": words[label], "examples": examples,
            "kinds": dict(kinds.most_common()),
            "first_seen": pd.Timestamp(picked["time"].min(), unit="s", tz="UTC"),
            "last_seen": pd.Timestamp(picked["time"].max(), unit="s", tz="UTC"),
            "trace_ids": [str(t) for t in picked["trace_id"]],
        })
    failures = failures.assign(cluster=[names[g] for g in labels], similarity=similarity)
    clusters = pd.DataFrame(rows, columns=CLUSTER_COLUMNS)
    days = pd.to_datetime(failures["time"], unit="s", utc=True).dt.floor("D")
    every_day = pd.date_range(pd.Timestamp(since, unit="s", tz="UTC").floor("D"),
                              pd.Timestamp(until, unit="s", tz="UTC").floor("D"), freq="D")
    daily = (pd.crosstab(days, failures["cluster"]).reindex(every_day, fill_value=0)
             .reindex(columns=list(clusters["cluster"]), fill_value=0))
    daily.index.name, daily.columns.name = "day", None
    return FailureClusters(failures, clusters, daily, since, until, distance)


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"
