"""Failure patterns as issue drafts: one Markdown file per pattern, and CSV files that Linear's
and Jira's importers read.

    >>> drafts = issue_drafts(project, cluster_failures(project))
    >>> drafts.folder          # reports/issues-2026-12-05/
    >>> drafts.markdown        # C1-refund-returned-money.md, ...
    >>> drafts.linear_csv, drafts.jira_csv

What each importer expects (checked against their import documentation and code):

- **Linear** (its CSV importer reads Linear's own export format): ``Title``, ``Description``
  (Markdown), ``Priority`` — one of "No priority", "Urgent", "High", "Medium", "Low" — and
  ``Labels``, several joined by ", " (the column must be present).
- **Jira** (the CSV importer): a header row that names a ``Summary`` column (the only required
  field) and no punctuation in the header; ``Description`` (plain text: Jira does not render
  Markdown); ``Priority`` by name (Highest, High, Medium, Low, Lowest); one ``Labels`` column per
  label (the header repeated), and labels without spaces; ``Issue Type``. Every row has every
  column, empty ones included.

Priority: **High** for a pattern of at least 3 failures that is rising, new, or a quarter of
all failures; **Medium** for one of at least 2; **Low** for a single failure.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    from workbench.clusters import FailureClusters
    from workbench.project import Project

EXAMPLES = 5  # examples per draft
LINEAR_COLUMNS = ["Title", "Description", "Priority", "Labels"]
JIRA_LABEL_COLUMNS = 4  # Labels columns in the Jira file (the most labels a draft carries)
TITLE_CHARS = 200  # Jira's Summary holds 255


class IssueDraftError(WorkbenchError):
    """Issue drafts could not be written."""


def priority(size: int, share: float, trend: str) -> str:
    """High, Medium or Low (see the module docstring)."""
    if size >= 3 and (trend in ("rising", "new") or share >= 0.25):
        return "High"
    return "Medium" if size >= 2 else "Low"


def _slug(text: str, n: int = 40) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return slug[:n].strip("-") or "pattern"


def _cell(value: Any, n: int = 160) -> str:
    """A Markdown table cell: one line, pipes escaped, cut at ``n`` characters."""
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= n else text[:n - 1] + "…"


@dataclass
class Draft:
    """One pattern as an issue: what every format is written from."""

    cluster: str
    title: str
    priority: str
    labels: list[str]
    summary: str
    examples: list[dict[str, Any]]
    traces: list[dict[str, Any]]
    keywords: list[str]

    def markdown(self, *, project: str, next_steps: list[str]) -> str:
        """The draft as a Markdown file: the title as its heading, then ``body``."""
        return f"# {self.title}\n\n" + self.body(project=project, next_steps=next_steps)

    def body(self, *, project: str, next_steps: list[str]) -> str:
        """The description in Markdown: summary, examples, every trace id, next steps."""
        lines = [self.summary, "",
                 f"**Priority:** {self.priority} · **Labels:** "
                 + ", ".join(f"`{label}`" for label in self.labels), "",
                 f"**Keywords:** {', '.join(self.keywords) or '—'}", "",
                 "## Most typical examples", "",
                 "| # | input | answer given | expected | kind | trace id |",
                 "|---|---|---|---|---|---|"]
        for n, e in enumerate(self.examples, start=1):
            lines.append(f"| {n} | {_cell(e['input'])} | {_cell(e['output'])} | "
                         f"{_cell(e['expected'])} | {_cell(e['kind'])} | `{e['trace_id']}` |")
        lines += ["", f"## Every trace ({len(self.traces)})", ""]
        lines += [f"- `{t['trace_id']}` — {t['kind']} — {t['time']}" for t in self.traces]
        if next_steps:
            lines += ["", "## Next steps", ""]
            lines += [f"{n}. {step}" for n, step in enumerate(next_steps, start=1)]
        lines += ["", f"_Drafted by the LLMOps Workbench from project “{project}”._", ""]
        return "\n".join(lines)

    def plain(self) -> str:
        """The description as plain text (Jira shows Markdown as typed)."""
        lines = [self.summary, "", f"Keywords: {', '.join(self.keywords) or '-'}", "",
                 "Most typical examples:"]
        for n, e in enumerate(self.examples, start=1):
            expected = f" / expected: {_cell(e['expected'], 200)}" if e["expected"] else ""
            lines.append(f"{n}. {_cell(e['input'], 300)} -> answer: {_cell(e['output'], 200)}"
                         f"{expected} ({e['kind']}; trace {e['trace_id']})")
        lines += ["", "Trace ids: " + ", ".join(t["trace_id"] for t in self.traces)]
        return "\n".join(lines)


@dataclass
class IssueDrafts:
    """The files ``issue_drafts`` wrote (``folder`` holds them all)."""

    folder: Path
    drafts: list[Draft]
    markdown: list[Path] = field(default_factory=list)
    linear_csv: Path | None = None
    jira_csv: Path | None = None

    @property
    def sentence(self) -> str:
        if not self.drafts:
            return "No failure pattern to draft an issue for."
        high = sum(1 for d in self.drafts if d.priority == "High")
        return (f"{len(self.drafts)} issue draft{'s' if len(self.drafts) != 1 else ''} "
                f"({high} high priority) in {self.folder}: one Markdown file each, "
                f"{self.linear_csv.name} for Linear and {self.jira_csv.name} for Jira.")

    def _repr_markdown_(self) -> str:
        return self.sentence


def drafts_of(found: FailureClusters, *, examples: int = EXAMPLES) -> list[Draft]:
    """One ``Draft`` per cluster, largest first."""
    out = []
    total = len(found.failures)
    since = datetime.fromtimestamp(found.since, timezone.utc).strftime("%Y-%m-%d %H:%M")
    until = datetime.fromtimestamp(found.until, timezone.utc).strftime("%Y-%m-%d %H:%M")
    for c in found.clusters.to_dict("records"):
        members = found.failures[found.failures["cluster"] == c["cluster"]]
        ranked = members.sort_values("similarity", ascending=False, kind="stable")
        level = priority(int(c["size"]), float(c["share"]), str(c["trend"]))
        kinds = [_slug(k, 20) for k in c["kinds"]]
        labels = list(dict.fromkeys(["llm-failure", f"pattern-{c['cluster'].lower()}",
                                     *kinds]))[:JIRA_LABEL_COLUMNS]
        size = int(c["size"])
        trend = "" if c["trend"] == "—" else f", {c['trend']}"
        title = f"{c['name']}: {size} failure{'s' if size != 1 else ''}{trend}"
        kind_text = ", ".join(f"{k} ×{n}" for k, n in c["kinds"].items())
        summary = (f"Pattern {c['cluster']}: {size} of {total} failures ({c['share']:.0%}) "
                   f"between {since} and {until} UTC; trend: {c['trend']}. Kinds: {kind_text}.")
        out.append(Draft(
            cluster=c["cluster"], title=title[:TITLE_CHARS], priority=level, labels=labels,
            summary=summary, keywords=list(c["keywords"]),
            examples=[{"input": r["input"], "output": r["output"], "expected": r["expected"],
                       "kind": r["kind"], "trace_id": r["trace_id"]}
                      for r in ranked.head(examples).to_dict("records")],
            traces=[{"trace_id": r["trace_id"], "kind": r["kind"],
                     "time": datetime.fromtimestamp(r["time"], timezone.utc).strftime(
                         "%Y-%m-%d %H:%M:%S UTC")}
                    for r in members.sort_values("time").to_dict("records")]))
    return out


def linear_csv(drafts: list[Draft], *, project: str = "",
               next_steps: list[str] | None = None) -> str:
    """Linear's CSV: Title, Description (Markdown), Priority, Labels (joined by ", ")."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(LINEAR_COLUMNS)
    for d in drafts:
        writer.writerow([d.title, d.body(project=project, next_steps=next_steps or []),
                         d.priority, ", ".join(d.labels)])
    return buffer.getvalue()


def jira_csv(drafts: list[Draft]) -> str:
    """Jira's CSV: Summary, Description (plain text), Priority, Issue Type, a Labels column per
    label (empty cells where a draft has fewer)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(["Summary", "Description", "Priority", "Issue Type",
                     *["Labels"] * JIRA_LABEL_COLUMNS])
    for d in drafts:
        labels = d.labels + [""] * (JIRA_LABEL_COLUMNS - len(d.labels))
        writer.writerow([d.title, d.plain(), d.priority, "Bug", *labels])
    return buffer.getvalue()


def _next_steps(project: Project) -> list[str]:
    from workbench.data.versions import find_split
    from workbench.serve import NotDeployed, latest_deployment

    try:
        spec = latest_deployment(project).value
    except NotDeployed:
        spec = None
    split = find_split(project, prefer=spec.few_shot_dataset if spec else None)
    command = (f"`workbench maintain {spec.prompt if spec else 'PROMPT'} --dataset "
               f"{split.name if split else 'DATASET'}`")
    return ["Label the failures that have no expected answer (notebook 09, “Label the failures”, "
            "or Label Studio) so they join the test split as test cases.",
            f"Re-evaluate the deployed prompt with the new cases: {command}.",
            "Fix the prompt (phase 4) or the model (phases 3 and 5) until the cases pass, then "
            "let the gate decide.",
            "Read one trace in full: `workbench.monitor.request_trace(project, TRACE_ID)`."]


def issue_drafts(project: Project, found: FailureClusters, folder: str | Path | None = None, *,
                 examples: int = EXAMPLES) -> IssueDrafts:
    """Write one Markdown draft per failure pattern, ``issues-linear.csv`` and
    ``issues-jira.csv`` into ``folder`` (default ``reports/issues-YYYY-MM-DD``; an existing
    folder is replaced whole, never left half-written)."""
    from workbench.fsutil import publish_dir, staged_dir

    if examples < 1:
        raise IssueDraftError(f"examples={examples} must be at least 1.",
                              "Show at least one example per draft.")
    day = datetime.fromtimestamp(found.until, timezone.utc).strftime("%Y-%m-%d")
    target = Path(folder) if folder is not None else project.reports_dir / f"issues-{day}"
    if target.exists() and not target.is_dir():
        raise IssueDraftError(f"{target} is a file, not a folder.", "Pass a folder path.")
    drafts = drafts_of(found, examples=examples)
    steps = _next_steps(project)
    names = []
    with staged_dir(target) as staging:
        for d in drafts:
            name = f"{d.cluster}-{_slug(d.title.split(':')[0])}.md"
            (staging / name).write_text(d.markdown(project=project.name, next_steps=steps),
                                        encoding="utf-8")
            names.append(name)
        (staging / "issues-linear.csv").write_text(
            linear_csv(drafts, project=project.name, next_steps=steps), encoding="utf-8")
        (staging / "issues-jira.csv").write_text(jira_csv(drafts), encoding="utf-8")
        publish_dir(staging, target, replace=True)
    return IssueDrafts(target, drafts, [target / n for n in names],
                       target / "issues-linear.csv", target / "issues-jira.csv")
