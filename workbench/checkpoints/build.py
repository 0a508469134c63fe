"""Building the shipped checkpoints: the recipe run on a fresh sample project, one stage per
phase of the learning path (``datasets/tools/make_checkpoints.py`` calls ``build``)."""

from __future__ import annotations

import json
import platform
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workbench.bundled import PHASE1_TABLES, datasets_dir
from workbench.checkpoints import snapshot
from workbench.checkpoints.recipe import STEPS
from workbench.checkpoints.snapshot import FORMAT, MANIFEST  # noqa: F401  (build.MANIFEST)

# The bundled files the recipe reads: a change to one makes the shipped checkpoints stale.
INPUTS = ("support_messages.csv", "sample_project/workbench.toml", "judge_calibration.jsonl")


def stage_folder(phase: int) -> str:
    return f"stage-{phase}"


def input_digests() -> dict[str, str]:
    return {name: snapshot.file_digest(datasets_dir() / name) for name in INPUTS}


def _start_project(folder: Path):
    """The project ``--at 1`` restores: the sample card's name, nothing of phase 1."""
    from workbench.create import init_project

    project = init_project(folder, sample=True)

    def strip(card: dict[str, Any]) -> None:
        for table in PHASE1_TABLES:
            card.pop(table, None)

    project.update_card(strip)
    return project


def build(out: str | Path, *, model: str | None = None,
          log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the recipe on a fresh sample project with ``model`` (default: the bundled one) and
    write the checkpoints to ``out`` (replaced whole, atomically); returns the manifest."""
    from workbench.fsutil import publish_dir, staged_dir
    from workbench.llm import BUNDLED_MODEL
    from workbench.phases import LEARNING_PATH, PHASES
    from workbench.project import forget_open_projects
    from workbench.store import migration_names
    from workbench.version import __version__

    model = model or BUNDLED_MODEL
    if model.startswith("local/"):
        from workbench.llm import local

        # Convert the weights first: a run's token estimate counts with the bundled tokenizer
        # once they are converted, by characters before, and the checkpoints must not depend
        # on whether this machine converted them already.
        local.build_cache(progress=False)
    titles = {p.number: p.title for p in PHASES}
    out = Path(out).resolve()
    started = time.time()
    stages = []
    with tempfile.TemporaryDirectory(prefix="workbench-checkpoints-") as tmp, \
            staged_dir(out, prefix=f".{out.name}.building-") as staging:
        project = _start_project(Path(tmp) / "sample")
        before = snapshot.capture(project)
        for phase in LEARNING_PATH:
            if phase not in STEPS:
                continue
            step_started = time.perf_counter()
            STEPS[phase](project, model)
            after = snapshot.capture(project)
            stage = snapshot.changes(phase, before, after)
            folder = staging / stage_folder(phase)
            snapshot.write_stage(stage, folder, project.path, titles[phase])
            seconds = time.perf_counter() - step_started
            stages.append({"phase": phase, "folder": folder.name, "title": titles[phase],
                           "digest": snapshot.folder_digest(folder),
                           "bytes": snapshot.folder_size(folder), "rows": len(stage.rows),
                           "files": len(stage.files), "seconds": round(seconds, 1)})
            log(f"phase {phase} ({titles[phase]}): {len(stage.rows)} rows, "
                f"{len(stage.files)} files, {seconds:.1f} s")
            before = after
        times = [v for rows in before.rows.values() for row in rows.values()
                 for k, v in row.items() if snapshot.is_time_column(k)
                 and isinstance(v, (int, float))]
        manifest = {
            "format": FORMAT,
            "schema": migration_names(),
            "path": [p for p in LEARNING_PATH],
            "model": model,
            "built": {"at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      "last_event": max(times) if times else started,
                      "seconds": round(time.time() - started, 1),
                      "workbench": __version__, "python": platform.python_version(),
                      "machine": platform.machine()},
            "inputs": input_digests(),
            "stages": stages,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n",
                                        encoding="utf-8")
        project.close()
        forget_open_projects()
        publish_dir(staging, out, replace=True)
    return manifest
