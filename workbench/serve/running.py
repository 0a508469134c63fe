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


def serve(project: Project | str | os.PathLike | None = None, *, host: str = "127.0.0.1",
          port: int = 8000, **options: Any) -> None:
    """Serve the latest deployment in the foreground until Ctrl-C (``workbench serve``)."""
    import uvicorn

    app = create_app(project, **options)
    uvicorn.run(app, host=host, port=port, log_level="info")
