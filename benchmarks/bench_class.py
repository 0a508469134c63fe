"""The instructor's view (``workbench class DIR``) on a class of twenty students' projects:
seconds to read them all and to write the HTML summary. Target: ≤ 5 s for twenty.

    .venv/bin/python benchmarks/bench_class.py [--students 20] [--rounds 3]

Each student folder is a copy of one project that went through phases 1-4 and 6-8 the way the
exercises' solutions do (sample card, split data, runs on a fake model, a served deployment
with traffic and feedback, ~20 exercise checks); half of them get more runs on top. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path


def build_student(folder: Path) -> None:
    import workbench
    from workbench import exercises as ex
    from workbench import sample
    from workbench.data import clean, drop_empty, drop_exact_duplicates, split
    from workbench.exercises.solutions import SOLUTIONS, Models

    project = workbench.init_project(folder)
    sample.fill_sample_card(project)
    sample.import_sample_data(project)
    clean(project, sample.SAMPLE_DATASET, [drop_empty(), drop_exact_duplicates()])
    split(project, sample.SAMPLE_DATASET, near_duplicate_threshold=None)
    sample.save_sample_prompt(project)
    models = Models.scripted(project)
    for exercise_id in ("01.1", "01.2", "02.2", "03.1", "04.1", "04.2", "06.2", "08.2"):
        SOLUTIONS[exercise_id](project, models)
    for e in ex.exercises():
        ex.check(project, e.id)
    project.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from workbench.classview import read_class
    from workbench.project import forget_open_projects
    from workbench.runs import start_run

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        model = Path(tmp) / "model-student"
        build_student(model)
        forget_open_projects()
        room = Path(tmp) / "class"
        for i in range(args.students):
            shutil.copytree(model, room / f"student-{i:02d}")
        for i in range(0, args.students, 2):  # half the class went further
            import workbench

            p = workbench.open_project(room / f"student-{i:02d}", activate=False)
            start_run(p, "triage", dataset="support", model="fake/echo", limit=20,
                      progress=False)
            p.close()
        forget_open_projects()
        size = sum(f.stat().st_size for f in room.rglob("*") if f.is_file()) / 1e6
        print(f"class of {args.students} built in {time.perf_counter() - started:.1f} s "
              f"({size:.1f} MB on disk)")
        reads, writes = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            view = read_class(room)
            t1 = time.perf_counter()
            view.write_html(Path(tmp) / "summary.html")
            t2 = time.perf_counter()
            reads.append(t1 - t0)
            writes.append(t2 - t1)
        states = view.students["state"].value_counts().to_dict()
        print(f"read {len(view.students)} projects: median {statistics.median(reads):.2f} s "
              f"(first {reads[0]:.2f} s, imports included); states {states}")
        print(f"HTML summary written: median {statistics.median(writes):.2f} s, "
              f"{(Path(tmp) / 'summary.html').stat().st_size / 1e6:.1f} MB")
        total = reads[0] + writes[0]
        print(f"workbench class, first call: {total:.2f} s for {args.students} projects "
              f"(target <= 5 s)")


if __name__ == "__main__":
    main()
