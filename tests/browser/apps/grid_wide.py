"""Test data shared by the layout tests (exec'd in a JupyterLab kernel and in a marimo app)."""

import pandas as pd

from widgets import ComparisonGrid
from workbench.prompt_grid import grid_from_frames

LABELS = ["billing", "technical", "account"]


def wide_run(k):
    rows = []
    for i in range(4):
        expected = LABELS[i % 3]
        output = expected if (i + k) % 3 else "I think this is about " + ", ".join(LABELS) * 3
        rows.append({"item_id": f"T{i}", "expected": expected, "output": output,
                     "input": f"message {i}: my invoice was charged twice and the app logs me "
                              "out whenever I open the billing page on my phone, please help",
                     "parsed": output, "parse_ok": True, "error": None,
                     "scores": {"normalized_match": {"value": float(output == expected),
                                                     "passed": output == expected}}})
    return pd.DataFrame(rows)


wide_grid = ComparisonGrid(grid=grid_from_frames(
    {f"triage v{k} (few-shot, step by step)": wide_run(k) for k in range(1, 7)}))
