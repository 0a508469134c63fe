"""Write datasets/checkpoints/: what each phase of the learning path leaves in the sample project.

``workbench init PATH --sample --at N`` and the notebooks' "fill what is missing" button restore
these instead of recomputing the phases on every laptop of a workshop. Run this from the
repository root whenever the bundled sample (support_messages.csv, the sample card, the judge
calibration set), the recipe (workbench/checkpoints/recipe.py) or the database schema changes:

    .venv/bin/python datasets/tools/make_checkpoints.py

It runs the recipe with the bundled model on a fresh sample project (about a minute and a half
on two cores; the first run also converts the model's weights once), then checks the result
restores at every phase. tests/test_checkpoints.py fails while the shipped checkpoints are stale
(another schema or sample), and its model-marked test builds them again and compares the two
canonically (ids, times and latencies differ between builds; everything else must not).

``--check`` builds into a temporary folder and only compares: exit status 1 when the shipped
checkpoints differ from what this checkout makes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # this checkout's workbench, not an installed one

OUT = ROOT / "datasets" / "checkpoints"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write (default {OUT})")
    parser.add_argument("--model", help="the model the recipe runs (default: the bundled one)")
    parser.add_argument("--check", action="store_true",
                        help="build into a temporary folder and compare with --out")
    args = parser.parse_args(argv)

    from workbench.checkpoints.build import build
    from workbench.checkpoints.canonical import canonical, differences

    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp) / "checkpoints", model=args.model)
            found = differences(canonical(args.out), canonical(Path(tmp) / "checkpoints"))
        for line in found:
            print("differs:", line)
        print("the shipped checkpoints are " + ("stale" if found else "what this checkout makes"))
        return 1 if found else 0

    manifest = build(args.out, model=args.model)
    size = sum(s["bytes"] for s in manifest["stages"])
    print(f"wrote {args.out} ({size / 1e6:.2f} MB) in {manifest['built']['seconds']} s")
    _check_restores(args.out)
    return 0


def _check_restores(source: Path) -> None:
    """Every phase restores from what was written (a bad build is caught here, not in class)."""
    from workbench.checkpoints import restore
    from workbench.project import forget_open_projects, open_project

    with tempfile.TemporaryDirectory() as tmp:
        for at in range(1, 10):
            folder = Path(tmp) / f"at-{at}"
            folder.mkdir()
            started = time.perf_counter()
            restored = restore(folder, at, source=source)
            project = open_project(folder, activate=False)
            project.status()
            project.close()
            forget_open_projects()
            print(f"  --at {at}: {sum(restored.rows.values())} rows, {restored.files} files, "
                  f"{time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
