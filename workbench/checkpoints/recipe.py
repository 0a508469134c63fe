"""What each phase of the learning path leaves in the sample project, done by the kernel.

``datasets/tools/make_checkpoints.py`` runs these steps, in the learning path's order, on a
fresh project made from the bundled sample, and records what each one added (``build``). Each
step is the headless path of its notebook, made deterministic: the same items, the same seeds,
no timing-dependent work (no load test, no burst), so two builds with the same model hold the
same work — only timestamps, ids and measured latencies differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.project import Project

# Phase 4 runs these starter techniques side by side on the validation split: quick ones that
# need nothing but the prompt (a few-shot prompt could only be served or red-teamed with its
# train split at hand, and the structured one needs 80 tokens on the bundled model).
PHASE4_TECHNIQUES = ("zero_shot", "role_system", "delimited")
PHASE4_ITEMS = 6
PHASE3_ITEMS = 10
PHASE3_REFERENCE = "fake/echo"  # what a model that understands nothing scores
PHASE6_ITEMS = 6
PHASE6_REPEATS = 2
PHASE7_ITEMS = 6
# Each round takes at most requests + rated answers + 1 malformed request tokens from the
# deployment's burst (10): 6 stays within it.
PHASE8_REQUESTS = 6
PHASE8_ROUNDS = 2


def _split(project: Project):
    from workbench.bundled import SAMPLE_DATASET
    from workbench.data.versioning import find_split

    return find_split(project, prefer=SAMPLE_DATASET)


def phase1(project: Project, model: str) -> None:
    """The problem: the sample card's use case, success metrics and constraints."""
    from workbench.sample import fill_sample_card

    fill_sample_card(project)


def phase2(project: Project, model: str) -> None:
    """The data: import, clean, redact, split (each its own version); then phase 1's classical
    baseline, which needs the split to train and test on (notebook 01 prepares the data for it
    too)."""
    from workbench.baseline import run_baseline
    from workbench.data.splitting import load_split
    from workbench.sample import prepare_sample_data

    split = prepare_sample_data(project)
    run_baseline(project, load_split(project, split.name, "train"),
                 load_split(project, split.name, "test"))


def phase4(project: Project, model: str) -> None:
    """Prompts: starter techniques saved as versions of the sample prompt and run side by side
    on the validation split; the best one is tagged ``candidate`` (the version later phases
    pick by default)."""
    from workbench.bundled import SAMPLE_PROMPT
    from workbench.compare import compare_prompt_versions
    from workbench.prompts import starter_prompts, tag_prompt

    split = _split(project)
    starters = starter_prompts(split.value.labels or [])
    techniques = compare_prompt_versions(
        project, SAMPLE_PROMPT, {name: starters[name] for name in PHASE4_TECHNIQUES},
        dataset=split.name, model=model, limit=PHASE4_ITEMS, concurrency=1)
    table = techniques.table()
    # The most accurate, then the best parsed; on a tie the earlier (simpler) version.
    ranked = table.assign(
        _quality=table.get("accuracy", 0.0).fillna(-1.0),
        _parsed=table.get("parse_rate", 0.0).fillna(-1.0),
    ).sort_values(["_quality", "_parsed", "version"], ascending=[False, False, True],
                  kind="stable")
    best = int(ranked.iloc[0]["version"])
    tag_prompt(project, SAMPLE_PROMPT, best, "candidate")


def phase3(project: Project, model: str) -> None:
    """Models: the candidate prompt on the validation split with the model and a reference that
    understands nothing; the model is chosen in the card."""
    from workbench.bundled import SAMPLE_PROMPT
    from workbench.compare import choose, compare_models

    split = _split(project)
    compare_models(project, SAMPLE_PROMPT, [model, PHASE3_REFERENCE], dataset=split.name,
                   version="candidate", limit=PHASE3_ITEMS, concurrency=1, progress=False)
    choose(project, model, f"Runs offline on a laptop at no cost; {PHASE3_REFERENCE} shows "
                           "what a model that understands nothing scores.")


def phase6(project: Project, model: str) -> None:
    """Evaluation: repeats on the test split, the first blessed as the baseline; the offline
    stand-in judge compared with the sample's shipped labels (recorded, never trusted)."""
    from workbench.bundled import SAMPLE_PROMPT
    from workbench.evaluate import baseline_runs, calibration, judge, judge_sample, stats
    from workbench.prompts.defaults import default_version

    split = _split(project)
    version, _ = default_version(project, SAMPLE_PROMPT)
    runs = stats.run_repeats(project, SAMPLE_PROMPT, PHASE6_REPEATS, version=version,
                             dataset=split.name, split="test", model=model,
                             limit=PHASE6_ITEMS, concurrency=1, progress=False)
    baseline_runs.bless(project, runs[0].run_id, note="blessed in phase 6 after repeats")
    rows = judge_sample.load_sample()
    people, labelled_by, _ = judge_sample.people_labels(rows, {})
    judge_model = judge_sample.stand_in_judge()
    verdicts = judge_sample.judge_sample(project, judge_model, rows)
    calibration.calibrate(project, judge.judge_name(judge_sample.support_rubric(), judge_model),
                          verdicts, people, labelled_by=labelled_by)


def phase7(project: Project, model: str) -> None:
    """Deployment: one evaluation on the test split as the evidence, then the deployment —
    forced past the gate when it fails, which the decision log records."""
    from workbench.bundled import SAMPLE_PROMPT
    from workbench.prompts.defaults import default_version
    from workbench.runs import start_run
    from workbench.serve import plan_deployment

    split = _split(project)
    version, _ = default_version(project, SAMPLE_PROMPT)
    evidence = start_run(project, SAMPLE_PROMPT, version=version, dataset=split.name,
                         split="test", model=model, limit=PHASE7_ITEMS, concurrency=1,
                         progress=False)
    plan_deployment(project, SAMPLE_PROMPT, version=version, model=model,
                    run_id=evidence.run_id, force=True)


def phase8(project: Project, model: str) -> None:
    """Monitoring: simulated users over HTTP (answers, a bad key, wrong fields, feedback), then
    the card's alert rules checked on that traffic.

    The users come in rounds no bigger than the deployment's burst, with a pause that refills
    it: whether a request is rate limited would otherwise depend on this machine's speed, and
    two builds would hold different traffic."""
    import secrets
    import time

    from workbench.monitor import check_alerts
    from workbench.sample import simulate_users
    from workbench.serve import latest_deployment, start_server

    spec = latest_deployment(project).value
    key = "wb-" + secrets.token_urlsafe(16)
    service = start_server(project, api_keys=[key])
    try:
        for round_ in range(PHASE8_ROUNDS):
            if round_:
                time.sleep(spec.burst / (spec.rate_limit_per_minute / 60) + 1)
            sent = simulate_users(project, service.url, key, requests=PHASE8_REQUESTS,
                                  seed=round_)
            if 429 in sent["statuses"]:
                raise RuntimeError(f"simulated users were rate limited ({sent}): make "
                                   "PHASE8_REQUESTS smaller than the deployment's burst")
    finally:
        service.stop()
    check_alerts(project)


def phase9(project: Project, model: str) -> None:
    """Maintenance: thumbs-down answers with corrections become test cases in a new dataset
    version; the deployment is evaluated again against the blessed baseline, and gated."""
    from workbench import maintain
    from workbench.serve import latest_deployment

    deployment = latest_deployment(project).value
    dataset = _split(project).name
    maintain.add_test_cases(project, dataset, maintain.cases_from_feedback(project))
    maintain.ensure_baseline(project, deployment.prompt, deployment.evidence_run)
    maintain.re_evaluate(project, deployment.prompt, dataset, version=deployment.prompt_version,
                         model=deployment.model, scope="baseline", concurrency=1)


# Phase 5 (fine-tuning) is last on the path: no checkpoint holds what it leaves.
STEPS: dict[int, Callable[[Project, str], None]] = {
    1: phase1, 2: phase2, 4: phase4, 3: phase3, 6: phase6, 7: phase7, 8: phase8, 9: phase9,
}
