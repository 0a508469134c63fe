"""Real traces for the trace viewer's tests: a served deployment answering over HTTP, and a
run's model call made through the gateway."""

from __future__ import annotations

import httpx

from workbench import llm, sample
from workbench.serve import plan_deployment, start_server
from workbench.tracing import tagged

KEY = "trace-viewer-key-0123"
FLAKY = "fake/echo:fail=500,fail_rate=0.5,seed=3"
LONG = "my parcel " * 120  # 1,200 characters: cut in the viewer


def serve_traffic(project) -> list[int]:
    """A deployment on a fake model that fails about half its calls (no retries), 10 requests
    over HTTP from four end users (``user-{i % 4}``; the last, from user-1, is ``LONG``), and
    one model call of a run (prompt triage v2). Returns the service's status codes."""
    sample.save_sample_prompt(project)
    plan_deployment(project, sample.SAMPLE_PROMPT, model=FLAKY, force=True, retries=0,
                    cache=False, burst=40)
    server = start_server(project, api_keys=[KEY])
    codes = []
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(10):
                text = LONG if i == 9 else f"message {i}"
                reply = client.post("/v1/predict", json={"input": text}, headers={
                    "Authorization": f"Bearer {KEY}", "X-Workbench-User": f"user-{i % 4}"})
                codes.append(reply.status_code)
    finally:
        server.stop()
    with tagged(**{"workbench.run_id": "run-1", "workbench.prompt": "triage",
                   "workbench.prompt_version": 2}):
        llm.complete("Where is my parcel?", model="fake/echo", project=project, cache=False)
    project.store.flush()
    return codes
