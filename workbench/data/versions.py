"""Dataset versions: immutable Parquet files named by content hash, with lineage.

Every change to a dataset — import, cleaning, redaction, labelling, splitting — makes a new version
that names its parent and the transform that made it. Versions are never rewritten, so any run can
be traced back to the exact rows it saw (the idea DVC applies to files, kept inside the project).

A dataset frame has the columns ``id`` (stable row id), ``input`` (text), ``expected`` (label or
reference answer, may be empty), any metadata columns, and ``split`` once it has been split.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from workbench.errors import RecordNotFound, WorkbenchError
from workbench.records import Record, Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

REQUIRED_COLUMNS = ("id", "input", "expected")


class DatasetError(WorkbenchError):
    """A dataset could not be imported, changed or read."""


class Transform(BaseModel):
    """What made a version: ``name`` (import, clean, redact_pii, label, split, ...) and its
    parameters, so the change can be understood and repeated."""

    model_config = ConfigDict(frozen=True)
    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class DatasetVersion(Record):
    kind: ClassVar[str] = "dataset"
    file: str  # relative to the project folder
    data_hash: str  # of the rows, see frame_hash
    rows: int
    columns: list[str]
    parent: int | None = None
    transform: Transform
    labels: list[str] | None = None  # distinct expected values, when they look like labels
    splits: dict[str, int] | None = None  # rows per split, once split


def _frame_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def frame_hash(df: pd.DataFrame) -> str:
    """A content hash of the rows and columns (not of Parquet's bytes, which carry metadata)."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df.astype("string"), index=False).values.tobytes())
    return digest.hexdigest()


def check_frame(df: pd.DataFrame) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DatasetError(f"The dataset has no column(s) {missing}.",
                           "Import it with a column mapping (input=..., expected=...).")
    if df["id"].duplicated().any():
        dupes = df.loc[df["id"].duplicated(), "id"].head(3).tolist()
        raise DatasetError(f"Row ids must be unique; {dupes} appear more than once.",
                           "Give each row its own id, or let the import make ids.")


def _labels(df: pd.DataFrame) -> list[str] | None:
    expected = df["expected"].dropna().astype(str)
    distinct = expected.unique()
    # A column with few distinct short values is a label set; free text is not.
    if 0 < len(distinct) <= max(2, min(50, len(expected) // 3)) and \
            expected.str.len().max() <= 40:
        return sorted(distinct)
    return None


def save_version(project: Project, name: str, df: pd.DataFrame, *, transform: str,
                 params: dict[str, Any] | None = None,
                 parent: int | None = None) -> Stored[DatasetVersion]:
    """Store ``df`` as the next version of dataset ``name`` (no new version if nothing changed)."""
    from workbench.fsutil import atomic_write_bytes

    check_frame(df)
    df = df.reset_index(drop=True)
    digest = frame_hash(df)
    rel = f"data/{digest[:16]}.parquet"
    path = project.path / rel
    if not path.exists():  # same content, same file: written once, never rewritten
        atomic_write_bytes(path, _frame_bytes(df))
    splits = None
    if "split" in df.columns:
        splits = {str(k): int(v) for k, v in df["split"].value_counts().sort_index().items()}
    value = DatasetVersion(file=rel, data_hash=digest, rows=len(df), columns=list(df.columns),
                           parent=parent, transform=Transform(name=transform,
                                                              params=params or {}),
                           labels=_labels(df), splits=splits)
    try:
        latest = project.records.get(DatasetVersion, name)
    except RecordNotFound:
        latest = None
    if latest is not None and latest.value.data_hash == digest:
        return latest  # unchanged rows: no new version
    return project.records.save(name, value)


def get_version(project: Project, name: str,
                version: int | str | None = None) -> Stored[DatasetVersion]:
    try:
        return project.records.get(DatasetVersion, name, version)
    except RecordNotFound:
        known = project.records.names(DatasetVersion)
        raise DatasetError(f"There is no dataset '{name}'"
                           f"{f' version {version}' if version is not None else ''} in this "
                           "project.", f"Known datasets: {known or 'none yet'}; import one with "
                           "workbench.data.import_data(...).") from None


def load(project: Project, name: str, version: int | str | None = None) -> pd.DataFrame:
    """A dataset version as a DataFrame (latest by default; a number or a tag also work)."""
    import pandas as pd

    stored = get_version(project, name, version)
    path = project.path / stored.value.file
    if not path.is_file():
        raise DatasetError(f"{path} is missing, so {name} v{stored.version} cannot be read.",
                           "Restore the data/ folder from a backup or re-import the dataset.")
    return pd.read_parquet(path)


def load_rows(project: Project, name: str, version: int | str | None = None
              ) -> list[dict[str, Any]]:
    """A dataset version as a list of row dicts, read with pyarrow alone: what a run needs,
    without pandas' import (a quarter of a second of a run's start-up)."""
    import pyarrow.parquet as pq

    stored = get_version(project, name, version)
    path = project.path / stored.value.file
    if not path.is_file():
        raise DatasetError(f"{path} is missing, so {name} v{stored.version} cannot be read.",
                           "Restore the data/ folder from a backup or re-import the dataset.")
    return pq.ParquetFile(path).read().to_pylist()  # read_table would import pandas


def versions(project: Project, name: str) -> pd.DataFrame:
    """The lineage of a dataset: one row per version, oldest first."""
    import pandas as pd

    rows = []
    for s in project.records.versions(DatasetVersion, name):
        v = s.value
        rows.append({"version": s.version, "created": s.created, "rows": v.rows,
                     "parent": v.parent, "transform": v.transform.name,
                     "params": v.transform.params, "file": v.file,
                     "hash": v.data_hash[:12]})
    if not rows:
        get_version(project, name)  # raises the friendly error
    return pd.DataFrame(rows)


def datasets(project: Project) -> list[str]:
    return project.records.names(DatasetVersion)


def diff(project: Project, name: str, a: int | str, b: int | str) -> pd.DataFrame:
    """Rows added, removed and changed between two versions, matched by ``id``.

    One row per change: ``change`` (added/removed/changed), ``id``, and for changes the
    ``column`` with its ``before`` and ``after`` values."""
    import pandas as pd

    old, new = load(project, name, a).set_index("id"), load(project, name, b).set_index("id")
    out: list[dict[str, Any]] = []
    for row_id in new.index.difference(old.index):
        out.append({"change": "added", "id": row_id, "column": None, "before": None,
                    "after": new.at[row_id, "input"]})
    for row_id in old.index.difference(new.index):
        out.append({"change": "removed", "id": row_id, "column": None,
                    "before": old.at[row_id, "input"], "after": None})
    common = old.index.intersection(new.index)
    for column in sorted(set(old.columns) | set(new.columns)):
        before = old[column].reindex(common) if column in old else pd.Series(None, index=common)
        after = new[column].reindex(common) if column in new else pd.Series(None, index=common)
        changed = ~((before == after) | (before.isna() & after.isna()))
        for row_id in common[changed.to_numpy()]:
            out.append({"change": "changed", "id": row_id, "column": column,
                        "before": before[row_id], "after": after[row_id]})
    return pd.DataFrame(out, columns=["change", "id", "column", "before", "after"])


def find_split(project: Project, prefer: str | None = None) -> Stored[DatasetVersion] | None:
    """The latest version of a dataset that has been split (``prefer`` first), or None."""
    names = datasets(project)
    if prefer in names:
        names = [prefer] + [n for n in names if n != prefer]
    for name in names:
        stored = get_version(project, name)
        if stored.value.splits:
            return stored
    return None


def version_path(project: Project, name: str, version: int | str | None = None) -> str:
    return os.fspath(project.path / get_version(project, name, version).value.file)
