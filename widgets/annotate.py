"""The annotator: label a dataset one item at a time, inside the notebook.

All logic lives here in Python — which item comes next, what a key does, undo, progress, saving.
``static/annotate.js`` only draws the traits and reports what the user pressed or clicked.

It reports through traits rather than custom messages, so marimo re-runs the cells that read the
widget's value. marimo merges trait updates that queue up while the kernel is busy (the last
write wins), so a burst of key presses must survive being merged: the frontend keeps every event
Python has not yet acknowledged in the ``events`` list, numbered, and Python handles each number
once and acknowledges it in ``handled``.

Shortcuts: 1..9 pick the first nine labels, Enter keeps the item's current label, S skips,
U or Backspace undoes the last step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anywidget
import traitlets

from widgets._base import STATIC, front_end
from workbench.data.versioning import DatasetError

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.versioning import DatasetVersion
    from workbench.project import Project
    from workbench.records import Stored


LABELLED, SKIPPED = "labelled", "skipped"
SKIP_KEYS = ("s", "S")
UNDO_KEYS = ("u", "U", "Backspace")
KEEP_KEYS = ("Enter",)


@dataclass
class _Step:
    """One undoable action: the item it touched and what that item held before."""

    index: int
    annotation: str | None
    status: str | None


class Annotator(anywidget.AnyWidget):
    """Label ``items`` with one of ``labels``, one item at a time.

    ``items`` are dicts with ``id``, ``input`` and optionally ``label`` (the current label, shown
    and kept with Enter). ``annotations`` maps each item's id, as a string (JSON object keys are
    strings), to the label a person gave it. ``on_done(annotator)`` is called when every item has
    been labelled or skipped.
    """

    _esm = front_end("annotate.js")
    _css = STATIC / "annotate.css"

    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    shortcuts = traitlets.Dict().tag(sync=True)  # key -> what it does, for the frontend to capture
    current = traitlets.Dict().tag(sync=True)  # the item on screen; {} when finished
    position = traitlets.Int(0).tag(sync=True)  # its index in the items
    total = traitlets.Int(0).tag(sync=True)
    labelled = traitlets.Int(0).tag(sync=True)
    skipped = traitlets.Int(0).tag(sync=True)
    can_undo = traitlets.Bool(False).tag(sync=True)
    finished = traitlets.Bool(False).tag(sync=True)
    annotations = traitlets.Dict().tag(sync=True)  # item id (str) -> label
    message = traitlets.Unicode("").tag(sync=True)  # one line of news, e.g. "Saved as v3"
    error = traitlets.Unicode("").tag(sync=True)
    # The frontend's unacknowledged events, [{"type": ..., "n": 1}, ...], and the last n handled.
    events = traitlets.List(traitlets.Dict()).tag(sync=True)
    handled = traitlets.Int(0).tag(sync=True)

    def __init__(self, items: Iterable[Mapping[str, Any]], labels: Iterable[str], *,
                 on_done: Callable[[Annotator], Any] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self._items = _check_items(items)
        self._status: dict[str, str] = {}
        self._history: list[_Step] = []
        self._source: tuple[Project, str, int] | None = None
        self.on_done = on_done
        labels = [str(label) for label in labels]
        if not labels:
            raise ValueError("Annotator needs at least one label.")
        if len(set(labels)) != len(labels):
            raise ValueError(f"The labels {labels} repeat a value; give each label once.")
        keys = {str(n): f"label:{label}" for n, label in enumerate(labels[:9], start=1)}
        keys.update({k: "skip" for k in SKIP_KEYS})
        keys.update({k: "undo" for k in UNDO_KEYS})
        keys.update({k: "keep" for k in KEEP_KEYS})
        with self.hold_sync():
            self.labels = labels
            self.shortcuts = keys
            self.total = len(self._items)
            self.annotations = {}
            self._go(self._next_pending(0))
        self.observe(self._on_events, names="events")

    # -- building from a dataset -----------------------------------------------------------------
    @classmethod
    def from_dataset(cls, project: Project, name: str, version: int | str | None = None, *,
                     labels: Iterable[str] | None = None, only_unlabeled: bool = False,
                     on_done: Callable[[Annotator], Any] | None = None) -> Annotator:
        """An annotator over a dataset version's rows (the latest by default); its current
        ``expected`` values show as each item's current label. ``labels`` default to the
        version's own labels."""
        from workbench.data.versioning import get_version, load

        stored = get_version(project, name, version)
        df = load(project, name, stored.version)
        labels = list(labels or stored.value.labels or [])
        if not labels:
            raise DatasetError(f"{name} v{stored.version} has no labels yet, so the annotator "
                               "does not know what to offer.",
                               "Pass labels=[...] (the classes of your task).")
        items = []
        for row in df[["id", "input", "expected"]].to_dict(orient="records"):
            current = None if _blank(row["expected"]) else str(row["expected"])
            if only_unlabeled and current is not None:
                continue
            items.append({"id": row["id"], "input": "" if _blank(row["input"]) else
                          str(row["input"]), "label": current})
        widget = cls(items, labels, on_done=on_done)
        widget._source = (project, name, stored.version)
        return widget

    # -- what the user does ------------------------------------------------------------------------
    def label(self, value: str) -> None:
        """Give the current item ``value`` and move on."""
        if value not in self.labels:
            self.error = f"{value!r} is not one of the labels {list(self.labels)}."
            return
        self._act(LABELLED, value)

    def skip(self) -> None:
        """Leave the current item for later and move on."""
        self._act(SKIPPED, None)

    def keep(self) -> None:
        """Confirm the current item's existing label."""
        current = self.current.get("label")
        if current in self.labels:
            self._act(LABELLED, current)
        elif current:
            self.error = f"Its current label {current!r} is not one of the labels: pick one."
        elif self.current:
            self.error = "This item has no current label to keep: pick one."

    def undo(self) -> None:
        """Take back the last label or skip and show that item again."""
        if not self._history:
            return
        step = self._history.pop()
        key = _key(self._items[step.index]["id"])
        annotations = dict(self.annotations)
        if step.annotation is None:
            annotations.pop(key, None)
        else:
            annotations[key] = step.annotation
        if step.status is None:
            self._status.pop(key, None)
        else:
            self._status[key] = step.status
        with self.hold_sync():
            self.annotations = annotations
            self._go(step.index)
            self.message = ""
            self.error = ""

    def review_skipped(self) -> None:
        """Bring the skipped items back into the queue (their labels, if any, stay)."""
        skipped = [k for k, status in self._status.items() if status == SKIPPED]
        if not skipped:
            return
        for key in skipped:
            del self._status[key]
        self._history.clear()  # undo steps refer to the queue as it was
        with self.hold_sync():
            self._go(self._next_pending(0))
            self.message = f"{len(skipped)} skipped item(s) back in the queue."

    def press(self, key: str) -> bool:
        """Do what ``key`` is a shortcut for; False when it is none."""
        action = self.shortcuts.get(key)
        if action is None:
            return False
        if action.startswith("label:"):
            self.label(action.removeprefix("label:"))
        else:
            getattr(self, action)()
        return True

    def _on_events(self, change: dict[str, Any]) -> None:
        for event in sorted(change["new"] or [], key=lambda e: e.get("n", 0)):
            n = event.get("n")
            if not isinstance(n, int) or n <= self.handled:
                continue  # seen before: it came again inside a merged update
            self.handled = n
            self._handle(event)

    def _handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        try:
            if kind == "key":
                self.press(str(event.get("key", "")))
            elif kind == "label":
                self.label(str(event.get("label", "")))
            elif kind in ("skip", "undo", "keep", "review_skipped"):
                getattr(self, kind)()
        except Exception as exc:  # a failing on_done must not look like a dead widget
            self.error = f"{type(exc).__name__}: {exc}"

    # -- state -------------------------------------------------------------------------------------
    def _act(self, status: str, value: str | None) -> None:
        if self.finished or not self.current:
            return
        index = self.position
        key = _key(self._items[index]["id"])
        self._history.append(_Step(index, self.annotations.get(key), self._status.get(key)))
        annotations = dict(self.annotations)
        if value is None:
            annotations.pop(key, None)
        else:
            annotations[key] = value
        self._status[key] = status
        with self.hold_sync():
            self.annotations = annotations
            self.error = ""
            self.message = ""
            self._go(self._next_pending(index + 1))
        if self.finished and self.on_done is not None:
            self.on_done(self)

    def _next_pending(self, start: int) -> int | None:
        """The first item at or after ``start`` (wrapping round) that is neither labelled nor
        skipped; None when there is none."""
        n = len(self._items)
        for offset in range(n):
            i = (start + offset) % n
            if _key(self._items[i]["id"]) not in self._status:
                return i
        return None

    def _go(self, index: int | None) -> None:
        values = list(self._status.values())
        self.labelled = values.count(LABELLED)
        self.skipped = values.count(SKIPPED)
        self.can_undo = bool(self._history)
        if index is None:
            self.finished = True
            self.position = len(self._items)
            self.current = {}
            return
        item = self._items[index]
        key = _key(item["id"])
        self.finished = False
        self.position = index
        self.current = {"id": key, "input": item["input"], "label": item.get("label"),
                        "annotation": self.annotations.get(key),
                        "status": self._status.get(key, "pending")}

    # -- results -----------------------------------------------------------------------------------
    @property
    def items(self) -> list[dict[str, Any]]:
        return [dict(item) for item in self._items]

    def to_frame(self) -> pd.DataFrame:
        """One row per item: ``id``, ``input``, ``current`` (its label before), ``label`` (the
        person's, None if not given) and ``status`` (labelled, skipped or pending)."""
        import pandas as pd

        rows = []
        for item in self._items:
            key = _key(item["id"])
            rows.append({"id": item["id"], "input": item["input"], "current": item.get("label"),
                         "label": self.annotations.get(key),
                         "status": self._status.get(key, "pending")})
        columns = ["id", "input", "current", "label", "status"]
        # object columns keep None for "no label" (a plain DataFrame would turn it into NaN)
        return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=object) for c in columns})

    def save(self, project: Project | None = None,
             name: str | None = None) -> Stored[DatasetVersion]:
        """Save the labels as a new version of dataset ``name`` (``transform="label"``).

        Defaults to the project and dataset the annotator was made from; the labels go onto that
        version, matched by row id. Another dataset takes them onto its latest version."""
        import pandas as pd

        from workbench.data.versioning import get_version, load, save_version

        if self._source is not None:
            project = project or self._source[0]
            name = name or self._source[1]
        if project is None or name is None:
            raise DatasetError("The annotator does not know where to save.",
                               "Call save(project, 'dataset name').")
        if not self.annotations:
            raise DatasetError("Nothing has been labelled yet, so there is nothing to save.",
                               "Label a few items first (number keys 1-9).")
        if self._source is not None and self._source[:2] == (project, name):
            base = get_version(project, name, self._source[2])
        else:
            base = get_version(project, name)
        df = load(project, name, base.version)
        keys = df["id"].map(_key)
        hit = keys.isin(self.annotations.keys())
        missing = set(self.annotations) - set(keys)
        if missing:
            raise DatasetError(f"{len(missing)} labelled item(s) are not rows of {name} "
                               f"v{base.version} (ids {sorted(missing)[:3]}).",
                               "Save to the dataset the items came from.")
        before = [None if _blank(v) else str(v) for v in df["expected"]]
        after = [self.annotations.get(k, old) for k, old in zip(keys, df["expected"], strict=True)]
        df["expected"] = pd.Series(after, index=df.index, dtype=object)
        changed = sum(1 for k, b, a in zip(keys, before, after, strict=True)
                      if k in self.annotations and b != a)
        params = {"source": "notebook", "labelled": int(hit.sum()), "changed": changed,
                  "skipped": self.skipped, "labels": list(self.labels)}
        stored = save_version(project, name, df, transform="label", params=params,
                              parent=base.version)
        self.message = (f"Saved {params['labelled']} label(s) as {name} v{stored.version} "
                        f"({changed} changed).")
        return stored


def _key(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd

    try:
        return bool(pd.isna(value))  # NaN, NaT, pd.NA
    except (TypeError, ValueError):  # a list or array: not a missing scalar
        return False


def _check_items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for n, item in enumerate(items):
        if "id" not in item or "input" not in item:
            raise ValueError(f"Item {n} has no 'id' or no 'input': each item is a dict with "
                             "'id', 'input' and optionally 'label'.")
        key = _key(item["id"])
        if key in seen:
            raise ValueError(f"The item id {item['id']!r} appears more than once; ids must be "
                             "unique.")
        seen.add(key)
        label = item.get("label")
        checked.append({"id": item["id"], "input": str(item["input"]),
                        "label": None if _blank(label) else str(label)})
    return checked
