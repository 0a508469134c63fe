"""The evaluation report of one run: a self-contained HTML file, and every table as a DataFrame.

    >>> tables = eval_tables(project, run_id)          # dict of DataFrames, for notebooks
    >>> eval_report(project, run_id)                   # reports/eval_<run_id>.html
    PosixPath('.../reports/eval_<run_id>.html')

Sections: the run's configuration; the card's targets against what the run measured, each with
its interval; the scorers' pass rates; corpus BLEU/chrF beside the mean sentence scores (when
the run used those scorers); per class (classification); the failing items a reviewer
reads first; the judge's calibration (when a judge scored the run); the comparison with the
blessed baseline (when there is one); and two figures (score distribution, latency).

pandas and plotly are imported when a function is called.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.formatting import MISSING, format_number, is_missing

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project
    from workbench.runs import Run

FAILURES = 10  # failing items shown by default
_TEXT = 300  # characters of an input or output shown in the failures table

# The card's metric name -> the rows of aggregate_with_intervals that may measure it (the
# first one present is used; exact_match is the mean of whichever match scorer the run used).
_INTERVAL_OF = {"p95_latency": ("p95_latency_s",), "cost_per_request": ("cost_per_request_usd",),
                "exact_match": ("normalized_match", "exact_match")}


def _short(value: Any, n: int = _TEXT) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= n else text[:n - 1] + "…"


# -- values for people ----------------------------------------------------------------------------

def _format_time(value: Any) -> str:
    """A moment to the second, in the time zone it was stored in (``2026-05-04 21:30:54
    UTC``), never with pandas' nanoseconds."""
    import pandas as pd

    moment = pd.Timestamp(value)
    zone = moment.tzname()
    return moment.strftime("%Y-%m-%d %H:%M:%S") + (f" {zone}" if zone else "")


def format_value(value: Any, limit: int = _TEXT) -> str:
    """Any stored value as text for a report cell: numbers by ``format_number``, a mapping as
    ``key: value`` pairs and a list joined by commas (never a Python repr such as
    ``{'mode': ...}``), text cut at ``limit`` characters."""
    import numpy as np

    if isinstance(value, str):
        text = value
    elif is_missing(value):
        return MISSING
    elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        return format_number(value)
    elif isinstance(value, (datetime.datetime, np.datetime64)):
        return _format_time(value)
    elif isinstance(value, dict):
        text = ", ".join(f"{k}: {format_value(v, limit)}" for k, v in value.items()) or MISSING
    elif isinstance(value, (list, tuple, set, np.ndarray)):
        text = ", ".join(format_value(v, limit) for v in value) or MISSING
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def for_people(frame: pd.DataFrame, limit: int = _TEXT) -> pd.DataFrame:
    """A copy of a table to show: every cell as text (``format_value``), headers with spaces
    instead of underscores, the index dropped (a report never shows pandas' row numbers)."""
    import pandas as pd

    shown = pd.DataFrame({str(c).replace("_", " "): [format_value(v, limit) for v in frame[c]]
                          for c in frame.columns}, columns=[str(c).replace("_", " ")
                                                            for c in frame.columns])
    return shown.reset_index(drop=True)


def _plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else (many or word + 's')}"


def _config_table(run: Run) -> pd.DataFrame:
    """The run's settings; a setting the run does not have (no labels, no options) is left
    out rather than shown as an empty row."""
    import pandas as pd

    c = run.config
    options = {k: v for k, v in (c.get("options") or {}).items() if not is_missing(v)}
    rows = [("run_id", run.run_id), ("name", run.name), ("status", run.status),
            ("prompt", f"{run.prompt} v{run.prompt_version}"), ("model", run.model),
            ("dataset", f"{run.dataset} v{run.dataset_version}"), ("split", run.split),
            ("items", c.get("n_items")), ("task_type", c.get("task_type")),
            ("labels", ", ".join(str(x) for x in c.get("labels") or [])),
            ("scorers", ", ".join(_spec_text(s) for s in c.get("scorers") or [])),
            ("cache", None if c.get("cache") is None else ("on" if c.get("cache") else "off")),
            ("options", "; ".join(f"{k} = {_arg_text(v)}" for k, v in options.items()))]
    return pd.DataFrame([{"setting": k, "value": format_value(v)} for k, v in rows
                         if not is_missing(v) and v != ""], columns=["setting", "value"])


def _arg_text(value: Any, limit: int = 80) -> str:
    """A scorer argument or run option as people write it: ``mode=json`` for a mapping,
    ``a, b`` for a list, a number by ``format_number``."""
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}={_arg_text(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_arg_text(v, limit) for v in value) + "]"
    elif isinstance(value, str):
        text = value
    else:
        text = format_value(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _spec_text(spec: dict[str, Any]) -> str:
    args = spec.get("args") or {}
    if spec.get("name") == "llm_judge":  # the rubric is long: name it
        rubric = (args.get("rubric") or {}).get("name", "rubric")
        return f"llm_judge({rubric}@{args.get('judge_model')})"
    shown = ", ".join(f"{k}={_arg_text(v)}" for k, v in args.items())
    return f"{spec.get('name')}({shown})"


def _targets_table(project: Project, run: Run, intervals: pd.DataFrame) -> pd.DataFrame:
    """The card's targets with the measured value, its interval and pass/fail."""
    import pandas as pd

    from workbench.card import compare_to_targets, load_card

    columns = ["metric", "target", "unit", "value", "low", "high", "status", "text"]
    try:
        card = load_card(project)
    except Exception:  # no card or an invalid one: the report still shows everything else
        return pd.DataFrame(columns=columns)
    measured = run.metrics
    by_metric = intervals.set_index("metric") if len(intervals) else None
    rows = []
    for row in compare_to_targets(card, measured):
        low = high = math.nan
        for key in _INTERVAL_OF.get(row["metric"], (row["metric"],)):
            if by_metric is not None and key in by_metric.index:
                low, high = by_metric.at[key, "low"], by_metric.at[key, "high"]
                break
        rows.append({**row, "low": float(low), "high": float(high)})
    return pd.DataFrame(rows, columns=columns)


def _scores_table(items: pd.DataFrame) -> pd.DataFrame:
    """Per scorer: items scored, mean value, pass rate with its Wilson interval."""
    import pandas as pd

    from workbench.evaluate.stats import wilson_interval

    values: dict[str, list[float]] = {}
    verdicts: dict[str, list[bool]] = {}
    for scores in items["scores"]:
        for key, s in (scores or {}).items():
            values.setdefault(key, [])
            verdicts.setdefault(key, [])
            if s.get("value") is not None:
                values[key].append(float(s["value"]))
            if s.get("passed") is not None:
                verdicts[key].append(bool(s["passed"]))
    rows = []
    for key in values:
        flags = verdicts[key]
        n, k = len(flags), sum(flags)
        low, high = wilson_interval(k, n) if n else (math.nan, math.nan)
        rows.append({"scorer": key, "scored": n, "mean_value": (sum(values[key]) /
                     len(values[key])) if values[key] else math.nan,
                     "pass_rate": k / n if n else math.nan, "low": low, "high": high,
                     "failed": n - k})
    return pd.DataFrame(rows, columns=["scorer", "scored", "mean_value", "pass_rate", "low",
                                       "high", "failed"])


def _corpus_table(run: Run, scores: pd.DataFrame) -> pd.DataFrame:
    """Corpus BLEU/chrF beside the mean of the same scorer's sentence scores, one row per
    ``bleu``/``chrf`` scorer of the run."""
    import pandas as pd

    means = scores.set_index("scorer")["mean_value"] if len(scores) else pd.Series(dtype=float)
    rows = []
    for key, c in run.corpus.items():
        rows.append({"scorer": key, "metric": c["metric"],
                     "value": math.nan if c["value"] is None else c["value"],
                     "sentence_metric": c["sentence_metric"],
                     "sentence_mean": float(means.get(key, math.nan)), "n": c["n"],
                     "no_output": c["no_output"], "signature": c["signature"]})
    return pd.DataFrame(rows, columns=["scorer", "metric", "value", "sentence_metric",
                                       "sentence_mean", "n", "no_output", "signature"])


def _corpus_html(corpus: pd.DataFrame) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.scorer)}</td><td>{html.escape(r.metric)}</td>"
        f"<td>{format_number(r.value)}</td><td>{html.escape(r.sentence_metric)}</td>"
        f"<td>{format_number(r.sentence_mean)}</td><td>{format_number(r.n)}</td>"
        f"<td>{format_number(r.no_output)}</td>"
        f"<td><code>{html.escape(r.signature)}</code></td></tr>"
        for r in corpus.itertuples(index=False))
    return ("<p>Corpus scores sum the n-gram statistics of every item before scoring "
            "(sacrebleu's <code>corpus_bleu</code>/<code>corpus_chrf</code>, the figure papers "
            "report); the mean of sentence scores averages each item's own score. Items without "
            "an expected value are left out of both; a failed call counts as an empty output "
            "(0 in the mean).</p><table><tr><th>scorer</th><th>corpus metric</th><th>value</th>"
            "<th>sentence metric</th><th>value</th><th>items</th><th>no output</th>"
            "<th>sacrebleu signature</th></tr>" + rows + "</table>")


def _failures_table(items: pd.DataFrame, n: int) -> pd.DataFrame:
    """The worst ``n`` items: failed calls first, then the most scorers failed, then the lowest
    mean score; each with the reasons its scorers gave."""
    import pandas as pd

    rows = []
    for row in items.itertuples(index=False):
        scores = row.scores or {}
        failed = {k: s for k, s in scores.items() if s.get("passed") is False}
        if not failed and row.error is None:
            continue
        scored = [float(s["value"]) for s in scores.values() if s.get("value") is not None]
        reasons = [f"{k}: {s.get('reason')}" for k, s in failed.items()]
        if row.error is not None:
            reasons.insert(0, f"error: {row.error}")
        rows.append({"item_id": row.item_id, "input": _short(row.input),
                     "expected": _short(row.expected), "output": _short(row.output),
                     "failed_scorers": ", ".join(failed), "reasons": "\n".join(reasons),
                     "_error": row.error is not None, "_n": len(failed),
                     "_mean": sum(scored) / len(scored) if scored else 0.0})
    columns = ["item_id", "input", "expected", "output", "failed_scorers", "reasons"]
    if not rows:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(rows).sort_values(["_error", "_n", "_mean"],
                                           ascending=[False, False, True], kind="stable")
    return frame[columns].head(n).reset_index(drop=True)


def _judge_table(project: Project, names: list[str]) -> pd.DataFrame:
    import pandas as pd

    from workbench.evaluate.calibration import trust_of

    rows = []
    for name in names:
        stored = trust_of(project, name)
        if stored is None:
            rows.append({"judge": name, "trusted": False, "kappa": None, "percent": None,
                         "n": 0, "bar": None, "reason": "Never calibrated against human labels: "
                         "its scores must not gate anything (calibrate it in phase 6)."})
            continue
        t = stored.value
        rows.append({"judge": name, "trusted": t.trusted, "kappa": t.kappa, "percent": t.percent,
                     "n": t.n, "bar": t.bar, "reason": t.reason})
    return pd.DataFrame(rows, columns=["judge", "trusted", "kappa", "percent", "n", "bar",
                                       "reason"])


def _baseline(project: Project, run: Run, baseline_id: str | None
              ) -> tuple[pd.DataFrame, pd.DataFrame, str | None, str | None]:
    """(summary, changed items, sentence, baseline id) against the baseline. The tables are
    empty and the sentence None when there is no baseline (id None) or the run is the
    baseline itself (id == the run's)."""
    import pandas as pd

    from workbench.evaluate.baseline_runs import NoBaseline, blessed, compare_to_baseline

    chosen = baseline_id or blessed(project, run.prompt)
    empty = pd.DataFrame(columns=["measure", "value"]), pd.DataFrame(), None
    if chosen is None or chosen == run.run_id:
        return (*empty, chosen)
    try:
        diff = compare_to_baseline(project, run.run_id, chosen)
    except NoBaseline:
        return (*empty, None)
    summary = pd.DataFrame([{"measure": k, "value": format_value(v)}
                            for k, v in diff.summary.items() if k != "sentence"],
                           columns=["measure", "value"])
    changed = diff.items[diff.items["change"].isin(["regressed", "improved"])]
    return summary, changed.reset_index(drop=True), diff.sentence, chosen


def eval_tables(project: Project, run_id: str, *, judge_name: str | None = None,
                baseline_id: str | None = None, failures: int = FAILURES
                ) -> dict[str, pd.DataFrame]:
    """Every table of the evaluation report, by name: ``config``, ``targets`` (the card's
    targets with value, interval and pass/fail), ``intervals`` (every aggregate),
    ``scores`` (per scorer), ``corpus`` (corpus BLEU/chrF beside the mean sentence score;
    runs scored with ``bleu`` or ``chrf`` only), ``per_class`` and ``confusion``
    (classification only),
    ``failures`` (the worst items), ``judge`` (trust of each judge used or named),
    ``baseline`` and ``baseline_changes`` (when a baseline exists)."""

    from workbench.evaluate.stats import aggregate_with_intervals
    from workbench.runs import load_run

    run = load_run(project, run_id)
    items = run.items
    intervals = aggregate_with_intervals(run)
    tables: dict[str, pd.DataFrame] = {
        "config": _config_table(run),
        "targets": _targets_table(project, run, intervals),
        "intervals": intervals,
        "scores": _scores_table(items),
    }
    corpus = _corpus_table(run, tables["scores"])
    if len(corpus):
        tables["corpus"] = corpus
    report = run.classification()
    if report is not None:
        tables["per_class"] = report.per_class
        # Rows: the expected label (first column); columns: the predicted one. Naming only
        # the row axis keeps pandas from drawing the column axis's name as a column of its own.
        tables["confusion"] = report.confusion.rename_axis(
            index="expected", columns=None).reset_index()
    tables["failures"] = _failures_table(items, failures)
    judges = ([judge_name] if judge_name else []) + [
        n for n in run.judges if n != judge_name]
    tables["judge"] = _judge_table(project, judges)
    summary, changes, sentence, chosen = _baseline(project, run, baseline_id)
    tables["baseline"] = summary
    tables["baseline_changes"] = changes
    tables["baseline"].attrs["sentence"] = sentence
    tables["baseline"].attrs["baseline_id"] = chosen  # == run_id: the run is the baseline
    return tables


def score_axis(values: list[float]) -> tuple[float, float, float]:
    """(start, end, bin size) of the score histogram's x-axis: the whole 0-1 scale when every
    score is on it, so that scores that all sit in one bin (all 0, all 1, a tiny spread) are
    still drawn where they are on the scale, not on an axis zoomed onto that bin; else the
    values' own range (a scorer on another scale), padded, in about 20 bins."""
    low, high = min(values), max(values)
    if 0.0 <= low and high <= 1.0:
        return 0.0, 1.0, 0.05
    span = (high - low) or max(abs(high), 1.0)
    start, end = low - span * 0.05, high + span * 0.05
    return start, end, (end - start) / 20


def _figures(items: pd.DataFrame) -> list[Any]:
    import plotly.graph_objects as go

    figures = []
    score_figure = go.Figure()
    keys: list[str] = []
    for scores in items["scores"]:
        for key in scores or {}:
            if key not in keys:
                keys.append(key)
    every: list[float] = []
    for key in keys:
        values = [float(s[key]["value"]) for s in items["scores"]
                  if s and key in s and not is_missing(s[key].get("value"))]
        every += values
    if every:
        start, end, size = score_axis(every)
    for key in keys:
        values = [float(s[key]["value"]) for s in items["scores"]
                  if s and key in s and not is_missing(s[key].get("value"))]
        if values:
            # Plotly's bins are closed on the left: a score of exactly ``end`` (1.0) is drawn
            # in the last bin, [0.95, 1], not in one past the axis.
            top = end - size * 1e-6
            score_figure.add_trace(go.Histogram(
                x=[min(v, top) for v in values], name=key, opacity=0.7,
                xbins={"start": start, "end": end, "size": size}))
    if score_figure.data:
        on_scale = (start, end, size) == (0.0, 1.0, 0.05)
        score_figure.update_layout(title="Score distribution per scorer", barmode="overlay",
                                   xaxis_title="score (0 to 1)" if on_scale else "score",
                                   yaxis_title="items", height=360)
        score_figure.update_xaxes(range=[start, end], autorange=False)
        figures.append(score_figure)
    latencies = [float(v) for v in items["latency_s"] if v is not None and v == v]
    if latencies:
        latency = go.Figure(go.Histogram(x=latencies, nbinsx=30, name="latency"))
        latency.update_layout(title="Latency per item", xaxis_title="seconds",
                              yaxis_title="items", height=320)
        figures.append(latency)
    return figures


def _status_html(targets: pd.DataFrame) -> str:
    if targets.empty:
        return "<p>The card sets no targets yet (phase 1).</p>"
    from workbench.card import UNITS

    rows = []
    for r in targets.itertuples(index=False):
        css = {"pass": "ok", "fail": "bad"}.get(r.status, "")
        factor = UNITS.get(r.unit, ("", 1.0))[1]  # shown in the unit the target is written in
        unit = "" if r.unit in (None, "", "fraction") else f" {r.unit}"
        if is_missing(r.value):
            value, reading = "not measured", r.text
        else:
            shown = float(r.value) / factor
            value = format_number(shown)
            if not is_missing(r.low):
                value += f" [{format_number(r.low / factor)}, {format_number(r.high / factor)}]"
            reading = (f"{r.metric} {format_number(shown)}{unit} (target {r.target}{unit}): "
                       f"{r.status}")
        rows.append(f"<tr><td>{html.escape(r.metric)}</td><td>{html.escape(r.target)} "
                    f"{html.escape(r.unit or '')}</td><td>{html.escape(value)}</td>"
                    f"<td class='{css}'>{html.escape(r.status)}</td>"
                    f"<td>{html.escape(reading)}</td></tr>")
    return ("<p>Each value is shown in the unit its target is written in, with a 95% interval "
            "where one is computed (the <code>targets</code> table keeps canonical units).</p>"
            "<table><tr><th>metric</th><th>target</th>"
            "<th>measured [interval]</th><th>status</th><th>reading</th></tr>"
            + "".join(rows) + "</table>")


def _pre(frame: pd.DataFrame) -> str:
    """A table as HTML for people (``for_people``: formatted numbers, "—" where nothing was
    measured, no index) with line breaks kept (failure reasons are several sentences)."""
    return for_people(frame).to_html(index=False, border=0, na_rep=MISSING).replace(
        "\\n", "<br>")


_CHANGE_COLUMNS = ["item_id", "change", "input", "expected", "baseline_output", "run_output",
                   "cost_delta_usd", "latency_delta_s"]


def _baseline_html(project: Project, run: Run, tables: dict[str, pd.DataFrame]) -> str:
    """The comparison with the baseline: the sentence and the items that changed; or that this
    run is the baseline; or that there is none."""
    from workbench.evaluate.baseline_runs import blessed

    sentence = tables["baseline"].attrs.get("sentence")
    chosen = tables["baseline"].attrs.get("baseline_id")
    if sentence:
        changes = tables["baseline_changes"]
        shown = changes[[c for c in _CHANGE_COLUMNS if c in changes.columns]]
        return (f"<p>Compared with baseline run <code>{html.escape(str(chosen))}</code>: "
                f"{html.escape(sentence)}</p>"
                + (_pre(shown) if len(shown) else "<p>No item changed between pass and fail."
                   "</p>"))
    if chosen is not None and chosen == run.run_id:
        if blessed(project, run.prompt) == run.run_id:
            return (f"<p>This run is the blessed baseline for prompt "
                    f"<code>{html.escape(run.prompt)}</code>: later runs of the prompt are "
                    "compared with it item by item, so there is nothing to compare it with "
                    "here.</p>")
        return ("<p>This run is the baseline named for the comparison, so there is nothing to "
                "compare it with.</p>")
    return (f"<p>No baseline is blessed for prompt <code>{html.escape(run.prompt)}</code> "
            "(bless a run to compare later runs with it).</p>")


def eval_report(project: Project, run_id: str, *, judge_name: str | None = None,
                baseline_id: str | None = None, path: str | Path | None = None,
                failures: int = FAILURES) -> Path:
    """Write the evaluation report of a run to ``path`` (default
    ``project.reports_dir / f"eval_{run_id}.html"``): self-contained HTML that opens offline."""
    from workbench.report import write_report
    from workbench.runs import load_run

    run = load_run(project, run_id)
    tables = eval_tables(project, run_id, judge_name=judge_name, baseline_id=baseline_id,
                         failures=failures)
    sections: list[tuple[str, Any]] = [
        ("Run configuration", _pre(tables["config"])),
        ("Scores against the phase-1 targets", _status_html(tables["targets"])),
        ("Every aggregate with its interval", _pre(tables["intervals"])),
        ("Scorers", _pre(tables["scores"])),
    ]
    if "corpus" in tables:
        sections.append(("Corpus BLEU and chrF (beside the mean of sentence scores)",
                         _corpus_html(tables["corpus"])))
    if "per_class" in tables:
        sections.append(("Per class", _pre(tables["per_class"])))
        sections.append(("Confusion matrix (rows: expected, columns: predicted)",
                         _pre(tables["confusion"])))
    failed = tables["failures"]
    sections.append(((f"Failure examples (the worst {_plural(len(failed), 'item')})"
                      if len(failed) else "Failure examples"),
                     _pre(failed) if len(failed) else "<p>No item failed a scorer.</p>"))
    judge = tables["judge"]
    if len(judge):
        sections.append(("Judge trust level", _pre(judge)))
    else:
        sections.append(("Judge trust level", "<p>No LLM judge scored this run.</p>"))
    sections.append(("Comparison with the blessed baseline",
                     _baseline_html(project, run, tables)))
    for figure in _figures(run.items):
        sections.append((figure.layout.title.text, figure))
    target = Path(path) if path is not None else project.reports_dir / f"eval_{run_id}.html"
    return write_report(target, f"Evaluation of {run.prompt} on {run.model}", sections,
                        subtitle=f"run {run_id} · {run.dataset} v{run.dataset_version} "
                                 f"{run.split or 'all'}")
