"""The card's ``[monitoring]`` table: the online judge, drift, anomalies and the notifier.

Every key is optional; the table itself is too::

    [monitoring]
    judge_model = "openai/gpt-4o-mini"      # the online judge (none: no online judging)
    judge_criteria = ["The answer names the team that handles the message"]
    judge_rubric = "live-quality"           # the rubric's name: calibration is per name@model
    judge_sample_rate = 0.05                # share of answered requests judged
    judge_max_per_run = 100                 # judge calls one run may make
    drift_window_h = 24                     # inputs compared with the training data
    drift_min_inputs = 20                   # fewer distinct inputs: no drift verdict
    anomaly_z = 4.0                         # robust z-score above the last 7 days that fires
    anomaly_min_buckets = 24                # hours with traffic the baseline needs
    alert_log = true                        # <project>/logs/alerts.jsonl
    webhook_url_env = "WORKBENCH_ALERT_WEBHOOK"   # the variable holding the webhook's URL
    webhook_timeout_s = 5
    webhook_retries = 2
    renotify_after_h = 4                    # a still-firing alert is sent again after this

A webhook URL often carries a token (Slack, Teams): keep it in the environment variable that
``webhook_url_env`` names rather than in the card (``webhook_url`` works too, for a receiver
on your own network). The table is validated here (the card module leaves other phases'
tables alone): a typo is reported with the keys it may have meant.
"""

from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

if TYPE_CHECKING:
    from workbench.project import Project

TABLE = "monitoring"
DEFAULT_WEBHOOK_ENV = "WORKBENCH_ALERT_WEBHOOK"


class MonitorSettings(BaseModel):
    """What ``[monitoring]`` says (defaults where it is silent)."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    judge_model: str | None = None
    judge_criteria: list[str] = Field(default_factory=list)
    judge_rubric: str = "live-quality"
    judge_sample_rate: float = Field(default=0.05, ge=0, le=1)
    judge_max_per_run: int = Field(default=100, ge=1)
    drift_window_h: float = Field(default=24.0, gt=0)
    drift_min_inputs: int = Field(default=20, ge=5)
    anomaly_z: float = Field(default=4.0, gt=0)
    anomaly_min_buckets: int = Field(default=24, ge=3)
    alert_log: bool = True
    webhook_url: str | None = None
    webhook_url_env: str | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=60)
    webhook_retries: int = Field(default=2, ge=0, le=10)
    renotify_after_h: float = Field(default=4.0, ge=0)

    def webhook(self) -> str | None:
        """The webhook's URL: ``webhook_url``, else the variable ``webhook_url_env`` names
        (default ``WORKBENCH_ALERT_WEBHOOK``), else none."""
        if self.webhook_url:
            return self.webhook_url
        return os.environ.get(self.webhook_url_env or DEFAULT_WEBHOOK_ENV) or None


def _problems(exc: ValidationError, table: dict[str, Any]) -> list[str]:
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(key, list(MonitorSettings.model_fields), n=1)
            out.append(f"[{TABLE}] {key} is not a monitoring setting"
                       + (f"; did you mean {close[0]}?" if close else "."))
        else:
            out.append(f"[{TABLE}] {key} = {table.get(key.split('.')[0])!r}: {err['msg']}.")
    return out


def settings(project: Project, **overrides: Any) -> MonitorSettings:
    """The project's monitoring settings, with ``overrides`` (e.g. from CLI flags; None values
    are ignored) on top."""
    from workbench.monitor import MonitorError

    table = project.card().get(TABLE, {})
    if not isinstance(table, dict):
        raise MonitorError(f"[{TABLE}] in workbench.toml must be a table.",
                           f"Write it as a [{TABLE}] table with one key per line.")
    merged = {**table, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        return MonitorSettings.model_validate(merged)
    except ValidationError as exc:
        problems = _problems(exc, merged)
        raise MonitorError("The monitoring settings have problems:\n"
                           + "\n".join(f"- {p}" for p in problems),
                           "Fix them in workbench.toml (or the flags), then run again.") from None
