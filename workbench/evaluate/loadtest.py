"""Load tests: a bounded number of concurrent requests for a bounded time, honestly timed.

``load_test(target, concurrency_levels=(1, 4, 16), duration_s=5, max_requests=500)`` drives a
model id (through the gateway's ``acomplete``, cache off, no retries) or an HTTP endpoint on this
machine (``http://127.0.0.1:PORT/...``, e.g. the phase 7 service) and reports, per concurrency
level, throughput, p50/p95/p99 latency and error rate; ``plot(report)`` draws latency against
concurrency with throughput.

How it measures: a closed loop per level — ``concurrency`` workers on one asyncio event loop,
each sending its next request as soon as the previous one answers, until ``duration_s`` has
passed or ``max_requests`` were sent. Each request is timed with ``time.perf_counter`` around
the await; a level's wall time runs from its start until its last request has finished, so
throughput = requests answered / wall time, without dropping the slow tail. The client runs in
this process: for CPU-heavy targets (the bundled model) the client and the model share the CPU.

Why not locust: it runs on gevent, whose monkey-patching does not mix with the asyncio event loop
that Jupyter, marimo and the gateway use; for a bounded closed-loop test asyncio gives the same
numbers with no extra dependency.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

DEFAULT_PROMPT = "My invoice shows two charges for this month. Can you help?"
MAX_CONCURRENCY = 256
MAX_DURATION_S = 600.0
MAX_REQUESTS = 100_000


class LoadTestError(WorkbenchError):
    """A load test was asked for something it will not do."""


@dataclass(frozen=True)
class Sample:
    """One request: its level, start offset within the level, latency, and error (if any)."""

    concurrency: int
    started_s: float
    latency_s: float
    error: str | None = None


@dataclass
class LoadTestReport:
    target: str
    duration_s: float
    max_requests: int
    samples: list[Sample] = field(default_factory=list)
    wall_s: dict[int, float] = field(default_factory=dict)  # per concurrency level

    def levels(self) -> pd.DataFrame:
        """One row per concurrency level: requests, ok, errors, error_rate, wall_s,
        throughput_rps (answered requests per second), p50/p95/p99 and mean latency in ms
        (successful requests only)."""
        import numpy as np
        import pandas as pd

        rows = []
        for level, wall in self.wall_s.items():
            group = [s for s in self.samples if s.concurrency == level]
            ok = np.array([s.latency_s for s in group if s.error is None]) * 1000
            errors = sum(1 for s in group if s.error is not None)
            pct = (np.percentile(ok, [50, 95, 99]) if ok.size else [float("nan")] * 3)
            rows.append({"concurrency": level, "requests": len(group), "ok": int(ok.size),
                         "errors": errors,
                         "error_rate": errors / len(group) if group else float("nan"),
                         "wall_s": wall,
                         "throughput_rps": ok.size / wall if wall > 0 else float("nan"),
                         "p50_ms": pct[0], "p95_ms": pct[1], "p99_ms": pct[2],
                         "mean_ms": float(ok.mean()) if ok.size else float("nan")})
        return pd.DataFrame(rows)

    def errors(self) -> pd.DataFrame:
        """Error messages by level, with counts."""
        import pandas as pd

        frame = pd.DataFrame([{"concurrency": s.concurrency, "error": s.error}
                              for s in self.samples if s.error is not None],
                             columns=["concurrency", "error"])
        return frame.value_counts().rename("count").reset_index()

    def summary(self) -> str:
        table = self.levels()
        if table.empty:
            return f"No requests were sent to {self.target}."
        best = table.loc[table["throughput_rps"].idxmax()]
        p95 = best["p95_ms"]  # NaN when no request got an answer
        p95_text = "no answer to time" if p95 != p95 else f"p95 {p95:.0f} ms"
        return (f"{self.target}: up to {best['throughput_rps']:.1f} requests/s at concurrency "
                f"{int(best['concurrency'])} ({p95_text}, error rate "
                f"{best['error_rate']:.1%}).")

    def _repr_html_(self) -> str:
        return f"<p>{self.summary()}</p>" + self.levels().to_html(index=False,
                                                                  float_format="%.3g")


# -- targets -------------------------------------------------------------------------------------

_LOCAL_NAMES = ("localhost",)


def check_local_url(url: str) -> str:
    """``url`` when it points at this machine (127.0.0.1, ::1 or localhost), else an error:
    load tests never send traffic elsewhere."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadTestError(f"{url!r} is not an http(s) URL.",
                            "Write it like http://127.0.0.1:8000/v1/complete.")
    host = parts.hostname
    local = host in _LOCAL_NAMES
    if not local:
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = False
    if not local:
        raise LoadTestError(f"Load tests only send traffic to this machine, and {host} is "
                            "another host.",
                            "Run the service locally (e.g. `workbench serve`) and test "
                            "http://127.0.0.1:PORT/...; load-test shared services with their "
                            "owners' tools and permission.")
    return url


def _is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


async def _model_request(model: str, prompt: str, project: Project | None, timeout_s: float,
                         options: dict[str, Any]) -> None:
    from workbench.llm.gateway import acomplete

    await acomplete(prompt, model, cache=False, retries=0, timeout=timeout_s, project=project,
                    **options)


# -- running -------------------------------------------------------------------------------------

async def _warm_up(send, n: int) -> None:
    """Requests before measuring, not counted: the first call in a process pays one-off costs
    (importing litellm, loading a model, opening connections) that are not the target's speed."""
    for _ in range(n):
        try:
            await send()
        except Exception:  # a failing target shows its errors in the measured levels
            pass


async def _run_level(send, concurrency: int, duration_s: float, max_requests: int,
                     report: LoadTestReport) -> None:
    issued = 0
    start = time.perf_counter()
    deadline = start + duration_s

    async def worker() -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < max_requests:
            issued += 1  # one event loop: no lock needed between awaits
            t0 = time.perf_counter()
            error = None
            try:
                await send()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # every failure is a data point, not a crash
                error = exc.one_line() if isinstance(exc, WorkbenchError) else \
                    f"{type(exc).__name__}: {exc}"
            t1 = time.perf_counter()
            report.samples.append(Sample(concurrency, t0 - start, t1 - t0, error))

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    report.wall_s[concurrency] = time.perf_counter() - start


async def aload_test(target: str, *, concurrency_levels: Sequence[int] = (1, 4, 16),
                     duration_s: float = 5.0, max_requests: int = 500,
                     prompt: str = DEFAULT_PROMPT, project: Project | None = None,
                     timeout_s: float = 30.0, method: str = "POST",
                     json_body: dict[str, Any] | None = None,
                     headers: dict[str, str] | None = None, warmup: int = 1,
                     **model_options: Any) -> LoadTestReport:
    """``load_test`` for asyncio code (a notebook cell can ``await`` it)."""
    levels = list(dict.fromkeys(int(c) for c in concurrency_levels))  # each level once
    if not levels or any(c < 1 or c > MAX_CONCURRENCY for c in levels):
        raise LoadTestError(f"Concurrency levels {list(concurrency_levels)} are out of range.",
                            f"Use whole numbers from 1 to {MAX_CONCURRENCY}.")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise LoadTestError(f"duration_s={duration_s} is out of range.",
                            f"Use more than 0 and at most {MAX_DURATION_S:g} seconds per level.")
    if not 1 <= max_requests <= MAX_REQUESTS:
        raise LoadTestError(f"max_requests={max_requests} is out of range.",
                            f"Use 1 to {MAX_REQUESTS:,} requests per level.")
    report = LoadTestReport(target, duration_s, max_requests)
    if _is_url(target):
        import httpx

        check_local_url(target)
        body = json_body if json_body is not None else {"input": prompt}
        # trust_env=False: a proxy from the environment must never see local load traffic.
        async with httpx.AsyncClient(timeout=timeout_s, trust_env=False,
                                     limits=httpx.Limits(max_connections=max(levels),
                                                         max_keepalive_connections=max(levels)),
                                     headers=headers) as client:
            async def send() -> None:
                response = await client.request(method, target,
                                                json=body if method != "GET" else None)
                if response.status_code >= 400:
                    raise LoadTestError(f"HTTP {response.status_code}")

            await _warm_up(send, warmup)
            for level in levels:
                await _run_level(send, level, duration_s, max_requests, report)
    else:
        from workbench.llm.gateway import prepare

        prepare(prompt, target, project=project)  # a bad model id fails here, not 500 times

        async def send() -> None:
            await _model_request(target, prompt, project, timeout_s, model_options)

        await _warm_up(send, warmup)
        for level in levels:
            await _run_level(send, level, duration_s, max_requests, report)
    return report


def load_test(target: str, *, concurrency_levels: Sequence[int] = (1, 4, 16),
              duration_s: float = 5.0, max_requests: int = 500, prompt: str = DEFAULT_PROMPT,
              project: Project | None = None, timeout_s: float = 30.0, **options: Any
              ) -> LoadTestReport:
    """Drive ``target`` — a model id (``fake/echo:latency=20ms``, ``local/smollm2-135m``, a hosted
    id) or a local URL — at each concurrency level for at most ``duration_s`` seconds and
    ``max_requests`` requests, one level after another. Model calls go through the gateway with
    the cache off and no retries (each failure counts); they are traced in the active project.
    For a URL, each request is ``method`` (default POST) with ``json_body`` (default
    ``{"input": prompt}``) and ``headers``; any HTTP status >= 400 is an error. ``warmup``
    requests (default 1) go first and are not counted.

    Works from a notebook too: when an event loop is already running, the test runs on its own
    loop in a helper thread."""
    coro = aload_test(target, concurrency_levels=concurrency_levels, duration_s=duration_s,
                      max_requests=max_requests, prompt=prompt, project=project,
                      timeout_s=timeout_s, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["report"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=run, name="workbench-loadtest")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["report"]


def plot(report: LoadTestReport):
    """Latency (p50/p95/p99) against concurrency, with throughput on a second axis (plotly)."""
    import plotly.graph_objects as go

    table = report.levels()
    fig = go.Figure()
    for col, dash in (("p50_ms", "solid"), ("p95_ms", "dash"), ("p99_ms", "dot")):
        fig.add_trace(go.Scatter(x=table["concurrency"], y=table[col], mode="lines+markers",
                                 name=col.replace("_ms", " latency"), line={"dash": dash}))
    fig.add_trace(go.Bar(x=table["concurrency"], y=table["throughput_rps"], name="throughput",
                         yaxis="y2", opacity=0.3))
    fig.update_layout(
        title=f"Load test: {report.target}",
        xaxis={"title": "concurrent requests", "type": "log", "tickvals":
               list(table["concurrency"])},
        yaxis={"title": "latency (ms)", "rangemode": "tozero"},
        yaxis2={"title": "throughput (requests/s)", "overlaying": "y", "side": "right",
                "rangemode": "tozero"},
        legend={"orientation": "h", "y": -0.2}, template="plotly_white")
    return fig
