"""Staged rollout: a **candidate** configuration (another prompt version, model or adapter)
served beside the live deployment, then promoted or rolled back.

- **Staging.** ``plan_deployment(..., canary=0.1)`` (``workbench deploy PROMPT ... --canary
  10%``) or ``shadow=True`` (``--shadow``) checks the candidate against the same evaluation gate
  as any deployment (``force`` is the same, and written to the card's decision log) and records
  a new deployment version: the live spec unchanged, with the candidate's spec in ``candidate``,
  ``candidate_mode`` and ``canary_share``. Staging again replaces the candidate (say, a bigger
  share). The candidate must take the same request fields as the live deployment (it answers
  the live deployment's requests); the rate limit, burst and input bound are the service's and
  stay the live deployment's unless given.
- **Canary.** A share of the *end users* get the candidate's answers. Sticky: the arm is
  ``bucket(salt, unit) < share``, a SHA-256 hash of the candidate's identity (prompt, version,
  model, adapter) and the caller's unit — the API key's id, plus the end-user id when the
  request names one — mapped to [0, 1). One unit sees one arm for the whole rollout; raising
  the share keeps everyone already on the canary there; a new candidate draws afresh. Without
  end-user ids a key is one unit, so a service with few keys should send them.
- **Shadow.** The live arm answers every request; the candidate is called on the same request
  on a background thread once the live answer is made (the caller never waits for it), traced
  as its own ``serve.request`` span (``workbench.arm`` "shadow", ``workbench.shadow_of`` the live
  request's id, ``workbench.agrees`` whether its answer matches the live one). At most the
  deployment's ``max_waiting`` shadow calls wait at once; past that a request is not mirrored
  (``/v1/info`` counts them).
- **Promote** (``promote``, ``workbench promote``) records the candidate as the live deployment
  (a new deployment version; ``deploy/service.json`` and the Dockerfile rewritten).
  **Rollback** (``rollback``, ``workbench rollback``) drops a staged candidate when there is
  one; otherwise it returns to the live configuration before the current one (each rollback
  goes one further back). Both are written to the card's decision log, with the arms' figures.
- A running service **follows** the latest deployment record without a restart: it looks at
  most once a second (``follow``) and swaps its arms between requests. A version whose request
  fields or input bound differ from those the service was started with cannot be followed (the
  request schema is built at start): the service keeps serving what it has and ``/v1/info``
  names the version waiting for a restart.
- ``arm_metrics`` and ``arm_figure``: requests, errors, latency, cost, thumbs-up rate per arm,
  and for a shadow how often it agreed with the live answers. ``ask_end_users`` sends one
  request per end user to a running service (a walk-through's traffic), waiting out 429s.

Every ``serve.request`` span of a request that reached a model carries ``workbench.arm``
("live", "canary" or "shadow") and the arm's ``workbench.prompt``,
``workbench.prompt_version`` and ``workbench.primary_model`` (``workbench.model`` is the model
that answered, a fallback maybe).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import (
    DEPLOYMENT,
    Deployment,
    DeploymentRefused,
    DeploymentSpec,
    NotDeployed,
    candidate_label,
    describe,
    latest_deployment,
)
from workbench.serve.files import record_deployment

if TYPE_CHECKING:
    from collections.abc import Sequence

    import httpx
    import pandas as pd

    from workbench.project import Project
    from workbench.records import Stored
    from workbench.serve.service import Service

log = logging.getLogger("workbench.serve")

ARMS = ("live", "canary", "shadow")
FOLLOW_EVERY_S = 1.0  # how often a running service looks for a new deployment version
_CANDIDATE_FIELDS = ("candidate", "candidate_mode", "canary_share")


class RolloutError(DeploymentRefused):
    """A staged rollout was asked for something it cannot do."""


# -- shares and arms -------------------------------------------------------------------------------

def parse_share(value: Any) -> float:
    """A canary's share of end users as a fraction strictly between 0 and 1.

    Accepted: a fraction (``0.1``), or text with a percent sign (``"10%"``, ``"0.5%"``) or a
    bare percent of at least 1 (``"10"``, as ``--canary 10`` reads). Refused: 0 and 100% (use a
    shadow, or promote), numbers of 1 or more (is ``10`` 10% or 1000%?) and bare text below 1
    (``"0.1"`` could mean 0.1% or 10%)."""
    fix = "Give the share as a fraction (canary=0.1) or with a percent sign ('10%')."
    if isinstance(value, bool):
        raise RolloutError(f"canary={value!r} is not a share of traffic.", fix)
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            number = float(text.removesuffix("%").strip())
        except ValueError:
            raise RolloutError(f"{value!r} is not a share of traffic.", fix) from None
        if not percent and 0 < number < 1:
            raise RolloutError(f"{value!r} could mean {number:g}% or {number * 100:g}%.",
                               f"Write it with a percent sign: '{number:g}%' or "
                               f"'{number * 100:g}%'.")
        share = number / 100
    elif isinstance(value, (int, float)):
        share = float(value)
        if share >= 1 and share != 1:
            raise RolloutError(f"canary={value!r} is not a fraction between 0 and 1.",
                               f"Pass canary={share / 100:g} or canary='{share:g}%'.")
    else:
        raise RolloutError(f"canary={value!r} is not a share of traffic.", fix)
    if not math.isfinite(share):
        raise RolloutError(f"canary={value!r} is not a share of traffic.", fix)
    if share <= 0:
        raise RolloutError(f"A canary of {value!r} would get no traffic.",
                           "Give it a share above 0 (e.g. 10%), or stage it as a shadow to "
                           "see its answers without serving them.")
    if share >= 1:
        raise RolloutError(f"A canary of {value!r} would take all the traffic.",
                           "That is a promotion: stage it below 100% and `workbench promote` "
                           "it, or deploy it directly.")
    return share


def salt_of(spec: DeploymentSpec) -> str:
    """What a canary's split hashes with the caller: the candidate's identity, so the same
    candidate keeps its users when its share changes and a new one draws afresh."""
    identity = json.dumps([spec.prompt, spec.prompt_version, spec.model, spec.adapter])
    return hashlib.sha256(identity.encode()).hexdigest()[:16]


def unit_of(client: str, user: str | None = None) -> str:
    """Who a canary split keeps on one arm: the key (its id), or one end user of the key."""
    return f"{client}/{user}" if user else client


def bucket(salt: str, unit: str) -> float:
    """A unit's place in [0, 1) for this candidate (uniform, stable)."""
    digest = hashlib.sha256(f"{salt}\n{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


@dataclass(frozen=True)
class Arm:
    """One configuration a service answers with: its spec, prompt and few-shot pool."""

    name: str  # "live", "canary" or "shadow"
    spec: DeploymentSpec
    prompt: Any  # workbench.prompts.PromptVersion
    train: Any = None  # the train split few-shot examples come from, when the prompt picks them


@dataclass(frozen=True)
class Arms:
    """What a running service serves: the live arm and a staged candidate, at one deployment
    version. Replaced as a whole when the service follows a new version."""

    version: int
    live: Arm
    candidate: Arm | None = None
    share: float = 0.0
    salt: str = ""

    def pick(self, unit: str) -> Arm:
        """The arm that answers this unit: the canary for its share of units, else live."""
        candidate = self.candidate
        if candidate is not None and candidate.name == "canary" and \
                bucket(self.salt, unit) < self.share:
            return candidate
        return self.live

    @property
    def shadow(self) -> Arm | None:
        candidate = self.candidate
        return candidate if candidate is not None and candidate.name == "shadow" else None


def load_arm(project: Project, name: str, spec: DeploymentSpec) -> Arm:
    from workbench.prompts import load_prompt

    prompt = load_prompt(project, spec.prompt, spec.prompt_version).value
    train = None
    if spec.few_shot_dataset:
        from workbench.data.splitting import load_split

        train = load_split(project, spec.few_shot_dataset, "train",
                           version=spec.few_shot_version)
    return Arm(name, spec, prompt, train)


def load_arms(project: Project, stored: Stored[DeploymentSpec]) -> Arms:
    spec = stored.value
    live = load_arm(project, "live", spec)
    if spec.candidate is None:
        return Arms(stored.version, live)
    candidate = load_arm(project, spec.candidate_mode or "canary", spec.candidate)
    return Arms(stored.version, live, candidate, float(spec.canary_share or 0.0),
                salt_of(spec.candidate))


def arms_info(service: Service) -> dict[str, Any]:
    """What ``/v1/info`` says about the arms: configurations and shares, no secrets."""
    from pathlib import Path

    arms = service.arms

    def one(arm: Arm, share: float) -> dict[str, Any]:
        spec = arm.spec
        return {"arm": arm.name, "share": share, "prompt": spec.prompt,
                "prompt_version": spec.prompt_version, "model": spec.model,
                "adapter": Path(spec.adapter).name if spec.adapter else None,
                "fallbacks": spec.fallbacks, "gate_passed": spec.gate_passed,
                "forced": spec.forced}

    listed = [one(arms.live, 1.0 - (arms.share if arms.candidate and
                                    arms.candidate.name == "canary" else 0.0))]
    rollout: dict[str, Any] | None = None
    if arms.candidate is not None:
        mirrored = arms.candidate.name == "shadow"
        listed.append({**one(arms.candidate, 0.0 if mirrored else arms.share),
                       **({"mirrors": True} if mirrored else {})})
        rollout = {"mode": arms.candidate.name,
                   "sticky_by": "the API key, or the end user when the request names one"}
        if mirrored:
            rollout.update({"mirrored": service.shadows.done,
                            "not_mirrored": service.shadows.skipped})
    info: dict[str, Any] = {"arms": listed, "rollout": rollout}
    if service.following.pending is not None:
        info["waiting_for_restart"] = service.following.pending
    return info


# -- staging, promoting, rolling back --------------------------------------------------------------

@dataclass(frozen=True)
class Staging:
    """A candidate about to be staged beside ``live``."""

    live: Stored[DeploymentSpec]
    mode: str  # "canary" or "shadow"
    share: float | None


def staging(project: Project, *, canary: Any = None, shadow: bool = False) -> Staging | None:
    """What ``plan_deployment``'s ``canary``/``shadow`` ask for (None: a plain deployment);
    checked before the gate runs."""
    if canary is None and not shadow:
        return None
    if canary is not None and shadow:
        raise RolloutError("A candidate is either a canary or a shadow, not both.",
                           "Pass canary=SHARE (--canary 10%) or shadow=True (--shadow).")
    share = parse_share(canary) if canary is not None else None
    try:
        live = latest_deployment(project)
    except NotDeployed:
        raise RolloutError("There is no live deployment to stage a candidate beside.",
                           "Deploy one first (`workbench deploy PROMPT`), then stage the "
                           "candidate with --canary or --shadow.") from None
    return Staging(live, "canary" if share is not None else "shadow", share)


def live_part(spec: DeploymentSpec) -> DeploymentSpec:
    """The live configuration of a deployment: no candidate, no history."""
    return spec.model_copy(update={**dict.fromkeys(_CANDIDATE_FIELDS), "previous_live": None})


def request_shape(spec: DeploymentSpec) -> tuple[tuple[str, ...], int, str]:
    """What a running service's request schemas are built from, fixed until it restarts: the
    template's fields, their bound, and the prompt's name (the OpenAI routes' model id)."""
    return tuple(sorted(spec.variables)), spec.max_input_chars, spec.prompt


def stage(project: Project, staging: Staging, candidate: DeploymentSpec) -> Deployment:
    """Record ``candidate`` (a spec that passed the gate, or was forced) beside the live
    deployment."""
    from workbench.card import add_decision

    live = staging.live.value
    if candidate.variables != live.variables:
        raise RolloutError(
            f"The candidate takes the fields {', '.join(candidate.variables)} and the live "
            f"deployment {', '.join(live.variables)}: a candidate answers the live "
            "deployment's requests.",
            "Stage a prompt version with the same variables, or deploy it directly (without "
            "--canary/--shadow) and restart the service.")
    if candidate.max_input_chars != live.max_input_chars:
        raise RolloutError(
            f"The candidate limits inputs to {candidate.max_input_chars} characters and the "
            f"live deployment to {live.max_input_chars}: a running service checks requests "
            "against one bound.",
            f"Leave --max-input-chars out (the live {live.max_input_chars} is kept), or "
            "deploy it directly and restart the service.")
    spec = live.model_copy(update={"candidate": candidate, "candidate_mode": staging.mode,
                                   "canary_share": staging.share})
    deployment = record_deployment(project, spec)
    if candidate.forced:
        add_decision(project, 7, f"Staged {describe(candidate)} as a {candidate_label(spec)} "
                                 "although it fails the evaluation gate.",
                     " ".join(candidate.gate_reasons))
    return deployment


def as_new_live(project: Project, spec: DeploymentSpec
                ) -> tuple[DeploymentSpec, str | None]:
    """``spec`` (a plain deployment) with the version rollback would return to, and the staged
    candidate it drops (words), if any."""
    try:
        current = latest_deployment(project)
    except NotDeployed:
        return spec, None
    now = current.value
    dropped = (f"{candidate_label(now)} {describe(now.candidate)}" if now.candidate is not None
               else None)
    same = live_part(now).content_hash() == live_part(spec).content_hash()
    return spec.model_copy(update={"previous_live": now.previous_live if same
                                   else current.version}), dropped


def promote(project: Project, *, reason: str = "") -> Deployment:
    """Make the staged candidate the live deployment (a new deployment version, its files
    rewritten); the decision log gets it with ``reason`` and the arms' figures."""
    from workbench.card import add_decision

    current = latest_deployment(project)
    now = current.value
    if now.candidate is None:
        raise RolloutError(f"Nothing is staged to promote: deployment v{current.version} "
                           f"serves {describe(now)} alone.",
                           "Stage a candidate first: `workbench deploy PROMPT --canary 10%` "
                           "(or --shadow).")
    evidence = evidence_text(project)
    spec = live_part(now.candidate).model_copy(update={"previous_live": current.version})
    deployment = record_deployment(project, spec)
    add_decision(project, 7, f"Promoted the {candidate_label(now)} {describe(now.candidate)} "
                             f"to live (deployment v{deployment.version}); it replaces "
                             f"{describe(now)}.", _reason(reason, evidence))
    return deployment


def rollback(project: Project, *, reason: str = "") -> Deployment:
    """Drop the staged candidate; with none staged, return to the live configuration before the
    current one (a new deployment version, its files rewritten). Logged in the decision log."""
    from workbench.card import add_decision

    current = latest_deployment(project)
    now = current.value
    if now.candidate is not None:
        evidence = evidence_text(project)
        spec = now.model_copy(update=dict.fromkeys(_CANDIDATE_FIELDS))
        deployment = record_deployment(project, spec)
        add_decision(project, 7, f"Rolled back the {candidate_label(now)} "
                                 f"{describe(now.candidate)}: dropped; {describe(now)} stays "
                                 f"live (deployment v{deployment.version}).",
                     _reason(reason, evidence))
        return deployment
    if now.previous_live is None:
        raise RolloutError(f"There is nothing to roll back to: deployment v{current.version} "
                           f"({describe(now)}) is the first live configuration.",
                           "Deploy another configuration with `workbench deploy`, or stage "
                           "one with --canary or --shadow.")
    earlier = project.records.get(DeploymentSpec, DEPLOYMENT, now.previous_live).value
    evidence = evidence_text(project)
    spec = live_part(earlier).model_copy(update={"previous_live": earlier.previous_live})
    deployment = record_deployment(project, spec)
    add_decision(project, 7, f"Rolled back from {describe(now)} to {describe(earlier)} "
                             f"(deployment v{deployment.version}, as in v{now.previous_live}).",
                 _reason(reason, evidence))
    return deployment


def _reason(reason: str, evidence: str) -> str:
    return " ".join(part for part in (reason.strip(), evidence) if part)


# -- a running service following the project -------------------------------------------------------

@dataclass
class Following:
    """A running service's view of the deployment records: the request shape its schema was
    built for, when it last looked, and a newer version it cannot serve without a restart."""

    shape: tuple[tuple[str, ...], int]
    checked: float = 0.0
    pending: dict[str, Any] | None = None


def follow(service: Service, *, force: bool = False) -> bool:
    """Swap the service's arms for the latest deployment version when it changed (looked at
    most once a second unless ``force``). True when the arms changed."""
    following = service.following
    now = time.monotonic()
    if not force and now - following.checked < FOLLOW_EVERY_S:
        return False
    following.checked = now
    project = service.project
    row = project.store.db.execute(
        "SELECT MAX(version) FROM records WHERE kind = ? AND name = ?",
        (DeploymentSpec.kind, DEPLOYMENT)).fetchone()
    latest = row[0] if row else None
    pending = following.pending
    if latest is None or latest == service.arms.version or \
            (pending is not None and pending["deployment"] == latest):
        return False
    stored = project.records.get(DeploymentSpec, DEPLOYMENT, latest)
    why = None
    if request_shape(stored.value) != following.shape:
        fields, chars, prompt = request_shape(stored.value)
        why = (f"its requests differ (prompt '{prompt}', fields {', '.join(fields)}, up to "
               f"{chars} characters; this service answers for '{following.shape[2]}' with "
               f"{', '.join(following.shape[0])}, up to {following.shape[1]}): restart the "
               "service to serve it")
    else:
        from workbench.errors import WorkbenchError

        try:
            arms = load_arms(project, stored)
        except WorkbenchError as exc:
            why = f"it cannot be loaded ({exc.one_line()})"
    if why is not None:
        following.pending = {"deployment": latest, "why": why}
        log.warning("workbench: deployment v%s is not served: %s; still serving v%s.", latest,
                    why, service.arms.version)
        return False
    service.arms = arms
    service.adopt(arms.live.spec)
    following.pending = None
    log.info("workbench: now serving deployment v%s.", latest)
    return True


class ShadowRunner:
    """Shadow calls on a few background threads, at most ``bound`` waiting at once."""

    def __init__(self, workers: int = 4):
        self.workers = workers
        self.pending = 0
        self.done = 0
        self.skipped = 0
        self._pool: Any = None
        self._idle = threading.Condition()

    def submit(self, call: Any, *, bound: int) -> bool:
        """Run ``call()`` in the background; False (and counted) when ``bound`` are waiting."""
        from concurrent.futures import ThreadPoolExecutor

        with self._idle:
            if self.pending >= bound:
                self.skipped += 1
                return False
            self.pending += 1
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers,
                                                thread_name_prefix="workbench-shadow")
        self._pool.submit(self._run, call)
        return True

    def _run(self, call: Any) -> None:
        try:
            call()
        except Exception:  # a bug in a shadow call must never reach a caller
            log.exception("workbench: a shadow call failed")
        finally:
            with self._idle:
                self.pending -= 1
                self.done += 1
                self._idle.notify_all()

    def wait(self, timeout: float = 30.0) -> bool:
        """Until no shadow call is waiting (True) or ``timeout`` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self.pending == 0, timeout)


def _plain(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split()).casefold()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def agrees(live: Any, shadow: Any) -> bool:
    """Whether two answers (``ItemResult``) say the same: their parsed values when both parse
    (a label, JSON data), else their texts, ignoring case and spacing."""
    if live.parsed.ok and shadow.parsed.ok:
        return _plain(live.parsed.value) == _plain(shadow.parsed.value)
    return _plain(live.completion.text) == _plain(shadow.completion.text)


# -- per-arm figures -------------------------------------------------------------------------------

ARM_COLUMNS = ["arm", "configuration", "prompt", "prompt_version", "model", "requests",
               "answered", "errors", "error_rate", "error_rate_low", "error_rate_high",
               "p50_latency_ms", "p95_latency_ms", "cost_usd", "cost_per_request", "feedback",
               "thumbs_up_rate", "compared", "agreement_rate"]


def rollout_started(project: Project) -> float | None:
    """When what is served now began: the staging of the current candidate (the first of the
    latest deployment versions that carry it), else the current live configuration's start."""
    versions = project.records.versions(DeploymentSpec, DEPLOYMENT)
    if not versions:
        return None
    latest = versions[-1].value

    def key(spec: DeploymentSpec) -> str:
        if latest.candidate is not None:
            return spec.candidate.content_hash() if spec.candidate else ""
        return live_part(spec).content_hash()

    wanted, started = key(latest), versions[-1].created_at
    for stored in reversed(versions):
        if key(stored.value) != wanted:
            break
        started = stored.created_at
    return started


def arm_metrics(project: Project, *, since: float | None = None,
                until: float | None = None) -> pd.DataFrame:
    """Per arm and configuration, over [since, until) (default: since the current candidate
    was staged, or the live configuration deployed): requests that reached a model, errors
    (5xx) and the error rate with its 95% Wilson interval, p50/p95 latency of the answered ones
    (ms), cost, thumbs-up rate of the feedback on them, and for a shadow how many answers could
    be compared with the live ones and the share that agreed. Rows: live, canary, shadow."""
    import numpy as np
    import pandas as pd

    from workbench.evaluate.stats import wilson_interval

    if since is None:
        since = rollout_started(project)
    project.store.flush()
    where, params = ["name = 'serve.request'",
                     "json_extract(attributes, '$.\"workbench.arm\"') IS NOT NULL"], []
    if since is not None:
        where.append("start_time >= ?")
        params.append(since)
    if until is not None:
        where.append("start_time < ?")
        params.append(until)
    rows = project.store.query("SELECT trace_id, start_time, end_time, attributes FROM spans "
                               "WHERE " + " AND ".join(where), tuple(params))
    ratings = {r["trace_id"]: r["rating"] for r in project.store.query(
        "SELECT trace_id, rating FROM feedback")}
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        a = json.loads(r["attributes"])
        key = (a["workbench.arm"], a.get("workbench.prompt"), a.get("workbench.prompt_version"),
               a.get("workbench.primary_model"))
        groups.setdefault(key, []).append({
            "status": int(a.get("http.response.status_code") or 500),
            "latency_ms": (r["end_time"] - r["start_time"]) * 1000,
            "cost": a.get("workbench.cost_usd"), "agrees": a.get("workbench.agrees"),
            "rating": ratings.get(r["trace_id"])})
    out = []
    for (arm, prompt, version, model), requests in groups.items():
        answered = [q for q in requests if q["status"] < 400]
        errors = sum(1 for q in requests if q["status"] >= 500)
        served = len(answered) + errors
        latencies = [q["latency_ms"] for q in answered]
        costs = [float(q["cost"]) for q in answered if q["cost"] is not None]
        rated = [q["rating"] for q in requests if q["rating"] is not None]
        compared = [bool(q["agrees"]) for q in requests if q["agrees"] is not None]
        low, high = wilson_interval(errors, served)
        out.append({
            "arm": arm, "configuration": f"'{prompt}' v{version} on {model}", "prompt": prompt,
            "prompt_version": version, "model": model, "requests": len(requests),
            "answered": len(answered), "errors": errors,
            "error_rate": errors / served if served else math.nan,
            "error_rate_low": low, "error_rate_high": high,
            "p50_latency_ms": float(np.percentile(latencies, 50)) if latencies else math.nan,
            "p95_latency_ms": float(np.percentile(latencies, 95)) if latencies else math.nan,
            "cost_usd": float(sum(costs)),
            "cost_per_request": sum(costs) / len(costs) if costs else math.nan,
            "feedback": len(rated),
            "thumbs_up_rate": sum(1 for x in rated if x > 0) / len(rated) if rated
            else math.nan,
            "compared": len(compared) if arm == "shadow" else math.nan,
            "agreement_rate": (sum(compared) / len(compared) if compared else math.nan)
            if arm == "shadow" else math.nan})
    frame = pd.DataFrame(out, columns=ARM_COLUMNS)
    order = {name: i for i, name in enumerate(ARMS)}
    frame = frame.sort_values(["arm", "requests"], key=lambda c: c.map(order) if c.name == "arm"
                              else -c, kind="stable").reset_index(drop=True)
    frame.attrs["since"] = since
    return frame


def arm_figure(project_or_frame: Any, **kwargs: Any):
    """The arms side by side (plotly): error rate with its interval, p95 latency, thumbs-up
    rate and, for a shadow, agreement with the live answers."""
    from plotly.subplots import make_subplots

    frame = project_or_frame if hasattr(project_or_frame, "columns") else \
        arm_metrics(project_or_frame, **kwargs)
    titles = ("Error rate (95% interval)", "p95 latency (ms)", "Thumbs up",
              "Shadow agrees with live")
    fig = make_subplots(rows=1, cols=4, subplot_titles=titles)
    colors = {"live": "#1f77b4", "canary": "#ff7f0e", "shadow": "#7f7f7f"}
    labels = [f"{r.arm}<br>{r.configuration}" for r in frame.itertuples()]
    marker = {"color": [colors.get(a, "#2ca02c") for a in frame["arm"]]}
    fig.add_bar(x=labels, y=frame["error_rate"], marker=marker, row=1, col=1, name="errors",
                error_y={"type": "data", "symmetric": False,
                         "array": (frame["error_rate_high"] - frame["error_rate"]).tolist(),
                         "arrayminus": (frame["error_rate"] - frame["error_rate_low"]).tolist()})
    fig.add_bar(x=labels, y=frame["p95_latency_ms"], marker=marker, row=1, col=2, name="p95")
    fig.add_bar(x=labels, y=frame["thumbs_up_rate"], marker=marker, row=1, col=3,
                name="thumbs up")
    fig.add_bar(x=labels, y=frame["agreement_rate"], marker=marker, row=1, col=4,
                name="agreement")
    for col in (1, 3, 4):
        fig.update_yaxes(range=[0, 1], tickformat=".0%", row=1, col=col)
    requests = int(frame["requests"].sum()) if len(frame) else 0
    fig.update_layout(showlegend=False, template="plotly_white", height=380,
                      title=f"Arms: {requests} request{'s' if requests != 1 else ''} that "
                            "reached a model" + ("" if len(frame) else " (none yet)"))
    return fig


def ask_end_users(client: httpx.Client, questions: Sequence[str], *, users: int = 12,
                  version: str | None = None, wait_s: float = 5.0,
                  prefix: str = "person") -> list[dict[str, Any]]:
    """One request from each of ``users`` end users (``person-0``, ``person-1``, ... in the
    ``X-Workbench-User`` header) to a running service, asking ``questions`` in turn, so a
    canary's sticky split can be seen: returns one row per end user with the HTTP status and the
    arm that answered ("—" when none did).

    ``client`` is an ``httpx.Client`` on the service's URL that carries the API key. With
    ``version``, it first waits up to ``wait_s`` seconds for ``/healthz`` (which costs no rate
    token) to report that deployment version, since a service follows a new one within a second.
    It is a polite client: a 429 is waited out for its ``Retry-After`` and asked again, so the
    key's rate limit delays the walk-through instead of dropping end users from it."""
    if version is not None:
        until = time.monotonic() + wait_s
        while client.get("/healthz").json().get("deployment") != version and \
                time.monotonic() < until:
            time.sleep(0.2)
    rows = []
    for i in range(users):
        user = f"{prefix}-{i}"
        while True:
            reply = client.post("/v1/predict", json={"input": questions[i % len(questions)]},
                                headers={"X-Workbench-User": user})
            if reply.status_code != 429:
                break
            time.sleep(float(reply.headers.get("Retry-After", 1)))
        try:
            body = reply.json()
        except ValueError:
            body = None
        arm = (body.get("arm") if isinstance(body, dict) else None) or "—"
        rows.append({"end user": user, "HTTP": reply.status_code, "arm": arm})
    return rows


def evidence_text(project: Project) -> str:
    """The arms' figures since the candidate was staged, in one sentence for the decision
    log ('' when no request reached an arm)."""
    frame = arm_metrics(project)
    try:
        staged = latest_deployment(project).value.candidate is not None
    except NotDeployed:
        staged = False
    parts = []
    for r in frame.itertuples():
        text = f"{r.arm} {r.configuration}: {r.requests} request{'s' if r.requests != 1 else ''}"
        if r.errors == r.errors and r.requests:
            text += f", {r.errors} error{'s' if r.errors != 1 else ''}"
        if r.p95_latency_ms == r.p95_latency_ms:
            text += f", p95 {r.p95_latency_ms:.0f} ms"
        if r.feedback:
            text += f", {r.thumbs_up_rate:.0%} thumbs up of {r.feedback}"
        if r.arm == "shadow" and r.compared:
            text += f", agreed with live on {r.agreement_rate:.0%} of {r.compared:.0f}"
        parts.append(text)
    since = "Since the candidate was staged" if staged else "Since it went live"
    return f"{since}: " + "; ".join(parts) + "." if parts else ""


__all__ = ["ARMS", "Arm", "Arms", "RolloutError", "ShadowRunner", "agrees", "arm_figure",
           "arm_metrics", "ask_end_users", "bucket", "parse_share", "promote", "rollback",
           "rollout_started"]
