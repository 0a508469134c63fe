"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


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


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, default_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
