"""The marimo notebooks' shared cell helpers (widgets/notebook.py), driven without a browser."""

import pytest

from workbench.errors import WorkbenchError


def test_caught_turns_a_workbench_error_into_its_callout():
    import widgets.notebook as nb

    with nb.caught("warn") as problem:
        raise WorkbenchError("The split is missing.", "Run phase 2 first.")
    assert problem and isinstance(problem.error, WorkbenchError)
    shown = problem.view.text
    assert "The split is missing." in shown and "Run phase 2 first." in shown
    assert "warn" in shown


def test_caught_lets_a_clean_block_through_and_bugs_out():
    import widgets.notebook as nb

    with nb.caught() as problem:
        value = 1
    assert not problem and problem.view is None and value == 1
    problem.stop()  # nothing failed: the cell goes on
    with pytest.raises(ZeroDivisionError), nb.caught():
        1 / 0  # a bug is not a user's error: its traceback is what to report
