"""Hermetic tests: a temporary project per test, hosted models off, fast retries."""

from __future__ import annotations

import os

import pytest

# Hosted model calls fail loudly unless a test run opts in (WORKBENCH_TEST_HOSTED=1).
if os.environ.get("WORKBENCH_TEST_HOSTED") != "1":
    os.environ["WORKBENCH_ALLOW_HOSTED"] = "0"
os.environ["WORKBENCH_RETRY_BASE_S"] = "0.01"
os.environ["MARIMO_SKIP_UPDATE_CHECK"] = "1"
os.environ.pop("WORKBENCH_PROJECT", None)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    from workbench.llm import fake
    from workbench.project import forget_open_projects

    monkeypatch.delenv("WORKBENCH_PROJECT", raising=False)
    forget_open_projects()
    fake.reset_counters()
    yield
    forget_open_projects()


@pytest.fixture
def project(tmp_path):
    import workbench

    return workbench.init_project(tmp_path / "project")


@pytest.fixture
def sample_project(tmp_path):
    import workbench

    return workbench.init_project(tmp_path / "sample", sample=True)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than about 20 s")


def pytest_collection_modifyitems(config, items):
    if os.environ.get("WORKBENCH_TEST_HOSTED") == "1":
        return
    skip = pytest.mark.skip(reason="hosted-model test: set WORKBENCH_TEST_HOSTED=1 and a key")
    for item in items:
        if "hosted" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def run_async():
    """Run a coroutine to completion on a fresh event loop in its own thread (the browser tests'
    Playwright keeps an event loop running on the main thread for the whole session)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    def run(coro):
        with ThreadPoolExecutor(max_workers=1) as pool:
            return pool.submit(asyncio.run, coro).result()

    return run
