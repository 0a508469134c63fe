"""Real-browser harness: Debian's Chromium driven by Playwright, against marimo and JupyterLab.

Fixtures:
- ``page``: a fresh Chromium page (screenshot + browser errors saved when the test fails);
- ``sample_project``: a sample project folder shared by the session;
- ``marimo_app(file)``: serves a marimo notebook with ``marimo run``, returns its URL;
- ``jupyter_lab``: one JupyterLab server for the session (write notebooks, open, run all cells).

Everything listens on 127.0.0.1 only and needs no network: Chromium's background traffic is off,
marimo's update check is off, JupyterLab fetches no news and checks for no updates.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Debian's chromium package; another build can be named with WORKBENCH_TEST_CHROMIUM.
CHROMIUM = Path(os.environ.get("WORKBENCH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
START_TIMEOUT_S = 90
PAGE_TIMEOUT_MS = 30_000

collect_ignore = ["apps"]  # marimo notebooks served by the tests, not test modules


# -- the browser ----------------------------------------------------------------------------------

def _no_browser(reason: str):
    # CI sets WORKBENCH_REQUIRE_BROWSER=1 so a missing browser fails instead of hiding the tests.
    if os.environ.get("WORKBENCH_REQUIRE_BROWSER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser():
    if not CHROMIUM.exists():
        _no_browser(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install "
                    "chromium) to run the browser tests")
    try:
        from playwright import sync_api
    except ImportError:
        _no_browser("playwright is missing: pip install playwright (it downloads no browser)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                      headless=True)
        yield chromium
        chromium.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def page(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}")
          if msg.type == "error" else None)
    pg.problems = problems  # tests may assert on these
    yield pg
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        try:
            pg.screenshot(path=str(shot), full_page=True)
            print(f"\nscreenshot of the failed page: {shot}")
        except Exception as exc:  # the page may be gone; the report matters more
            print(f"\nno screenshot: {exc}")
        print("browser errors:\n  " + "\n  ".join(problems or ["none"]))
    context.close()


# -- servers --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """A server process started by a fixture; its output goes to a log file."""

    process: subprocess.Popen
    url: str
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"

    def wait_until_up(self, probe: str, headers: dict[str, str] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                request = urllib.request.Request(probe, headers=headers or {})
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.25)
        raise RuntimeError(f"server did not answer {probe} in {START_TIMEOUT_S}s ({last}):\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        """Stop the server and whatever it started in its process group."""
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        _signal_group(self.process, signal.SIGKILL)  # children left behind, if any
        self.process.wait(timeout=15)


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # start_new_session=True made the pid its group id
    except ProcessLookupError:
        pass


def start_server(cmd: list[str], *, url: str, env: dict[str, str], cwd: Path, log: Path) -> Server:
    log_file = open(log, "wb")  # noqa: SIM115 - the child writes to it until stop()
    process = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    log_file.close()
    return Server(process=process, url=url, log=log)


def server_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a server: this checkout importable, user config kept out."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    for var, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_CACHE_HOME", "cache"),
                     ("XDG_STATE_HOME", "state"), ("IPYTHONDIR", "ipython")):
        env[var] = str(home / sub)
    env["MARIMO_SKIP_UPDATE_CHECK"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def sample_project(tmp_path_factory) -> Path:
    import workbench
    from workbench.project import forget_open_projects

    path = tmp_path_factory.mktemp("browser") / "sample"
    workbench.init_project(path, sample=True, activate=False)
    forget_open_projects()  # the servers open it in their own processes
    return path


@pytest.fixture
def marimo_app(tmp_path, sample_project) -> Iterator[Callable[..., str]]:
    """``marimo_app(APPS / "x.py", project=...)`` serves the notebook and returns its URL.

    ``project`` defaults to the session's shared sample project: a test that changes its
    project passes its own. The notebook is copied to a temporary folder first, so marimo's
    session files stay out of the checkout."""
    servers: list[Server] = []

    def start(notebook: Path | str, project: Path | None = None) -> str:
        notebook = Path(notebook)
        run_dir = tmp_path / f"marimo-{len(servers)}"
        run_dir.mkdir()
        shutil.copy(notebook, run_dir / notebook.name)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = server_env(tmp_path / "home",
                         WORKBENCH_PROJECT=str(project or sample_project))
        cmd = [sys.executable, "-m", "marimo", "run", "--headless", "--host", "127.0.0.1",
               "--port", str(port), "--no-token", "--no-sandbox", notebook.name]
        server = start_server(cmd, url=url, env=env, cwd=run_dir,
                              log=tmp_path / f"marimo-{len(servers)}.log")
        servers.append(server)
        server.wait_until_up(url + "/")
        return url

    yield start
    for server in servers:
        server.stop()


@dataclass
class JupyterLab:
    server: Server
    token: str
    notebook_dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def write_notebook(self, name: str, *sources: str) -> Path:
        """A notebook of code cells, bound to the python3 kernel so Lab asks nothing."""
        import nbformat

        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}
        nb.cells = [nbformat.v4.new_code_cell(src) for src in sources]
        path = self.notebook_dir / name
        nbformat.write(nb, path)
        return path

    def open_notebook(self, page, name: str) -> None:
        page.goto(f"{self.url}/lab/tree/{name}?token={self.token}")
        page.wait_for_function(
            """(name) => {
                const app = window.jupyterapp;
                const current = app && app.shell.currentWidget;
                return current && current.context && current.context.path === name
                    && current.sessionContext && current.sessionContext.session
                    && current.sessionContext.session.kernel
                    && current.sessionContext.session.kernel.connectionStatus === 'connected';
            }""",
            arg=name, timeout=START_TIMEOUT_S * 1000)

    def run_all_cells(self, page) -> None:
        page.evaluate("""async () => {
            const panel = window.jupyterapp.shell.currentWidget;
            await panel.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:run-all-cells');
        }""")

    def shutdown_kernels(self) -> None:
        for kernel in self.api("GET", "/api/kernels"):
            self.api("DELETE", f"/api/kernels/{kernel['id']}")


# News toast and update check off: the first page load must not reach for the network.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings":
        {"fetchNews": "false", "checkForUpdates": False},
}


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory) -> Iterator[JupyterLab]:
    root = tmp_path_factory.mktemp("jupyterlab")
    home = root / "home"
    notebook_dir = root / "notebooks"
    notebook_dir.mkdir()
    settings_dir = home / "lab-settings"
    for rel, value in LAB_SETTINGS.items():
        target = settings_dir / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(value), encoding="utf-8")
    token = os.urandom(16).hex()
    port = free_port()
    # JUPYTER_DATA_DIR only replaces the *user* data folder: the installed lab extensions
    # (anywidget, @jupyter-widgets) and the python3 kernel still come from sys.prefix.
    env = server_env(
        home,
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_RUNTIME_DIR=str(home / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(settings_dir),
        JUPYTERLAB_WORKSPACES_DIR=str(home / "lab-workspaces"),
    )
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
           "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
           "--ServerApp.allow_root=True",  # CI containers often run as root
           "--ServerApp.port_retries=0", f"--ServerApp.root_dir={notebook_dir}",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
           "--LabApp.extension_manager=readonly"]
    url = f"http://127.0.0.1:{port}"
    server = start_server(cmd, url=url, env=env, cwd=notebook_dir, log=root / "jupyterlab.log")
    lab = JupyterLab(server=server, token=token, notebook_dir=notebook_dir)
    try:
        server.wait_until_up(f"{url}/api/status", headers={"Authorization": f"token {token}"})
        yield lab
    finally:
        try:
            if server.process.poll() is None:
                lab.shutdown_kernels()
        except (urllib.error.URLError, OSError):
            pass
        server.stop()
