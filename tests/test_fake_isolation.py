"""The test suite's own isolation of fake models (tests/conftest.py): a test that leaves a fake
registered errors by name, and the next test starts without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

LEAKY = '''
from workbench.llm import fake


def test_a_leak():
    fake.register_fake("leaky", ["x"])


def test_the_kernels_own_stand_in_judge_is_no_leak():
    from workbench.evaluate.judge_sample import stand_in_judge

    stand_in_judge()


def test_the_fixture_cleans_up(fake_model):
    fake_model("tidy", ["y"])


def test_the_next_tests_start_without_any_of_them():
    assert fake.registered_fakes() == ["fake/echo"]
'''


def test_a_leaked_fake_model_errors_by_name_and_does_not_reach_the_next_test(tmp_path):
    import workbench

    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_leaky.py").write_text(LEAKY, encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(Path(workbench.__file__).parents[1]), *filter(None, [os.environ.get("PYTHONPATH")])]))
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_leaky.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert "4 passed, 1 error" in out, out
    assert "ERROR at teardown of test_a_leak" in out
    assert "test_leaky.py::test_a_leak left the fake model registry changed: fake/leaky" in out
