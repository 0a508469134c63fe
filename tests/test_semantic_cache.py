"""The semantic cache: measured on labelled data with the real bundled embedding model before
it may be turned on, then served over real HTTP (and shared between replicas through Redis)."""

from __future__ import annotations

import json
import shutil

import httpx
import pandas as pd
import pytest
import redis_server

from workbench.serve import (
    SemanticCacheNotMeasured,
    measure_semantic_cache,
    plan_deployment,
    start_server,
)
from workbench.tracing import spans

KEY = "wb-semantic-key-0123456789"

# Two pairs of near-identical requests: one pair needs the same answer, the other does not.
PAIRS = pd.DataFrame([
    {"text": "My card was charged twice for the same order this month.", "label": "billing"},
    {"text": "My card was charged two times for the same order this month.", "label": "billing"},
    {"text": "Please delete my account and all the data you hold about me.", "label": "account"},
    {"text": "Please delete my account and all of the data you hold about me.",
     "label": "technical"},
    {"text": "The mobile app crashes when I open the settings page.", "label": "technical"},
    {"text": "Where is my parcel? The tracking page has not changed in a week.",
     "label": "shipping"},
])


@pytest.fixture
def labelled(sample_project, fake_model):
    from workbench import sample
    from workbench.data import import_data

    sample.fill_prerequisites(sample_project, 7)
    import_data(sample_project, PAIRS, name="pairs", input="text", expected="label")
    calls = []

    def triage(messages):
        calls.append(messages[-1]["content"])
        text = messages[-1]["content"].lower()
        return "billing" if "charged" in text else "account" if "account" in text else "other"

    fake_model("triage-counter", triage)
    return sample_project, calls


def test_false_hits_are_pairs_served_each_others_answer_with_different_labels(labelled):
    project, _ = labelled
    stored = measure_semantic_cache(project, "pairs", thresholds=[0.9, 0.999])
    m = stored.value
    assert (m.dataset, m.split, m.items, m.exact_duplicates) == ("pairs", "all", 6, 0)
    # at 0.9 both near-identical pairs hit (4 requests), one pair's labels differ (2 of them)
    assert m.at(0.9) == {"threshold": 0.9, "hit_rate": 4 / 6, "false_hit_rate": 2 / 6,
                         "false_share_of_hits": 0.5, "hits": 4, "false_hits": 2, "items": 6}
    assert m.at(0.999)["hits"] == 0 and m.at(0.95) is None
    top = m.examples[0]  # the most similar pair that needs different answers, once
    assert {top["expected"], top["its_expected"]} == {"account", "technical"}
    assert top["similarity"] >= 0.9
    assert all(e["expected"] != e["its_expected"] for e in m.examples)
    assert sum({e["expected"], e["its_expected"]} == {"account", "technical"}
               for e in m.examples) == 1
    figure = m.figure()
    assert [t.name for t in figure.data] == ["hit rate",
                                             "false-hit rate (wrong answers served)"]
    assert list(figure.data[1].y) == [2 / 6, 0.0]


def test_the_sample_measurement_is_monotone_and_recorded(labelled):
    from workbench import sample

    project, _ = labelled
    stored = measure_semantic_cache(project, sample.SAMPLE_DATASET, split="test")
    m = stored.value
    assert m.split == "test" and m.items > 40
    assert m.hits == sorted(m.hits, reverse=True)  # a higher threshold never hits more
    assert all(f <= h for f, h in zip(m.false_hits, m.hits))
    again = measure_semantic_cache(project, sample.SAMPLE_DATASET, split="test",
                                   thresholds=[0.93])
    assert again.version == stored.version + 1


def test_turning_it_on_needs_a_measurement_at_that_threshold(labelled):
    project, _ = labelled
    with pytest.raises(SemanticCacheNotMeasured, match="has not been measured") as refused:
        plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                        semantic_cache=0.9)
    assert "workbench cache measure --thresholds 0.9" in refused.value.fix
    assert not (project.deploy_dir / "service.json").exists()  # nothing half-written
    measure_semantic_cache(project, "pairs", thresholds=[0.9])
    with pytest.raises(SemanticCacheNotMeasured, match=r"\(measured: 0.9\)"):
        plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                        semantic_cache=0.92)
    with pytest.raises(Exception, match="cosine similarity in"):
        plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                        semantic_cache=1.5)
    deployment = plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                                 semantic_cache=0.9)
    assert deployment.spec.semantic_cache == 0.9
    recorded = json.loads((project.deploy_dir / "service.json").read_text())
    assert recorded["semantic_cache"] == 0.9
    assert recorded["semantic_cache_measured"]["false_hit_rate"] == 2 / 6
    assert recorded["semantic_cache_measured"]["dataset"] == "pairs"
    assert "33.3% served a wrong answer" in str(deployment)
    off = plan_deployment(project, "triage", model="fake/triage-counter", force=True)
    assert off.spec.semantic_cache is None  # off by default


def test_the_cli_measures_and_the_deploy_flag_is_refused_without_it(labelled, capsys):
    from workbench.cli import main

    project, _ = labelled
    assert main(["deploy", "triage", "--model", "fake/triage-counter", "--force",
                 "--semantic-cache", "0.9", "--project", str(project.path)]) == 1
    assert "workbench cache measure --thresholds 0.9" in capsys.readouterr().err
    assert main(["cache", "measure", "--dataset", "pairs", "--thresholds", "0.9,0.95",
                 "--project", str(project.path)]) == 0
    out = capsys.readouterr().out
    assert "33.3%" in out and "semantic-cache-v1.html" in out
    report = (project.reports_dir / "semantic-cache-v1.html").read_text()
    assert "Plotly.newPlot" in report and "<script src=" not in report  # opens offline
    assert main(["deploy", "triage", "--model", "fake/triage-counter", "--force",
                 "--semantic-cache", "0.9", "--project", str(project.path)]) == 0
    assert "Semantic cache at similarity 0.9" in capsys.readouterr().out


def _ask(url: str, text: str) -> dict:
    reply = httpx.post(f"{url}/v1/predict", json={"input": text}, timeout=60,
                       headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_the_service_answers_close_requests_from_the_cache(labelled):
    project, calls = labelled
    measure_semantic_cache(project, "pairs", thresholds=[0.9])
    plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                    semantic_cache=0.9, cache=False)
    server = start_server(project, api_keys=[KEY])
    try:
        info = httpx.get(f"{server.url}/v1/info", headers={"X-API-Key": KEY}).json()
        assert info["semantic_cache"] == 0.9
        first = _ask(server.url, PAIRS.text[0])
        assert first["cached"] is False and len(calls) == 1
        close = _ask(server.url, PAIRS.text[1])
        assert close["cached"] is True and close["output"] == first["output"]
        assert len(calls) == 1  # the model was not called
        far = _ask(server.url, PAIRS.text[4])
        assert far["cached"] is False and len(calls) == 2
    finally:
        server.stop()
    traced = {s.attributes["workbench.request_id"]: s.attributes
              for s in spans(project, name="serve.request")}
    assert traced[close["request_id"]]["workbench.cache_hit"] is True
    assert traced[close["request_id"]]["workbench.semantic_similarity"] >= 0.9
    assert "workbench.semantic_similarity" not in traced[far["request_id"]]


def test_replicas_share_entries_through_redis(labelled, tmp_path):
    own = redis_server.start()
    project, calls = labelled
    try:
        measure_semantic_cache(project, "pairs", thresholds=[0.9])
        plan_deployment(project, "triage", model="fake/triage-counter", force=True,
                        semantic_cache=0.9, cache=False)
        project.store.flush()
        project.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        copy = shutil.copytree(project.path, tmp_path / "replica")  # its own database
        a = start_server(project, api_keys=[KEY], redis_url=own.url)
        b = start_server(copy, api_keys=[KEY], redis_url=own.url)
        try:
            first = _ask(a.url, PAIRS.text[2])
            assert first["cached"] is False and len(calls) == 1
            other = _ask(b.url, PAIRS.text[3])
            assert other["cached"] is True and other["output"] == first["output"]
            assert len(calls) == 1
        finally:
            a.stop()
            b.stop()
    finally:
        own.close()
