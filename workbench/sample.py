"""The bundled sample project, so a workshop can start at any phase."""

from __future__ import annotations

from typing import Any

from workbench.bundled import (  # noqa: F401  (the sample's facts, named here for notebooks)
    PHASE1_TABLES,
    SAMPLE_DATASET,
    SAMPLE_NEAR_DUPLICATE_THRESHOLD,
    SAMPLE_PROMPT,
    datasets_dir,
    sample_card,
    sample_card_text,
)


def fill_sample_card(project) -> None:
    """Put the sample card's use case, metrics and constraints into ``project``'s card (one click
    in any notebook when phase 1 was skipped). The project's name and model choice stay."""
    sample = sample_card()

    def change(card: dict[str, Any]) -> None:
        for table in PHASE1_TABLES:
            card[table] = sample[table]

    project.update_card(change)


def import_sample_data(project, name: str = SAMPLE_DATASET):
    """Import the bundled support messages as dataset ``name`` (phase 2's first step)."""
    from workbench.data import import_data

    return import_data(project, datasets_dir() / "support_messages.csv", name=name,
                       input="text", expected="intent", id="ticket_id", metadata=["channel"])


def prepare_sample_data(project, name: str = SAMPLE_DATASET):
    """Phase 2 in one call on the bundled data: import, clean, redact PII, split 70/15/15.

    For a workshop that starts after phase 2, and for the tour. Each step is its own dataset
    version, exactly as the phase 2 notebook makes them."""
    from workbench.data import clean, split
    from workbench.data.cleaning import (
        drop_empty,
        drop_exact_duplicates,
        drop_near_duplicates,
        normalize_unicode,
        normalize_whitespace,
    )
    from workbench.pii import redact_dataset

    import_sample_data(project, name)
    clean(project, name, [normalize_unicode(), normalize_whitespace(), drop_empty(),
                          drop_exact_duplicates(),
                          drop_near_duplicates(SAMPLE_NEAR_DUPLICATE_THRESHOLD)])
    redact_dataset(project, name)
    return split(project, name, near_duplicate_threshold=SAMPLE_NEAR_DUPLICATE_THRESHOLD)



def save_sample_prompt(project, name: str = SAMPLE_PROMPT):
    """Save the sample classification prompt (a role in the system prompt, the labels of the
    split dataset) as prompt ``name``, for notebooks that start after phase 4."""
    from workbench.data.versioning import find_split
    from workbench.prompts import save_prompt, starter_prompts

    split = find_split(project, prefer=SAMPLE_DATASET)
    labels = (split.value.labels if split else None) or \
        ["account", "billing", "other", "shipping", "technical"]
    return save_prompt(project, name, starter_prompts(labels)["role_system"])


def missing_prerequisites(project, phase: int) -> list[str]:
    """What a notebook of ``phase`` needs from earlier phases and the project lacks:
    "card" (phase 1), "data" (a split dataset, phase 2), "prompt" (phase 4), "deployment"
    (phase 7, for monitoring and maintenance), "feedback" (phase 8, for maintenance)."""
    from workbench.data.versioning import find_split

    missing = []
    if phase > 1 and not project.card().get("use_case"):
        missing.append("card")
    if phase > 2 and find_split(project, prefer=SAMPLE_DATASET) is None:
        missing.append("data")
    if phase in (3, 5, 6, 7, 8, 9) and not project.records.count("prompt"):
        missing.append("prompt")
    if phase in (8, 9) and not project.records.count("deployment"):
        missing.append("deployment")
    if phase == 9 and not project.store.db.execute("SELECT COUNT(*) FROM feedback"
                                                   ).fetchone()[0]:
        missing.append("feedback")
    return missing


def fill_prerequisites(project, phase: int) -> list[str]:
    """Fill what ``missing_prerequisites`` reports from the sample project; returns what it did.

    Each need is restored from the prepared checkpoints (``workbench.checkpoints``: what the
    phase that meets it left in the sample, in well under a second) when the project's own work
    allows it: the sample's data under the sample's prompt, the sample's deployment under its
    traffic. Otherwise — the user's own dataset, prompt or model — it is made on the project as
    it is, as before (model calls, a forced deployment, simulated users)."""
    done = []
    for need in missing_prerequisites(project, phase):
        restored = _fill_from_checkpoint(project, need)
        if restored:
            done.append(restored)
        elif need == "card":
            fill_sample_card(project)
            done.append("the sample project card")
        elif need == "data":
            prepare_sample_data(project)
            done.append("the sample data, cleaned, redacted and split")
        elif need == "prompt":
            save_sample_prompt(project)
            done.append(f"the sample prompt '{SAMPLE_PROMPT}'")
        elif need == "deployment":
            deployment = deploy_sample(project)
            done.append(f"a demo deployment of '{SAMPLE_PROMPT}' on {deployment.spec.model}")
        elif need == "feedback":
            sent = play_users(project)
            done.append(f"traffic from simulated users ({describe_traffic(sent)})")
    return done


# What each need restores: the stage of the phase that meets it, and the record kinds of
# earlier stages the project must hold exactly (the stage's rows point at them).
_CHECKPOINT_FILLS: dict[str, tuple[int, tuple[tuple[int, str], ...]]] = {
    "card": (1, ()),
    "data": (2, ()),
    "prompt": (4, ((2, "dataset"),)),
    "deployment": (7, ((2, "dataset"), (4, "prompt"))),
    "feedback": (8, ((2, "dataset"), (4, "prompt"), (7, "deployment"))),
}


def _fill_from_checkpoint(project, need: str) -> str | None:
    """Add the sample's work for ``need`` from the shipped checkpoints; what was added, or None
    when this project's own work rules it out (the caller then makes it on the project)."""
    from workbench.checkpoints import CheckpointConflict, CheckpointError, add_stage
    from workbench.checkpoints.restoring import holds, load_manifest, stage_rows

    if need not in _CHECKPOINT_FILLS:
        return None
    phase, needs = _CHECKPOINT_FILLS[need]
    try:
        for earlier, kind in needs:
            loaded, _ = stage_rows(project, earlier)
            rows = [r for r in loaded.rows.get("records", {}).values() if r["kind"] == kind]
            if not holds(project, rows):
                return None
        if need == "deployment":
            from workbench.llm.gateway import default_model

            if default_model(project) != load_manifest()["model"]:
                return None  # the project chose another model: deploy that one
        if need == "card":
            add_stage(project, phase, card_tables=PHASE1_TABLES)
        else:
            add_stage(project, phase)
    except CheckpointConflict:
        return None  # the project holds its own version of that work: keep it
    except CheckpointError as exc:  # missing or stale checkpoints: compute instead
        import sys

        print(f"workbench: {exc.one_line()} Computing instead.", file=sys.stderr)
        return None
    return {
        "card": "the sample project card",
        "data": "the sample data, cleaned, redacted and split, with its classical baseline",
        "prompt": f"the sample prompt '{SAMPLE_PROMPT}' (starter techniques compared, the "
                  "best tagged candidate)",
        "deployment": f"the sample deployment of '{SAMPLE_PROMPT}' with its evaluation",
        "feedback": "the sample's traffic from simulated users, with feedback",
    }[need]


def describe_traffic(sent: dict[str, Any]) -> str:
    """What ``simulate_users`` sent, in words: ``14 requests (HTTP 200 ×12, 401 ×1, 422 ×1);
    feedback: 2 thumbs up, 3 down``."""
    n = sent["requests"]
    text = f"{n:,} request{'' if n == 1 else 's'}"
    statuses = sent.get("statuses") or {}
    if statuses:
        codes = ", ".join(f"{code} ×{count:,}" for code, count in statuses.items())
        text += f" (HTTP {codes})"
    rated = sent.get("feedback") or {}
    if rated:
        text += f"; feedback: {rated.get('up', 0):,} thumbs up, {rated.get('down', 0):,} down"
    return text


def play_users(project, *, requests: int = 12) -> dict[str, Any]:
    """Start the project's service on a free port with a one-off key, ``simulate_users``
    against it, and stop it."""
    import secrets

    from workbench.serve import start_server

    key = "wb-" + secrets.token_urlsafe(16)
    service = start_server(project, api_keys=[key])
    try:
        return simulate_users(project, service.url, key, requests=requests)
    finally:
        service.stop()


def deploy_sample(project, *, items: int = 6):
    """A deployment of the sample prompt on the project's model, for the monitoring walk-through:
    a short evaluation on the test split, then the deployment — forced when it misses the
    targets, which the decision log records."""
    from workbench.data.versioning import find_split
    from workbench.llm.gateway import default_model
    from workbench.runs import start_run
    from workbench.serve import plan_deployment

    dataset = find_split(project, prefer=SAMPLE_DATASET)
    model = default_model(project)
    run = start_run(project, SAMPLE_PROMPT, dataset=dataset.name, split="test", model=model,
                    limit=items, progress=False)
    return plan_deployment(project, SAMPLE_PROMPT, model=model, run_id=run.run_id, force=True)


def simulate_users(project, url: str, api_key: str, *, requests: int = 30,
                   feedback_share: float = 0.5, seed: int = 0) -> dict[str, Any]:
    """Play users of a running service (``workbench.serve.start_server``): ask it the test
    split's messages in users' words (some twice), send a few bad requests (no key, wrong
    fields), and rate a share of the answers — thumbs up when the answer is the expected label,
    down with the expected label as the correction otherwise. Returns what was sent and what
    came back."""
    import random

    import httpx

    from workbench.data.splitting import load_split
    from workbench.data.versioning import find_split

    dataset = find_split(project, prefer=SAMPLE_DATASET)
    rows = load_split(project, dataset.name, "test").to_dict("records")
    rng = random.Random(seed)
    # Production traffic is new wording of known needs: test-split messages as users would
    # send them (with a greeting or a sign-off), drawn from a small pool so some repeat.
    openers = ("", "Hi, ", "Quick question: ", "Hello team, ")
    closers = ("", " Thanks!", " Sent from my phone.", " Please hurry.")
    pool = [{**row, "input": f"{rng.choice(openers)}{row['input']}{rng.choice(closers)}"}
            for row in rng.sample(rows, min(len(rows), max(1, requests * 2 // 3)))]
    asked = [rng.choice(pool) for _ in range(requests)]
    headers = {"Authorization": f"Bearer {api_key}"}
    people = [f"user-{i}@example.com" for i in range(max(2, requests // 3))]
    who = random.Random(seed + 1)  # its own draws: the traffic stays what it was
    statuses: dict[int, int] = {}
    rated = {"up": 0, "down": 0}
    with httpx.Client(base_url=url, timeout=120, trust_env=False) as client:
        for row in asked:
            # Who asks: the service counts active users by it (and stores only its hash).
            reply = client.post("/v1/predict", json={"input": row["input"]},
                                headers={**headers, "X-Workbench-User": who.choice(people)})
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            if reply.status_code != 200 or rng.random() >= feedback_share:
                continue
            body = reply.json()
            right = str(body.get("parsed") or "").strip().lower() == \
                str(row["expected"]).strip().lower()
            rating = "up" if right else "down"
            client.post("/v1/feedback", headers=headers, json={
                "request_id": body["request_id"], "rating": rating,
                **({} if right else {"correction": str(row["expected"]),
                                     "comment": "wrong team"})})
            rated[rating] += 1
        for bad in (client.post("/v1/predict", json={"input": "hello"}),
                    client.post("/v1/predict", json={"message": "hello"}, headers=headers)):
            statuses[bad.status_code] = statuses.get(bad.status_code, 0) + 1
    return {"requests": requests + 2, "statuses": dict(sorted(statuses.items())),
            "feedback": rated}
