"""Dataset versions hashed and written a chunk at a time: the content hash is byte for byte the
one the whole-frame algorithm gave (stored hashes in existing projects must still match), and
the Parquet file reads back with the same schema and values as ``df.to_parquet`` wrote."""

from __future__ import annotations

import hashlib
import io
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workbench.data import load, save_version
from workbench.data.versioning import (CHUNK_ROWS, ROW_GROUP_ROWS, DatasetVersion, frame_hash,
                                     load_rows, write_frame)


def whole_frame_hash(df: pd.DataFrame) -> str:
    """frame_hash as it was before chunking (every stored data_hash was made by this)."""
    digest = hashlib.sha256()
    digest.update("\x1f".join(map(str, df.columns)).encode())
    digest.update(pd.util.hash_pandas_object(df.astype("string"), index=False).values.tobytes())
    return digest.hexdigest()


def whole_frame_bytes(df: pd.DataFrame) -> bytes:
    """The Parquet file as save_version wrote it before streaming."""
    buf = io.BytesIO()
    df.to_parquet(buf, index=False, compression="zstd")
    return buf.getvalue()


def midnights_then_a_time(n: int) -> pd.Series:
    """Dates whose text depends on the whole column: all midnights print as dates alone."""
    values = pd.date_range("2024-01-01", periods=n, freq="D").to_series(index=range(n))
    values.iloc[-1] += pd.Timedelta(hours=3, microseconds=5)
    values.iloc[n // 2] = pd.NaT
    return values


def frames() -> dict[str, pd.DataFrame]:
    n = 23
    rng = np.random.default_rng(7)
    texts = ["Grüße aus Zürich", "naïve café", "日本語のテキスト", "emoji 🙂👍", "", "NA", "null",
             "None", "nan", "tab\tand\nnewline", "\x1f", "a,b;\"c\""]
    text = [texts[i % len(texts)] for i in range(n)]
    with_missing = [None if i % 5 == 0 else float("nan") if i % 7 == 0 else t
                    for i, t in enumerate(text)]
    out = {
        "unicode text": pd.DataFrame({"id": [f"r{i}" for i in range(n)], "input": text,
                                      "expected": with_missing}),
        "object text": pd.DataFrame({"id": [f"r{i}" for i in range(n)],
                                     "input": pd.Series(text, dtype=object),
                                     "expected": pd.Series(with_missing, dtype=object)}),
        "arrow text": pd.DataFrame({"input": pd.Series(text, dtype="str"),
                                    "expected": pd.Series(with_missing, dtype="str"),
                                    "nullable": pd.Series(with_missing, dtype="string")}),
        "numbers": pd.DataFrame({
            "int": rng.integers(-10**12, 10**12, n), "small": np.arange(n, dtype="int8"),
            "unsigned": np.arange(n, dtype="uint64") * (2**60),
            "float": [1.0, 2.5, float("nan"), 1e20, 1 / 3, -0.0, float("inf"), -1e-7, 123456789.0,
                      0.1 + 0.2, 5e-324, -float("inf")] + list(rng.normal(size=n - 12)),
            "float32": rng.normal(size=n).astype("float32"),
            "bool": [i % 3 == 0 for i in range(n)]}),
        "nullable numbers": pd.DataFrame({
            "Int64": pd.array([None if i % 4 == 0 else i * 10**9 for i in range(n)],
                              dtype="Int64"),
            "Float64": pd.array([None if i % 6 == 0 else i / 7 for i in range(n)],
                                dtype="Float64"),
            "boolean": pd.array([None if i % 5 == 0 else i % 2 == 0 for i in range(n)],
                                dtype="boolean")}),
        "ints with gaps (float)": pd.DataFrame({"x": [None if i % 3 else i for i in range(n)]}),
        "lists and dicts": pd.DataFrame({
            "list": [[i, i + 1] if i % 4 else None for i in range(n)],
            "dict": [{"k": i, "t": text[i]} if i % 5 else None for i in range(n)],
            "tags": [["a", "ß"][: i % 3] for i in range(n)]}),
        "mixed objects": pd.DataFrame({"x": [i if i % 2 else f"s{i}" for i in range(n)],
                                       "y": [None, 1.5, "x", True, b"bytes"] * 4 + [1, 2, 3],
                                       "none": pd.Series([None] * n, dtype=object)}),
        "categories": pd.DataFrame({
            "label": pd.Categorical([["billing", "shipping", None][i % 3] for i in range(n)]),
            "when": pd.Categorical(midnights_then_a_time(n))}),
        "dates and durations": pd.DataFrame({
            "date": midnights_then_a_time(n),
            "days": pd.to_timedelta(np.arange(n), unit="D").to_series(index=range(n))
            .where(np.arange(n) != n - 1, pd.Timedelta(days=1, hours=2)),
            "utc": midnights_then_a_time(n).dt.tz_localize("UTC"),
            "ms": pd.Series(pd.to_datetime(["2024-01-01 00:00:01"] * (n - 1)
                                           + ["2024-01-01 00:00:01.250"], format="ISO8601")),
            "period": pd.period_range("2024-01", periods=n, freq="M")}),
        "pyarrow dtypes": pd.DataFrame({
            "int": pd.Series(range(n), dtype="int64[pyarrow]"),
            "float": pd.Series([i / 3 for i in range(n)], dtype="double[pyarrow]"),
            "ts": midnights_then_a_time(n).astype("timestamp[us][pyarrow]")}),
        "number column names": pd.DataFrame({0: text, 1: range(n), "2": [1.5] * n}),
        "no rows": pd.DataFrame({"id": pd.Series([], dtype=object),
                                 "input": pd.Series([], dtype="str"),
                                 "expected": pd.Series([], dtype=float)}),
        "one row": pd.DataFrame({"id": ["a"], "input": ["x"], "expected": [None]}),
    }
    out["no columns"] = pd.DataFrame(index=range(5))
    out["non-default index"] = out["unicode text"].set_index(
        pd.Index([f"i{i}" for i in range(n)]))
    return out


FRAMES = frames()


@pytest.mark.parametrize("name", list(FRAMES))
@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 22, 23, 24, CHUNK_ROWS])
def test_chunked_hash_equals_whole_frame_hash(name, chunk_rows):
    df = FRAMES[name]
    assert frame_hash(df, chunk_rows=chunk_rows) == whole_frame_hash(df)


def test_hash_is_pinned():
    """The digest itself, as versions have stored it: a change here orphans stored hashes."""
    df = pd.DataFrame({"id": ["a", "b", "c"], "input": ["Grüße", "日本", ""],
                       "expected": ["x", None, float("nan")], "n": [1, 2, 3],
                       "f": [0.5, float("nan"), 1e20]})
    pinned = "3e5817dad10cba56c027658888ababd2f9b650b5432486f175e3110275c59b13"
    assert whole_frame_hash(df) == pinned
    assert frame_hash(df) == pinned
    assert frame_hash(df, chunk_rows=1) == pinned


def big_frame(rows: int) -> pd.DataFrame:
    """Rows like an import's, with a date column whose text hinges on its last row."""
    rng = np.random.default_rng(3)
    words = np.array(["Hi", "order", "#", "Zürich", "café", "日本", "refund", "🙂", "late", ""])
    picks = rng.integers(0, len(words), (rows, 4))
    text = pd.Series([" ".join(words[p]) for p in picks], dtype="str")
    return pd.DataFrame({
        "id": pd.Series([f"T{i:07d}" for i in range(rows)], dtype="str"),
        "input": text,
        "expected": pd.Series(np.where(picks[:, 0] % 4 == 0, None,
                                       words[picks[:, 1]]), dtype="str"),
        "channel": pd.Series(rng.choice(["email", "chat", "phone"], rows), dtype=object),
        "score": np.where(picks[:, 2] == 0, np.nan, picks[:, 3] / 3),
        "count": picks[:, 3],
        "when": midnights_then_a_time(rows),
    })


@pytest.mark.parametrize("rows", [2 * CHUNK_ROWS + 7, CHUNK_ROWS, CHUNK_ROWS - 1])
def test_chunked_hash_at_chunk_boundaries(rows):
    df = big_frame(rows)
    assert frame_hash(df) == whole_frame_hash(df)
    # the last chunk's date with a time makes every date print with one: hashed whole
    assert frame_hash(df.iloc[: rows - 1]) == whole_frame_hash(df.iloc[: rows - 1])


def parquet_frames() -> dict[str, pd.DataFrame]:
    """The frames Parquet can store (mixed objects and periods as pyarrow refuses them)."""
    skip = {"mixed objects", "dates and durations", "non-default index", "no columns"}
    out = {k: v for k, v in FRAMES.items() if k not in skip}
    out["dates and durations"] = FRAMES["dates and durations"].drop(columns="period")
    out["with attrs"] = FRAMES["unicode text"].copy()
    out["with attrs"].attrs = {"source": "tickets.csv", "rows": 23}
    out["all missing in the first chunk"] = pd.DataFrame(
        {"x": pd.Series([None] * 10 + ["late text"], dtype=object),
         "y": pd.Series([None] * 10 + [[1, 2]], dtype=object),
         "z": pd.Series([None] * 11, dtype=object)})
    return out


PARQUET = parquet_frames()


@pytest.mark.parametrize("name", list(PARQUET))
@pytest.mark.parametrize("chunk_rows", [4, ROW_GROUP_ROWS])
def test_streamed_parquet_reads_back_as_before(name, chunk_rows, tmp_path):
    df = PARQUET[name].reset_index(drop=True)
    before = tmp_path / "before.parquet"
    before.write_bytes(whole_frame_bytes(df))
    after = tmp_path / "after.parquet"
    write_frame(df, after, chunk_rows=chunk_rows)
    old, new = pq.ParquetFile(before), pq.ParquetFile(after)
    assert new.schema_arrow.equals(old.schema_arrow, check_metadata=True)
    assert new.schema_arrow.metadata == old.schema_arrow.metadata
    assert new.metadata.num_rows == len(df)
    assert new.metadata.num_row_groups == max(1, math.ceil(len(df) / chunk_rows))
    assert new.read().to_pylist() == old.read().to_pylist()
    pd.testing.assert_frame_equal(pd.read_parquet(after), pd.read_parquet(before))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["after.parquet", "before.parquet"]


def test_names_alike_as_text_are_written_in_one_piece_as_before(tmp_path):
    df = pd.DataFrame({1: ["a", "b", "c"], "1": [1, 2, 3]})
    write_frame(df, tmp_path / "after.parquet", chunk_rows=2)
    new = pq.ParquetFile(tmp_path / "after.parquet")
    old = pq.ParquetFile(io.BytesIO(whole_frame_bytes(df)))
    assert new.schema_arrow.equals(old.schema_arrow, check_metadata=True)
    assert new.read().equals(old.read())


def test_failed_write_leaves_nothing(tmp_path):
    df = FRAMES["mixed objects"]
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        write_frame(df, tmp_path / "x.parquet")
    assert list(tmp_path.iterdir()) == []


def test_saved_version_keeps_hash_file_and_rows(project):
    df = big_frame(ROW_GROUP_ROWS + 3).drop(columns="when")
    stored = save_version(project, "tickets", df, transform="import")
    assert stored.value.data_hash == whole_frame_hash(df)
    path = project.path / stored.value.file
    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left
    reference = pd.read_parquet(io.BytesIO(whole_frame_bytes(df)))
    pd.testing.assert_frame_equal(load(project, "tickets"), reference)
    assert load_rows(project, "tickets") == \
        pq.ParquetFile(io.BytesIO(whole_frame_bytes(df))).read().to_pylist()
    again = save_version(project, "tickets", load(project, "tickets"), transform="import")
    assert again.version == stored.version  # same rows read back: same hash, no new version


def sample_versions(project) -> list[str]:
    """The bundled sample data imported and cleaned (the phase 2 steps that need no model)."""
    from workbench.data import clean
    from workbench.data.cleaning import (
        drop_empty,
        drop_exact_duplicates,
        normalize_unicode,
        normalize_whitespace,
    )
    from workbench.sample import SAMPLE_DATASET, import_sample_data

    import_sample_data(project)
    clean(project, SAMPLE_DATASET, [normalize_unicode(), normalize_whitespace(), drop_empty(),
                                    drop_exact_duplicates()])
    return [s.value.data_hash
            for s in project.records.versions(DatasetVersion, SAMPLE_DATASET)]


def test_sample_data_versions_keep_their_hashes(tmp_path, monkeypatch):
    import workbench

    module = sys.modules["workbench.data.versioning"]
    now = sample_versions(workbench.init_project(tmp_path / "now"))
    monkeypatch.setattr(module, "frame_hash", whole_frame_hash)
    monkeypatch.setattr(module, "write_frame",
                        lambda df, path: Path(path).write_bytes(whole_frame_bytes(df)))
    before = sample_versions(workbench.init_project(tmp_path / "before"))
    assert len(now) == 2
    assert now == before
