"""Serving from several processes: rate limits and the response cache shared through a real
Redis (``redis-server`` on 127.0.0.1), real ``workbench serve`` processes over real HTTP."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import redis_server

from workbench.serve import plan_deployment, start_server
from workbench.serve.shared_state import (
    RedisCounters,
    SharedStateUnavailable,
    connect,
)

KEY = "wb-scale-key-0123456789"
EXE = shutil.which("workbench", path=str(Path(sys.executable).parent)) or "workbench"


def _env() -> dict[str, str]:
    """This environment with the keys set, no Redis from outside, and this checkout's
    workbench first on the path (the console script may belong to another checkout)."""
    import workbench

    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKBENCH_REDIS")}
    env["WORKBENCH_API_KEYS"] = KEY
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(workbench.__file__).parents[1]), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def redis_url():
    server = redis_server.start()
    yield server.url
    server.close()


@pytest.fixture
def clean_redis(redis_url):
    connect(redis_url).flushall()
    return redis_url


def _deployed(project, *, burst: int, per_minute: int = 1):
    from workbench import sample

    sample.fill_prerequisites(project, 7)
    plan_deployment(project, sample.SAMPLE_PROMPT, model="fake/echo", force=True,
                    rate_limit_per_minute=per_minute, burst=burst, timeout_s=10, retries=0,
                    max_waiting=64)
    return project


def _replica(project, folder: Path) -> Path:
    """A copy of the project folder, as each replica's image has its own."""
    project.store.flush()
    project.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copytree(project.path, folder)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Served:
    """``workbench serve`` in its own process."""

    def __init__(self, project_path: Path, *args: str, redis_url: str | None = None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = _env()
        argv = [EXE, "serve", "--project", str(project_path), "--port", str(self.port), *args]
        if redis_url:
            argv += ["--redis", redis_url]
        self.process = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        start_new_session=True)

    def wait_ready(self) -> Served:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"the service did not start: {self.output}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # uvicorn stops its workers on SIGINT
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.output = self.process.stdout.read() if self.process.stdout else ""

    output = ""


def _predict(url: str, text: str) -> httpx.Response:
    # a new connection per request: with several workers the kernel spreads them
    return httpx.post(f"{url}/v1/predict", json={"input": text}, timeout=30,
                      headers={"Authorization": f"Bearer {KEY}", "Connection": "close"})


# -- the counters ----------------------------------------------------------------------------------

def test_redis_token_buckets_refill_on_the_server_clock_and_never_overgrant(clean_redis):
    counters = RedisCounters(connect(clean_redis), prefix="t:")
    assert [counters.take("k", rate_per_s=0.5, burst=3) for _ in range(3)] == [0.0] * 3
    wait = counters.take("k", rate_per_s=0.5, burst=3)
    assert 1.9 < wait <= 2.0  # one token at 0.5/s
    assert counters.take("other", rate_per_s=0.5, burst=3) == 0.0  # buckets are separate
    assert counters.take("k", rate_per_s=0.5, burst=3, cost=5) == math.inf
    fast = RedisCounters(connect(clean_redis), prefix="t:")
    assert fast.take("f", rate_per_s=20, burst=1) == 0.0
    assert fast.take("f", rate_per_s=20, burst=1) > 0
    time.sleep(0.12)
    assert fast.take("f", rate_per_s=20, burst=1) == 0.0  # refilled after 1/20 s
    ttl = connect(clean_redis).pttl("t:bucket:f")
    assert 0 < ttl <= 1100  # forgotten once it would be full again (+1 s)

    # 8 threads on two separate connections pools race for 50 tokens: exactly 50 are granted
    granted = []
    clients = [RedisCounters(connect(clean_redis), prefix="t:") for _ in range(2)]

    def hammer(i: int) -> None:
        for _ in range(25):
            granted.append(clients[i % 2].take("race", rate_per_s=0.001, burst=50) == 0.0)

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 200 and sum(granted) == 50


def test_redis_totals_expire_from_their_creation(clean_redis):
    counters = RedisCounters(connect(clean_redis), prefix="t:")
    assert counters.get("spend") == 0.0
    assert counters.add("spend", 1.25, ttl_s=60) == 1.25
    assert counters.add("spend", 0.5, ttl_s=60) == 1.75
    assert counters.get("spend") == 1.75
    assert counters.add("short", 2, ttl_s=0.3) == 2.0
    time.sleep(0.15)
    assert counters.add("short", 1, ttl_s=0.3) == 3.0  # adding does not push the expiry back
    time.sleep(0.25)
    assert counters.get("short") == 0.0


def test_a_wrong_redis_url_is_refused_at_start():
    port = _free_port()  # nothing listens there
    with pytest.raises(SharedStateUnavailable, match="does not answer") as refused:
        connect(f"redis://:secret-password@127.0.0.1:{port}/0")
    assert "secret-password" not in refused.value.message
    assert "--redis" in refused.value.fix


# -- processes sharing one limit and one cache ----------------------------------------------------

def test_two_service_processes_share_one_rate_limit_and_one_cache(sample_project, tmp_path,
                                                                    clean_redis):
    project = _deployed(sample_project, burst=12)
    # two replicas, each with its own copy of the project (own SQLite): only Redis joins them
    a = Served(_replica(project, tmp_path / "replica-a"), redis_url=clean_redis)
    b = Served(_replica(project, tmp_path / "replica-b"), redis_url=clean_redis)
    try:
        a.wait_ready()
        b.wait_ready()
        first = _predict(a.url, "Where is my parcel? It was due on Monday.")
        assert first.status_code == 200 and first.json()["cached"] is False
        second = _predict(b.url, "Where is my parcel? It was due on Monday.")
        assert second.status_code == 200 and second.json()["cached"] is True
        assert second.json()["output"] == first.json()["output"]
        statuses = {a.url: [], b.url: []}
        for i in range(30):
            url = (a.url, b.url)[i % 2]
            statuses[url].append(_predict(url, f"Question number {i} about billing").status_code)
        ok = sum(s.count(200) for s in statuses.values())
        assert ok + 2 == 12  # the burst, once, across both processes (1 token a minute)
        assert all(s.count(200) >= 4 for s in statuses.values())
        assert sum(s.count(429) for s in statuses.values()) == 30 - ok
    finally:
        a.stop()
        b.stop()


def test_serve_with_two_workers_shares_the_limit_through_redis(sample_project, clean_redis):
    project = _deployed(sample_project, burst=8)
    served = Served(project.path, "--workers", "2", redis_url=clean_redis)
    try:
        served.wait_ready()
        codes = [_predict(served.url, f"Invoice question {i}").status_code for i in range(24)]
        assert codes.count(200) == 8 and codes.count(429) == 16
    finally:
        served.stop()
    assert served.output.count("Started server process") >= 2, served.output  # two workers
    assert "with 2 workers" in served.output


def test_several_workers_without_redis_are_refused(sample_project):
    project = _deployed(sample_project, burst=8)
    env = _env()
    refused = subprocess.run([EXE, "serve", "--project", str(project.path), "--port",
                              str(_free_port()), "--workers", "3"], env=env, check=False,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "3 times the requests its limit allows" in refused.stderr
    assert "--redis" in refused.stderr


def test_redis_going_down_refuses_requests_it_cannot_count(sample_project):
    own = redis_server.start()  # this test stops it
    try:
        project = _deployed(sample_project, burst=5)
        server = start_server(project, api_keys=[KEY], redis_url=own.url)
        try:
            assert _predict(server.url, "Is my refund on its way?").status_code == 200
            doc = httpx.get(f"{server.url}/openapi.json").json()
            assert "503" in doc["paths"]["/v1/info"]["get"]["responses"]
            own.stop()
            down = _predict(server.url, "Is my refund on its way now?")
            assert down.status_code == 503 and down.headers["retry-after"] == "5"
            body = down.json()
            assert set(body) == {"error", "fix", "request_id"}
            assert "rate limits" in body["error"] and own.url not in body["fix"]
            guessed = httpx.get(f"{server.url}/v1/info", headers={"X-API-Key": "x" * 20})
            assert guessed.status_code == 503
        finally:
            server.stop()
    finally:
        own.close()


# -- the compose file -----------------------------------------------------------------------------

def test_the_deployment_writes_replicas_behind_nginx_sharing_redis(sample_project):
    """The compose file is parsed as YAML and checked for what makes replicas safe; `docker
    compose config` would also check it against the Compose schema, but no Docker daemon or
    compose plugin is installed here."""
    import re

    import yaml

    from workbench.serve import create_app

    project = _deployed(sample_project, burst=8)
    compose = yaml.safe_load((project.deploy_dir / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"service", "balancer", "redis"}
    service = services["service"]
    assert service["deploy"]["replicas"] >= 2
    assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert service["environment"]["WORKBENCH_REDIS_URL"] == "redis://redis:6379/0"
    assert service["environment"]["WORKBENCH_API_KEYS"].startswith("${WORKBENCH_API_KEYS:?")
    assert "ports" not in service  # only the balancer is reachable from outside
    assert service["command"][:2] == ["workbench", "serve"]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["balancer"]["ports"] == ["8000:80"]
    assert "./nginx.conf:/etc/nginx/conf.d/default.conf:ro" in services["balancer"]["volumes"]
    assert "--appendonly" in services["redis"]["command"]
    assert set(compose["volumes"]) == {"project", "redis-data"}

    nginx = (project.deploy_dir / "nginx.conf").read_text()
    assert nginx.count("{") == nginx.count("}")
    assert re.search(r"upstream workbench \{\s*server service:8000;", nginx)
    assert "proxy_pass http://workbench;" in nginx
    bound = int(re.search(r"client_max_body_size (\d+);", nginx).group(1))
    app = create_app(project, api_keys=[KEY])
    assert bound == app.state.service.max_body  # nginx passes what the service reads
    read_timeout = int(re.search(r"proxy_read_timeout (\d+)s;", nginx).group(1))
    assert read_timeout > app.state.spec.timeout_s
