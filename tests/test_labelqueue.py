"""Failures that need a label go to the annotator (the notebook widget, or a real Label Studio)
and come back as test cases in the test split."""

from __future__ import annotations

import pandas as pd
import pytest

from production import CHARGES, GARBLED, REFUNDS
from test_labelstudio import ls_server  # noqa: F401  the real Label Studio server fixture
from workbench.data.splitting import load_split
from workbench.data.versioning import DatasetError, get_version, load
from workbench.labelqueue import LabelQueueError, label_queue, queue_cases, queue_failures
from workbench.maintain import CASE_PREFIX


def test_failures_without_a_label_are_queued_once(shop):
    project = shop.project
    queue = queue_failures(project, "support")
    pending = queue.pending
    # 3 refund complaints without a correction, 4 charge complaints, 2 crashes, 2 unparsable.
    assert len(pending) == 11 and pending["id"].str.startswith(CASE_PREFIX).all()
    assert set(REFUNDS[2:]) | set(CHARGES) | set(GARBLED) <= set(pending["input"])
    assert not set(REFUNDS[:2]) & set(pending["input"])  # corrected: no label needed
    assert {"failed request (HTTP 502)", "unparsable answer"} <= set(pending["source"])
    assert queue.labels == get_version(project, "support").value.labels
    first = queue.version.version
    again = queue_failures(project, "support")  # nothing new: no new version
    assert again.version.version == first and len(again.pending) == 11
    assert "11 waiting for a label, 0 labelled" in again.sentence
    with pytest.raises(LabelQueueError, match="no case .* has a label yet|No case"):
        again.add_to_tests()


def test_the_annotator_labels_them_and_they_become_test_cases(shop):
    from widgets.annotate import Annotator

    project = shop.project
    queue = queue_failures(project, "support")
    widget = Annotator.from_dataset(project, queue.name, labels=queue.labels,
                                    only_unlabeled=True)
    assert widget.total == 11
    by_input = dict(zip(queue.pending["id"].astype(str), queue.pending["input"], strict=True))
    labelled = {}
    while widget.current:  # a person: billing for money complaints, skip the rest
        case = widget.current["id"]
        if by_input[case] in REFUNDS or by_input[case] in CHARGES:
            widget.label("billing")
            labelled[case] = "billing"
        else:
            widget.skip()
    saved = widget.save()
    assert saved.value.transform.name == "label"
    parent = get_version(project, "support")
    added = queue.add_to_tests()
    assert sorted(added.added) == sorted(labelled) and len(added.added) == 7
    assert len(added.unlabelled) == 4  # the crashes and the unparsable answers still wait
    test = load_split(project, "support", "test")
    new = test[test["id"].isin(added.added)]
    assert set(new["expected"]) == {"billing"} and set(new["input"]) <= set(REFUNDS + CHARGES)
    assert added.version.value.parent == parent.version
    # Twice is harmless: the cases are there already.
    assert queue.add_to_tests().version is None
    assert len(label_queue(project, "support").pending) == 4


def test_queueing_checks_its_input(shop):
    project = shop.project
    with pytest.raises(LabelQueueError, match="no column"):
        queue_cases(project, "support", pd.DataFrame({"text": ["x"]}))
    with pytest.raises(DatasetError, match="no dataset 'nope'"):
        queue_cases(project, "nope", pd.DataFrame({"case_id": ["case-1"], "input": ["x"]}))
    with pytest.raises(DatasetError):
        label_queue(project, "support")  # nothing queued yet
    labelled = pd.DataFrame({"case_id": ["case-a", "case-b"], "input": ["a", "b"],
                             "expected": ["billing", None]})
    queue = queue_cases(project, "support", labelled)
    assert list(load(project, queue.name)["id"]) == ["case-b"]  # a labelled case needs no queue


@pytest.mark.slow
def test_the_round_trip_through_a_real_label_studio(shop, ls_server):  # noqa: F811
    """Push the queue to a real Label Studio server, answer as its UI does, pull, add."""
    from test_labelstudio import annotate

    from workbench import labelstudio as wls

    project = shop.project
    client = wls.LabelStudio(*ls_server)
    queue = queue_failures(project, "support")
    ls_project = queue.push(client)
    answers = {case: "billing" for case, text in
               zip(queue.pending["id"], queue.pending["input"], strict=True)
               if text in CHARGES}
    annotate(client, ls_project, answers)
    queue.pull(client)
    added = queue.add_to_tests()
    assert sorted(added.added) == sorted(answers) and len(answers) == 4
    assert len(queue.pending) == 7

