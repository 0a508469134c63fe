"""The trace viewer over 1,000,000 stored spans: how long each page and filter takes.

    .venv/bin/python benchmarks/bench_traces.py [--spans 1000000] [--days 30] [--keep DIR]

The spans are ``bench_monitor``'s (written through ``tracing.write_span``: service requests,
each with its model call, 5,000 end users, live/canary/shadow arms, 2% failures, a 1%
fallback model), or an existing ``--keep`` folder's. Each query the viewer makes
(``workbench.traces``) is timed cold (first call) and warm (median of 3): the first page in
the widget's default window (24 h) and over all time, a page far down the list (reached page by
page, as the Older button does), each filter, and the worst case: a filter that matches
nothing, which reads every root span in the window (the time index bounds the window; the
filter itself has no index). Then opening a trace, and the dropdowns' choices.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_monitor import _deploy, generate, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--keep", help="a folder to keep (and reuse) the project in")
    args = parser.parse_args()

    import workbench
    from workbench import traces
    from workbench.traces import TraceFilter, list_traces

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-traces-"))
    path = folder / "project"
    if (path / "workbench.db").exists():
        project = workbench.open_project(path)
        print(f"Reusing {path}")
    else:
        project = workbench.init_project(path, sample=True)
        _deploy(project)
        print(f"Writing {args.spans:,} spans over {args.days:g} days into {path} ...")
        seconds, written = generate(project, args.spans, args.days)
        print(f"  {written:,} spans in {seconds:.1f} s")
    count = project.store.db.execute("SELECT COUNT(*) FROM spans").fetchone()[0]
    now = time.time()
    day = now - 86400
    print(f"{count:,} spans stored; the viewer's queries, cold then warm (median of 3):")

    def page_far(pages: int) -> None:
        after = None
        for _ in range(pages):
            after = list_traces(project, TraceFilter(since=day), after=after).next

    def one(label: str, **filters) -> tuple[str, object]:
        return label, lambda: list_traces(project, TraceFilter(**filters))

    trace_id = list_traces(project, TraceFilter(since=day), limit=1).rows[0]["trace_id"]
    queries = [
        one("first page, last 24 h (the default)", since=day),
        one("first page, all time"),
        ("40 pages down, last 24 h (40 queries)", lambda: page_far(40)),
        one("status error, last 24 h", status="error", since=day),
        one("status error, all time", status="error"),
        one("fallback model (1%), last 24 h", model="anthropic/claude-3-5-haiku-latest",
            since=day),
        one("arm canary, last 24 h", arm="canary", since=day),
        one("one end user of 5,000, last 24 h", user="user-17@example.com", since=day),
        one("one end user of 5,000, last 7 days", user="user-17@example.com",
            since=now - 7 * 86400),
        one("matches nothing, last 24 h", prompt="nope", since=day),
        one("matches nothing, last 7 days", prompt="nope", since=now - 7 * 86400),
        one("matches nothing, all time (worst case)", prompt="nope"),
        ("open a trace (its tree)", lambda: traces.trace_tree(project, trace_id)),
        ("the dropdowns' choices", lambda: traces.filter_choices(project)),
    ]
    for label, fn in queries:
        cold, warm = timed(fn)
        print(f"  {label:<42} {cold * 1000:8.1f} ms {warm * 1000:8.1f} ms")
    project.close()


if __name__ == "__main__":
    main()
