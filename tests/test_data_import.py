"""Importing CSV, TSV, JSONL, JSON, Parquet and DataFrames: mapping, encodings, schema checks,
and that a failed import leaves the project exactly as it was."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from workbench.data import DatasetError, ImportFailed, diff, import_data, load, versions
from workbench.data.importing import make_ids


def snapshot(project) -> dict:
    """Every file in the project except the SQLite files (WAL bookkeeping changes on reads),
    plus what the database holds."""
    files = {p.relative_to(project.path).as_posix(): p.read_bytes()
             for p in sorted(project.path.rglob("*"))
             if p.is_file() and not p.name.startswith("workbench.db")}
    dirs = sorted(p.relative_to(project.path).as_posix() for p in project.path.rglob("*")
                  if p.is_dir())
    return {"files": files, "dirs": dirs, "records": project.records.count()}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows).astype(object)


def loaded(project, name, version=None) -> pd.DataFrame:
    return load(project, name, version).astype(object)


LATIN = ("id,text,label,priority\n1,Café crème brûlée is cold,food,2\n"
         "2,Ça va à Zürich,other,1\n")


def test_csv_in_latin1_is_detected_and_recorded(project, tmp_path):
    path = tmp_path / "tickets.csv"
    raw = LATIN.encode("latin-1")
    path.write_bytes(raw)
    stored = import_data(project, path, name="tickets", expected="label", id="id",
                         metadata=["priority"])
    digest = hashlib.sha256(raw).hexdigest()
    assert stored.version == 1 and stored.value.parent is None
    assert stored.value.transform.name == "import"
    assert stored.value.transform.params == {
        "source": "tickets.csv", "format": "csv", "encoding": "cp1252",
        "mapping": {"input": "text", "expected": "label", "id": "id",
                    "metadata": {"priority": "priority"}},
        "rows": 2, "raw_file": f"data/raw/{digest[:16]}.csv", "raw_sha256": digest}
    assert (project.path / f"data/raw/{digest[:16]}.csv").read_bytes() == raw
    df = load(project, "tickets")
    assert df["priority"].tolist() == [2, 1]  # numeric CSV metadata becomes numbers
    pd.testing.assert_frame_equal(df.astype(object), frame([
        {"id": "1", "input": "Café crème brûlée is cold", "expected": "food", "priority": 2},
        {"id": "2", "input": "Ça va à Zürich", "expected": "other", "priority": 1}]))
    assert stored.value.labels == ["food", "other"]


def test_utf8_with_bom_keeps_the_first_column_name(project, tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffid,text\nA1,naïve résumé\nA2,NA\n".encode("utf-8"))
    stored = import_data(project, path, name="bom", id="id")
    assert stored.value.transform.params["encoding"] == "utf-8-sig"
    # "NA" is a message, not a missing value; no expected column maps to all-None
    pd.testing.assert_frame_equal(loaded(project, "bom"), frame([
        {"id": "A1", "input": "naïve résumé", "expected": None},
        {"id": "A2", "input": "NA", "expected": None}]))


def test_explicit_encoding_that_does_not_fit_names_the_line(project, tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes("text\nfine\nstill fine\ncafé\n".encode("latin-1"))
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="t", encoding="utf-8")
    assert err.value.message == "t.csv is not valid utf-8: byte b'\\xe9' on line 4 cannot be " \
                                "decoded."
    assert "encoding" in err.value.fix
    assert snapshot(project) == before


def test_jsonl_with_a_broken_line_names_it_and_changes_nothing(project, tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"text": "ok", "label": "a"}\n\n{"text": "bad", "label": "b",}\n')
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="broken", expected="label")
    assert err.value.message.startswith("broken.jsonl line 3 is not valid JSON")
    assert err.value.fix == "Fix or delete that line; each line must be one JSON object."
    assert snapshot(project) == before
    assert not (project.data_dir / "raw").exists()


def test_null_and_non_text_inputs_are_named(project, tmp_path):
    path = tmp_path / "nulls.jsonl"
    lines = [{"text": "one"}, {"text": None}, {"text": "three"}, {"text": 4}, {"other": 1}]
    path.write_text("\n".join(json.dumps(x) for x in lines))
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="n")
    assert err.value.message == ("Column 'text' (the input) must hold text in every row; 3 "
                                 "row(s) do not: line 2 (empty), line 4 (int 4), line 5 (empty).")
    assert snapshot(project) == before


def test_missing_columns_list_the_available_ones(project, tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("message,intent\nhello there,greet\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="c", expected="label")
    assert err.value.message == ("cols.csv has no column(s) ['text', 'label']; its columns are "
                                 "['message', 'intent'].")
    assert err.value.fix == ("Map the right ones, e.g. import_data(..., input='message', "
                             "expected=<one of the columns>).")
    assert isinstance(err.value, DatasetError)


def test_duplicate_ids_are_refused(project, tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("id,text\n7,a\n8,b\n7,c\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="d", id="id")
    assert err.value.message == ("Id column 'id' must be unique, but '7' appears in row 1 (line 2 "
                                 "if no field spans lines), row 3 (line 4 if no field spans "
                                 "lines) (1 repeated id(s) in all).")


def test_a_ragged_csv_row_is_named(project, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,x\nb,c,d\n")
    with pytest.raises(ImportFailed, match="line 3"):
        import_data(project, path, name="r")


def test_parquet_with_metadata_mapping(project, tmp_path):
    path = tmp_path / "data.parquet"
    pd.DataFrame({"uid": [10, 11], "question": ["What is 2+2?", "Capital of France?"],
                  "answer": ["4", "Paris"], "source": ["math", "geo"],
                  "score": [0.5, 0.75]}).to_parquet(path)
    stored = import_data(project, path, name="qa", input="question", expected="answer",
                         id="uid", metadata={"source": "topic", "score": "score"})
    params = stored.value.transform.params
    assert (params["format"], params["encoding"], params["mapping"]) == (
        "parquet", None, {"input": "question", "expected": "answer", "id": "uid",
                          "metadata": {"source": "topic", "score": "score"}})
    pd.testing.assert_frame_equal(loaded(project, "qa"), frame([
        {"id": "10", "input": "What is 2+2?", "expected": "4", "topic": "math", "score": 0.5},
        {"id": "11", "input": "Capital of France?", "expected": "Paris", "topic": "geo",
         "score": 0.75}]))


def test_dataframe_tsv_and_json_array(project, tmp_path):
    df = pd.DataFrame({"text": ["hi", "hi", "bye"], "y": ["a", "a", "b"]})
    stored = import_data(project, df, name="frame", expected="y")
    assert stored.value.transform.params == {
        "source": "DataFrame", "format": "dataframe", "encoding": None, "rows": 3,
        "mapping": {"input": "text", "expected": "y", "id": None, "metadata": {}}}
    ids = load(project, "frame")["id"].tolist()
    assert ids == make_ids(pd.Series(["hi", "hi", "bye"]))
    assert len(set(ids)) == 3 and all(len(i) == 16 for i in ids)  # duplicates stay distinct

    tsv = tmp_path / "rows.txt"
    tsv.write_text("text\tlabel\nhello, world\tx\n")
    import_data(project, tsv, name="tsv", expected="label", format="tsv")
    assert loaded(project, "tsv")[["input", "expected"]].to_dict("records") == [
        {"input": "hello, world", "expected": "x"}]

    js = tmp_path / "rows.json"
    js.write_text(json.dumps([{"q": "a?", "meta": {"k": 1}}, {"q": "b?", "meta": {"k": 2}}]))
    stored = import_data(project, js, name="json", input="q", metadata="*")
    assert loaded(project, "json")[["input", "meta"]].to_dict("records") == [
        {"input": "a?", "meta": '{"k": 1}'}, {"input": "b?", "meta": '{"k": 2}'}]
    assert stored.value.transform.params["notes"] == [
        "metadata 'meta' mixed value types and was stored as text"]


def test_ids_are_stable_when_rows_move_or_are_added(project, tmp_path):
    first = pd.DataFrame({"text": ["alpha", "beta", "alpha"]})
    second = pd.DataFrame({"text": ["new", "beta", "alpha", "alpha"]})
    import_data(project, first, name="s")
    stored = import_data(project, second, name="s")
    assert (stored.version, stored.value.parent) == (2, 1)
    changes = diff(project, "s", 1, 2)
    assert changes[["change", "after"]].to_dict("records") == [{"change": "added",
                                                                "after": "new"}]


def test_reimporting_the_same_file_makes_no_new_version(project, tmp_path):
    path = tmp_path / "same.csv"
    path.write_text("text\nsame\n")
    a = import_data(project, path, name="same")
    b = import_data(project, path, name="same")
    assert (a.version, b.version) == (1, 1)
    assert versions(project, "same")["transform"].tolist() == ["import"]


def test_a_failure_while_saving_removes_what_was_written(project, tmp_path, monkeypatch):
    path = tmp_path / "ok.csv"
    path.write_text("text\nfine\n")
    before = snapshot(project)

    def broken_save(name, value):
        raise OSError("disk full")

    records = project.records
    monkeypatch.setattr(type(project), "records", property(lambda self: records))
    monkeypatch.setattr(records, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        import_data(project, path, name="ok")
    assert snapshot(project) == before


def write(name: str, content: str):
    def make(folder):
        (folder / name).write_text(content)
        return folder / name
    return make


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing.csv", "does not exist"),
    (write("a.xlsx", "x"), "Cannot tell the format"),
    (write("e.csv", ""), "is empty"),
    (write("h.csv", "text\n"), "has a header but no rows"),
    (write("p.parquet", "not parquet"), "could not be read as Parquet"),
    (write("j.json", '{"a": 1}'), "holds a JSON object, not an array"),
    (write("l.jsonl", '{"text": "a"}\n[1, 2]\n'), "line 2 is a JSON list, not an object"),
])
def test_unreadable_sources(project, tmp_path, setup, message):
    before = snapshot(project)
    with pytest.raises(ImportFailed, match=message):
        import_data(project, setup(tmp_path), name="x")
    assert snapshot(project) == before


def test_reserved_metadata_names_are_refused(project):
    df = pd.DataFrame({"text": ["a"], "id": ["x"]})
    with pytest.raises(ImportFailed, match="reserved name"):
        import_data(project, df, name="r", metadata=["id"])
    stored = import_data(project, df, name="r", metadata={"id": "source_id"})
    assert stored.value.columns == ["id", "input", "expected", "source_id"]


def test_importing_the_data_package_loads_nothing_heavy():
    import subprocess
    import sys

    probe = ("import sys, workbench.data; print(sorted(m for m in ('pandas', 'numpy', 'sklearn', "
             "'cleanlab', 'plotly', 'torch', 'charset_normalizer', 'pyarrow', 'scipy') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
