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


# Fake models the kernel itself registers while it works (the stand-in calibration judge of
# workbench/evaluate/judge_sample.py, the scripted models of workbench/exercises/solutions.py):
# a test that reaches that code leaves them registered by design. They are still removed after
# each test; only fakes registered by test code count as leaks.
KERNEL_FAKES = frozenset({"keyword-judge", "exercise-other", "exercise-oracle", "exercise-judge"})


@pytest.fixture(autouse=True)
def _fake_models_left_as_found(request):
    """Each test starts with the fake models the one before it started with: fakes registered
    during a test are removed (and replaced ones restored) afterwards, and a test whose own
    code left one registered errors, naming it, so the leak is fixed where it is made."""
    from workbench.llm import fake

    saved = fake.snapshot()
    yield
    now = fake.snapshot()
    changed = {name for name in now.keys() | saved.keys()
               if name not in now or name not in saved
               or now[name][0] is not saved[name][0] or now[name][1] != saved[name][1]}
    fake.restore(saved)
    leaked = sorted(changed - KERNEL_FAKES)
    if leaked:
        pytest.fail(f"{request.node.nodeid} left the fake model registry changed: "
                    f"{', '.join('fake/' + n for n in leaked)}. Register fakes in tests with the "
                    "fake_model fixture, which puts the registry back after the test (a fake the "
                    "kernel itself registers belongs in KERNEL_FAKES in tests/conftest.py).",
                    pytrace=False)


@pytest.fixture
def fake_model():
    """Register a scripted fake model for this test only: ``fake_model(name, replies,
    input_cost_per_token=..., output_cost_per_token=...)`` returns ``fake/<name>`` (see
    ``workbench.llm.fake.register_fake``). After the test each name it registered is put back
    as it was: removed, or the fake it replaced restored."""
    from workbench.llm import fake

    saved = fake.snapshot()
    names: set[str] = set()

    def register(name: str, replies, **prices) -> str:
        model = fake.register_fake(name, replies, **prices)
        names.add(model)
        return model

    yield register
    fake.restore(saved, names)


@pytest.fixture
def make_split_project(tmp_path):
    """``make_split_project(labels, n)``: a sample-card project (not made the open one) holding
    dataset 'tiny' of ``n`` messages, the i-th about ``labels[i % len(labels)]`` and worded by
    ``text(i, label)``, with constant ``metadata`` columns, split 70/15/15 without the
    near-duplicate check (the messages differ only by their numbers)."""
    def make(labels, n, *, text=lambda i, label: f"message {i} about {label}", metadata=None):
        import pandas as pd

        import workbench
        from workbench.data import import_data, split

        project = workbench.init_project(tmp_path / "tiny", sample=True, activate=False)
        rows = [{"id": f"T{i:03d}", "input": text(i, labels[i % len(labels)]),
                 "expected": labels[i % len(labels)], **(metadata or {})} for i in range(n)]
        import_data(project, pd.DataFrame(rows), name="tiny", input="input", expected="expected",
                    id="id", **({"metadata": list(metadata)} if metadata else {}))
        split(project, "tiny", near_duplicate_threshold=None)
        return project

    return make


@pytest.fixture
def oracle_project(sample_project, fake_model):
    """The sample project with its data and its prompt as one version (v1), and ``fake/oracle``
    that knows every answer of the test split (so a gate on it passes). Returns the project,
    the test split and the oracle's reply function (to register under other names too)."""
    from workbench import sample
    from workbench.data.splitting import load_split

    # The sample's data, and its prompt as one version (v1): the fill for phase 7 would
    # bring all the versions phase 4 leaves.
    sample.fill_prerequisites(sample_project, 4)
    sample.save_sample_prompt(sample_project)
    test = load_split(sample_project, sample.SAMPLE_DATASET, "test")
    answers = {str(r["input"]): str(r["expected"]) for r in test.to_dict("records")}

    def oracle(messages):
        text = messages[-1]["content"]
        return next((label for question, label in answers.items() if question in text),
                    "other")

    fake_model("oracle", oracle)
    return sample_project, test, oracle


@pytest.fixture
def shop(tmp_path_factory, tmp_path, fake_model):
    """A private copy of the production week (tests/production.py: the sample project deployed
    on ``fake/shop`` with a week of users' requests and feedback), ``fake/shop`` registered."""
    from production import copy_of, week_template

    return copy_of(week_template(tmp_path_factory), tmp_path, fake_model)


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
