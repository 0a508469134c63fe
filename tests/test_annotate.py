"""The annotator driven as its frontend drives it — ``set_state`` on the ``events`` trait — with
no browser (tests/browser/test_annotate_browser.py proves it renders and syncs)."""

from __future__ import annotations

import pandas as pd
import pytest

from workbench.data import DatasetError, diff, get_version, load, save_version, versions

ITEMS = [
    {"id": 1, "input": "I was charged twice this month."},
    {"id": 2, "input": "The app crashes when I open settings.", "label": "technical"},
    {"id": 3, "input": "Where is my parcel?"},
    {"id": 4, "input": "Please change my email address."},
]
LABELS = ["billing", "technical", "shipping", "account"]


class Frontend:
    """What annotate.js does: append a numbered event to the unacknowledged ``events`` and save
    the list (``merged=True`` holds the update back, as marimo does while the kernel is busy)."""

    def __init__(self, widget):
        self.widget = widget
        self.n = 0
        self.held: list[dict] = []

    def send(self, *, merged: bool = False, **event) -> None:
        self.n += 1
        pending = [e for e in self.widget.events if e["n"] > self.widget.handled]
        self.held = [e for e in self.held if e["n"] > self.widget.handled]
        events = [*{e["n"]: e for e in pending + self.held}.values(), {**event, "n": self.n}]
        if merged:
            self.held = events
            return
        self.widget.set_state({"events": events})

    def press(self, *keys: str) -> None:
        for key in keys:
            self.send(type="key", key=key)


def state(widget) -> dict:
    return {"position": widget.position, "current_id": widget.current.get("id"),
            "labelled": widget.labelled, "skipped": widget.skipped, "total": widget.total,
            "finished": widget.finished, "can_undo": widget.can_undo,
            "annotations": widget.annotations}


@pytest.fixture
def widget():
    from widgets import Annotator

    return Annotator(ITEMS, LABELS)


def test_registered_lazily_in_widgets():
    import widgets
    from widgets.annotate import Annotator

    assert "Annotator" in widgets.__all__ and widgets.Annotator is Annotator


def test_starts_on_the_first_item(widget):
    assert state(widget) == {"position": 0, "current_id": "1", "labelled": 0, "skipped": 0,
                             "total": 4, "finished": False, "can_undo": False,
                             "annotations": {}}
    assert widget.current == {"id": "1", "input": "I was charged twice this month.",
                              "label": None, "annotation": None, "status": "pending"}
    assert widget.labels == LABELS
    assert {k: v for k, v in widget.shortcuts.items() if k.isdigit()} == {
        "1": "label:billing", "2": "label:technical", "3": "label:shipping", "4": "label:account"}


def test_number_keys_label_and_move_on(widget):
    ui = Frontend(widget)
    ui.press("1")
    assert state(widget) == {"position": 1, "current_id": "2", "labelled": 1, "skipped": 0,
                             "total": 4, "finished": False, "can_undo": True,
                             "annotations": {"1": "billing"}}
    ui.send(type="label", label="shipping")  # a click on a label button
    assert widget.annotations == {"1": "billing", "2": "shipping"}
    assert widget.current["id"] == "3"


def test_a_burst_of_keys_merged_into_one_update_loses_none(widget):
    ui = Frontend(widget)
    ui.press("1")
    ui.send(type="key", key="2", merged=True)  # held back while the kernel is busy ...
    ui.send(type="key", key="s", merged=True)
    ui.press("3")  # ... and sent as one update with the last write
    assert widget.annotations == {"1": "billing", "2": "technical", "4": "shipping"}
    assert (widget.handled, widget.skipped, widget.finished) == (4, 1, True)
    widget.set_state({"events": [{"type": "key", "key": "u", "n": 4}]})  # a replay: ignored
    assert widget.finished


def test_unknown_keys_do_nothing(widget):
    ui = Frontend(widget)
    ui.press("9", "x", "5")  # only four labels: 5 and 9 are not shortcuts
    assert state(widget)["annotations"] == {} and widget.position == 0
    assert widget.press("x") is False


def test_enter_keeps_the_current_label(widget):
    ui = Frontend(widget)
    ui.press("Enter")  # item 1 has no label to keep
    assert widget.position == 0 and "no current label" in widget.error
    ui.press("1", "Enter")
    assert widget.annotations == {"1": "billing", "2": "technical"}
    assert widget.error == ""


def test_skip_then_come_back_to_skipped_items_never(widget):
    ui = Frontend(widget)
    ui.press("s", "1", "S", "4")
    assert state(widget) == {"position": 4, "current_id": None, "labelled": 2, "skipped": 2,
                             "total": 4, "finished": True, "can_undo": True,
                             "annotations": {"2": "billing", "4": "account"}}


def test_skipped_items_can_be_reviewed_after_the_end(widget):
    ui = Frontend(widget)
    ui.press("s", "2", "s", "4")
    assert widget.finished and widget.skipped == 2
    ui.send(type="review_skipped")
    assert state(widget) == {"position": 0, "current_id": "1", "labelled": 2, "skipped": 0,
                             "total": 4, "finished": False, "can_undo": False,
                             "annotations": {"2": "technical", "4": "account"}}
    assert widget.message == "2 skipped item(s) back in the queue."
    ui.press("1", "3")
    assert widget.finished and widget.labelled == 4


def test_undo_takes_back_labels_and_skips_in_order(widget):
    ui = Frontend(widget)
    ui.press("1", "s", "3")
    assert widget.annotations == {"1": "billing", "3": "shipping"}
    ui.press("u")
    assert state(widget)["annotations"] == {"1": "billing"}
    assert widget.current["id"] == "3"
    ui.press("Backspace")  # undoes the skip of item 2
    assert (widget.current["id"], widget.skipped) == ("2", 0)
    ui.send(type="undo")
    assert state(widget) == {"position": 0, "current_id": "1", "labelled": 0, "skipped": 0,
                             "total": 4, "finished": False, "can_undo": False,
                             "annotations": {}}
    ui.press("U")  # nothing left to undo
    assert widget.position == 0


def test_undo_after_finishing_reopens_the_last_item(widget):
    ui = Frontend(widget)
    ui.press("1", "2", "3", "4")
    assert widget.finished
    ui.press("u")
    assert not widget.finished and widget.current["id"] == "4"
    assert widget.current["status"] == "pending"


def test_relabelling_after_undo_replaces_the_label(widget):
    ui = Frontend(widget)
    ui.press("1", "u", "2")
    assert widget.annotations == {"1": "technical"}


def test_on_done_is_called_once_when_every_item_is_handled():
    from widgets import Annotator

    calls = []
    widget = Annotator(ITEMS[:2], LABELS, on_done=lambda w: calls.append(dict(w.annotations)))
    ui = Frontend(widget)
    ui.press("3")
    assert calls == []
    ui.press("s")
    assert calls == [{"1": "shipping"}]


def test_a_failing_on_done_shows_as_an_error():
    from widgets import Annotator

    def broken(_widget):
        raise RuntimeError("disk full")

    widget = Annotator(ITEMS[:1], LABELS, on_done=broken)
    Frontend(widget).press("1")
    assert widget.error == "RuntimeError: disk full"


def test_to_frame(widget):
    ui = Frontend(widget)
    ui.press("1", "s", "2")
    frame = widget.to_frame()
    assert frame.to_dict(orient="records") == [
        {"id": 1, "input": ITEMS[0]["input"], "current": None, "label": "billing",
         "status": "labelled"},
        {"id": 2, "input": ITEMS[1]["input"], "current": "technical", "label": None,
         "status": "skipped"},
        {"id": 3, "input": ITEMS[2]["input"], "current": None, "label": "technical",
         "status": "labelled"},
        {"id": 4, "input": ITEMS[3]["input"], "current": None, "label": None,
         "status": "pending"},
    ]


@pytest.mark.parametrize("items, labels, message", [
    ([{"input": "no id"}], ["a"], "no 'id'"),
    ([{"id": 1, "input": "a"}, {"id": "1", "input": "b"}], ["a"], "more than once"),
    (ITEMS, [], "at least one label"),
    (ITEMS, ["a", "a"], "repeat"),
])
def test_bad_items_or_labels_are_refused(items, labels, message):
    from widgets import Annotator

    with pytest.raises(ValueError, match=message):
        Annotator(items, labels)


def test_no_items_is_finished_at_once():
    from widgets import Annotator

    widget = Annotator([], LABELS)
    assert (widget.finished, widget.total, widget.current) == (True, 0, {})


# -- with a project ----------------------------------------------------------------------------

@pytest.fixture
def tickets(project):
    frame = pd.DataFrame({
        "id": [10, 11, 12, 13],
        "input": ["refund please", "login fails", "parcel lost", "wrong invoice"],
        "expected": ["billing", None, None, "billing"],
    })
    save_version(project, "tickets", frame, transform="import")
    return project


def test_from_dataset_shows_rows_with_their_current_labels(tickets):
    from widgets import Annotator

    widget = Annotator.from_dataset(tickets, "tickets", labels=LABELS)
    assert [(i["id"], i["label"]) for i in widget.items] == [
        (10, "billing"), (11, None), (12, None), (13, "billing")]
    only = Annotator.from_dataset(tickets, "tickets", labels=LABELS, only_unlabeled=True)
    assert [i["id"] for i in only.items] == [11, 12]
    # Without labels= the version's own labels are used.
    assert Annotator.from_dataset(tickets, "tickets").labels == ["billing"]


def test_from_dataset_without_labels_says_what_to_do(project):
    from widgets import Annotator

    save_version(project, "raw", pd.DataFrame({"id": [1], "input": ["x"], "expected": [None]}),
                 transform="import")
    with pytest.raises(DatasetError, match="labels="):
        Annotator.from_dataset(project, "raw")


def test_save_makes_a_new_version_with_lineage(tickets):
    from widgets import Annotator

    widget = Annotator.from_dataset(tickets, "tickets", labels=LABELS)
    ui = Frontend(widget)
    ui.press("Enter", "2", "s", "1")  # keep 10, 11 technical, skip 12, 13 billing (unchanged)
    stored = widget.save()

    assert stored.version == 2
    assert stored.value.parent == 1
    assert stored.value.transform.model_dump() == {
        "name": "label",
        "params": {"source": "notebook", "labelled": 3, "changed": 1, "skipped": 1,
                   "labels": LABELS}}
    assert load(tickets, "tickets")["expected"].fillna("-").tolist() == [
        "billing", "technical", "-", "billing"]
    assert diff(tickets, "tickets", 1, 2).fillna("-").to_dict(orient="records") == [
        {"change": "changed", "id": 11, "column": "expected", "before": "-",
         "after": "technical"}]
    assert versions(tickets, "tickets")["transform"].tolist() == ["import", "label"]
    assert "v2" in widget.message


def test_save_to_a_named_dataset_and_nothing_to_save(tickets):
    from widgets import Annotator

    widget = Annotator([{"id": 12, "input": "parcel lost"}], LABELS)
    with pytest.raises(DatasetError, match="Nothing has been labelled"):
        widget.save(tickets, "tickets")
    Frontend(widget).press("3")
    with pytest.raises(DatasetError, match="where to save"):
        widget.save()
    stored = widget.save(tickets, "tickets")
    assert get_version(tickets, "tickets").version == stored.version == 2
    assert load(tickets, "tickets").set_index("id").at[12, "expected"] == "shipping"


def test_save_refuses_items_that_are_not_rows(tickets):
    from widgets import Annotator

    widget = Annotator([{"id": 99, "input": "not a row"}], LABELS)
    Frontend(widget).press("1")
    with pytest.raises(DatasetError, match="not rows"):
        widget.save(tickets, "tickets")
