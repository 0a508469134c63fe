"""Phase 2 out: a dataset version as CSV, JSONL or Parquet, with its lineage as a sidecar JSON.

The export folder keeps one stable file name per dataset (``support.csv`` and
``support.lineage.json``), so a data-versioning tool follows it the way it follows any file:

    workbench data export support --format parquet --out data-exports/support
    dvc add data-exports/support          # writes data-exports/support.dvc; commit that to git
    # after the next version: export again, `dvc add` again, commit; `dvc checkout` goes back

The sidecar says which version is inside (name, number, content hash, rows, columns), how it
was made (every transform from the import down to this version, with its parameters) and how to
import it again. Importing the file again (``import_data(..., input="input", expected="expected",
id="id", metadata="*")``, the sidecar's ``reimport``) gives a version with the same content hash:
the round trip loses nothing the workbench keeps. CSV holds text only, so two things do not
survive it: a metadata column of digits with leading zeros ("007") comes back as a number, and a
missing metadata text comes back as an empty one (CSV writes both as an empty cell). JSONL and
Parquet keep both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.bridges import BridgeError, exports_dir
from workbench.fsutil import atomic_write_text, atomic_writer

if TYPE_CHECKING:
    from workbench.project import Project

DATA_FORMATS = ("csv", "jsonl", "parquet")
LINEAGE_FORMAT = "llmops-workbench/dataset-export/1"


@dataclass(frozen=True)
class DataExport:
    """What ``export_dataset`` wrote."""

    path: Path
    lineage_path: Path
    name: str
    version: int
    rows: int
    data_hash: str
    format: str

    @property
    def sentence(self) -> str:
        return (f"Exported {self.name} v{self.version} ({self.rows:,} rows, hash "
                f"{self.data_hash[:12]}) to {self.path} with its lineage in "
                f"{self.lineage_path.name}.")

    def _repr_markdown_(self) -> str:
        return self.sentence


def lineage(project: Project, name: str, version: int | str | None = None) -> list[dict[str, Any]]:
    """The chain of versions that made ``name`` ``version``, from its import down to it: each
    with its number, time, parent, transform, parameters, rows and content hash."""
    from workbench.data.versions import get_version

    chain = []
    stored = get_version(project, name, version)
    seen: set[int] = set()
    while stored is not None and stored.version not in seen:
        seen.add(stored.version)
        v = stored.value
        chain.append({"version": stored.version,
                      "created": stored.created.isoformat(timespec="seconds"),
                      "parent": v.parent, "transform": v.transform.name,
                      "params": v.transform.params, "rows": v.rows, "data_hash": v.data_hash,
                      "splits": v.splits})
        stored = get_version(project, name, v.parent) if v.parent is not None else None
    return chain[::-1]


def _json_value(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    return value


def export_dataset(project: Project, name: str, version: int | str | None = None, *,
                   format: str = "csv", out: str | os.PathLike | None = None) -> DataExport:
    """Write dataset ``name`` (latest, a version number or a tag) as ``format`` into ``out``
    (default ``<project>/exports/data/<name>``): ``<name>.<format>`` and ``<name>.lineage.json``.
    Each file is written to a temporary name and renamed, the data first, so a failure leaves
    the previous export whole."""
    import pyarrow.parquet as pq

    from workbench.data.versions import get_version

    fmt = (format or "").lower().lstrip(".")
    if fmt not in DATA_FORMATS:
        raise BridgeError(f"A dataset goes out as {', '.join(DATA_FORMATS)}, not {format!r}.",
                          "Pass format='csv', 'jsonl' or 'parquet'.")
    stored = get_version(project, name, version)
    source = project.path / stored.value.file
    if not source.is_file():
        raise BridgeError(f"{source} is missing, so {name} v{stored.version} cannot be exported.",
                          "Restore the data/ folder from a backup or re-import the dataset.")
    folder = Path(out).expanduser() if out is not None else exports_dir(project, "data", name)
    folder.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    target = folder / f"{safe}.{fmt}"
    digest = hashlib.sha256()

    class _Hashing:  # the bytes written, hashed on the way, for the sidecar
        def __init__(self, fh):
            self.fh = fh

        def write(self, data: bytes) -> int:
            digest.update(data)
            return self.fh.write(data)

    table = pq.read_table(source)
    with atomic_writer(target) as fh:
        out_fh = _Hashing(fh)
        if fmt == "parquet":
            import pyarrow as pa

            buffer = pa.BufferOutputStream()
            pq.write_table(table, buffer, compression="zstd")
            out_fh.write(buffer.getvalue().to_pybytes())
        elif fmt == "jsonl":
            for batch in table.to_batches(max_chunksize=10_000):
                lines = [json.dumps(_json_value(row), ensure_ascii=False, default=str)
                         for row in batch.to_pylist()]
                out_fh.write(("\n".join(lines) + "\n").encode("utf-8"))
        else:
            frame = table.to_pandas()
            out_fh.write(frame.to_csv(index=False, lineterminator="\n").encode("utf-8"))
    value = stored.value
    sidecar = {
        "format": LINEAGE_FORMAT, "project": project.name, "dataset": name,
        "version": stored.version, "data_hash": value.data_hash, "rows": value.rows,
        "columns": value.columns, "labels": value.labels, "splits": value.splits,
        "file": target.name, "file_format": fmt, "file_sha256": digest.hexdigest(),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "lineage": lineage(project, name, stored.version),
        "reimport": {"python": (f"import_data(project, {target.name!r}, name={name!r}, "
                                "input='input', expected='expected', id='id', metadata='*')"),
                     "cli": (f"workbench import {target.name} --dataset {name} --input input "
                             "--expected expected --id id --metadata '*'")},
    }
    lineage_path = folder / f"{safe}.lineage.json"
    atomic_write_text(lineage_path, json.dumps(_json_value(sidecar), indent=2,
                                               ensure_ascii=False, default=str) + "\n")
    return DataExport(target, lineage_path, name, stored.version, value.rows, value.data_hash,
                      fmt)


def reimport(project: Project, path: str | os.PathLike, *, name: str):
    """Import an exported file as dataset ``name`` with the mapping the export wrote
    (``id``, ``input``, ``expected`` and every other column as metadata)."""
    from workbench.data.importing import import_data

    return import_data(project, path, name=name, input="input", expected="expected", id="id",
                       metadata="*")


__all__ = ["DATA_FORMATS", "DataExport", "export_dataset", "lineage", "reimport"]
