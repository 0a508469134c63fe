"""Dataset versions: immutable Parquet files named by content hash, with lineage.

Every change to a dataset — import, cleaning, redaction, labelling, splitting — makes a new version
that names its parent and the transform that made it. Versions are never rewritten, so any run can
be traced back to the exact rows it saw (the idea DVC applies to files, kept inside the project).

A dataset frame has the columns ``id`` (stable row id), ``input`` (text), ``expected`` (label or
reference answer, may be empty), any metadata columns, and ``split`` once it has been split.
"""

from __future__ import annotations

import hashlib
import json
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


# Rows hashed, and rows written as one Parquet row group, at a time: a million rows never exist
# twice (as Python strings to hash, or as one Arrow table and its Parquet bytes) at once. Row
# groups are larger: each repeats its columns' dictionaries, so small ones make a larger file.
CHUNK_ROWS = 100_000
ROW_GROUP_ROWS = 250_000


def _per_value_text(dtype: Any) -> bool:
    """Whether a column of ``dtype`` turns into text value by value, so any slice of it reads
    as the same slice of the whole column as text: text, whole and decimal numbers, booleans,
    Python objects, and categories (a slice keeps every category). Dates and durations do
    not (a column of midnights prints as dates alone, a column of whole days without a time),
    nor may other types; those columns are turned into text whole, once."""
    import numpy as np
    import pandas as pd

    if isinstance(dtype, (pd.StringDtype, pd.CategoricalDtype)):
        return True
    if isinstance(dtype, np.dtype):
        return dtype.kind in "biufO"
    # pandas' nullable Int64, Float64 and boolean (not pyarrow-backed numbers: kept whole)
    return isinstance(dtype, pd.api.extensions.ExtensionDtype) and \
        not isinstance(dtype, pd.ArrowDtype) and dtype.kind in "biuf" and \
        type(dtype).__module__.startswith("pandas.")


def frame_hash(df: pd.DataFrame, chunk_rows: int = CHUNK_ROWS) -> str:
    """A content hash of the rows and columns (not of Parquet's bytes, which carry metadata).

    The SHA-256 of the column names joined by U+001F, then of pandas' 64-bit hash of each row
    with every value as text (``hash_pandas_object(df.astype("string"), index=False)``). Each
    row's hash depends on that row alone, so the rows are hashed ``chunk_rows`` at a time and
    the digest is the same as hashing them all at once (what versions made before stored)."""
    import pandas as pd

    chunk_rows = max(1, int(chunk_rows))
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, df.columns)).encode())
    whole = {i: df.iloc[:, i].astype("string").array for i, dtype in enumerate(df.dtypes)
             if not _per_value_text(dtype)}
    for start in range(0, len(df), chunk_rows):
        stop = min(start + chunk_rows, len(df))
        part = df.iloc[start:stop]
        text = pd.DataFrame({i: whole[i][start:stop] if i in whole else
                             part.iloc[:, i].astype("string").array
                             for i in range(df.shape[1])}, index=pd.RangeIndex(stop - start))
        digest.update(pd.util.hash_pandas_object(text, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def write_frame(df: pd.DataFrame, path: os.PathLike | str,
                chunk_rows: int = ROW_GROUP_ROWS) -> None:
    """Write ``df`` to ``path`` as zstd Parquet, ``chunk_rows`` rows (one row group) at a time,
    atomically. The schema, pandas' metadata included, is the one ``df.to_parquet(index=False)``
    writes, so ``load`` gives back the same frame; only the row groups differ."""
    import warnings

    import pyarrow as pa
    import pyarrow.parquet as pq

    from workbench.fsutil import atomic_writer

    with warnings.catch_warnings():  # as pandas' to_parquet: pyarrow reading tz-aware .values
        warnings.filterwarnings("ignore", r"(Series|DatetimeIndex)\.values returning an ndarray "
                                "that drops timezone information")
        # pyarrow's own inference over the whole frame (a text column in Python strings is
        # converted once, alone, to learn its type), so every row group has one schema.
        schema = pa.Schema.from_pandas(df, preserve_index=False)
        if df.attrs:  # as pandas' to_parquet keeps them
            schema = schema.with_metadata({**schema.metadata,
                                           b"PANDAS_ATTRS": json.dumps(df.attrs).encode()})
        names = list(schema.names)
        distinct = len(set(names)) == len(names)  # not when names are alike as text (1, "1")
        chunk_rows = max(1, int(chunk_rows)) if distinct else max(1, len(df))
        with atomic_writer(path) as fh, pq.ParquetWriter(fh, schema, compression="zstd") as out:
            for start in range(0, len(df), chunk_rows) if len(df) else [0]:
                part = df.iloc[start:start + chunk_rows]
                if distinct:  # by the schema's names (text), in case the frame's are numbers
                    table = pa.Table.from_pandas(part.set_axis(names, axis=1), schema=schema,
                                                 preserve_index=False)
                else:
                    table = pa.Table.from_pandas(part, preserve_index=False)
                out.write_table(table)


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
    check_frame(df)
    df = df.reset_index(drop=True)
    digest = frame_hash(df)
    rel = f"data/{digest[:16]}.parquet"
    path = project.path / rel
    if not path.exists():  # same content, same file: written once, never rewritten
        write_frame(df, path)
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
