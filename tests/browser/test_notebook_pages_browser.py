"""Every guided notebook as a beginner first sees it: served with ``marimo run`` on a sample
project that holds each phase's prerequisites, loaded in a real browser and left to finish.

A page fails when
- a spinner or progress bar stays longer than ``SPINNER_TIMEOUT_S`` (or the notebook is still
  running after ``READY_TIMEOUT_S``);
- its visible text (shadow DOM included: marimo draws tables and widgets there) shows Python
  internals instead of text for people: 16-digit floats, dict or list reprs, a
  ``mo.ui.dictionary`` drawn as JSON, pandas' index columns, a bare NaN/None, "1 rows",
  a traceback or marimo's "An internal error occurred";
- it links to (or names) a notebook file that does not exist;
- it draws a value as marimo's JSON tree (a ``mo.ui.dictionary`` shown as is);
- the browser reports a page error.

A full-page screenshot of each notebook is saved in the test's tmp_path for people to look at
(the path is printed; run pytest with ``-s`` to see it).

Timing: one prepared project is made once for the session (the sample filled up to phase 9,
about a minute: data, prompt, a demo deployment, simulated users) and copied for each
notebook, because a notebook may write to its project. Each notebook then takes 10-40 s to
serve and settle on a loaded two-core machine, so the nine together take about five minutes:
well inside CI's budget, so all of them run in CI rather than a sample.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest

from workbench.phases import notebooks_dir
from workbench.tour import guided_notebooks

pytestmark = [pytest.mark.browser, pytest.mark.model]

# A first load runs no model (steps that call one wait for a click), so nothing on it should
# spin for long. 120 s is generous on purpose: two shared cores running the server, Chromium
# and other tests can take tens of seconds to import torch or open a dataset; a step stuck
# behind a spinner for two minutes is the "only a spinner" experience the tests guard against.
SPINNER_TIMEOUT_S = 120
# The whole page, from load until no cell runs and nothing spins.
READY_TIMEOUT_S = 240
# Nothing running for this long (no marimo loading indicator, no spinner) counts as settled.
SETTLED_S = 3.0

NOTEBOOKS = guided_notebooks()

# (what it is, pattern) for text that is Python's, not a person's.
RAW_TEXT = [
    # 6+ significant digits after the point (0.9636363636363636, 21:30:54.716090202) or a
    # run of zeros (0.0000000000000000000); 0.0000155 is three significant digits: fine.
    ("a float with 7+ decimals", re.compile(r"\d\.(?:0*[1-9]\d{5,}|0{7,}(?!\d))")),
    ("a number in e-notation", re.compile(r"\b\d(?:\.\d+)?e[-+]\d\d\b")),
    ("a Python dict repr", re.compile(r"\{'[^'\n]{0,60}': ")),
    ("a Python list repr of strings", re.compile(r"\['[^'\n]{0,60}'(?:, '|\])")),
    ("a mo.ui.dictionary drawn as JSON", re.compile(r'"dictionary": \{')),
    ("a pandas index column", re.compile(r"\b(?:Index0|Unnamed: 0|level_0)\b")),
    ("a missing value shown raw", re.compile(r"(?<![\w<-])(?:NaN|nan|NaT|<NA>)(?![\w>-])")),
    ("a plural after 1", re.compile(
        r"(?<![\d.,])\b1 (?:alerts|items|rows|requests|runs|versions|errors|examples|cases|"
        r"labels|calls|tokens|answers|messages|changes|columns|steps|repeats|models|prompts|"
        r"datasets|adapters|deployments|traces|spans|seconds|minutes|hours|days|times|"
        r"records|corrections|decisions|metrics|classes|tests)\b")),
    ("a Python traceback", re.compile(r"Traceback \(most recent call last\)")),
    ("a cell that failed", re.compile(r"An internal error occurred")),
]
# A table cell or line holding only Python's "nothing".
BARE_NONE = re.compile(r"(?:^|\t)\s*(?:None|NaN|nan|NaT|<NA>)\s*(?=\t|$)", re.M)
NOTEBOOK_FILE = re.compile(r"\b\d\d_[A-Za-z0-9_]+\.(?:py|ipynb)\b")

# Everything a person sees, shadow roots included (marimo's tables and anywidgets live there).
_PAGE_TEXT_JS = """() => {
    const parts = [document.body.innerText];
    const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
            if (el.shadowRoot) {
                for (const child of el.shadowRoot.children) {
                    if (child.innerText) parts.push(child.innerText);
                }
                walk(el.shadowRoot);
            }
        }
    };
    walk(document);
    return parts.join('\\n');
}"""

_LINKS_JS = """() => {
    const hrefs = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'A' && el.getAttribute('href')) hrefs.push(el.getAttribute('href'));
            if (el.shadowRoot) walk(el.shadowRoot);
        }
    };
    walk(document);
    return hrefs;
}"""

# Is the app busy? marimo shows [data-testid=loading-indicator] while any cell runs; a
# mo.status.spinner or progress_bar is a <marimo-progress> element (in light or shadow DOM).
_STATE_JS = """() => {
    const spinners = [];
    const walk = (root) => {
        for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'MARIMO-PROGRESS' && el.getClientRects().length) {
                let title = '';
                try { title = JSON.parse(el.getAttribute('data-title') || '""') || ''; }
                catch (e) { title = el.getAttribute('data-title') || ''; }
                spinners.push(title || (el.innerText || '').trim().slice(0, 80) || 'spinner');
            }
            if (el.shadowRoot) walk(el.shadowRoot);
        }
    };
    walk(document);
    let jsonTrees = 0;
    const countTrees = (root) => {
        for (const el of root.querySelectorAll('*')) {
            if (el.tagName === 'MARIMO-JSON-OUTPUT' && el.getClientRects().length) jsonTrees++;
            if (el.shadowRoot) countTrees(el.shadowRoot);
        }
    };
    countTrees(document);
    return {
        jsonTrees: jsonTrees,
        running: !!document.querySelector('[data-testid="loading-indicator"]'),
        spinners: spinners,
        started: !!document.querySelector('h1'),
    };
}"""


@pytest.fixture(scope="session")
def prepared_project(tmp_path_factory) -> Path:
    """The sample project holding every phase's prerequisites (what ``fill_prerequisites``
    makes for phase 9 covers the earlier phases too)."""
    import workbench
    from workbench import sample
    from workbench.project import forget_open_projects

    project = workbench.init_project(tmp_path_factory.mktemp("pages") / "sample", sample=True,
                                     activate=False)
    sample.fill_prerequisites(project, 9)
    assert not sample.missing_prerequisites(project, 9)
    forget_open_projects()  # the servers open copies in their own processes
    return project.path


def wait_until_settled(page) -> float:
    """Seconds until the app ran every cell and nothing spins; fails on a spinner older than
    SPINNER_TIMEOUT_S or a page still busy after READY_TIMEOUT_S."""
    started = time.monotonic()
    first_seen: dict[str, float] = {}
    quiet_since = None
    while True:
        now = time.monotonic()
        state = page.evaluate(_STATE_JS)
        for title in state["spinners"]:
            first_seen.setdefault(title, now)
        first_seen = {t: s for t, s in first_seen.items() if t in state["spinners"]}
        stuck = [f"'{t}' for {now - s:.0f} s" for t, s in first_seen.items()
                 if now - s > SPINNER_TIMEOUT_S]
        assert not stuck, "spinning longer than SPINNER_TIMEOUT_S: " + "; ".join(stuck)
        busy = state["running"] or state["spinners"] or not state["started"]
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = now
        elif now - quiet_since >= SETTLED_S:
            return quiet_since - started
        assert now - started < READY_TIMEOUT_S, (
            f"still busy after {READY_TIMEOUT_S} s: running={state['running']}, "
            f"spinners={state['spinners']}")
        time.sleep(0.5)


def screenshot_whole_app(page, path: Path) -> None:
    """A screenshot of the whole notebook: marimo scrolls inside the page, so a full-page
    shot shows one screen; the window is made as tall as the tallest scroller first."""
    height = page.evaluate("""() => Math.max(document.documentElement.scrollHeight,
        ...[...document.querySelectorAll('*')].map(e => e.scrollHeight))""")
    page.set_viewport_size({"width": 1400, "height": max(1000, min(int(height) + 100, 30_000))})
    time.sleep(1)  # let the page lay out at the new size
    page.screenshot(path=str(path), full_page=True)


def raw_text_findings(text: str) -> list[str]:
    """Each piece of text that shows Python internals, with what it is and its context."""
    found = []

    def context(m: re.Match) -> str:
        return text[max(0, m.start() - 50):m.end() + 30].replace("\n", " ⏎ ").replace("\t", " | ")

    for what, pattern in RAW_TEXT:
        for m in pattern.finditer(text):
            found.append(f"{what}: …{context(m)}…")
    for m in BARE_NONE.finditer(text):
        found.append(f"a bare None/NaN cell: …{context(m)}…")
    return sorted(set(found))


def missing_notebooks(names: list[str]) -> list[str]:
    folder = notebooks_dir()
    there = {p.name for p in folder.glob("*.py")} | {p.name for p in
                                                      (folder / "jupyter").glob("*.ipynb")}
    return sorted({n for n in names if n not in there})


def test_the_checks_catch_what_they_should():
    """The patterns, on text seen in the notebooks before they were fixed, and on text that
    is fine."""
    bad = ["accuracy 0.8333333333333334", "Saved version 10: {'mode': 'zero-shot'}",
           "tags ['production', 'candidate']", '"dictionary": { 6 Items', "Index0\tlabel",
           "parent\tNaN\n", "cost\tNone\tlatency", "1 alerts fired", "1 rows", "x\tnan\n",
           "Traceback (most recent call last):"]
    for text in bad:
        assert raw_text_findings(text), text
    bad += ["0.0000000000000000000", "21:30:54.716090202", "p95_latency 9.06e-03 s"]
    fine = ["accuracy 0.833 (10 items)", "latency 0.0000155 s", "0.00000001", "1 alert", "11 rows", "0.1 items per second",
            "None of the items", "Nanami", "—", "2 alerts", "v1.1 rows", "1,000,001 rows"]
    for text in fine:
        assert not raw_text_findings(text), (text, raw_text_findings(text))
    assert missing_notebooks(["02_data.py", "06_evaluation.ipynb", "11_nothing.py"]) == [
        "11_nothing.py"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_notebook_page_is_for_people(notebook, page, marimo_app, prepared_project, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(prepared_project, project)
    page.goto(marimo_app(notebook, project=project))
    seconds = wait_until_settled(page)
    shot = tmp_path / f"{notebook.stem}.png"
    screenshot_whole_app(page, shot)
    print(f"\n{notebook.name}: settled in {seconds:.0f} s; screenshot: {shot}")

    text = page.evaluate(_PAGE_TEXT_JS)
    (tmp_path / f"{notebook.stem}.txt").write_text(text, encoding="utf-8")
    problems = [f"raw text — {f}" for f in raw_text_findings(text)]
    hrefs = page.evaluate(_LINKS_JS)
    linked = [m.group(0) for href in hrefs for m in NOTEBOOK_FILE.finditer(href)]
    problems += [f"a link to a missing notebook: {n}" for n in missing_notebooks(linked)]
    named = [m.group(0) for m in NOTEBOOK_FILE.finditer(text)]
    problems += [f"names a missing notebook: {n}" for n in missing_notebooks(named)]
    trees = page.evaluate(_STATE_JS)["jsonTrees"]
    if trees:  # e.g. a mo.ui.dictionary shown as is: '"dictionary": { 6 Items'
        problems.append(f"{trees} value(s) drawn as a JSON tree instead of for people")
    problems += [p for p in page.problems if "page error" in p]
    assert not problems, f"{notebook.name} (screenshot {shot}):\n  " + "\n  ".join(problems)
