"""The weekly review: one offline HTML report of what production did and what maintenance did
about it — traffic, cost, quality against the card, alerts, failure patterns, new test cases and
gate results.

    >>> weekly_review(project)                       # reports/review-2026-12-05.html
    $ workbench review my-project --since 7d

Every section reads the project: the monitoring of phase 8 (``workbench.monitor``), the cost
what-if (``workbench.whatif``), the failure patterns (``workbench.clusters``), dataset versions
made by ``maintain.add_test_cases`` and stored gate results. plotly.js is inlined
(``workbench.report``): the file opens without a network and can be mailed.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

DAY_S = 86400.0


def _people(frame: pd.DataFrame) -> str:
    from workbench.evaluate.report import MISSING, for_people

    if frame is None or frame.empty:
        return "<p>Nothing in this window.</p>"
    return for_people(frame).to_html(index=False, border=0, na_rep=MISSING)


def _p(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def new_cases(project: Project, since: float, until: float) -> pd.DataFrame:
    """Test cases added from production in [since, until): one row per dataset version made by
    ``add_test_cases``, with the cases it added."""
    import pandas as pd

    from workbench.data.versions import DatasetVersion

    rows = []
    for name in project.records.names(DatasetVersion):
        for stored in project.records.versions(DatasetVersion, name):
            value = stored.value
            if value.transform.name != "add_test_cases" or not \
                    since <= stored.created_at < until:
                continue
            cases = list(value.transform.params.get("cases") or [])
            rows.append({"dataset": name, "version": stored.version,
                         "created": stored.created, "cases": len(cases),
                         "case ids": ", ".join(cases[:8]) + (" …" if len(cases) > 8 else ""),
                         "from": ", ".join(value.transform.params.get("sources") or [])})
    return pd.DataFrame(rows, columns=["dataset", "version", "created", "cases", "case ids",
                                       "from"])


def gate_results(project: Project, since: float, until: float) -> pd.DataFrame:
    """Gate decisions stored in [since, until), newest first."""
    import pandas as pd

    from workbench.evaluate.gate import GateResult

    rows = []
    for name in project.records.names(GateResult):
        for stored in project.records.versions(GateResult, name):
            if since <= stored.created_at < until:
                rows.append({"checked": stored.created, "run": stored.value.run_id,
                             "result": "PASS" if stored.value.passed else "FAIL",
                             "reasons": " ".join(stored.value.reasons)})
    frame = pd.DataFrame(rows, columns=["checked", "run", "result", "reasons"])
    return frame.sort_values("checked", ascending=False).reset_index(drop=True)


def _quality(project: Project, metrics: dict[str, Any]) -> pd.DataFrame:
    import pandas as pd

    from workbench.card import compare_to_targets, load_card
    from workbench.errors import WorkbenchError

    try:
        card = load_card(project)
    except WorkbenchError:
        return pd.DataFrame()
    measured = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and v == v}
    rows = compare_to_targets(card, measured)
    return pd.DataFrame(rows, columns=["metric", "target", "unit", "value", "status", "text"])


def _runs(project: Project, since: float) -> pd.DataFrame:
    from workbench.runs import list_runs

    runs = list_runs(project)
    if runs.empty:
        return runs
    runs = runs[runs["created"].map(lambda t: t.timestamp()) >= since]
    keep = [c for c in ("created", "run_id", "prompt", "model", "split", "status", "accuracy",
                        "parse_rate", "p95_latency_s", "cost_usd") if c in runs.columns]
    return runs[keep]


@dataclass
class Review:
    """The weekly review written to ``path``, with the headline it opens with."""

    path: Path
    headline: list[str]

    def _repr_markdown_(self) -> str:
        return f"Weekly review written to `{self.path}`:\n\n" + "\n".join(
            f"- {line}" for line in self.headline)


def weekly_review(project: Project, *, since_s: float = 7 * DAY_S, now: float | None = None,
                  path: str | Path | None = None) -> Review:
    """Write the review of the last ``since_s`` seconds (default 7 days) to ``path`` (default
    ``reports/review-YYYY-MM-DD.html``); returns where, with its headline."""
    from workbench.clusters import cluster_failures
    from workbench.monitor import alerts_frame, dashboard, traffic, window_metrics
    from workbench.report import write_report
    from workbench.serve import NotDeployed
    from workbench.whatif import cost_what_if

    if since_s <= 0:
        from workbench.errors import WorkbenchError

        raise WorkbenchError(f"The review window ({since_s:g} s) must be above 0.",
                             "Pass --since 7d (or 24h, 30d).")
    until = time.time() if now is None else float(now)
    since = until - since_s
    metrics = window_metrics(project, window_s=since_s, now=until)
    counted = traffic(project, window_s=since_s, now=until)
    sections: list[tuple[str, Any]] = []
    headline = [f"Traffic: {counted.label}."]

    served = metrics["answered"] + metrics["errors"]
    sections.append(("Traffic", _p(
        f"{counted.label}: {metrics['answered']:,} answered, {metrics['errors']:,} failed, "
        f"{metrics['refused']:,} refused ({metrics['rate_limited']:,} over a rate limit); "
        f"{metrics['feedback']:,} pieces of feedback.")))
    if served:
        sections.append(("Traffic, latency, cost and feedback over the window",
                         dashboard(project, since=since, source=metrics["source"])))

    try:
        plan = cost_what_if(project, since=since, until=until)
    except NotDeployed:
        plan = None
    spent = metrics.get("cost_usd") or 0.0
    cost_text = f"${spent:,.4f} spent in the window"
    if plan is not None and not plan.traffic.empty:
        cost_text += f"; {plan.sentence}"
        sections.append(("Cost", _p(cost_text) + _people(plan.frame)))
        sections.append(("Projected monthly cost per choice", plan.figure()))
    else:
        sections.append(("Cost", _p(cost_text + ".")))
    headline.append(cost_text.split(";")[0] + ".")

    quality = _quality(project, metrics)
    failing = [r["metric"] for r in quality.to_dict("records") if r["status"] == "fail"] \
        if len(quality) else []
    headline.append("Quality: " + (f"missing {', '.join(failing)}." if failing else
                                   "every measured target met."))
    sections.append(("Quality against the card's targets (production)",
                     _people(quality.drop(columns=["text"], errors="ignore"))))
    runs = _runs(project, since)
    sections.append(("Evaluation runs in the window", _people(runs)))

    alerts = alerts_frame(project)
    alerts = alerts[(alerts["fired_at"] >= since) & (alerts["fired_at"] < until)]
    headline.append(f"Alerts: {len(alerts)} fired.")
    sections.append(("Alerts", _people(alerts.drop(columns=["alert_id"]))))

    found = cluster_failures(project, since=since, until=until)
    headline.append(f"Failures: {found.sentence}")
    if len(found.failures):
        table = found.clusters.drop(columns=["trace_ids"]).assign(
            examples=found.clusters["examples"].map(lambda e: " · ".join(e)),
            keywords=found.clusters["keywords"].map(", ".join),
            kinds=found.clusters["kinds"].map(
                lambda k: ", ".join(f"{kind} ×{n}" for kind, n in k.items())))
        sections.append(("Failure patterns", _p(found.sentence) + _people(table)))
        sections.append(("Failure patterns per day", found.figure()))
    else:
        sections.append(("Failure patterns", _p(found.sentence)))

    cases = new_cases(project, since, until)
    headline.append(f"New test cases: {int(cases['cases'].sum()) if len(cases) else 0}.")
    sections.append(("New test cases from production", _people(cases)))
    gates = gate_results(project, since, until)
    passed = int((gates["result"] == "PASS").sum()) if len(gates) else 0
    headline.append(f"Gate: {passed} of {len(gates)} checks passed.")
    sections.append(("Gate results", _people(gates)))

    sections.insert(0, ("This week", "<ul>" + "".join(f"<li>{html.escape(line)}</li>"
                                                      for line in headline) + "</ul>"))
    day = datetime.fromtimestamp(until, timezone.utc).strftime("%Y-%m-%d")
    target = Path(path) if path is not None else project.reports_dir / f"review-{day}.html"
    start = datetime.fromtimestamp(since, timezone.utc).strftime("%Y-%m-%d %H:%M")
    end = datetime.fromtimestamp(until, timezone.utc).strftime("%Y-%m-%d %H:%M")
    write_report(target, f"{project.name}: weekly review", sections,
                 subtitle=f"{start} to {end} UTC")
    return Review(target, headline)
