"""The training monitor (phase 5): live train and validation loss curves, progress, a Stop button.

All logic is ``workbench.finetune.FineTune``; this class copies its ``TrainingState`` into a
trait after every step and turns a click on Stop into ``FineTune.stop()`` (the training ends
after the step it is in and keeps the best weights). ``static/training.js`` only draws.
"""

from __future__ import annotations

import threading
from typing import Any

import anywidget
import traitlets

from widgets._base import STATIC, front_end, jsonable
from workbench.finetune import FineTune, TrainingState


class TrainingMonitor(anywidget.AnyWidget):
    """Shows one ``FineTune`` as it trains. Attach it before ``start()`` (or ``run()``)."""

    _esm = front_end("training.js")
    _css = STATIC / "training.css"

    state = traitlets.Dict().tag(sync=True)
    stop_requests = traitlets.Int(0).tag(sync=True)  # the front end's Stop clicks

    def __init__(self, job: FineTune | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.job: FineTune | None = None
        self._lock = threading.Lock()
        self.observe(self._on_stop, names="stop_requests")
        if job is not None:
            self.attach(job)

    def attach(self, job: FineTune) -> None:
        self.job = job
        job.on_update(self.show)
        self.show(job.state)

    def show(self, state: TrainingState) -> None:
        with self._lock:  # updates come from the training thread
            self.state = jsonable(state.to_dict())

    def _on_stop(self, _change: Any) -> None:
        if self.job is not None and self.stop_requests > 0:
            self.job.stop()

