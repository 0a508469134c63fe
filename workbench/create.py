"""Making a project folder: an empty one, one from the bundled sample card, or one holding what
the phases before N leave in the sample project (a prepared checkpoint).

It sits above ``workbench.project`` (which only opens folders) and ``workbench.checkpoints``, so
the project module stays a leaf of the kernel.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from workbench import tomlcard
from workbench.errors import ProjectExists
from workbench.fsutil import default_mode
from workbench.project import (
    CARD_FILE,
    DB_FILE,
    ENV_PROJECT,
    SUBDIRS,
    Project,
    is_project,
    new_card,
    open_project,
)
from workbench.store import Store


def init_project(path: str | os.PathLike, *, name: str | None = None, description: str = "",
                 sample: bool = False, at: int | None = None, activate: bool = True) -> Project:
    """Create a project folder. Refuses an existing project and any non-empty folder.

    ``at`` (a phase, 1-9; implies ``sample``) restores the bundled checkpoint holding what the
    phases before it on the learning path leave in the sample project, in about a second
    (``workbench.checkpoints``). The folder is built beside its destination and renamed into
    place, so a failure leaves nothing half-made."""
    target = Path(path).expanduser().resolve()
    if is_project(target):
        raise ProjectExists(f"{target} is already a workbench project.",
                            "Open it with open_project(path) or `workbench status PATH`.")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ProjectExists(f"{target} exists and is not empty, so it cannot become a project.",
                            "Choose a new or empty folder.")
    if at is not None:
        from workbench.checkpoints import phases_before

        phases_before(at)  # an unknown phase is refused before anything is made
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.creating-"))
    try:
        template = None
        if at is not None:
            from workbench.checkpoints import restore

            restore(staging, at, name=name)
        elif sample:
            from workbench.bundled import sample_card, sample_card_text

            card, template = sample_card(), sample_card_text()  # keep its comments
        else:
            card = new_card(name or target.name, description)
        if at is None:
            if name:
                card["project"]["name"] = name
            (staging / CARD_FILE).write_text(tomlcard.dumps(card, template), encoding="utf-8")
            for sub in SUBDIRS:
                (staging / sub).mkdir()
            Store.create(staging / DB_FILE).close()
        os.chmod(staging, default_mode(directory=True))  # mkdtemp made it private
        if target.exists():
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return open_project(target, activate=activate)


def open_or_create_sample(folder: str | os.PathLike) -> Project:
    """For notebooks: the ``WORKBENCH_PROJECT`` project when it is set; otherwise the project in
    ``folder``, made from the bundled sample if it does not exist yet."""
    if os.environ.get(ENV_PROJECT):
        return open_project()
    if is_project(folder):
        return open_project(folder)
    return init_project(folder, sample=True)
