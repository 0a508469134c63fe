"""Planning a deployment (phase 7): which prompt version, model, fallbacks and limits are served,
checked against the evaluation gate of phase 6 (refused unless forced, forcing logged in the
card's decision log), then recorded with its files (``files``) or staged beside the live one as
a canary or shadow (``rollout``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.serve.deployment import (
    FILTER_MODES,
    Deployment,
    DeploymentRefused,
    DeploymentSpec,
)
from workbench.serve.files import record_deployment

if TYPE_CHECKING:
    from workbench.project import Project


def _run_adapter(config: dict[str, Any]) -> str | None:
    """The LoRA adapter a run used: ``adapter=`` in its options, or ``local/...:NAME``."""
    adapter = (config.get("options") or {}).get("adapter")
    model = str(config.get("model") or "")
    if adapter is None and model.startswith("local/") and ":" in model:
        adapter = model.partition(":")[2]
    return adapter


def _same_adapter(used: str | None, deployed: str | None) -> bool:
    from pathlib import Path

    if used is None or deployed is None:
        return used == deployed
    return Path(used).name == Path(deployed).name


def _evidence_run(project: Project, prompt: str, version: int, model: str,
                  adapter: str | None) -> str | None:
    """The newest finished run of this prompt version on this model (and adapter), preferring
    the test split."""
    rows = [r for r in project.store.query(
        "SELECT run_id, split, config FROM runs WHERE prompt = ? AND prompt_version = ? AND "
        "model = ? AND status = 'finished' ORDER BY created_at DESC", (prompt, version, model))
        if _same_adapter(_run_adapter(json.loads(r["config"])), adapter)]
    for row in rows:
        if row["split"] == "test":
            return row["run_id"]
    return rows[0]["run_id"] if rows else None


def _whole(name: str, value: Any) -> int:
    """A setting that must be a whole number of at least 1."""

    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number < 1 or number != int(number):
        raise DeploymentRefused(f"{name} must be a whole number of at least 1 (got {value!r}).",
                                f"Pass a whole number for {name}.")
    return int(number)


HOSTED_TIMEOUT_S = 30.0
HOSTED_RETRIES = 2
HOSTED_MAX_WAITING = 64


@dataclass(frozen=True)
class Limits:
    """A deployment's timeout, retries and queue bound, and why."""

    timeout_s: float
    retries: int
    max_waiting: int
    basis: str


def default_limits(prompt: Any, model: str, *, repair_retries: int = 1,
                   example: dict[str, Any] | None = None, adapter: str | None = None) -> Limits:
    """Limits that fit the model. The bundled model's come from its speed measured here on this
    prompt (rendered with ``example``, an item of the data it was evaluated on) and ``adapter``
    (a folder; adapters run on another engine): a timeout three
    times what a request takes alone, repair turns included (at least 5 s); no retries (a retry
    only queues more work on the CPU that just ran out of time); and as many requests in progress
    as it answers, batched, in half the timeout: more get 503 at once instead of waiting past the
    timeout. Other models keep 30 s, 2 retries, 64 at once."""
    from workbench.llm.gateway import provider_of

    if provider_of(model) != "local":
        return Limits(HOSTED_TIMEOUT_S, HOSTED_RETRIES, HOSTED_MAX_WAITING,
                      "defaults for a model other than the bundled one")
    from workbench.llm import local
    from workbench.prompts.rendering import render
    from workbench.prompts.run import reply_max_tokens

    budget = reply_max_tokens(prompt, model) or local.DEFAULT_MAX_TOKENS
    item = dict(example or {})
    item.setdefault("input", "Hello, my parcel has not arrived yet. Can you check where it is?")
    try:
        messages = render(prompt, item, examples=[])
    except Exception:  # a template that needs more than an input: measure a plain request
        messages = None
    speed = local.measure_speed(messages, max_new_tokens=budget, adapter=adapter)
    calls = 1 + max(0, repair_retries)
    timeout = float(max(5, math.ceil(3 * calls * speed["call_s"])))
    waiting = int(min(256, max(2, timeout / 2 * speed["calls_per_s"] / calls)))
    return Limits(timeout, 0, waiting,
                  f"measured here on this prompt: {speed['call_s']:.2f} s a call alone, "
                  f"{speed['calls_per_s']:.1f} calls/s batched ({speed['single']:.0f} and "
                  f"{speed['batched']:.0f} tokens/s), replies of up to {budget} tokens, "
                  f"{calls - 1} repair turn(s)")


def _check_safety(content_filter: Any, failures: Any, rate: Any, window: Any,
                  cooloff: Any) -> None:
    """The content filter's mode and the circuit breaker's thresholds, or a clear refusal."""
    if content_filter not in FILTER_MODES:
        raise DeploymentRefused(f"content_filter must be one of {', '.join(FILTER_MODES)} (got "
                                f"{content_filter!r}).", "Pass e.g. content_filter='block' "
                                "(`workbench deploy --filter block`).")
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        raise DeploymentRefused(f"breaker_failures must be a whole number of at least 0 (got "
                                f"{failures!r}).", "Pass e.g. breaker_failures=5; 0 turns the "
                                "circuit breaker off.")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 1:
        raise DeploymentRefused(f"breaker_failure_rate must be a share above 0 and at most 1 "
                                f"(got {rate!r}).", "Pass e.g. breaker_failure_rate=0.5.")
    _whole("breaker_window", window)
    if isinstance(cooloff, bool) or not isinstance(cooloff, (int, float)) \
            or not math.isfinite(cooloff) or cooloff <= 0:
        raise DeploymentRefused(f"breaker_cooloff_s must be a number of seconds above 0 (got "
                                f"{cooloff!r}).", "Pass e.g. breaker_cooloff_s=30.")


def plan_deployment(project: Project, prompt: str, *, version: int | str | None = None,
                    model: str | None = None, adapter: str | None = None,
                    fallbacks: list[str] | tuple[str, ...] = (), run_id: str | None = None,
                    judges: tuple[str, ...] = (), force: bool = False,
                    rate_limit_per_minute: int | None = None, burst: int | None = None,
                    max_input_chars: int | None = None, timeout_s: float | None = None,
                    retries: int | None = None, max_waiting: int | None = None,
                    repair_retries: int = 1, cache: bool = True,
                    canary: float | str | None = None, shadow: bool = False,
                    content_filter: str = "block", moderation_model: str | None = None,
                    breaker_failures: int = 5, breaker_failure_rate: float = 0.5,
                    breaker_window: int = 20, breaker_cooloff_s: float = 30.0,
                    semantic_cache: float | None = None) -> Deployment:
    """Check a configuration against the evaluation gate and record it as the deployment.

    ``model`` defaults to the prompt's, then the card's chosen model. ``run_id`` is the evaluation
    that justifies it (default: the newest finished run of this prompt version on this model,
    test split first). A failing gate, or no evaluation at all, raises ``DeploymentRefused``
    unless ``force=True``, which logs the decision and its reasons in the card.

    ``timeout_s``, ``retries`` and ``max_waiting`` (requests in progress at once) default from
    the model (``default_limits``: for the bundled model, its speed measured here);
    ``rate_limit_per_minute``, ``burst`` and ``max_input_chars`` default to 60, 10 and 4000.

    ``content_filter`` is what the content checks do on a hit: ``"block"`` (422), ``"flag"``
    (answered and marked) or ``"off"``; ``moderation_model`` adds a moderation model's verdict
    (``workbench.serve.safety``). The ``breaker_*`` settings rest a failing model
    (``workbench.serve.breaker``).

    With ``canary`` (a share of the end users: ``0.1`` or ``"10%"``) or ``shadow=True`` the
    configuration is not deployed but staged as the **candidate** beside the live deployment
    (``workbench.serve.rollout``): the same gate, the same ``force`` rule; the rate limit, burst
    and input bound default to the live deployment's. ``promote`` makes it live, ``rollback``
    drops it.

    ``semantic_cache`` (a similarity threshold, off by default) answers requests close in
    meaning to earlier ones from their answers; it is refused unless its false-hit rate at that
    threshold was measured on the project's data (``workbench.serve.semantic_cache``)."""
    from workbench.card import add_decision
    from workbench.serve import rollout

    staging = rollout.staging(project, canary=canary, shadow=shadow)
    if staging is not None:  # the service's shared settings stay the live deployment's
        live = staging.live.value
        rate_limit_per_minute = (live.rate_limit_per_minute if rate_limit_per_minute is None
                                 else rate_limit_per_minute)
        burst = live.burst if burst is None else burst
        max_input_chars = live.max_input_chars if max_input_chars is None else max_input_chars
    spec = _checked_spec(
        project, prompt, version=version, model=model, adapter=adapter, fallbacks=fallbacks,
        run_id=run_id, judges=judges, force=force,
        rate_limit_per_minute=60 if rate_limit_per_minute is None else rate_limit_per_minute,
        burst=10 if burst is None else burst,
        max_input_chars=4000 if max_input_chars is None else max_input_chars,
        timeout_s=timeout_s, retries=retries, max_waiting=max_waiting,
        repair_retries=repair_retries, cache=cache, content_filter=content_filter,
        moderation_model=moderation_model, breaker_failures=breaker_failures,
        breaker_failure_rate=breaker_failure_rate, breaker_window=breaker_window,
        breaker_cooloff_s=breaker_cooloff_s, semantic_cache=semantic_cache,
        role="The candidate" if staging is not None else "")
    if staging is not None:
        return rollout.stage(project, staging, spec)
    spec, dropped = rollout.as_new_live(project, spec)
    deployment = record_deployment(project, spec)
    if spec.forced:
        add_decision(project, 7, f"Deployed '{prompt}' v{spec.prompt_version} on {spec.model} "
                                 "although it fails the evaluation gate.",
                     " ".join(spec.gate_reasons))
    if dropped is not None:
        add_decision(project, 7, f"Deployed '{prompt}' v{spec.prompt_version} on {spec.model} "
                                 f"directly: the staged {dropped} was dropped.")
    return deployment


def _checked_spec(project: Project, prompt: str, *, version: int | str | None,
                  model: str | None, adapter: str | None, fallbacks: list[str] | tuple[str, ...],
                  run_id: str | None, judges: tuple[str, ...], force: bool,
                  rate_limit_per_minute: int, burst: int, max_input_chars: int,
                  timeout_s: float | None, retries: int | None, max_waiting: int | None,
                  repair_retries: int, cache: bool, content_filter: str = "block",
                  moderation_model: str | None = None, breaker_failures: int = 5,
                  breaker_failure_rate: float = 0.5, breaker_window: int = 20,
                  breaker_cooloff_s: float = 30.0, semantic_cache: float | None = None,
                  role: str = "") -> DeploymentSpec:
    """The deployment spec of a configuration that passed the gate (or was forced past it),
    with its limits; ``DeploymentRefused`` otherwise. Nothing is recorded. ``role`` names the
    configuration in a refusal (a staged candidate)."""
    from workbench.evaluate.gate import check_gate
    from workbench.llm.gateway import default_model, prepare, provider_of
    from workbench.prompts import load_prompt
    from workbench.prompts.templates import HIDDEN_VARIABLES, variables_used
    from workbench.runs import load_run

    stored = load_prompt(project, prompt, version)
    value = stored.value
    model = model or value.model or default_model(project)
    fallbacks = [m for m in dict.fromkeys(fallbacks) if m != model]  # each once, never itself
    for candidate in (model, *fallbacks):
        prepare("", candidate, project=project, adapter=adapter if candidate == model else None)

    rate_limit_per_minute = _whole("rate_limit_per_minute", rate_limit_per_minute)
    burst = _whole("burst", burst)
    max_input_chars = _whole("max_input_chars", max_input_chars)
    if timeout_s is not None and (not isinstance(timeout_s, (int, float))
                                  or not math.isfinite(timeout_s) or timeout_s <= 0):
        raise DeploymentRefused(f"timeout_s must be a number of seconds above 0 (got "
                                f"{timeout_s!r}).", "Pass e.g. timeout_s=30.")
    if retries is not None and (not isinstance(retries, int) or retries < 0):
        raise DeploymentRefused(f"retries must be a whole number of at least 0 (got "
                                f"{retries!r}).", "Pass e.g. retries=2.")
    if max_waiting is not None:
        max_waiting = _whole("max_waiting", max_waiting)
    _check_safety(content_filter, breaker_failures, breaker_failure_rate, breaker_window,
                  breaker_cooloff_s)
    if moderation_model:
        prepare("", moderation_model, project=project)
    from workbench.serve.semantic_cache import deployment_fields

    semantic = deployment_fields(project, semantic_cache)
    run_id = run_id or _evidence_run(project, prompt, stored.version, model, adapter)
    reasons: list[str]
    passed: bool | None
    if run_id is None:
        passed, reasons = None, [
            f"Prompt '{prompt}' v{stored.version} has never been evaluated on {model}."]
    else:
        run = load_run(project, run_id)
        used = _run_adapter(run.config)
        if (run.prompt, run.config.get("prompt_version"), run.config.get("model")) != \
                (prompt, stored.version, model) or not _same_adapter(used, adapter):
            raise DeploymentRefused(
                f"Run {run_id} evaluated '{run.prompt}' v{run.config.get('prompt_version')} on "
                f"{run.config.get('model')} (adapter {used or 'none'}), not '{prompt}' "
                f"v{stored.version} on {model} (adapter {adapter or 'none'}).",
                "Pass the run of the configuration you deploy, or leave run_id out.")
        # The deployment record keeps the outcome; gate_result records stay phase 9's.
        gate = check_gate(project, run_id, judges=tuple(judges), record=False)
        passed, reasons = gate.passed, list(gate.reasons)
    if not passed and not force:
        fix = ("Evaluate it first (notebook 06, or `workbench eval "
               f"{prompt} --dataset NAME --model {model}`)." if run_id is None else
               "Improve the prompt or model and evaluate again; or deploy anyway with "
               "force=True (`workbench deploy --force`), which is written to the decision log.")
        refused = " ".join(reasons)
        if role:
            refused = (f"{role} '{prompt}' v{stored.version} on {model} fails the evaluation "
                       f"gate: {refused}")
        raise DeploymentRefused(refused, fix)
    for fallback in fallbacks:
        if _evidence_run(project, prompt, stored.version, fallback, None) is None:
            reasons.append(f"Fallback {fallback} has never been evaluated with this prompt "
                           "version: when it answers, its quality is unknown.")
    dataset, dataset_version = None, None
    if value.few_shot.mode in ("random", "similar"):  # examples come from a train split
        if run_id is None:
            raise DeploymentRefused(
                f"Prompt '{prompt}' picks few-shot examples from a train split, and without an "
                "evaluation run nothing says which dataset version to take them from.",
                "Evaluate the prompt first (notebook 06 or `workbench eval`).")
        dataset, dataset_version = run.config.get("dataset"), run.config.get("dataset_version")
    chosen = [name for name, given in (("timeout_s", timeout_s), ("retries", retries),
                                       ("max_waiting", max_waiting)) if given is not None]
    if len(chosen) == 3:
        basis = "all set by hand"
    else:  # measured only when something is left to derive
        example = None
        if run_id is not None and provider_of(model) == "local":
            first = run.items[:1]  # an item it was evaluated on
            example = {"input": str(first["input"].iloc[0])} if len(first) else None
        adapter_path = prepare("", model, project=project, adapter=adapter).adapter
        limits = default_limits(value, model, repair_retries=repair_retries, example=example,
                                adapter=adapter_path)
        basis = limits.basis + (f" ({', '.join(chosen)} set by hand)" if chosen else "")
        timeout_s = limits.timeout_s if timeout_s is None else timeout_s
        retries = limits.retries if retries is None else retries
        max_waiting = limits.max_waiting if max_waiting is None else max_waiting
    reserved = {"labels", "examples", "schema", *HIDDEN_VARIABLES}
    variables = sorted((variables_used(value.system or "") | variables_used(value.template))
                       - reserved)
    return DeploymentSpec(
        prompt=prompt, prompt_version=stored.version, model=model, adapter=adapter,
        fallbacks=list(fallbacks), variables=variables or ["input"],
        labels=list(value.labels or []), few_shot_dataset=dataset,
        few_shot_version=dataset_version, evidence_run=run_id, gate_passed=passed,
        gate_reasons=reasons, forced=bool(force and not passed),
        rate_limit_per_minute=int(rate_limit_per_minute), burst=int(burst),
        max_input_chars=int(max_input_chars), timeout_s=float(timeout_s), retries=int(retries),
        repair_retries=int(repair_retries), cache=bool(cache), max_waiting=int(max_waiting),
        limits_basis=basis, content_filter=content_filter,
        moderation_model=moderation_model or None, breaker_failures=int(breaker_failures),
        breaker_failure_rate=float(breaker_failure_rate),
        breaker_window=int(breaker_window), breaker_cooloff_s=float(breaker_cooloff_s),
        **semantic)
