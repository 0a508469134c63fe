"""Quality in production: a sampled online judge whose verdicts count only once phase 6's
calibration trusts it, and drift of the inputs against the training data (the real bundled
embeddings model) with a threshold learned from the validation split."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import pytest

from workbench import monitor, monitor_judge
from workbench.tracing import Span, write_span

DATASETS = Path(__file__).resolve().parents[1] / "datasets"
TEAMS = ("billing", "shipping", "account", "technical")


def _answered(project, start, question, answer, *, arm=None):
    trace = f"{random.getrandbits(128):032x}"
    a = {"http.route": "/v1/predict", "http.response.status_code": 200,
         "workbench.request": {"input": question}, "workbench.output": answer,
         "workbench.model": "fake/echo", "workbench.client": "key-a", "workbench.cost_usd": 0.0}
    if arm:
        a["workbench.arm"] = arm
    write_span(project, Span("serve.request", trace, f"{random.getrandbits(64):016x}", None,
                             start, start + 0.1, "ok", None, a))
    return trace


@pytest.fixture
def judged_traffic(project, fake_model):
    """120 answers in the last hour, right when the team named is the one the question is
    about; a fake judge that says so (and costs money, like a hosted one)."""
    rng = random.Random(4)
    truth = {}
    now = time.time()
    for i in range(120):
        team = rng.choice(TEAMS)
        answer = team if rng.random() < 0.6 else rng.choice(TEAMS)
        trace = _answered(project, now - 3000 + i * 20, f"A question about {team} #{i}", answer,
                          arm="canary" if i % 4 == 0 else None)
        truth[trace] = answer == team
    project.store.flush()

    def judge(messages):
        text = messages[-1]["content"]
        question = text.split("QUESTION:\n")[1].split("\n\nANSWER:")[0]
        answer = text.split("ANSWER:\n")[-1].split("\n\nReply")[0]
        right = f"about {answer.strip()} " in question
        return json.dumps({"score": 5 if right else 1, "reason": "team check"})

    model = fake_model("live-judge", judge, input_cost_per_token=1e-6)
    project.update_card(lambda c: c.__setitem__("monitoring", {
        "judge_model": model, "judge_sample_rate": 0.3,
        "judge_criteria": ["The answer names the team the question is about"],
        "judge_rubric": "team-check"}))
    return project, truth, model


def test_the_online_judge_samples_once_and_its_verdicts_wait_for_calibration(judged_traffic):
    project, truth, model = judged_traffic
    name = f"team-check@{model}"
    expected = [t for t in truth if monitor_judge.in_sample(t, name, 0.3)]
    assert 20 < len(expected) < 60
    done = monitor_judge.judge_live(project)
    assert (done.judge, done.trust, done.judged, done.unreadable) == \
        (name, "uncalibrated", len(expected), 0)
    assert "not counted as quality until it is calibrated" in done.sentence
    assert monitor_judge.judge_live(project).judged == 0  # the same sample: nothing new
    # The judge's calls are model calls of the project: traced, and spending from the budget.
    calls = monitor.window_metrics(project, source="calls")
    assert calls["answered"] == len(expected) and calls["cost_usd"] > 0

    quality = monitor_judge.live_quality(project)
    row = quality.iloc[0]
    assert (row["judge"], row["trust"], bool(row["counted"])) == (name, "uncalibrated", False)
    assert math.isnan(row["quality"]) and "not counted as quality" in row["note"]
    assert row["pass_rate"] == pytest.approx(sum(truth[t] for t in expected) / len(expected))
    assert row["low"] < row["pass_rate"] < row["high"]
    by_arm = monitor_judge.live_quality(project, by="arm")
    assert set(by_arm["arm"]) == {"live", "canary"}

    project.update_card(lambda c: c.setdefault("metrics", []).append(
        {"name": "judge_score", "target": 0.9, "direction": ">=", "unit": "fraction"}))
    from workbench.card import load_card

    alert = monitor_judge.quality_alerts(project, load_card(project))[0]
    assert (alert.kind, alert.status) == ("quality", "no data")
    assert "uncalibrated" in alert.message

    # People label the judged requests; the judge agrees with them, so it becomes trusted and
    # its verdicts (the same ones) now count.
    frame = monitor_judge.judgements_frame(project)
    assert frame["question"].str.startswith("A question about").all()
    stored = monitor_judge.calibrate_live_judge(project, name,
                                                {t: truth[t] for t in frame["trace_id"]})
    assert stored.value.trusted, stored.value.reason
    counted = monitor_judge.live_quality(project).iloc[0]
    assert counted["trust"] == "trusted" and counted["quality"] == counted["pass_rate"]
    fired = monitor_judge.quality_alerts(project, load_card(project))[0]
    assert fired.status == "firing" and "online judge_score" in fired.message
    assert fired.value == pytest.approx(counted["mean_score"])


def test_an_untrusted_judge_stays_uncounted(judged_traffic):
    project, truth, _ = judged_traffic
    monitor_judge.judge_live(project, sample_rate=0.5)
    frame = monitor_judge.judgements_frame(project)
    name = frame["judge"].iloc[0]
    monitor_judge.calibrate_live_judge(project, name,  # people who disagree with the judge
                                       {t: not truth[t] for t in frame["trace_id"]})
    row = monitor_judge.live_quality(project).iloc[0]
    assert row["trust"] == "untrusted" and not row["counted"] and math.isnan(row["quality"])
    assert "untrusted" in row["note"]


def test_the_online_judge_needs_a_judge_and_a_reference_free_rubric(project):
    from workbench.card import load_card
    from workbench.evaluate.judge import Rubric

    with pytest.raises(monitor.MonitorError, match="No online judge is set"):
        monitor_judge.judge_live(project)
    assert monitor_judge.quality_alerts(project, load_card(project)) == []  # nothing to say
    needs_reference = Rubric(criteria=["Matches the reference"], reference_required=True)
    with pytest.raises(monitor.MonitorError, match="live traffic has none"):
        monitor_judge.judge_live(project, judge_model="fake/echo", rubric=needs_reference)
    project.update_card(lambda c: c.__setitem__("monitoring", {"judge_model": "fake/echo"}))
    with pytest.raises(monitor.MonitorError, match="no rubric"):
        monitor_judge.judge_live(project)


# -- drift -----------------------------------------------------------------------------------------

@pytest.fixture
def deployed(sample_project):
    from workbench import sample

    project = sample_project
    project.update_card(lambda c: c.setdefault("model", {}).update(chosen="fake/echo"))
    sample.fill_prerequisites(project, 8)
    return project


def test_drift_is_measured_against_the_training_data_with_a_learned_threshold(deployed):
    from workbench.data.splitting import load_split
    from workbench.data.versioning import find_split
    from workbench.monitor_drift import check_drift, drift_alerts, drift_frame

    project = deployed
    now = time.time()
    stored = find_split(project)
    test = [str(t) for t in load_split(project, stored.name, "test")["input"]]
    for i, text in enumerate(test[:40]):  # yesterday: new messages like the training data
        _answered(project, now - 86400 - 3000 + i, text, "billing")
    questions = [json.loads(line)["question"] for line in
                 (DATASETS / "product_qa.jsonl").read_text().splitlines() if line.strip()]
    for i, text in enumerate(questions[:40]):  # today: questions about another product
        _answered(project, now - 3000 + i, text, "other")
    for i in range(5):  # the same message many times is one input
        _answered(project, now - 2000 + i, questions[0], "other")
    project.store.flush()

    calm = check_drift(project, since=now - 86400 - 3600, until=now - 86400 + 3600, now=now)
    assert calm.status == "no drift", calm.sentence
    assert calm.inputs == 40 and calm.statistic < calm.threshold and calm.p_value > 0.05
    assert calm.dataset == stored.name
    moved = check_drift(project, window_s=3600, now=now)
    assert moved.status == "drift", moved.sentence
    assert moved.inputs == 40 and moved.statistic > moved.threshold and moved.p_value < 0.01
    assert "have drifted from" in moved.sentence and "validation split" in moved.sentence
    assert len(moved.details["unfamiliar"]) == 5
    history = drift_frame(project)
    assert list(history["status"]) == ["no drift", "drift"]
    assert history["threshold"].notna().all()
    alert = drift_alerts(project, now=now)[0]
    assert (alert.kind, alert.status) == ("drift", "firing")
    assert alert.value == pytest.approx(moved.statistic)
    # The dashboard's figure draws each check against its threshold.
    from workbench.monitor_figures import drift_figure

    assert {t.name for t in drift_figure(project).data} == {"threshold", "distance"}
    # Stored checks keep trace ids, never the inputs' text.
    raw = project.store.db.execute("SELECT details FROM monitor_drift").fetchall()
    assert all(questions[0] not in row[0] for row in raw)

    few = check_drift(project, since=now - 2100, until=now - 1900, now=now, record=False)
    assert few.status == "no data" and "too few" in few.sentence


def test_drift_needs_a_deployment(project):
    from workbench.monitor_drift import DriftError, check_drift

    with pytest.raises(DriftError, match="no deployment"):
        check_drift(project)


def test_the_cli_runs_the_judge_and_says_why_drift_cannot_run(judged_traffic):
    import os
    import shutil
    import subprocess
    import sys

    project, truth, _ = judged_traffic
    exe = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"
    env = {**os.environ, "WORKBENCH_PROJECT": str(project.path)}
    # The test's fake judge lives in this process: the CLI's judge is fake/echo, whose
    # replies (the prompt, echoed) hold no score — unreadable, never a failing answer.
    done = subprocess.run([exe, "monitor", "--judge", "--judge-sample", "0.2", "--judge-model",
                           "fake/echo", "--json", "--no-notify"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)["judge"]
    assert report["judge"] == "team-check@fake/echo" and report["trust"] == "uncalibrated"
    assert report["judged"] == report["unreadable"] == sum(
        monitor_judge.in_sample(t, report["judge"], 0.2) for t in truth)
    assert "not counted as quality" in report["sentence"]
    drift = subprocess.run([exe, "monitor", "--drift"], env=env, capture_output=True,
                           text=True, timeout=120, check=False)
    assert drift.returncode == 1 and "no deployment" in drift.stderr
    assert "Traceback" not in drift.stderr
