"""Atomic file and folder writes: a reader sees the old one or the new one, never half of
either."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


_UMASK: int | None = None


def _umask() -> int:
    global _UMASK
    if _UMASK is None:  # read once: reading it means setting it, briefly, for the process
        _UMASK = os.umask(0o022)
        os.umask(_UMASK)
    return _UMASK


def default_mode(directory: bool = False) -> int:
    """The mode a plain open()/mkdir() would give (mkstemp/mkdtemp make private files)."""
    return (0o777 if directory else 0o666) & ~_umask()


@contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through, for content made a piece at a time: it is
    synced and takes the name ``path`` when the block ends, and is removed if the block
    raises, so a reader sees the old file or the whole new one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_writer(path) as fh:
        fh.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def staged_dir(target: Path, prefix: str = ".staging-") -> Iterator[Path]:
    """A new folder beside ``target`` to fill, then hand to ``publish_dir`` inside the block.
    Whatever is left of it when the block ends (it raised, or another process published first)
    is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=prefix))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish_dir(staging: Path, target: Path, *, replace: bool) -> bool:
    """Move a filled ``staging`` folder to ``target`` in one rename, with the mode a plain mkdir
    gives (mkdtemp makes it private). A missing or empty ``target`` is taken; one with content
    is replaced whole when ``replace``, else kept (another process finished the same work
    first) and False is returned."""
    target = Path(target)
    os.chmod(staging, default_mode(directory=True))
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        try:
            os.rename(staging, target)
            return True
        except OSError:
            if replace or not target.exists():
                raise
            return False  # filled meanwhile by another process
    if not replace:
        return False
    old = target.with_name(f".old-{target.name}-{os.getpid()}")
    os.rename(target, old)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return True
