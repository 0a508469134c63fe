"""Solutions to the guided notebooks' exercises, for instructors (``workbench exercises
--solutions DIR`` writes them out to hand around later). Nothing in the notebooks or the kernel
imports this module.

Each solution is a function of the project that does what a student would do, through the
same kernel calls the notebooks make, and leaves the project so that ``check`` passes. Where an
exercise needs a model, the solution takes it from ``Models``: the bundled model by default,
and scripted ``fake/`` models in the workbench's own tests (``Models.scripted``), where the
point is that the check reads what the kernel wrote. Exercise 04.2 needs a model that reaches
the card's bar: the bundled 135M model does not on the sample (a hosted model, or the bundled
model with a good adapter, is the honest route there).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.project import Project

BUNDLED = "local/smollm2-135m"


@dataclass(frozen=True)
class Models:
    """Which model each solution uses. ``main`` answers the task, ``other`` is the second
    model of a comparison, ``strong`` one that reaches the card's quality bar, ``judge`` a judge
    model that follows the rubric's reply format, ``broken`` one that fails on purpose."""

    main: str = BUNDLED
    other: str = "fake/echo"
    strong: str = BUNDLED
    judge: str = BUNDLED
    broken: str = "fake/echo:fail=500,fail_rate=1"

    @classmethod
    def scripted(cls, project: Project) -> Models:
        """Fake models for tests: ``strong`` answers every message of the project's datasets
        with its expected label (an oracle: what the check sees is the run, not the model),
        ``judge`` passes an answer when it shares enough words with the reference."""
        from workbench.evaluate.judge_sample import _keyword_verdict
        from workbench.llm.fake import register_fake

        answers = _expected_by_input(project)

        def oracle(messages: list[dict[str, Any]]) -> str:
            text = messages[-1]["content"]
            hit = next((label for known, label in answers if known and known in text), None)
            return hit or "other"

        def judge(messages: list[dict[str, Any]]) -> str:
            ok = _keyword_verdict(messages[-1]["content"])
            return '{"score": %d, "reason": "scripted judge"}' % (5 if ok else 1)

        return cls(main="fake/echo", other=register_fake("exercise-other", ["other"]),
                   strong=register_fake("exercise-oracle", oracle),
                   judge=register_fake("exercise-judge", judge))


def _expected_by_input(project: Project) -> list[tuple[str, str]]:
    from workbench.data.versioning import datasets, load_rows

    out = []
    for name in datasets(project):
        for row in load_rows(project, name):
            if row.get("input") and row.get("expected") is not None:
                out.append((str(row["input"]), str(row["expected"])))
    return sorted(out, key=lambda pair: -len(pair[0]))  # longest first: no prefix mix-ups


def _split_data(project: Project):
    """The split sample dataset (phase 2 done the sample's way when it is missing)."""
    from workbench import sample
    from workbench.data.versioning import find_split

    if not project.card().get("use_case"):
        sample.fill_sample_card(project)
    found = find_split(project, prefer=sample.SAMPLE_DATASET)
    return found if found is not None else sample.prepare_sample_data(project)


def _prompt(project: Project) -> str:
    from workbench import sample

    _split_data(project)
    if sample.SAMPLE_PROMPT not in _prompts(project):
        sample.save_sample_prompt(project)
    return sample.SAMPLE_PROMPT


def _prompts(project: Project) -> list[str]:
    from workbench.prompts import list_prompts

    return list_prompts(project)


# -- phase 1 -------------------------------------------------------------------------------------

def solve_01_1(project: Project, models: Models = Models()) -> None:
    """A card whose success can be measured: use case, task type, a quality target and an
    operational one, each a bar a real system could miss."""
    def change(card: dict[str, Any]) -> None:
        card["use_case"] = {
            "description": "Route each incoming support message to the right team's queue.",
            "users": "Support agents", "task_type": "classification",
            "inputs": "One customer message", "outputs": "One intent label"}
        card["metrics"] = [
            {"name": "accuracy", "target": 0.85, "direction": ">=", "unit": "fraction"},
            {"name": "p95_latency", "target": 2.0, "direction": "<=", "unit": "s"}]

    project.update_card(change)


def solve_01_2(project: Project, models: Models = Models()) -> None:
    """Run the non-LLM baseline on the split data, then log what it means."""
    from workbench.baseline import run_baseline
    from workbench.card import add_decision
    from workbench.data.splitting import load_split

    dataset = _split_data(project)
    train = load_split(project, dataset.name, "train")
    test = load_split(project, dataset.name, "test")
    result = run_baseline(project, train, test).value
    accuracy = result.metrics.get("accuracy")
    add_decision(project, 1, "Go on with an LLM, and keep the baseline as the bar to beat",
                 f"The TF-IDF baseline reaches accuracy {accuracy:.2f} on the test split; an "
                 "LLM is worth its cost only if it does clearly better than that.")


# -- phase 2 -------------------------------------------------------------------------------------

# What the default scan does not know: dates of birth (after a cue), UK National Insurance
# numbers, UK driving licence numbers, online handles and user names.
_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("DATE_OF_BIRTH", re.compile(
        r"(?i)(?<=date of birth is )\S+|(?<=\bDOB )[\d./-]+\d|(?<=born on )\d{1,2} [A-Z][a-z]+ "
        r"\d{4}")),
    ("NI_NUMBER", re.compile(r"\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")),
    ("DRIVING_LICENCE", re.compile(r"\b[A-Z9]{5}\d{6}[A-Z9]{2}\d[A-Z]{2}\b")),
    ("ONLINE_ID", re.compile(r"(?<![\w.])@\w+|(?i:(?<=username is ))[\w.]+")),
]


def redact_more(text: str) -> str:
    for kind, pattern in _PATTERNS:
        text = pattern.sub(f"<{kind}>", text)
    return text


def solve_02_1(project: Project, models: Models = Models()) -> None:
    """Import the set, run the default scan, read what it left, add patterns for the rest."""
    from workbench.data import import_data, load, save_version
    from workbench.exercises.catalog.p02_data import PII_DATASET, exercise_file
    from workbench.pii import redact_dataset

    import_data(project, exercise_file("pii_hunt.csv"), name=PII_DATASET, input="text", id="id")
    scanned = redact_dataset(project, PII_DATASET)
    df = load(project, PII_DATASET, scanned.version)
    df["input"] = df["input"].map(redact_more)
    save_version(project, PII_DATASET, df, transform="redact_pii",
                 params={"patterns": [kind for kind, _ in _PATTERNS]}, parent=scanned.version)


def solve_02_2(project: Project, models: Models = Models()) -> None:
    """Find suspects with ``label_issues`` (a classifier trained on the rest disagrees), read
    them, and relabel. The corrections below are the answer key shipped with the exercise."""
    from workbench.bundled import SAMPLE_DATASET
    from workbench.data import get_version, load, save_version
    from workbench.exercises.catalog.p02_data import label_errors

    _split_data(project)
    latest = get_version(project, SAMPLE_DATASET)
    df = load(project, SAMPLE_DATASET, latest.version)
    for ticket, labels in label_errors().items():
        df.loc[df["id"].astype(str) == ticket, "expected"] = labels["correct"]
    save_version(project, SAMPLE_DATASET, df, transform="label",
                 params={"relabelled": sorted(label_errors())}, parent=latest.version)


# -- phase 3 -------------------------------------------------------------------------------------

def solve_03_1(project: Project, models: Models = Models()) -> None:
    """Two models on the same six validation items, then a choice with its reason."""
    from workbench.card import choose_model
    from workbench.runs import start_run

    prompt = _prompt(project)
    dataset = _split_data(project).name
    for model in (models.main, models.other):
        start_run(project, prompt, dataset=dataset, model=model, limit=6, progress=False)
    choose_model(project, models.main, "Best accuracy of the two on the same six validation "
                                      "items, within the latency and cost targets.")


def solve_03_2(project: Project, models: Models = Models()) -> None:
    """The chosen model's latest run within the card's latency and cost targets."""
    from workbench.card import choose_model
    from workbench.runs import start_run

    prompt = _prompt(project)
    choose_model(project, models.main, "Cheap and fast enough for the card's targets.")
    start_run(project, prompt, dataset=_split_data(project).name, model=models.main, limit=6,
              progress=False)


# -- phase 4 -------------------------------------------------------------------------------------

def solve_04_1(project: Project, models: Models = Models()) -> None:
    """A new version that changes only the system prompt; both run on the same items."""
    from workbench.prompts import load_prompt, save_prompt
    from workbench.runs import start_run

    prompt = _prompt(project)
    dataset = _split_data(project).name
    first = load_prompt(project, prompt)
    second = save_prompt(project, prompt, first.value.model_copy(update={
        "system": (first.value.system or "") + "\nAnswer with the label only, in lower case."}))
    for version in (first.version, second.version):
        start_run(project, prompt, version=version, dataset=dataset, model=models.main,
                  limit=6, progress=False)


def solve_04_2(project: Project, models: Models = Models()) -> None:
    """The whole validation split, on a model good enough for the bar."""
    from workbench.prompts import load_prompt, save_prompt
    from workbench.runs import start_run

    prompt = _prompt(project)
    current = load_prompt(project, prompt)
    save_prompt(project, prompt, current.value.model_copy(update={"model": models.strong}))
    start_run(project, prompt, dataset=_split_data(project).name, model=models.strong,
              progress=False)


# -- phase 5 (the bundled model: training is real) ------------------------------------------------

ADAPTER = "exercise"


def solve_05_1(project: Project, models: Models = Models()):
    """A quick LoRA (a few steps on 8 train examples: enough to see the loop, not to learn the
    task), then base and adapter on the same four test items. Returns the comparison."""
    from workbench.finetune import FineTune, before_after, build_training_data, make_options

    prompt = _prompt(project)
    options = make_options(epochs=1, learning_rate=2e-3, eval_every=2, validation_examples=4,
                           checkpoint_every=2)
    data = build_training_data(project, prompt, limit=8, options=options)
    FineTune(project, data, ADAPTER, options=options).run(progress=False)
    return before_after(project, prompt, ADAPTER, limit=4)


def solve_05_2(project: Project, models: Models = Models()) -> None:
    """The before/after verdict in the decision log."""
    from workbench.finetune import before_after, record_decision

    if (project.adapters_dir / ADAPTER).is_dir():
        compared = before_after(project, _prompt(project), ADAPTER, limit=4)
    else:
        compared = solve_05_1(project, models)
    record_decision(project, compared)


# -- phase 6 -------------------------------------------------------------------------------------

def solve_06_1(project: Project, models: Models = Models()) -> None:
    """Label the bundled replies yourself (here: the verdicts an instructor gave them), judge
    them, and calibrate. A judge model must follow the reply format: a hosted one offline is
    not available, and the bundled 135M model cannot."""
    from workbench.evaluate import judge_sample
    from workbench.evaluate.calibration import calibrate
    from workbench.evaluate.judge import judge_name

    rows = judge_sample.load_sample()
    mine = {r["id"]: r["human_verdict"] == "pass" for r in rows}
    verdicts = judge_sample.judge_sample(project, models.judge, rows)
    calibrate(project, judge_name(judge_sample.support_rubric(), models.judge), verdicts, mine,
              labelled_by="people")


def solve_06_2(project: Project, models: Models = Models()) -> None:
    """A run on (at least) 20 items of the test split, blessed."""
    from workbench.evaluate.baseline_runs import bless
    from workbench.runs import start_run

    run = start_run(project, _prompt(project), dataset=_split_data(project).name, split="test",
                    model=models.main, limit=20, progress=False)
    bless(project, run.run_id, note="first test-split baseline")


# -- phases 7-9: a deployment, served for real on a free port -------------------------------------

def _deploy(project: Project, model: str):
    from workbench.runs import start_run
    from workbench.serve import plan_deployment

    prompt = _prompt(project)
    run = start_run(project, prompt, dataset=_split_data(project).name, split="test",
                    model=model, limit=6, progress=False)
    return plan_deployment(project, prompt, model=model, run_id=run.run_id, force=True)


def _serving(project: Project, send: Callable[[Any, dict[str, str]], None], *,
             key: str | None = None) -> None:
    """Start the project's service, call ``send(client, headers)``, stop it."""
    import secrets

    import httpx

    from workbench.serve import start_server

    extra = [] if key else ["wb-" + secrets.token_urlsafe(16)]
    service = start_server(project, api_keys=extra)
    try:
        with httpx.Client(base_url=service.url, timeout=60, trust_env=False) as client:
            send(client, {"Authorization": f"Bearer {key or extra[0]}"})
    finally:
        service.stop()


def solve_07_1(project: Project, models: Models = Models()) -> None:
    """Abuse in plain words is no injection: the card's blocked terms make the filter refuse it."""
    _deploy(project, models.main)

    def change(card: dict[str, Any]) -> None:
        card.setdefault("constraints", {})["blocked_terms"] = ["idiot", "idiots", "moron"]

    project.update_card(change)

    def send(client, headers):
        reply = client.post("/v1/predict", headers=headers,
                            json={"input": "You useless idiots, where is my refund?"})
        assert reply.status_code == 422, reply.text

    _serving(project, send)


def solve_07_2(project: Project, models: Models = Models()) -> None:
    """A key limited to two requests a minute, and a third request in the same minute."""
    from workbench.serve.keys import create_key

    _deploy(project, models.main)
    secret = create_key(project, "workshop", rate_limit_per_minute=2)

    def send(client, headers):
        codes = [client.post("/v1/predict", headers=headers, json={"input": "Where is my parcel?"}
                             ).status_code for _ in range(4)]
        assert 429 in codes, codes

    _serving(project, send, key=secret)


def solve_08_1(project: Project, models: Models = Models()) -> None:
    """Break the service on purpose (a model that always fails), send six requests, check."""
    from workbench.monitor import check_alerts

    _deploy(project, models.broken)

    def send(client, headers):
        for _ in range(6):
            client.post("/v1/predict", headers=headers, json={"input": "Where is my parcel?"})

    _serving(project, send)
    check_alerts(project)


def solve_08_2(project: Project, models: Models = Models()) -> None:
    """Users rate the answers; wrong ones get a thumbs down with the right label."""
    from workbench.sample import play_users

    _deploy(project, models.main)
    play_users(project, requests=8)


def solve_09_1(project: Project, models: Models = Models()) -> None:
    """Corrected thumbs-down answers become test cases; the current version fails them, a new
    version (a clearer instruction, on a model that can follow it) passes them."""
    from workbench.maintain import add_test_cases, cases_from_feedback
    from workbench.prompts import load_prompt, save_prompt
    from workbench.runs import start_run

    solve_08_2(project, models)
    prompt = _prompt(project)
    dataset = _split_data(project).name
    cases = cases_from_feedback(project).dropna(subset=["expected"])
    add_test_cases(project, dataset, cases)
    ids = list(cases["case_id"])
    old = load_prompt(project, prompt)
    start_run(project, prompt, version=old.version, dataset=dataset, split="test", ids=ids,
              model=old.value.model or models.main, progress=False)
    new = save_prompt(project, prompt, old.value.model_copy(update={
        "model": models.strong,
        "system": (old.value.system or "") + "\nA message about a delivery is 'shipping'."}))
    start_run(project, prompt, version=new.version, dataset=dataset, split="test", ids=ids,
              model=models.strong, progress=False)


def solve_09_2(project: Project, models: Models = Models()) -> None:
    """Production cases in the test split, then the maintenance re-evaluation and its gate."""
    from workbench.maintain import re_evaluate

    solve_09_1(project, models)
    re_evaluate(project, _prompt(project), _split_data(project).name, model=models.strong)


SOLUTIONS: dict[str, Callable[..., None]] = {
    name.removeprefix("solve_").replace("_", "."): fn
    for name, fn in list(globals().items()) if name.startswith("solve_")}
