"""Running the service: on a background thread (notebooks, tests) or in the foreground
(``workbench serve``), with uvicorn."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.serve.app import create_app
from workbench.serve.deployment import NotDeployed

if TYPE_CHECKING:
    from workbench.project import Project


@dataclass
class RunningServer:
    """A service running on a background thread; ``stop()`` ends it."""

    url: str
    server: Any
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


_running: dict[str, RunningServer] = {}  # per project folder: the one a notebook started


def start_server(project: Project | str | os.PathLike | None = None, *,
                 host: str = "127.0.0.1", port: int = 0, **options: Any) -> RunningServer:
    """Serve the latest deployment on a background thread (``port=0``: any free port).

    Starting again for the same project stops the service started before (a notebook cell run
    twice does not leave the first one running)."""
    import socket

    import uvicorn

    app = create_app(project, **options)
    folder = str(app.state.project.path)
    previous = _running.pop(folder, None)
    if previous is not None:
        previous.stop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="workbench-serve")
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise NotDeployed("The service did not start.", "See the log above for the reason.")
        time.sleep(0.02)
    bound_host, bound_port = sock.getsockname()[:2]
    running = RunningServer(f"http://{bound_host}:{bound_port}", server, thread)
    _running[folder] = running
    return running


def _settle_heap(app: Any) -> None:
    """Ready a process that only serves: move what it made at start (modules, the app, the
    prompt, the models) out of the garbage collector's reach, so a full collection while
    serving scans only what requests made instead of pausing every request in flight; and with
    the semantic cache on, embed and search one request at a time on one thread each (torch's
    and the BLAS pool's): measured here on 2 busy CPUs, one short text embeds in 24-36 ms on
    one thread against 258 ms on two, and 20,000 entries are searched in 3 ms against 18 ms.
    (``start_server`` leaves both alone: its process is a notebook's or a test's.)"""
    import gc

    if getattr(app.state.service, "semantic", None) is not None:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(1)
        threadpool_limits(1)
    gc.collect()
    gc.freeze()


ENV_SERVE_PROJECT = "WORKBENCH_SERVE_PROJECT"
ENV_SERVE_OPTIONS = "WORKBENCH_SERVE_OPTIONS"


def app_from_env():
    """The app for the project in ``WORKBENCH_SERVE_PROJECT`` (else ``WORKBENCH_PROJECT``) with
    the ``create_app`` options in ``WORKBENCH_SERVE_OPTIONS`` (JSON): the factory each uvicorn
    worker process calls (``uvicorn --factory workbench.serve.running:app_from_env``). Keys
    come from ``WORKBENCH_API_KEYS`` and Redis from ``WORKBENCH_REDIS_URL``, as always."""
    import json

    options = json.loads(os.environ.get(ENV_SERVE_OPTIONS) or "{}")
    app = create_app(os.environ.get(ENV_SERVE_PROJECT) or None, **options)
    _settle_heap(app)
    return app


def serve(project: Project | str | os.PathLike | None = None, *, host: str = "127.0.0.1",
          port: int = 8000, workers: int = 1, redis_url: str | None = None,
          **options: Any) -> None:
    """Serve the latest deployment in the foreground until Ctrl-C (``workbench serve``).

    ``workers`` above 1 runs that many processes on one port (uvicorn workers). Their rate
    limits and response cache must be shared, or each process would grant the whole limit
    (N workers: N times the rate a key was given), so they need Redis (``redis_url`` or
    ``WORKBENCH_REDIS_URL``): without it, several workers are refused."""
    import uvicorn

    from workbench.serve.shared_state import connect, redis_url_from_env

    redis_url = redis_url or redis_url_from_env()
    if redis_url:
        options["redis_url"] = redis_url
    if workers == 1:
        app = create_app(project, **options)
        _settle_heap(app)
        uvicorn.run(app, host=host, port=port, log_level="info")
        return
    if not isinstance(workers, int) or workers < 1:
        raise NotDeployed(f"workers must be a whole number of at least 1 (got {workers!r}).",
                          "Pass e.g. --workers 4.")
    if not redis_url:
        raise NotDeployed(
            f"{workers} workers would each keep their own rate limits and cache: every key "
            f"could make {workers} times the requests its limit allows.",
            "Give them Redis to share (--redis redis://127.0.0.1:6379/0, or "
            "WORKBENCH_REDIS_URL; `apt-get install redis-server` runs one), or serve with "
            "--workers 1.")
    connect(redis_url)  # a wrong URL fails once, here, not in every worker
    import json

    from workbench.serve.deployment import ENV_API_KEYS
    from workbench.serve.shared_state import ENV_REDIS_URL

    app = create_app(project, **options)  # fails here, once, on what every worker would fail
    keys = options.pop("api_keys", None)
    if keys is not None:  # workers read keys where a served process always does
        os.environ[ENV_API_KEYS] = ",".join(keys)
    os.environ[ENV_REDIS_URL] = options.pop("redis_url")
    os.environ[ENV_SERVE_PROJECT] = str(app.state.project.path)
    os.environ[ENV_SERVE_OPTIONS] = json.dumps(options)
    del app
    uvicorn.run("workbench.serve.running:app_from_env", factory=True, workers=workers,
                host=host, port=port, log_level="info")
