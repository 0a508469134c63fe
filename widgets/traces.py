"""The trace viewer (phase 8): the project's traces with filters; click one to see its tree.

All logic lives in ``workbench.traces`` (the same calls a script makes) and in this class:
it turns the filters into a ``TraceFilter``, pages through the traces, places each span of the
selected trace on a waterfall and cuts long values. ``static/traces.js`` only draws the traits
and reports clicks, choices and "show more" toggles.
"""

from __future__ import annotations

import os
import time
from typing import Any

import traitlets

import workbench
from widgets._base import (
    PROBLEMS,
    STATIC,
    ProjectWidget,
    front_end,
    jsonable,
    problem_message,
)
from workbench import traces

_FILTERS = ("kind", "status", "model", "prompt", "arm", "user", "window")


class TraceViewer(ProjectWidget):
    """The stored traces, newest first, a page at a time, filtered by kind (service requests or
    model calls), status, model, prompt version, deployment arm, end user and time window. Click
    a trace to see its spans as a tree with a timing bar each (the request, its content filter
    checks, its model calls), then a span to read its inputs, outputs and details; long values
    are cut, with a toggle to show them whole.

    ``project`` is an open ``workbench.Project``, a path, or ``None`` for ``WORKBENCH_PROJECT``.
    Filters can be set here too (``TraceViewer(p, status="error", window="7d")``). Problems
    (an unreadable project, a database error) land in ``error`` as one sentence."""

    _esm = front_end("traces.js")
    _css = STATIC / "traces.css"

    choices = traitlets.Dict().tag(sync=True)  # each filter's possible values
    kind = traitlets.Unicode("").tag(sync=True)  # "": every kind
    status = traitlets.Unicode("").tag(sync=True)
    model = traitlets.Unicode("").tag(sync=True)
    prompt = traitlets.Unicode("").tag(sync=True)  # "name vN", or a prompt's name
    arm = traitlets.Unicode("").tag(sync=True)
    user = traitlets.Unicode("").tag(sync=True)  # the id the client sent, or its hash
    window = traitlets.Unicode("24h").tag(sync=True)
    page_size = traitlets.Int(traces.PAGE_SIZE).tag(sync=True)
    page = traitlets.Int(0).tag(sync=True)  # 0-based; the front end's Newer/Older change it
    has_more = traitlets.Bool(False).tag(sync=True)
    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    query_ms = traitlets.Float(0.0).tag(sync=True)
    searched_to = traitlets.Unicode("").tag(sync=True)  # a filter's search stopped here (UTC)
    selected = traitlets.Unicode("").tag(sync=True)  # the trace clicked
    tree = traitlets.List(traitlets.Dict()).tag(sync=True)  # its spans, in tree order
    tree_info = traitlets.Dict().tag(sync=True)
    selected_span = traitlets.Unicode("").tag(sync=True)
    span_detail = traitlets.Dict().tag(sync=True)  # the selected span's inputs and outputs
    expanded = traitlets.List(traitlets.Unicode()).tag(sync=True)  # "span_id:key" shown whole
    refresh_count = traitlets.Int(0).tag(sync=True)  # the Refresh button bumps it
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(self, project: workbench.Project | str | os.PathLike | None = None, *,
                 now: float | None = None, **kwargs: Any):
        super().__init__(project, **kwargs)
        if self.window not in traces.WINDOWS:
            raise traces.TraceError(f"{self.window!r} is not a time window the viewer knows.",
                                    f"Use one of {', '.join(traces.WINDOWS)}.")
        self._now = now  # fixed "now" for tests; None: the clock at each query
        self._cursors: list[traces.Cursor | None] = [None]
        self._tree: traces.TraceTree | None = None
        self._quiet = False
        self.observe(self._on_filter, names=list(_FILTERS) + ["page_size"])
        self.observe(lambda _c: self._quiet or self._load(), names="page")
        self.observe(lambda c: self._open_trace(c["new"]), names="selected")
        self.observe(lambda _c: self._show_span(), names=["selected_span", "expanded"])
        self.observe(lambda _c: self.refresh(), names="refresh_count")
        self.refresh()

    # -- what the front end asks for ---------------------------------------------------------
    def refresh(self) -> None:
        """Read the choices and the first page again (new traces arrive all the time)."""
        try:
            self.choices = traces.filter_choices(self.open_project())
        except PROBLEMS as exc:
            self._fail(exc)
            return
        self._restart()
        if self.selected:
            self._open_trace(self.selected)

    def filters(self) -> traces.TraceFilter:
        """The filters as the kernel takes them."""
        name, version = traces.split_prompt(self.prompt)
        seconds = traces.WINDOWS.get(self.window)
        now = self._now if self._now is not None else time.time()
        return traces.TraceFilter(kind=self.kind or None, status=self.status or None,
                                  model=self.model or None, prompt=name, prompt_version=version,
                                  arm=self.arm or None, user=self.user.strip() or None,
                                  since=now - seconds if seconds else None)

    def _on_filter(self, change: dict[str, Any]) -> None:
        if change["name"] == "window" and change["new"] not in traces.WINDOWS:
            self.error = (f"{change['new']!r} is not a time window the viewer knows; use one "
                          f"of {', '.join(traces.WINDOWS)}.")
            return
        self._restart()

    def _restart(self) -> None:
        self._cursors = [None]
        if self.page == 0:
            self._load()
        else:
            self._quiet = True
            try:
                self.page = 0
            finally:
                self._quiet = False
            self._load()

    def _load(self) -> None:
        """Show page ``page`` (reached through the pages before it: each ends in a cursor)."""
        if self.project is None:
            return
        page = min(max(self.page, 0), len(self._cursors) - 1)
        try:
            found = traces.list_traces(self.project, self.filters(),
                                       limit=self.page_size, after=self._cursors[page])
        except PROBLEMS as exc:
            self._fail(exc, keep_choices=True)
            return
        del self._cursors[page + 1:]
        if found.next is not None:
            self._cursors.append(found.next)
        with self.hold_sync():
            if page != self.page:
                self._quiet = True
                try:
                    self.page = page
                finally:
                    self._quiet = False
            self.rows = [jsonable(r) for r in found.rows]
            self.has_more = found.has_more
            self.query_ms = round(found.seconds * 1000, 1)
            self.searched_to = (traces.time_text(found.searched_to)
                                if found.searched_to is not None else "")
            self.error = ""

    def _open_trace(self, trace_id: str) -> None:
        if not trace_id or self.project is None:
            self._tree = None
            with self.hold_sync():
                self.tree, self.tree_info, self.span_detail = [], {}, {}
            return
        try:
            tree = traces.trace_tree(self.project, trace_id)
        except PROBLEMS as exc:
            self._tree = None
            with self.hold_sync():
                self.tree, self.tree_info, self.span_detail = [], {}, {}
                self.error = _message(exc)
            return
        self._tree = tree
        total = tree.duration_ms or 1.0
        nodes = []
        for node in tree.nodes:
            left = 100 * node.offset_ms / total
            nodes.append(jsonable({
                "span_id": node.span_id, "parent_id": node.parent_id, "name": node.name,
                "label": node.label, "depth": node.depth, "offset_ms": node.offset_ms,
                "duration_ms": node.duration_ms, "status": node.status,
                "error": traces.clip(node.error or "", 300), "summary": traces.summary_of(node),
                "left_pct": round(min(left, 100.0), 3),
                "width_pct": round(min(max(100 * node.duration_ms / total, 0.0), 100 - left), 3),
            }))
        with self.hold_sync():
            self.tree = nodes
            self.tree_info = {"trace_id": tree.trace_id, "duration_ms": tree.duration_ms,
                              "time": traces.time_text(tree.start), "spans": len(tree.nodes),
                              "truncated": tree.truncated,
                              "errors": sum(n.status == "error" for n in tree.nodes)}
            self.error = ""
            first = tree.nodes[0].span_id
            if self.selected_span in {n.span_id for n in tree.nodes}:
                self._show_span()
            elif self.selected_span != first:
                self.selected_span = first  # the observer shows it
            else:
                self._show_span()

    def _show_span(self) -> None:
        tree = self._tree
        node = next((n for n in tree.nodes if n.span_id == self.selected_span),
                    None) if tree else None
        if node is None:
            self.span_detail = {}
            return
        self.span_detail = jsonable({
            "span_id": node.span_id, "label": node.label, "name": node.name,
            "status": node.status, "error": node.error or "",
            "time": traces.time_text(node.start), "duration_ms": node.duration_ms,
            "offset_ms": node.offset_ms,
            "fields": traces.node_fields(node, expanded=set(self.expanded))})

    # -- problems ------------------------------------------------------------------------------
    def _fail(self, exc: Exception, *, keep_choices: bool = False) -> None:
        with self.hold_sync():
            if not keep_choices:
                self.choices = {}
            self.rows = []
            self.has_more = False
            self.searched_to = ""
            self.error = _message(exc)


def _message(exc: Exception) -> str:
    return problem_message(exc, "The traces")
