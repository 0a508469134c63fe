"""Failure patterns: grouped by meaning with the bundled embeddings, named, trended per day, and
exported as issue drafts that Linear's and Jira's CSV importers read."""

from __future__ import annotations

import csv
import io
import json
import time

import numpy as np
import pytest

from production import DAY
from workbench.clusters import (
    DISTANCE,
    ClusterError,
    cluster_failures,
    cluster_vectors,
    failure_frame,
    keywords,
    trend,
)
from workbench.issue_drafts import LINEAR_COLUMNS, issue_drafts, priority
from workbench.sample import datasets_dir


def _labelled(name: str) -> list[dict]:
    path = datasets_dir() / f"failure_clusters_{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(("name", "floor"), [("tune", 0.95), ("eval", 0.8)])
def test_the_distance_groups_failures_as_people_would(name, floor):
    """The threshold was tuned on the first set; the second, written independently with other
    themes, is the honest measure (1.00 and 0.87 when chosen; see benchmarks/bench_clusters)."""
    from sklearn.metrics import adjusted_rand_score

    from workbench.llm import embed

    rows = _labelled(name)
    labels = cluster_vectors(embed([r["text"] for r in rows]), DISTANCE)
    assert adjusted_rand_score([r["theme"] for r in rows], labels) >= floor
    assert len(set(labels)) <= 2 * len({r["theme"] for r in rows})


def test_groups_are_numbered_largest_first_and_the_distance_is_checked():
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    vectors = np.stack([b, a, a, a, b * 0.99 + a * 0.01])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert cluster_vectors(vectors) == [1, 0, 0, 0, 1]
    assert cluster_vectors(vectors[:1]) == [0] and cluster_vectors(vectors[:0]) == []
    with pytest.raises(ClusterError, match="cosine distance"):
        cluster_vectors(vectors, distance=0)


def test_keywords_set_a_group_apart_and_need_two_members():
    texts = ["Where is my refund for the shoes", "Refund never arrived for the shoes",
             "I was charged twice", "Two payments taken, charged twice", "parcel stuck"]
    found = keywords(texts, [0, 0, 1, 1, 2])
    assert found[0][:2] == ["shoe", "refund"] or set(found[0][:2]) == {"shoe", "refund"}
    assert "charged" in found[1] and "twice" in found[1]
    assert "the" not in found[0] and "for" not in found[0]
    assert set(found[2]) == {"parcel", "stuck"}  # one member: its own words


def test_trend_compares_the_two_halves_of_the_window():
    now, week = 100 * DAY, 7 * DAY
    start = now - week
    assert trend([now - 1, now - 2, now - 3], start, now) == "new"
    assert trend([start + 1, now - 1, now - 2, now - 3], start, now) == "rising"
    assert trend([start + 1, start + 2, start + 3, now - 1], start, now) == "falling"
    assert trend([start + 1, now - 1], start, now) == "steady"
    assert trend([now - 1], now - DAY, now) == "—"  # a day cannot show a trend per day


def test_failures_are_feedback_and_failed_requests_once_each(shop):
    failures = failure_frame(shop.project)
    assert set(failures["trace_id"]) == {*shop.refund_traces, *shop.charge_traces,
                                        *shop.failed_traces}
    kinds = failures.set_index("trace_id")["kind"]
    assert set(kinds[shop.refund_traces]) == {"thumbs down"}
    assert sorted(kinds[shop.failed_traces]) == ["HTTP 502", "HTTP 502", "unparsable",
                                                 "unparsable"]
    corrected = failures[failures["expected"].notna()]
    assert set(corrected["trace_id"]) == set(shop.refund_traces[:2])
    assert failures["time"].is_monotonic_increasing
    recent = failure_frame(shop.project, since=time.time() - DAY)
    assert not set(recent["trace_id"]) & set(shop.charge_traces)  # five days old


def test_the_week_has_four_named_patterns_with_trends(shop):
    found = cluster_failures(shop.project)
    clusters = found.clusters.set_index("cluster")
    assert list(clusters["size"]) == [5, 4, 2, 2]
    refund, charge = clusters.loc["C1"], clusters.loc["C2"]
    assert set(refund["trace_ids"]) == set(shop.refund_traces)
    assert set(charge["trace_ids"]) == set(shop.charge_traces)
    assert "refund" in refund["keywords"] and "refund" in refund["name"]
    assert (refund["trend"], charge["trend"]) == ("new", "falling")
    assert refund["share"] == pytest.approx(5 / 13)
    assert len(refund["examples"]) == 3 and all(e in found.failures["input"].values
                                                for e in refund["examples"])
    assert refund["kinds"] == {"thumbs down": 5}
    assert {clusters.loc["C3", "name"], clusters.loc["C4", "name"]} == {"explode", "garble"}
    # Per day: 8 days (the window's first and last day), the charges five days back.
    assert len(found.daily) == 8 and found.daily.to_numpy().sum() == 13
    assert found.daily["C2"].iloc[2] == 4 and found.daily["C1"].iloc[-1] == 5
    members = found.failures[found.failures["cluster"] == "C1"]
    assert members["similarity"].between(0.3, 1.0001).all()
    assert "13 failures in 4 patterns" in found.sentence and "Rising or new" in found.sentence
    figure = found.figure()
    assert [t.name.split(":")[0] for t in figure.data] == ["C1", "C2", "C3", "C4"]
    assert figure.layout.barmode == "stack"


def test_a_quiet_window_has_no_patterns(shop):
    found = cluster_failures(shop.project, since=time.time() - 60, until=time.time() - 30)
    assert found.clusters.empty and found.failures.empty
    assert found.sentence.startswith("No failures")
    with pytest.raises(ClusterError, match="window is empty"):
        cluster_failures(shop.project, since=10, until=5)


def test_priority_rules():
    assert priority(5, 0.4, "steady") == "High" and priority(3, 0.1, "rising") == "High"
    assert priority(3, 0.1, "steady") == "Medium" and priority(2, 0.9, "new") == "Medium"
    assert priority(1, 1.0, "new") == "Low"


def test_issue_drafts_for_linear_and_jira(shop, tmp_path):
    found = cluster_failures(shop.project)
    drafts = issue_drafts(shop.project, found, tmp_path / "drafts")
    assert [p.name for p in drafts.markdown][0].startswith("C1-refund")
    first = drafts.markdown[0].read_text(encoding="utf-8")
    assert first.startswith("# refund")
    for trace_id in shop.refund_traces:  # every trace, and the typical ones in the table
        assert f"`{trace_id}`" in first
    assert "| billing |" in first  # the user's correction is the expected answer
    assert "workbench maintain triage --dataset support" in first

    with open(drafts.linear_csv, newline="", encoding="utf-8") as fh:
        linear = list(csv.DictReader(fh))
    assert list(linear[0]) == LINEAR_COLUMNS and len(linear) == 4
    assert linear[0]["Priority"] in {"Urgent", "High", "Medium", "Low", "No priority"}
    assert linear[0]["Labels"].split(", ")[:2] == ["llm-failure", "pattern-c1"]
    assert shop.refund_traces[0] in linear[0]["Description"]

    with open(drafts.jira_csv, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header[0] == "Summary" and header.count("Labels") >= 3
    assert all(h.replace(" ", "").isalpha() for h in header)  # no punctuation in the header
    assert all(len(r) == len(header) for r in rows)  # empty cells kept, never omitted
    labels = [cell for r in rows[1:] for h, cell in zip(header, r, strict=True)
              if h == "Labels" and cell]
    assert labels and not any(" " in label for label in labels)
    assert rows[1][header.index("Priority")] == "High"
    assert "**" not in rows[1][header.index("Description")]  # plain text for Jira

    again = issue_drafts(shop.project, cluster_failures(shop.project, since=time.time() - DAY),
                         tmp_path / "drafts")  # the folder is replaced whole
    assert len(list((tmp_path / "drafts").glob("*.md"))) == len(again.drafts) == 3
    assert not list(tmp_path.glob(".staging-*"))
    text = io.StringIO(again.jira_csv.read_text(encoding="utf-8"))
    assert next(csv.reader(text))[0] == "Summary"  # no byte-order mark before it
