"""How long `import workbench` takes in a fresh interpreter, and what it drags in.

    .venv/bin/python benchmarks/bench_import.py
"""

import statistics
import subprocess
import sys

PROBE = """
import time, sys
t = time.perf_counter()
import workbench, workbench.llm
dt = time.perf_counter() - t
heavy = [m for m in ("litellm", "torch", "transformers", "marimo", "anywidget", "ipywidgets",
                     "plotly", "pandas") if m in sys.modules]
print(dt, ",".join(heavy))
"""


def main(runs: int = 15) -> None:
    times, heavy = [], set()
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                             check=True).stdout.split()
        times.append(float(out[0]))
        if len(out) > 1:
            heavy.update(out[1].split(","))
    print(f"import workbench: median {statistics.median(times) * 1000:.1f} ms, "
          f"min {min(times) * 1000:.1f} ms over {runs} fresh interpreters (target <= 300 ms)")
    print(f"heavy modules loaded at import: {sorted(heavy) or 'none'}")


if __name__ == "__main__":
    main()
