"""Prepared checkpoints of the sample project: start a workshop at any phase in about a second.

The learning path is 1, 2, 4, 3, 6, 7, 8, 9, 5. ``workbench init PATH --sample --at N`` makes a
project holding exactly what the phases before N leave on that path in the sample project —
card, dataset versions, prompt versions, runs, the classical and blessed baselines, judge
calibration, the deployment, traffic with feedback and alerts, the maintenance loop (phase 5's
adapter is never included: it is last). The notebooks' "fill what is missing" button adds the
same work to a project that lacks it.

- ``recipe``: what each phase does on the sample, by the kernel (deterministic);
- ``build``: runs the recipe and writes ``datasets/checkpoints/`` — one stage folder per phase
  (rows as JSON lines, files, card tables) and a manifest with the database schema, the
  bundled inputs' digests and each stage's digest
  (``python datasets/tools/make_checkpoints.py``);
- ``restoring``: a new project at phase N (rows keep their ids; times are shifted so the newest
  is now; an older schema is migrated, an unknown one refused), or one stage added to a
  project without changing what it holds;
- ``canonical``: the same work told apart from what differs between two builds (ids, times,
  latencies), to test that the shipped checkpoints are what the recipe makes.
"""

from workbench.checkpoints.restoring import (
    CheckpointConflict,
    CheckpointError,
    Restored,
    add_stage,
    checkpoints_dir,
    describe_start,
    load_manifest,
    phases_before,
    restore,
)

__all__ = ["CheckpointConflict", "CheckpointError", "Restored", "add_stage", "checkpoints_dir",
           "describe_start", "load_manifest", "phases_before", "restore"]
