"""The comparison grid and the prompt diff are laid out readably in JupyterLab (and marimo).

Rendering is not enough: a beginner saw the grid squeezed and clipped and the diff broken. These
tests run the widgets in a real JupyterLab, measure the page (cell widths, the grid's own
horizontal scroll, that nothing spills past the notebook, how inserted and deleted text look)
and save screenshots under the test's ``tmp_path`` to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

APPS = Path(__file__).resolve().parent / "apps"

MIN_CELL_PX = 120  # no grid column narrower: a label or a short answer stays readable
MAX_ANSWER_LINES = 4  # the longest answer (95 characters) wraps, but into a few lines only

# Six versions with long inputs and answers: wider than any notebook, so the grid must scroll.
# The same code runs in the JupyterLab kernel and in the marimo app (apps/grid_wide_app.py).
WIDE_GRID = (APPS / "grid_wide.py").read_text()

# Two versions with markup-like text and a line long enough to wrap.
DIFF_PROMPTS = (APPS / "diff_prompts.py").read_text()

# Geometry of the grid, read in the page (client pixels).
GRID_GEOMETRY = """(root) => {
    const scroll = root.querySelector('.wb-grid-scroll');
    const table = root.querySelector('.wb-grid-table');
    const cells = [...root.querySelectorAll('.wb-grid-table th, .wb-grid-table td')];
    const rect = (node) => node.getBoundingClientRect();
    // The nearest ancestor outside the widget that clips (what the person actually sees).
    let clip = root.parentElement;
    while (clip && clip !== document.body) {
        const style = getComputedStyle(clip);
        if (style.overflowX !== 'visible' && clip.clientWidth > 0) break;
        clip = clip.parentElement;
    }
    const overflowX = getComputedStyle(scroll).overflowX;
    const before = scroll.scrollLeft;
    scroll.scrollLeft = scroll.scrollWidth;
    const lastHeader = [...root.querySelectorAll('thead th')].at(-1);
    const lastRight = rect(lastHeader).right;
    const scrolledTo = scroll.scrollLeft;
    scroll.scrollLeft = before;
    const longest = [...root.querySelectorAll('.wb-grid-out')]
        .reduce((a, b) => (b.textContent.length > a.textContent.length ? b : a));
    return {
        scrollRight: rect(scroll).right, scrollWidth: scroll.scrollWidth,
        clientWidth: scroll.clientWidth, overflowX, tableWidth: rect(table).width,
        clipRight: clip ? rect(clip).right : window.innerWidth,
        clipName: clip ? clip.className : 'window',
        viewport: window.innerWidth,
        narrowest: Math.min(...cells.map((c) => rect(c).width)),
        widest: Math.max(...cells.map((c) => rect(c).width)),
        lastHeaderRight: lastRight, scrolledTo,
        visibleRight: rect(scroll).left + scroll.clientWidth,
        longestLines: Math.round(rect(longest).height
            / parseFloat(getComputedStyle(longest).lineHeight)),
    };
}"""

DIFF_GEOMETRY = """(root) => {
    const visible = (node) => getComputedStyle(node).display !== 'none';
    const bg = (node) => getComputedStyle(node).backgroundColor;
    const look = (node) => node && {
        background: bg(node), decoration: getComputedStyle(node).textDecorationLine,
        color: getComputedStyle(node).color, text: node.textContent};
    const added = root.querySelector('.wb-diff-add, .diff_add, ins');
    const removed = root.querySelector('.wb-diff-del, .diff_sub, del');
    const texts = [...root.querySelectorAll('td')].filter(visible)
        .filter((td) => td.textContent.length > 40);
    let clip = root.parentElement;
    while (clip && clip !== document.body) {
        if (getComputedStyle(clip).overflowX !== 'visible' && clip.clientWidth > 0) break;
        clip = clip.parentElement;
    }
    // Each side's changed text sits under its own header (the second header is the new text).
    const headers = [...root.querySelectorAll('thead th')].filter(visible)
        .filter((th) => th.textContent.trim());
    const under = (node, th) => {
        const cell = node.closest('td').getBoundingClientRect();
        const head = th.getBoundingClientRect();
        return cell.left >= head.left - 1 && cell.right <= head.right + 1;
    };
    return {
        aligned: headers.length === 2 && !!added && !!removed
            && under(removed, headers[0]) && under(added, headers[1]),
        headers: headers.map((th) => th.textContent.trim()),
        textAlign: [...new Set(texts.map((td) => getComputedStyle(td).textAlign))],
        text: root.innerText, added: look(added), removed: look(removed),
        plain: bg(root),
        narrowestText: Math.min(...texts.map((td) => td.getBoundingClientRect().width)),
        right: root.getBoundingClientRect().right, scrollWidth: root.scrollWidth,
        clientWidth: root.clientWidth,
        clipRight: clip ? clip.getBoundingClientRect().right : window.innerWidth,
    };
}"""


def _check_grid(geometry: dict) -> None:
    g = geometry
    # The widget scrolls itself: it stays inside what the notebook shows, the table inside it
    # is wider, and scrolling reaches the last column.
    assert g["overflowX"] in ("auto", "scroll"), g
    assert g["scrollRight"] <= g["clipRight"] + 1, f"the grid spills past {g['clipName']}: {g}"
    assert g["scrollWidth"] > g["clientWidth"], f"six wide columns should scroll: {g}"
    assert g["scrolledTo"] > 0 and g["lastHeaderRight"] <= g["visibleRight"] + 1, g
    # Columns are readable: none squeezed, none a whole screen wide; long text wraps.
    assert g["narrowest"] >= MIN_CELL_PX, f"a column is squeezed to {g['narrowest']:.0f}px: {g}"
    assert g["widest"] <= 480, g
    assert 2 <= g["longestLines"] <= MAX_ANSWER_LINES, f"{g['longestLines']} lines: {g}"


def _check_diff(g: dict) -> None:
    text = g["text"]
    for raw in ("<span", "<td", "<del", "<ins", "</span", "&lt;", "&amp;", "&nbsp;", "class="):
        assert raw not in text, f"raw HTML shown as text ({raw!r}): {text[:400]}"
    assert "<ACME> & co" in text and "<i>{{ input }}</i>" in text, text[:600]
    assert g["added"] and g["removed"], g
    assert g["aligned"], f"old and new text are not under their headers {g['headers']}: {g}"
    assert g["textAlign"] in (["left"], ["start"]), g
    assert g["narrowestText"] >= 200, f"diff text squeezed to {g['narrowestText']:.0f}px: {g}"
    assert "ACME" in g["added"]["text"] or "Which team" in g["added"]["text"], g
    added, removed = g["added"], g["removed"]
    # Inserted and deleted text look different from each other and from unchanged text, by
    # colour and by a mark that survives without colour (underline / strike-through).
    assert added["background"] != removed["background"], g
    assert "rgba(0, 0, 0, 0)" not in (added["background"], removed["background"]), g
    assert "line-through" in removed["decoration"], g
    assert g["right"] <= g["clipRight"] + 1, g


def _run_in_lab(page, jupyter_lab, name: str, *cells: str) -> None:
    jupyter_lab.write_notebook(name, *cells)
    jupyter_lab.open_notebook(page, name)
    jupyter_lab.run_all_cells(page)


def _shoot(page, tmp_path: Path, name: str, widget) -> None:
    """Screenshots to look at: the page and the widget alone."""
    page.screenshot(path=str(tmp_path / f"{name}-page.png"))
    widget.screenshot(path=str(tmp_path / f"{name}.png"))
    print(f"\nscreenshots: {tmp_path}/{name}*.png")


def test_grid_scrolls_inside_jupyterlab_with_readable_columns(page, jupyter_lab, tmp_path):
    _run_in_lab(page, jupyter_lab, "grid_layout.ipynb", WIDE_GRID + "\nwide_grid")
    grid = page.locator(".wb-grid")
    grid.locator("tbody tr").nth(3).wait_for(timeout=60_000)
    _shoot(page, tmp_path, "jupyterlab-grid", grid)
    geometry = grid.evaluate(GRID_GEOMETRY)
    print("grid:", geometry)
    _check_grid(geometry)
    # A small window (a laptop with the file browser open): still scrolls, still not clipped.
    page.set_viewport_size({"width": 900, "height": 800})
    page.wait_for_timeout(300)  # Lab lays out again on resize
    _shoot(page, tmp_path, "jupyterlab-grid-narrow", grid)
    geometry = grid.evaluate(GRID_GEOMETRY)
    print("grid, narrow window:", geometry)
    _check_grid(geometry)
    assert not [p for p in page.problems if "page error" in p], page.problems


def test_prompt_diff_reads_as_a_diff_in_jupyterlab(page, jupyter_lab, tmp_path):
    _run_in_lab(page, jupyter_lab, "diff_layout.ipynb",
                DIFF_PROMPTS + "\nprompt_diff('diff-project')")
    diff = page.locator(".wb-prompt-diff")
    diff.locator("table").wait_for(timeout=60_000)
    _shoot(page, tmp_path, "jupyterlab-diff", diff)
    geometry = diff.evaluate(DIFF_GEOMETRY)
    print("diff:", {k: v for k, v in geometry.items() if k != "text"})
    _check_diff(geometry)


def test_prompt_diff_survives_a_saved_untrusted_notebook(page, jupyter_lab, tmp_path):
    """A notebook saved with the diff's output and opened again is untrusted: JupyterLab
    sanitises its HTML (no <style>, no ids). The diff must read the same."""
    import nbformat

    namespace: dict = {}
    exec(DIFF_PROMPTS, namespace)  # noqa: S102 - the test's own data file
    html = namespace["prompt_diff"](tmp_path / "saved-project").html
    path = jupyter_lab.write_notebook("diff_saved.ipynb", "prompt_diff('diff-project')")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output(
        "execute_result", data={"text/html": html, "text/plain": "PromptDiff(...)"},
        execution_count=1)]
    nbformat.write(nb, path)  # no signature: Lab shows it untrusted
    jupyter_lab.open_notebook(page, "diff_saved.ipynb")
    diff = page.locator(".wb-prompt-diff")
    diff.locator("table").wait_for(timeout=60_000)
    _shoot(page, tmp_path, "jupyterlab-diff-untrusted", diff)
    geometry = diff.evaluate(DIFF_GEOMETRY)
    print("diff (untrusted):", {k: v for k, v in geometry.items() if k != "text"})
    _check_diff(geometry)


def test_grid_and_diff_layout_in_marimo(page, marimo_app, tmp_path):
    page.goto(marimo_app(APPS / "grid_wide_app.py"))
    grid = page.locator(".wb-grid")
    grid.locator("tbody tr").nth(3).wait_for(timeout=60_000)
    diff = page.locator(".wb-prompt-diff")
    diff.locator("table").wait_for(timeout=60_000)
    _shoot(page, tmp_path, "marimo-grid", grid)
    _shoot(page, tmp_path, "marimo-diff", diff)
    geometry = grid.evaluate(GRID_GEOMETRY)
    print("grid:", geometry)
    _check_grid(geometry)
    _check_diff(diff.evaluate(DIFF_GEOMETRY))
    assert not [p for p in page.problems if "page error" in p], page.problems
