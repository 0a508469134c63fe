"""The online judge: a sample of live answers scored by an LLM judge, under phase 6's rules.

Evaluation (phase 6) measured quality on yesterday's test set; the online judge keeps
measuring it on today's traffic. ``judge_live`` picks a share (``judge_sample_rate``) of the
service's answered requests, by a hash of each trace id, so running it again never re-draws:
a request is in the sample or it is not; it asks the judge with a rubric that needs no
reference (live traffic has none) and stores each verdict.

The judge's word counts as quality only if phase 6's calibration trusts it
(``workbench.evaluate.calibration``: agreement with people, Cohen's kappa over the bar, on
enough items). Verdicts of an uncalibrated or untrusted judge are stored and shown,
labelled so, and never reported as quality or used by an alert; trust is looked up when
quality is reported, so calibrating the judge later makes its past verdicts count (and
a failed recalibration stops them counting). To calibrate on live traffic, label some judged
requests yourself and call ``calibrate_live_judge``.

The judge's calls are model calls of the project: they show in the traces and spend from the
budget. Configure it in the card's ``[monitoring]`` table (``workbench.monitor_config``).
"""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench import monitor_aggregates as aggregates

if TYPE_CHECKING:
    import pandas as pd

    from workbench.evaluate.judge import Rubric
    from workbench.monitor import Alert
    from workbench.project import Project

MIN_VERDICTS = 10  # fewer readable verdicts of a trusted judge cannot fire the quality alert
DEFAULT_WINDOW_S = 86400.0
TRUST_STATES = ("trusted", "untrusted", "uncalibrated")


def _error(message: str, fix: str) -> Exception:
    from workbench.monitor import MonitorError

    return MonitorError(message, fix)


def configured_judge(project: Project, *, judge_model: str | None = None,
                     rubric: Rubric | None = None, settings: Any = None
                     ) -> tuple[str, Rubric] | None:
    """The online judge's model and rubric: the arguments, else the card's ``[monitoring]``
    (None when neither names a judge model)."""
    from workbench.evaluate.judge import Rubric
    from workbench.monitor_config import settings as read_settings

    config = settings if settings is not None else read_settings(project)
    judge_model = judge_model or config.judge_model
    if not judge_model:
        return None
    if rubric is None:
        if not config.judge_criteria:
            raise _error("The online judge has a model and no rubric.",
                         "Add judge_criteria = [\"...\"] to [monitoring] in workbench.toml, "
                         "or pass rubric=Rubric(criteria=[...]).")
        rubric = Rubric(criteria=config.judge_criteria, name=config.judge_rubric)
    if rubric.reference_required:
        raise _error(f"The rubric '{rubric.name}' needs a reference answer, and live traffic "
                     "has none.", "Use a rubric with reference_required=False for the "
                                  "online judge (criteria a judge can check from the question "
                                  "and the answer alone).")
    return judge_model, rubric


def trust_state(project: Project, name: str) -> str:
    """"trusted", "untrusted" (calibrated, below the bar) or "uncalibrated"."""
    from workbench.evaluate.calibration import trust_of

    stored = trust_of(project, name)
    if stored is None:
        return "uncalibrated"
    return "trusted" if stored.value.trusted else "untrusted"


def in_sample(trace_id: str, judge: str, rate: float) -> bool:
    """Whether a request is in a judge's sample: a fixed draw per (judge, trace id)."""
    digest = hashlib.sha256(f"{judge}|{trace_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@dataclass(frozen=True)
class LiveJudging:
    """What one ``judge_live`` run did."""

    judge: str
    trust: str
    sample_rate: float
    in_sample: int  # answered requests of the window in the sample, not judged before
    judged: int  # verdicts stored by this run
    unreadable: int  # of those, replies with no readable score
    left: int  # in the sample but over the run's limit (the next run takes them)
    warning: str | None = None

    @property
    def sentence(self) -> str:
        label = {"trusted": "a trusted judge",
                 "untrusted": "an untrusted judge (its verdicts are not counted as quality)",
                 "uncalibrated": "an uncalibrated judge (its verdicts are not counted as "
                                 "quality until it is calibrated)"}[self.trust]
        text = (f"{self.judged} answers judged by {self.judge}, {label}; "
                f"{self.unreadable} replies unreadable")
        if self.left:
            text += f"; {self.left} more in the sample for the next run"
        return text + "."


def _question(request: Any) -> str:
    if isinstance(request, dict):
        if set(request) == {"input"}:
            return str(request["input"])
        return "\n".join(f"{k}: {v}" for k, v in request.items())
    return str(request)


def judge_live(project: Project, *, sample_rate: float | None = None,
               judge_model: str | None = None, rubric: Rubric | None = None,
               window_s: float = DEFAULT_WINDOW_S, since: float | None = None,
               until: float | None = None, now: float | None = None, limit: int | None = None,
               progress: Any = False, **options: Any) -> LiveJudging:
    """Judge the sampled answered requests of a window (default: the last 24 hours) that this
    judge has not judged yet, newest first, at most ``limit`` (default the card's
    ``judge_max_per_run``), and store the verdicts. Arguments default to the card's
    ``[monitoring]`` table."""
    import json

    from workbench.evaluate.judge import (
        judge_name,
        parse_judgement,
        rubric_messages,
        self_judging_warning,
    )
    from workbench.llm.gateway import complete_many
    from workbench.monitor_config import settings as read_settings

    config = read_settings(project)
    chosen = configured_judge(project, judge_model=judge_model, rubric=rubric, settings=config)
    if chosen is None:
        raise _error("No online judge is set.",
                     "Set judge_model and judge_criteria in [monitoring] in workbench.toml "
                     "(or pass judge_model= and rubric=).")
    judge_model, rubric = chosen
    rate = config.judge_sample_rate if sample_rate is None else sample_rate
    if not 0 <= rate <= 1:
        raise _error(f"sample_rate={rate} is not a share.", "Pass a value from 0 to 1.")
    limit = config.judge_max_per_run if limit is None else limit
    name = judge_name(rubric, judge_model)
    now = time.time() if now is None else now
    until = now if until is None else until
    since = until - window_s if since is None else since
    project.store.flush()
    db = project.store.db
    # The sample is drawn on trace ids alone; only the sampled spans' attributes are read.
    candidates = [(trace_id, started) for trace_id, started in db.execute(
        "SELECT s.trace_id, s.start_time FROM spans s WHERE s.name = 'serve.request' AND "
        "s.start_time >= ? AND s.start_time < ? AND NOT EXISTS (SELECT 1 FROM "
        "monitor_judgements j WHERE j.trace_id = s.trace_id AND j.judge_name = ?) "
        "ORDER BY s.start_time DESC", (since, until, name)) if in_sample(trace_id, name, rate)]
    todo = []
    for trace_id, started in candidates:
        row = db.execute("SELECT attributes FROM spans WHERE trace_id = ? AND name = "
                         "'serve.request'", (trace_id,)).fetchone()
        a = json.loads(row[0]) if row else {}
        if (a.get("http.route") not in aggregates.ANSWERING_ROUTES
                or a.get("http.response.status_code") != 200
                or a.get("workbench.output") is None):
            continue
        todo.append((trace_id, started, a))
    chosen_now, left = todo[:limit], max(0, len(todo) - limit)
    warning = None
    deployed = next((a.get("workbench.model") for _, _, a in chosen_now), None)
    if deployed:
        warning = self_judging_warning(judge_model, deployed)
        if warning:
            warnings.warn(warning, stacklevel=2)
    prompts = [rubric_messages(rubric, question=_question(a.get("workbench.request")),
                               answer=str(a["workbench.output"]), reference=None)
               for _, _, a in chosen_now]
    options.setdefault("temperature", 0)
    replies = complete_many(prompts, judge_model, progress=progress, on_error="return",
                            project=project, **options) if prompts else []
    trust = trust_state(project, name)
    rows, unreadable = [], 0
    for (trace_id, started, a), reply in zip(chosen_now, replies, strict=True):
        raw = None if isinstance(reply, Exception) else reply.text
        verdict = parse_judgement(raw, rubric, judge_model)
        unreadable += not verdict.parsed_ok
        reason = f"The judge call failed: {reply}" if isinstance(reply, Exception) \
            else verdict.reason
        deployment = a.get("workbench.deployment")
        version = a.get("workbench.prompt_version")
        if isinstance(deployment, int):
            version = aggregates.deployment_of(project, deployment)[1] or version
        rows.append((trace_id, name, time.time(), started, verdict.score,
                     None if verdict.passed is None else int(verdict.passed),
                     int(verdict.parsed_ok),
                     None if verdict.score is None else rubric.normalise(verdict.score),
                     reason[:500], trust, a.get("workbench.model"),
                     None if version is None else str(version),
                     a.get(aggregates.ARM_ATTRIBUTE) or "live"))
    if rows:
        with project.store.write() as db:
            db.executemany("INSERT OR REPLACE INTO monitor_judgements VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    return LiveJudging(name, trust, rate, len(todo), len(rows), unreadable, left, warning)


QUALITY = ["judge", "trust", "counted", "verdicts", "unreadable", "pass_rate", "low", "high",
           "mean_score", "quality", "note"]


def live_quality(project: Project, *, window_s: float = DEFAULT_WINDOW_S,
                 now: float | None = None, by: str | None = None) -> pd.DataFrame:
    """The online judges' verdicts on the window's requests, per judge (and per ``by``:
    ``model``, ``prompt_version`` or ``arm``): pass rate with its 95% Wilson interval, mean
    score (0-1), and ``quality`` — the pass rate, only where the judge is trusted now; NaN,
    with a note saying why, where it is not."""
    import pandas as pd

    from workbench.evaluate.stats import wilson_interval

    if by not in (None, "model", "prompt_version", "arm"):
        raise _error(f"by={by!r} is not model, prompt_version or arm.",
                     "Break quality down by model, prompt_version or arm.")
    now = time.time() if now is None else now
    group = f", {by}" if by else ""
    rows = project.store.db.execute(
        f"SELECT judge_name{group}, COUNT(*), SUM(parsed_ok = 0), SUM(passed = 1), "
        "SUM(passed IS NOT NULL), AVG(normalised) FROM monitor_judgements WHERE request_time "
        f">= ? AND request_time < ? GROUP BY judge_name{group} ORDER BY judge_name{group}",
        (now - window_s, now)).fetchall()
    out, trust = [], {}
    for row in rows:
        name = row[0]
        value = row[1] if by else None
        n, bad, passed, scored, mean = row[-5:]
        state = trust.setdefault(name, trust_state(project, name))
        rate = passed / scored if scored else math.nan
        low, high = wilson_interval(int(passed or 0), int(scored)) if scored else (math.nan,
                                                                                   math.nan)
        counted = state == "trusted"
        note = ("" if counted else
                "uncalibrated judge: shown, not counted as quality (calibrate it, phase 6)"
                if state == "uncalibrated" else
                "untrusted judge (below the calibration bar): shown, not counted as quality")
        out.append({"judge": name, **({by: value} if by else {}), "trust": state,
                    "counted": counted, "verdicts": int(n), "unreadable": int(bad or 0),
                    "pass_rate": rate, "low": low, "high": high,
                    "mean_score": math.nan if mean is None else float(mean),
                    "quality": rate if counted else math.nan, "note": note})
    columns = QUALITY[:1] + ([by] if by else []) + QUALITY[1:]
    return pd.DataFrame(out, columns=columns)


def judgements_frame(project: Project, *, judge: str | None = None, since: float | None = None,
                     limit: int = 500) -> pd.DataFrame:
    """Single verdicts, newest first, with the question and answer where the trace is still
    kept: what to read (and label) before trusting a judge."""
    import json

    import pandas as pd

    where, params = [], []
    if judge:
        where.append("j.judge_name = ?")
        params.append(judge)
    if since is not None:
        where.append("j.request_time >= ?")
        params.append(since)
    rows = project.store.query(
        "SELECT j.*, s.attributes FROM monitor_judgements j LEFT JOIN spans s ON s.trace_id = "
        "j.trace_id AND s.name = 'serve.request'" + (" WHERE " + " AND ".join(where)
                                                     if where else "")
        + " ORDER BY j.request_time DESC LIMIT ?", (*params, limit))
    out = []
    for r in rows:
        a = json.loads(r["attributes"]) if r["attributes"] else {}
        out.append({"trace_id": r["trace_id"], "judge": r["judge_name"],
                    "time": pd.Timestamp(r["request_time"], unit="s", tz="UTC"),
                    "question": _question(a["workbench.request"])
                    if "workbench.request" in a else None,
                    "answer": a.get("workbench.output"), "score": r["score"],
                    "passed": None if r["passed"] is None else bool(r["passed"]),
                    "reason": r["reason"], "trust_when_judged": r["trust"], "model": r["model"],
                    "arm": r["arm"]})
    return pd.DataFrame(out, columns=["trace_id", "judge", "time", "question", "answer",
                                      "score", "passed", "reason", "trust_when_judged",
                                      "model", "arm"])


def calibrate_live_judge(project: Project, judge: str, human_labels: Mapping[str, bool], *,
                         bar: float | None = None):
    """Calibrate an online judge on live traffic: ``human_labels`` maps trace ids of judged
    requests to a person's pass/fail; their agreement with the judge's verdicts is recorded
    as the judge's trust (``calibration.calibrate``, phase 6's rules and bar)."""
    from workbench.evaluate.calibration import DEFAULT_BAR, calibrate

    rows = project.store.db.execute(
        "SELECT trace_id, passed FROM monitor_judgements WHERE judge_name = ? AND passed IS NOT "
        "NULL", (judge,)).fetchall()
    verdicts = {trace_id: bool(passed) for trace_id, passed in rows}
    if not verdicts:
        raise _error(f"The judge '{judge}' has no verdicts on live traffic.",
                     "Run judge_live (or `workbench monitor --judge`) first.")
    return calibrate(project, judge, verdicts, {k: bool(v) for k, v in human_labels.items()},
                     bar=DEFAULT_BAR if bar is None else bar, labelled_by="people")


def quality_alerts(project: Project, card: Any, *, now: float | None = None,
                   settings: Any = None) -> list[Alert]:
    """The ``quality`` alert: the configured online judge's mean score over the last 24 hours
    against the card's ``judge_score`` target, only when the judge is trusted and has
    ``MIN_VERDICTS`` readable verdicts. Nothing when no judge is configured."""
    from workbench.monitor import Alert, AlertRule, MonitorError

    try:
        chosen = configured_judge(project, settings=settings)
    except MonitorError as exc:  # a half-configured judge: say so, keep the other alerts
        return [Alert(AlertRule("judge_score", ">=", math.nan, "none", kind="quality"),
                      "no data", math.nan, f"judge_score: {exc.message} {exc.fix}")]
    if chosen is None:
        return []
    from workbench.card import metric_status
    from workbench.evaluate.judge import judge_name

    name = judge_name(chosen[1], chosen[0])
    target = card.metric("judge_score")
    rule = AlertRule("judge_score", target.direction if target else ">=",
                     target.target_in_canonical_unit() if target else math.nan,
                     "card" if target else "none", kind="quality")
    if target is None:
        return [Alert(rule, "no data", math.nan, f"judge_score: the online judge {name} runs, "
                      "and the card sets no judge_score target to alert on.")]
    frame = live_quality(project, now=now)
    row = frame[frame["judge"] == name]
    state = trust_state(project, name)
    scored = 0 if row.empty else int(row["verdicts"].iloc[0] - row["unreadable"].iloc[0])
    if state != "trusted":
        return [Alert(rule, "no data", math.nan,
                      f"judge_score: {name} is {state}; its verdicts are not counted as "
                      "quality (calibrate it against people first, phase 6).")]
    if scored < MIN_VERDICTS:
        return [Alert(rule, "no data", math.nan, f"judge_score: {scored} readable verdicts in "
                      f"the last 24 hours; alerts need {MIN_VERDICTS}.")]
    value = float(row["mean_score"].iloc[0])
    status, text = metric_status(card, "judge_score", value)
    return [Alert(rule, "ok" if status == "pass" else "firing", value,
                  f"online {text} ({scored} verdicts of {name})", {"verdicts": scored})]
