"""The training monitor: it shows a FineTune's state as it changes and turns Stop into stop()."""

from __future__ import annotations

import pytest

import workbench
from workbench import sample

pytestmark = pytest.mark.model  # building the data reads the bundled model's tokenizer


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from workbench.finetune import FineTune, build_training_data

    project = workbench.init_project(tmp_path_factory.mktemp("w") / "p", sample=True,
                                     activate=False)
    sample.fill_prerequisites(project, 5)
    return FineTune(project, build_training_data(project, "triage", limit=16), "w")


def test_monitor_follows_the_training_state(job):
    from widgets.training import TrainingMonitor

    monitor = TrainingMonitor(job)
    assert monitor.state["status"] == "ready" and monitor.state["total_steps"] == job.total_steps
    job._update(status="training", step=2, train_losses=[(1, 6.1), (2, 5.0)],
                validation_losses=[(2, float("nan"))])
    assert monitor.state["step"] == 2
    assert monitor.state["train_losses"] == [[1, 6.1], [2, 5.0]]
    assert monitor.state["validation_losses"] == [[2, None]]  # NaN is not JSON


def test_the_stop_button_stops_the_job(job):
    from widgets.training import TrainingMonitor

    monitor = TrainingMonitor(job)
    assert not job._stop.is_set()
    monitor.stop_requests = 1  # what a click in the front end sends
    assert job._stop.is_set() and monitor.state["status"] == "stopping"
