"""The trace viewer's kernel (workbench.traces) and widget (widgets.TraceViewer), on real spans:
a served deployment answering over HTTP, model calls made through the gateway, and spans the
service writes for a canary arm. No browser: the widget is driven through its traits."""

from __future__ import annotations

import random
import time

import pytest
from served_traces import LONG, serve_traffic

from workbench import traces
from workbench.monitor_aggregates import user_hash
from workbench.tracing import Span, write_span


@pytest.fixture
def served(project):
    return project, serve_traffic(project)


def _all(project, **filters):
    return traces.list_traces(project, traces.TraceFilter(**filters), limit=500).rows


def test_lists_each_trace_once_newest_first_with_its_filters(served):
    project, codes = served
    assert sorted(set(codes)) == [200, 502]
    rows = _all(project)
    assert [r["start"] for r in rows] == sorted((r["start"] for r in rows), reverse=True)
    assert len(rows) == 11 and len({r["trace_id"] for r in rows}) == 11
    requests = _all(project, kind="serve.request")
    assert len(requests) == 10
    assert {(r["label"], r["model"], r["prompt"], r["arm"]) for r in requests} == {
        ("POST /v1/predict", "fake/echo:fail=500,fail_rate=0.5,seed=3", "triage v1", "live")}
    # status: the requests that failed (502) and only those; each holds its failed call
    failed = _all(project, kind="serve.request", status="error")
    assert len(failed) == codes.count(502)
    assert all(r["http_status"] == 502 and r["errors"] >= 2 for r in failed)
    assert len(_all(project, status="ok")) == 11 - codes.count(502)
    # the run's call: its own trace, its model and prompt version from the run's tags
    (call,) = _all(project, kind="llm.call")
    assert (call["label"], call["model"], call["prompt"], call["run_id"], call["spans"]) == (
        "chat fake/echo", "fake/echo", "triage v2", "run-1", 1)
    assert _all(project, model="fake/echo") == [call]
    assert _all(project, prompt="triage", prompt_version="v2") == [call]
    assert len(_all(project, prompt="triage", prompt_version=1)) == 10
    assert _all(project, prompt="other") == []
    # end users: by the id the client sent (stored only hashed) or by the hash
    mine = _all(project, user="user-1")
    assert len(mine) == 3 and {r["user"] for r in mine} == {user_hash(project, "user-1")}
    assert _all(project, user=user_hash(project, "user-1")) == mine
    # time window
    assert _all(project, since=time.time() + 60) == []
    assert len(_all(project, until=time.time() + 60)) == 11
    with pytest.raises(traces.TraceError, match="not a status"):
        _all(project, status="broken")
    with pytest.raises(traces.TraceError, match="not a prompt version"):
        _all(project, prompt_version="latest")


def test_pages_continue_where_the_last_ended(served):
    project, _ = served
    everything = [r["trace_id"] for r in _all(project)]
    seen, after, pages = [], None, 0
    while True:
        page = traces.list_traces(project, limit=3, after=after)
        seen += [r["trace_id"] for r in page.rows]
        pages += 1
        if not page.has_more:
            break
        after = page.next
    assert seen == everything and pages == 4
    with pytest.raises(traces.TraceError, match="1 to 500"):
        traces.list_traces(project, limit=0)


def test_arms_filter_the_service_requests_they_answered(project):
    now = time.time()
    for i, arm in enumerate(["live", "canary", "canary", "shadow"]):
        trace_id = f"{random.getrandbits(128):032x}"
        write_span(project, Span("serve.request", trace_id, f"{random.getrandbits(64):016x}",
                                 None, now - i, now - i + 0.1, "ok", None,
                                 {"http.route": "/v1/predict", "workbench.arm": arm,
                                  "workbench.model": "fake/echo"}))
    assert len(_all(project, arm="canary")) == 2
    assert [r["arm"] for r in _all(project, arm="shadow")] == ["shadow"]


def test_a_request_opens_as_a_tree_with_its_filter_checks_and_model_calls(served):
    project, _ = served
    ok = _all(project, kind="serve.request", status="ok")[0]
    tree = traces.trace_tree(project, ok["trace_id"])
    names = [(n.depth, n.label) for n in tree.nodes]
    assert names[0] == (0, "POST /v1/predict")
    # request -> filter (input) -> render -> model call(s) -> parse -> filter (output)
    assert names[1] == (1, "content filter (input)") and names[-1] == (1, "content filter (output)")
    # (the echo never parses as a label, so a repair turn follows, which may fail: 500)
    assert names[2] == (1, "render the prompt") and names[3][1].startswith("chat ")
    assert names[4] == (1, "parse the reply (failed)")
    assert {label for _, label in names[3:-1]} <= {
        "chat fake/echo:fail=500,fail_rate=0.5,seed=3", "parse the reply",
        "parse the reply (failed)"}
    root = tree.nodes[0]
    assert all(n.parent_id == root.span_id for n in tree.nodes[1:])
    assert [n.offset_ms for n in tree.nodes] == sorted(n.offset_ms for n in tree.nodes)
    assert root.offset_ms == 0 and root.duration_ms == pytest.approx(tree.duration_ms, abs=0.01)
    assert all(n.offset_ms + n.duration_ms <= tree.duration_ms + 0.01 for n in tree.nodes)
    fields = {f["key"]: f for f in traces.node_fields(root)}
    assert fields["workbench.request"]["section"] == "input"
    assert fields["workbench.output"]["section"] == "output"
    assert fields["workbench.prompt_version"]["section"] == "detail"
    call = traces.node_fields(next(n for n in tree.nodes if n.name == "llm.call"))
    messages = next(f for f in call if f["key"] == "gen_ai.input.messages")
    assert messages["text"].startswith("system: You are a support triage assistant")
    assert "\n\nuser: Classify this customer message." in messages["text"]

    failed = _all(project, kind="serve.request", status="error")[0]
    broken = [n for n in traces.trace_tree(project, failed["trace_id"]).nodes
              if n.name == "llm.call"]
    assert broken and all(n.status == "error" and "500" in n.error for n in broken)
    with pytest.raises(traces.TraceError, match="no trace 'nope'"):
        traces.trace_tree(project, "nope")


def test_long_values_are_cut_at_a_word_and_counted():
    text = "word " * 100
    shown, hidden = traces.truncate(text, 42)
    assert shown == "word " * 7 + "word" and hidden == len(text) - len(shown)
    assert traces.truncate("x" * 50, 42) == ("x" * 42, 8)  # no space near the end: cut there
    assert traces.truncate("short", 42) == ("short", 0)
    assert traces.split_prompt("triage v3") == ("triage", 3)
    assert traces.split_prompt("my v2 prompt") == ("my v2 prompt", None)


def test_the_widget_filters_pages_opens_a_trace_and_expands_a_long_value(served):
    from widgets import TraceViewer

    project, codes = served
    w = TraceViewer(project, page_size=4)
    assert w.error == "" and w.project_path == str(project.path)
    assert w.choices["prompt"] == ["triage v1"] and "serve.request" in w.choices["kind"]
    assert set(w.choices["model"]) == {"fake/echo", "fake/echo:fail=500,fail_rate=0.5,seed=3"}
    assert (len(w.rows), w.has_more, w.page) == (4, True, 0)
    first_page = [r["trace_id"] for r in w.rows]
    w.page = 1
    w.page = 2
    assert (len(w.rows), w.has_more) == (3, False)
    w.page = 9  # past the pages reached (a stale front end): the last one
    assert w.page == 2 and len(w.rows) == 3

    w.status = "error"  # a filter starts again at the first page
    assert w.page == 0 and len(w.rows) == min(4, codes.count(502))
    assert {r["status"] for r in w.rows} == {"error"}
    w.status, w.kind = "", "llm.call"
    assert [r["run_id"] for r in w.rows] == ["run-1"]
    w.kind, w.user = "serve.request", "user-1"
    long_request = w.rows[0]  # user-1 sent the last (and long) message
    assert len(w.rows) == 3
    w.kind, w.user = "", ""
    assert [r["trace_id"] for r in w.rows] == first_page

    w.selected = long_request["trace_id"]
    assert w.tree[0]["label"] == "POST /v1/predict" and w.tree[0]["left_pct"] == 0
    assert all(0 <= n["left_pct"] and n["left_pct"] + n["width_pct"] <= 100.001 for n in w.tree)
    assert w.tree_info["spans"] == len(w.tree) and w.selected_span == w.tree[0]["span_id"]
    request = next(f for f in w.span_detail["fields"] if f["key"] == "workbench.request")
    assert request["hidden"] > 0 and len(request["text"]) <= traces.TRUNCATE_AT
    w.expanded = [request["id"]]
    request = next(f for f in w.span_detail["fields"] if f["key"] == "workbench.request")
    assert request["hidden"] == 0 and LONG.strip() in request["text"]

    w.selected_span = w.tree[1]["span_id"]
    assert w.span_detail["label"] == "content filter (input)"
    w.window = "15m"
    assert len(w.rows) == 4
    w.window = "forever"
    assert "not a time window" in w.error


def test_storage_problems_are_one_sentence_in_the_widget(project, tmp_path):
    from widgets import TraceViewer

    missing = TraceViewer(tmp_path / "nowhere")
    assert missing.rows == [] and "nowhere" in missing.error

    w = TraceViewer(project)
    assert w.error == ""
    project.store.db.execute("DROP TABLE spans")
    w.refresh()
    assert w.rows == []
    assert w.error.startswith("The traces could not be read: the project's database")
    assert "lacks a table" in w.error and "Restore workbench.db" in w.error
    assert w.error.endswith("(SQLite: OperationalError: no such table: spans)")
    w.selected = "0" * 32
    assert "no such table" in w.error and w.tree == []


def test_the_frontend_draws_every_synced_trait_and_sends_only_known_ones():
    import re
    from pathlib import Path

    from widgets import TraceViewer
    from widgets._base import front_end

    esm = (Path(traces.__file__).parents[1] / "widgets/static/traces.js").read_text()
    assert str(TraceViewer._esm) == front_end("traces.js") and "export default" in esm
    drawn = set(re.findall(r'"(\w+)"', re.search(r"const TRAITS = \[(.*?)\];", esm, re.S)[1]))
    synced = set(TraceViewer.class_trait_names(sync=True)) - {
        "_esm", "_css", "_anywidget_id", "_dom_classes", "_model_module", "_model_module_version",
        "_model_name", "_view_count", "_view_module", "_view_module_version", "_view_name",
        "comm", "keys", "layout", "tabbable", "tooltip", "log"}
    # Only the front end changes these: nothing to draw when they change.
    assert drawn | {"refresh_count", "page_size"} == synced
    dropdowns = re.search(r"const FILTERS = \[(.*?)\];", esm, re.S)[1]
    sent = set(re.findall(r'send\("(\w+)"', esm)) | set(re.findall(r'\["(\w+)", "', dropdowns))
    assert {"kind", "status", "model", "prompt", "arm"} <= sent <= synced


def test_an_attribute_filter_reads_a_bounded_stretch_per_page_and_searches_on(served,
                                                                              monkeypatch):
    project, _ = served
    everyone = [r["trace_id"] for r in _all(project, user="user-2")]
    assert len(everyone) == 2
    monkeypatch.setattr(traces, "SCAN_LIMIT", 3)  # root spans read per page, at most
    found, after, pages = [], None, 0
    while True:
        page = traces.list_traces(project, traces.TraceFilter(user="user-2"), after=after)
        found += [r["trace_id"] for r in page.rows]
        pages += 1
        if page.next is None:
            break
        assert page.searched_to == page.next.start_time  # where the next page searches from
        after = page.next
    assert found == everyone and pages == 4  # 11 root spans, 3 a page
    # Filters on the span's own columns use the time index: no bound, no stretch.
    assert traces.list_traces(project, traces.TraceFilter(status="ok")).searched_to is None
