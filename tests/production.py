"""A week of production for the maintenance tests: a sample project deployed on a scripted fake
model, real HTTP requests to its service, users' feedback, and failures of every kind.

The fake model ``fake/shop`` answers the test split right, but answers refund complaints and
double-charge complaints "other" (users say thumbs down, some with a correction), crashes on
"explode" (HTTP 5xx) and replies gibberish to "garble" (unparsable). The double-charge
complaints are moved five days back in time (their spans and feedback), so the week has a
pattern that faded and one that is new.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

KEY = "production-test-key-0123"
DAY = 86400.0
PRICE_IN, PRICE_OUT = 1e-6, 2e-6  # fake/shop bills like a small hosted model

REFUNDS = ["I returned the shoes three weeks ago and still no refund",
           "Where is my refund? You accepted the return on the 3rd",
           "The money for my returned jacket never came back to my card",
           "Still waiting for the refund of order 5521, it has been a month",
           "My refund has not shown up in my bank account yet"]
CHARGES = ["I was charged twice for the same order",
           "Two identical payments were taken from my card today",
           "My credit card shows a double charge for one purchase",
           "Duplicate payment on my statement, please reverse one"]
CRASHES = ["please explode now", "explode the order form"]
GARBLED = ["garble my answer please", "garble garble"]
RIGHT = {**{t: "billing" for t in REFUNDS}, **{t: "billing" for t in CHARGES}}


@dataclass
class Production:
    project: object
    deployed_run: str
    refund_traces: list[str]
    charge_traces: list[str]
    failed_traces: list[str]
    ok_traces: list[str]


def shop_model(answers: dict[str, str]):
    """The deployed fake model's reply function."""

    def reply(messages):
        text = messages[-1]["content"]
        for question, label in answers.items():
            if question in text:
                return label
        if "explode" in text:
            raise ValueError("simulated crash")
        if any("garble" in str(m.get("content")) for m in messages):  # repair turns too
            return "¯\\_(ツ)_/¯ ???"
        return "other"

    return reply


def make_production(project, *, corrections: int = 2) -> Production:
    """Deploy ``fake/shop`` on the sample project and play a week of users against it. The
    first ``corrections`` refund complaints get a correction with their thumbs down.
    ``fake/shop`` is registered only while the week is played (the week is built once and
    shared by many tests): ``copy_of`` registers it for the test that works on a copy."""
    from workbench.llm import fake

    saved = fake.snapshot()
    try:
        return _play_week(project, corrections)
    finally:
        fake.restore(saved, ["shop"])


def _play_week(project, corrections: int) -> Production:
    from workbench import sample
    from workbench.data.splitting import load_split
    from workbench.evaluate.baseline_runs import bless
    from workbench.llm.fake import register_fake
    from workbench.runs import start_run
    from workbench.serve import plan_deployment, start_server

    sample.fill_prerequisites(project, 7)
    test = load_split(project, "support", "test")
    answers = {str(r["input"]): str(r["expected"]) for r in test.to_dict("records")}
    register_fake("shop", shop_model(answers), input_cost_per_token=PRICE_IN,
                  output_cost_per_token=PRICE_OUT)
    run = start_run(project, "triage", dataset="support", split="test", model="fake/shop",
                    progress=False)
    bless(project, run.run_id)
    plan_deployment(project, "triage", model="fake/shop", run_id=run.run_id, burst=200,
                    rate_limit_per_minute=10_000, force=True)
    server = start_server(project, api_keys=[KEY])
    headers = {"Authorization": f"Bearer {KEY}"}
    traces: dict[str, list[str]] = {"refund": [], "charge": [], "failed": [], "ok": []}
    try:
        with httpx.Client(base_url=server.url, timeout=30, trust_env=False) as client:
            def ask(text: str) -> dict:
                return client.post("/v1/predict", json={"input": text}, headers=headers).json()

            for i, text in enumerate(REFUNDS):
                reply = ask(text)
                traces["refund"].append(reply["trace_id"])
                client.post("/v1/feedback", headers=headers, json={
                    "request_id": reply["request_id"], "rating": "down",
                    **({"correction": "billing"} if i < corrections else {}),
                    "comment": "wrong team"})
            for text in CHARGES:
                reply = ask(text)
                traces["charge"].append(reply["trace_id"])
                client.post("/v1/feedback", headers=headers, json={
                    "request_id": reply["request_id"], "rating": "down"})
            for text in CRASHES:
                client.post("/v1/predict", json={"input": text}, headers=headers)
            for text in GARBLED:
                traces["failed"].append(ask(text)["trace_id"])
            for row in test.head(8).to_dict("records"):
                reply = ask(str(row["input"]))
                traces["ok"].append(reply["trace_id"])
                if len(traces["ok"]) <= 3:
                    client.post("/v1/feedback", headers=headers, json={
                        "request_id": reply["request_id"], "rating": "up"})
    finally:
        server.stop()
    project.store.flush()
    crashed = [r["trace_id"] for r in project.store.query(
        "SELECT trace_id FROM spans WHERE name = 'serve.request' AND status = 'error'")]
    traces["failed"] = crashed + traces["failed"]
    move_back(project, traces["charge"], 5 * DAY)
    return Production(project, run.run_id, traces["refund"], traces["charge"],
                      traces["failed"], traces["ok"])


def move_back(project, trace_ids: list[str], seconds: float) -> None:
    """Make these requests (their spans and feedback) ``seconds`` older."""
    marks = ", ".join("?" * len(trace_ids))
    with project.store.write() as db:
        db.execute(f"UPDATE spans SET start_time = start_time - ?, end_time = end_time - ? "
                   f"WHERE trace_id IN ({marks})", (seconds, seconds, *trace_ids))
        db.execute(f"UPDATE feedback SET created_at = created_at - ? WHERE trace_id IN "
                   f"({marks})", (seconds, *trace_ids))


_BUILT: dict[str, Production] = {}


def week_template(tmp_path_factory) -> Production:
    """The production week, built once per test process (it takes ~15 s): copy it with
    ``copy_of`` before changing it."""
    if "week" not in _BUILT:
        import workbench

        project = workbench.init_project(tmp_path_factory.mktemp("week") / "shop", sample=True)
        built = make_production(project)
        project.store.flush()
        project.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        _BUILT["week"] = built
    return _BUILT["week"]


def copy_of(template: Production, folder, fake_model) -> Production:
    """A private copy of the production week's project, opened, with ``fake/shop`` registered
    through ``fake_model`` (the test's fixture of that name, which removes it afterwards)."""
    import dataclasses
    import shutil

    from workbench.data.splitting import load_split
    from workbench.project import open_project

    target = folder / "shop"
    shutil.copytree(template.project.path, target,
                    ignore=shutil.ignore_patterns("*.db-shm", ".training"))
    project = open_project(target)
    test = load_split(project, "support", "test")
    answers = {str(r["input"]): str(r["expected"]) for r in test.to_dict("records")}
    fake_model("shop", shop_model(answers), input_cost_per_token=PRICE_IN,
               output_cost_per_token=PRICE_OUT)
    return dataclasses.replace(template, project=project)
