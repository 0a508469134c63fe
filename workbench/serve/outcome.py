"""How one item was answered, as every answering route and the content filter report it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Outcome:
    """How one item was answered: ``status`` 200 with ``result`` and ``model``, or an error
    status with the message and fix a caller may see (details stay in the trace)."""

    status: int
    request_id: str
    trace_id: str
    latency_ms: float
    model: str | None = None
    result: Any = None  # workbench.prompts.run.ItemResult when status == 200
    message: str | None = None
    fix: str | None = None
    primary: str = ""  # the deployment's first model: another one answering is a fallback
    arm: str = "live"  # which arm answered (workbench.serve.rollout)
    flags: list[str] = field(default_factory=list)  # content checks that found something
    retry_after: float | None = None  # seconds, when every model is resting (503)

    @property
    def fallback_used(self) -> bool:
        return self.model is not None and self.model != self.primary
