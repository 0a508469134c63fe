"""Plotly figures of phase 8 beyond the dashboard: traffic and users, cost against the budget,
a breakdown by model / prompt version / arm / key, drift against its threshold, and the online
judge's verdicts. Each reads the aggregates (``workbench.monitor``) or the stored checks, so
each draws in well under a second on a project with a million spans.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from workbench.project import Project

TEMPLATE = "plotly_white"
ARM_COLOURS = {"live": "#1f77b4", "canary": "#ff7f0e", "shadow": "#7f7f7f"}


def traffic_figure(project: Project, *, window_s: float = 7 * 86400,
                   bucket_s: float | None = None, now: float | None = None):
    """Requests per second per deployment arm, the error rate, and distinct active users per
    bucket, over the last ``window_s`` seconds."""
    from plotly.subplots import make_subplots

    from workbench.monitor import timeline, window_text

    now = time.time() if now is None else now
    since = now - window_s
    whole = timeline(project, bucket_s=bucket_s, since=since, until=now, now=now)
    bucket = whole.attrs.get("bucket_s") or 3600
    arms = timeline(project, bucket_s=bucket, since=since, until=now, dim="arm", now=now) \
        if whole.attrs["source"] == "service" else None
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("Requests per second", "Error rate",
                                        f"Active users (distinct per {window_text(bucket)})"))
    if arms is not None and len(arms):
        for arm, rows in arms.groupby("value"):
            fig.add_scatter(x=rows["start"], y=rows["requests_per_s"], name=f"{arm} req/s",
                            mode="lines", line={"color": ARM_COLOURS.get(arm)}, row=1, col=1)
    fig.add_scatter(x=whole["start"], y=whole["requests_per_s"], name="all req/s",
                    mode="lines", line={"color": "black", "dash": "dot"}, row=1, col=1)
    fig.add_scatter(x=whole["start"], y=whole["error_rate"], name="error rate",
                    mode="lines+markers", line={"color": "#d62728"}, row=2, col=1)
    fig.add_bar(x=whole["start"], y=whole["users"], name="active users",
                marker_color="#2ca02c", row=3, col=1)
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    fig.update_layout(height=700, template=TEMPLATE,
                      title=f"{project.name}: traffic over the last {window_text(window_s)}")
    return fig


def cost_figure(project: Project, *, now: float | None = None):
    """This month: spend per day (every model call, and the service's share per API key), and
    the running total against the monthly budget with the projection to the month's end."""
    import datetime as dt

    import pandas as pd
    from plotly.subplots import make_subplots

    from workbench.monitor import timeline
    from workbench.monitor_cost import budget_status, spend_frame

    now = time.time() if now is None else now
    state = budget_status(project, now=now)
    days = int((now - state.month_start) // 86400) + 1
    spend = spend_frame(project, days=days, now=now)
    keys = timeline(project, bucket_s=86400, since=state.month_start, until=now, dim="client",
                    source="service", now=now)
    fig = make_subplots(rows=2, cols=1, vertical_spacing=0.12,
                        subplot_titles=("Spend per day (USD)",
                                        "This month against the budget (USD)"))
    fig.add_bar(x=spend["day"], y=spend["model_spend_usd"], name="all model calls",
                marker_color="#bbbbbb", row=1, col=1)
    if len(keys):
        for key, rows in keys.groupby("value"):
            fig.add_bar(x=rows["start"].dt.date, y=rows["cost_usd"], name=f"key {key}",
                        row=1, col=1)
    running = spend["model_spend_usd"].cumsum()
    fig.add_scatter(x=spend["day"], y=running, name="spent this month", mode="lines+markers",
                    line={"color": "black"}, row=2, col=1)
    end_day = dt.datetime.fromtimestamp(state.month_end - 1, tz=dt.UTC).date()
    if state.status != "too early" and len(spend):
        fig.add_scatter(x=[spend["day"].iloc[-1], end_day],
                        y=[float(running.iloc[-1]), state.projected],
                        name="projected", mode="lines",
                        line={"color": "#d62728" if state.status == "over" else "#1f77b4",
                              "dash": "dash"}, row=2, col=1)
    if state.budget is not None:
        fig.add_hline(y=state.budget, line_dash="dot", line_color="red", row=2, col=1,
                      annotation_text=f"budget ${state.budget:,.2f}")
    fig.update_xaxes(range=[pd.Timestamp(state.month_start, unit="s").date(), end_day], row=2,
                     col=1)
    fig.update_layout(height=700, template=TEMPLATE, barmode="group",
                      title=f"{project.name}: cost — {state.sentence}")
    return fig


def breakdown_figure(project: Project, dim: str, *, window_s: float = 86400.0,
                     now: float | None = None):
    """Requests, p95 latency, error rate and distinct users per value of ``dim`` (model,
    prompt_version, arm or client) over the window."""
    from plotly.subplots import make_subplots

    from workbench.monitor import breakdown, window_text

    frame = breakdown(project, dim, window_s=window_s, now=now)
    fig = make_subplots(rows=1, cols=4, subplot_titles=("Requests", "p95 latency (s)",
                                                        "Error rate", "Users"))
    names = frame["value"].astype(str)
    for col, (column, fmt) in enumerate((("requests", None), ("p95_latency", None),
                                         ("error_rate", ".0%"), ("users", None)), 1):
        fig.add_bar(x=names, y=frame[column], name=column, showlegend=False, row=1, col=col)
        if fmt:
            fig.update_yaxes(tickformat=fmt, row=1, col=col)
    fig.update_layout(height=380, template=TEMPLATE,
                      title=f"{project.name}: per {dim.replace('_', ' ')}, last "
                            f"{window_text(window_s)}")
    return fig


def drift_figure(project: Project):
    """Each drift check's distance against the threshold learned for it."""
    import plotly.graph_objects as go

    from workbench.monitor_drift import drift_frame

    frame = drift_frame(project)
    measured = frame[frame["status"] != "no data"]
    fig = go.Figure()
    fig.add_scatter(x=measured["computed_at"], y=measured["threshold"], name="threshold",
                    mode="lines+markers", line={"color": "red", "dash": "dash"})
    fig.add_scatter(x=measured["computed_at"], y=measured["statistic"], name="distance",
                    mode="markers", marker={
                        "size": 11, "color": ["#d62728" if s == "drift" else "#2ca02c"
                                              for s in measured["status"]]},
                    text=[f"{n} inputs, p = {p:.3f}"
                          for n, p in zip(measured["inputs"], measured["p_value"], strict=True)])
    fig.update_layout(height=380, template=TEMPLATE, yaxis_title="mean-embedding distance",
                      title=f"{project.name}: input drift against the training data")
    return fig


def quality_figure(project: Project, *, window_s: float = 86400.0, now: float | None = None):
    """The online judges' pass rates with 95% intervals; an untrusted judge's bar is grey and
    says it is not counted."""
    import plotly.graph_objects as go

    from workbench.monitor_judge import live_quality

    frame = live_quality(project, window_s=window_s, now=now)
    fig = go.Figure()
    for row in frame.itertuples(index=False):
        counted = bool(row.counted)
        fig.add_bar(x=[row.judge], y=[row.pass_rate], name=row.judge,
                    marker_color="#2ca02c" if counted else "#bbbbbb",
                    error_y={"type": "data", "symmetric": False,
                             "array": [row.high - row.pass_rate],
                             "arrayminus": [row.pass_rate - row.low]},
                    text=[f"{row.verdicts} verdicts" + ("" if counted else
                                                        f" — {row.trust}, not counted")],
                    textposition="outside")
    fig.update_layout(height=380, template=TEMPLATE, yaxis={"tickformat": ".0%",
                                                            "range": [0, 1.15]},
                      showlegend=False,
                      title=f"{project.name}: online judge pass rate (sampled live answers)")
    return fig
