"""How long a workshop waits to start at any phase: ``workbench init PATH --sample --at N`` for
each N, as a whole process timed from outside (the interpreter's start and imports included,
as a student sees it) and the restore alone in-process; then the notebooks' fill button on a
fresh sample project for phase 9 (everything before it), restored from the checkpoints, against
computing the same work (``--compute``: a minute or more with the bundled model).

    .venv/bin/python benchmarks/bench_checkpoints.py [--rounds 3] [--compute]

Also prints the shipped checkpoints' size. Prints figures; asserts nothing. The target is
≤ 10 s for any N on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workbench


def _cli_seconds(folder: Path, at: int) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("WORKBENCH_PROJECT", None)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "workbench.cli", "init", str(folder), "--sample",
                    "--at", str(at)], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compute", action="store_true",
                        help="also time the fill computed without checkpoints (slow)")
    args = parser.parse_args()

    import workbench
    from workbench import checkpoints, sample
    from workbench.checkpoints import restore
    from workbench.project import forget_open_projects

    source = checkpoints.checkpoints_dir()
    size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    print(f"shipped checkpoints: {source} ({size / 1e6:.2f} MB, "
          f"{sum(1 for p in source.rglob('*') if p.is_file())} files)")
    print(f"{'--at':>4}  {'workbench init (s)':>18}  {'restore alone (s)':>17}  rows")
    with tempfile.TemporaryDirectory() as tmp:
        worst = 0.0
        for at in range(1, 10):
            cli = [_cli_seconds(Path(tmp) / f"cli-{at}-{r}", at) for r in range(args.rounds)]
            alone, rows = [], 0
            for r in range(args.rounds):
                folder = Path(tmp) / f"restore-{at}-{r}"
                folder.mkdir()
                started = time.perf_counter()
                done = restore(folder, at)
                alone.append(time.perf_counter() - started)
                rows = sum(done.rows.values())
            worst = max(worst, max(cli))
            print(f"{at:>4}  {statistics.median(cli):>18.2f}  {statistics.median(alone):>17.3f}"
                  f"  {rows:,}")
        print(f"slowest init --at N: {worst:.2f} s (target ≤ 10 s)")

        project = workbench.init_project(Path(tmp) / "fill", sample=True)
        started = time.perf_counter()
        filled = sample.fill_prerequisites(project, 9)
        print(f"fill button for phase 9 on a fresh sample project, from checkpoints: "
              f"{time.perf_counter() - started:.2f} s ({len(filled)} fills)")
        project.close()
        forget_open_projects()
        if args.compute:
            project = workbench.init_project(Path(tmp) / "computed", sample=True)
            original = sample._fill_from_checkpoint
            sample._fill_from_checkpoint = lambda *a, **k: None
            try:
                started = time.perf_counter()
                sample.fill_prerequisites(project, 9)
                print(f"the same fill computed (no checkpoints): "
                      f"{time.perf_counter() - started:.1f} s")
            finally:
                sample._fill_from_checkpoint = original


if __name__ == "__main__":
    main()
