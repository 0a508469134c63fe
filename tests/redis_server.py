"""A real Redis for the tests: Debian's ``redis-server`` on 127.0.0.1, a free port, no
persistence, in a temporary folder. Tests that need it skip when it is not installed, unless
``WORKBENCH_REQUIRE_REDIS=1`` (CI), where its absence fails them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

import pytest

REQUIRE = "WORKBENCH_REQUIRE_REDIS"


@dataclass
class RedisServer:
    url: str
    port: int
    process: subprocess.Popen
    folder: str

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start() -> RedisServer:
    """Start a Redis, or skip the test (fail it under WORKBENCH_REQUIRE_REDIS=1)."""
    exe = shutil.which("redis-server")
    missing = None
    if exe is None:
        missing = ("redis-server is not installed (apt-get install redis-server; "
                   "scripts/setup.sh does it as root)")
    else:
        try:
            import redis  # noqa: F401 (only whether it imports)
        except ImportError:
            missing = "the redis client is not installed (pip install redis)"
    if missing:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but {missing}")
        pytest.skip(missing)
    folder = tempfile.mkdtemp(prefix="workbench-redis-")
    port = _free_port()
    process = subprocess.Popen(
        [exe, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
         "--dir", folder, "--protected-mode", "yes"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(f"redis://127.0.0.1:{port}/0", port, process, folder)
    deadline = time.monotonic() + 15
    while True:
        import redis

        try:
            if server.client().ping():
                return server
        except redis.RedisError:
            if process.poll() is not None or time.monotonic() > deadline:
                server.close()
                pytest.fail(f"redis-server did not start on port {port}")
            time.sleep(0.05)
