"""What a deployment is (phase 7): the recorded spec (prompt version, model, fallbacks, limits,
content filter, staged candidate), how it reads in a sentence, the body-size rule, and the latest
one. The base every other module of ``workbench.serve`` builds on: it imports none of them.

Planning one against the gate is ``planning``; recording it with its files is ``files``."""

from __future__ import annotations

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
FILTER_MODES: tuple[str, ...] = ("block", "flag", "off")  # the content filter (serve.safety)
# How big a request body may be (the service refuses more, the nginx in front too):
BYTES_PER_CHAR = 12  # the longest JSON escape of one character: "\ud83d\ude00" (a surrogate pair)
BODY_SLACK = 16_384  # bytes for the JSON syntax, the field names and whitespace
FEEDBACK_CHARS = 2000  # a comment or correction sent to POST /v1/feedback

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


def percent(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.4g}%"


def describe(spec: DeploymentSpec) -> str:
    """'triage' v2 on fake/oracle (adapter x)."""
    from pathlib import Path

    adapter = f" with adapter {Path(spec.adapter).name}" if spec.adapter else ""
    return f"'{spec.prompt}' v{spec.prompt_version} on {spec.model}{adapter}"


def candidate_label(spec: DeploymentSpec) -> str:
    """'10% canary' or 'shadow', for sentences."""
    if spec.candidate_mode == "canary":
        return f"{percent(spec.canary_share)} canary"
    return "shadow"


def candidate_text(spec: DeploymentSpec) -> str:
    """The sentence a deployment's summary adds when it has a staged candidate ('' if not)."""
    candidate = spec.candidate
    if candidate is None:
        return ""
    state = ("passed the gate" if candidate.gate_passed else
             "FORCED past a failing gate" if candidate.forced else "not gated")
    role = (f"answers {percent(spec.canary_share)} of the end users" if
            spec.candidate_mode == "canary" else "is called on every request and answers "
                                                 "nobody (shadow)")
    return f" Candidate {describe(candidate)} ({state}) {role}."


def max_body_bytes(spec: DeploymentSpec) -> int:
    """The largest request body the deployment accepts: every variable at its longest, escaped
    at worst, or a feedback with its comment and correction, plus the JSON around them."""
    return BODY_SLACK + BYTES_PER_CHAR * max(len(spec.variables) * spec.max_input_chars,
                                             2 * FEEDBACK_CHARS + 64)


def latest_deployment(project: Project) -> Stored[DeploymentSpec]:
    from workbench.records import RecordNotFound

    try:
        return project.records.get(DeploymentSpec, DEPLOYMENT)
    except RecordNotFound:
        raise NotDeployed("This project has no deployment yet.",
                          "Plan one in notebook 07 or with `workbench deploy PROMPT`.") from None
