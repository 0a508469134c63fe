"""Production failures that need a label, to the annotator and back as test cases.

A thumbs down without a correction, a request the service failed on, an answer it could not
parse: each is a test case waiting for its expected answer. They wait in a dataset of their own,
``<dataset>-to-label`` (a versioned dataset like any other), so both annotators of phase 2 work
on it unchanged — the in-notebook ``widgets.annotate.Annotator`` and a Label Studio server
(``workbench.labelstudio.push``/``pull``) — and every label a person gives is a new version of
the queue, with its lineage.

    >>> queue = queue_failures(project, "support")          # the cases, queued
    >>> Annotator.from_dataset(project, queue.name, labels=queue.labels, only_unlabeled=True)
    ...                                                      # label them, then save()
    >>> queue.add_to_tests()                                # labelled ones → the test split
    '2 test cases added (support v7); 1 needs a label first.'

or, for a team, ``queue.push(client)`` / ``queue.pull(client)`` with Label Studio.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.versions import DatasetVersion
    from workbench.labelstudio import LabelStudio
    from workbench.maintain import AddedCases
    from workbench.project import Project
    from workbench.records import Stored

SUFFIX = "-to-label"
QUEUE_COLUMNS = ["id", "input", "expected", "output", "source", "comment", "queued_at"]


class LabelQueueError(WorkbenchError):
    """The label queue cannot do what was asked."""


def queue_name(dataset: str) -> str:
    return f"{dataset}{SUFFIX}"


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        return value != value  # NaN
    except (TypeError, ValueError):
        return False


@dataclass
class LabelQueue:
    """The cases of ``dataset`` waiting for a label, kept as dataset ``name``."""

    project: Project
    dataset: str
    name: str

    @property
    def version(self) -> Stored[DatasetVersion]:
        from workbench.data.versions import get_version

        return get_version(self.project, self.name)

    @property
    def labels(self) -> list[str]:
        """The labels a case may get: those of the dataset the cases are for."""
        from workbench.data.versions import get_version

        return list(get_version(self.project, self.dataset).value.labels or [])

    def frame(self) -> pd.DataFrame:
        from workbench.data.versions import load

        return load(self.project, self.name)

    @property
    def pending(self) -> pd.DataFrame:
        """Cases with no label yet."""
        frame = self.frame()
        return frame[frame["expected"].map(_blank)].reset_index(drop=True)

    @property
    def labelled(self) -> pd.DataFrame:
        """Cases a person labelled, as ``maintain.add_test_cases`` takes them."""
        frame = self.frame()
        done = frame[~frame["expected"].map(_blank)]
        return done.rename(columns={"id": "case_id"}).reset_index(drop=True)

    @property
    def sentence(self) -> str:
        frame = self.frame()
        waiting = int(frame["expected"].map(_blank).sum())
        return (f"{len(frame)} case{'s' if len(frame) != 1 else ''} in {self.name} "
                f"v{self.version.version}: {waiting} waiting for a label, "
                f"{len(frame) - waiting} labelled.")

    def _repr_markdown_(self) -> str:
        return self.sentence

    def push(self, client: LabelStudio, *, title: str | None = None) -> int:
        """Send the cases still without a label to Label Studio; returns its project id."""
        from workbench.labelstudio import push

        return push(self.project, self.name, client=client, labels=self.labels or None,
                    only_unlabeled=True, title=title or f"{self.project.name}: {self.name}")

    def pull(self, client: LabelStudio) -> Stored[DatasetVersion]:
        """Read the labels given in Label Studio back as a new version of the queue."""
        from workbench.labelstudio import pull

        return pull(self.project, self.name, client=client)

    def add_to_tests(self, *, split: str = "test") -> AddedCases:
        """Add every labelled case to ``split`` of the dataset (``maintain.add_test_cases``:
        duplicates skipped, conflicting labels reported, one new version or none)."""
        from workbench.maintain import add_test_cases

        labelled = self.labelled
        if labelled.empty:
            raise LabelQueueError(f"No case in {self.name} has a label yet.",
                                  "Label them first: the annotator in notebook 09, or "
                                  "queue.push(client) and queue.pull(client) with Label "
                                  "Studio.")
        result = add_test_cases(self.project, self.dataset, labelled, split=split)
        result.unlabelled = [*result.unlabelled, *map(str, self.pending["id"])]
        return result


def queue_cases(project: Project, dataset: str, cases: pd.DataFrame) -> LabelQueue:
    """Put the ``cases`` that have no ``expected`` answer (columns of ``maintain.CASE_COLUMNS``)
    into the label queue of ``dataset``: a new version of ``<dataset>-to-label`` holding the
    cases queued before (labelled or not) and the new ones. A case already queued is not added
    twice. The dataset must exist (its labels are the ones offered)."""
    import pandas as pd

    from workbench.data.versions import DatasetError, get_version, load, save_version

    get_version(project, dataset)  # a friendly error when it does not exist
    missing = {"case_id", "input"} - set(cases.columns)
    if missing:
        raise LabelQueueError(f"The cases have no column(s) {sorted(missing)}.",
                              "Build them with maintain.cases_from_feedback or "
                              "maintain.cases_from_failures.")
    name = queue_name(dataset)
    try:
        current = load(project, name)
        parent = get_version(project, name).version
    except DatasetError:
        current, parent = pd.DataFrame(columns=QUEUE_COLUMNS), None
    known = set(current["id"].astype(str))
    now = time.time()
    fresh = []
    for case in cases.to_dict("records"):
        if not _blank(case.get("expected")) or str(case["case_id"]) in known:
            continue
        known.add(str(case["case_id"]))
        fresh.append({"id": str(case["case_id"]), "input": str(case["input"]),
                      "expected": None, "output": case.get("output"),
                      "source": case.get("source"), "comment": case.get("comment"),
                      "queued_at": now})
    if fresh or parent is None:
        rows = pd.concat([current, pd.DataFrame(fresh, columns=QUEUE_COLUMNS)],
                         ignore_index=True) if len(current) else \
            pd.DataFrame(fresh, columns=QUEUE_COLUMNS)
        rows = rows.astype({"id": str, "input": str, "expected": object, "output": object,
                            "source": object, "comment": object, "queued_at": float})
        save_version(project, name, rows, transform="queue_cases", parent=parent,
                     params={"dataset": dataset, "cases": [f["id"] for f in fresh]})
    return LabelQueue(project, dataset, name)


def queue_failures(project: Project, dataset: str, *, since: float | None = None) -> LabelQueue:
    """Queue what production left without a label since ``since``: thumbs down without a
    correction (``maintain.cases_from_feedback``) and failed or unparsable requests
    (``maintain.cases_from_failures``)."""
    import pandas as pd

    from workbench.maintain import cases_from_failures, cases_from_feedback

    cases = pd.concat([cases_from_feedback(project, since=since),
                       cases_from_failures(project, since=since)], ignore_index=True)
    return queue_cases(project, dataset, cases.drop_duplicates("case_id"))


def label_queue(project: Project, dataset: str) -> LabelQueue:
    """The label queue of ``dataset`` as it stands (made by ``queue_failures``)."""
    from workbench.data.versions import get_version

    name = queue_name(dataset)
    get_version(project, name)  # a friendly error when nothing was queued
    return LabelQueue(project, dataset, name)
