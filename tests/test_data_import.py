"""Importing CSV, TSV, JSONL, JSON, Parquet and DataFrames: mapping, encodings, schema checks,
and that a failed import leaves the project exactly as it was."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest

from workbench.data import DatasetError, ImportFailed, diff, import_data, load, versions
from workbench.data.importing import describe_import, describe_version, make_ids


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
        "source": "tickets.csv", "format": "csv", "encoding": "cp1252", "encoding_detected": True,
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
    assert err.value.message == ("Id column 'id' must be unique, but '7' appears in row 1 "
                                 "(line 2), row 3 (line 4) (1 repeated id(s) in all).")


def test_a_ragged_csv_row_is_named(project, tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("text,label\na,x\nb,c,d\n")
    with pytest.raises(ImportFailed, match="line 3") as err:
        import_data(project, path, name="r")
    assert err.value.fix == ("Quote fields that contain a comma (\"a, b\"), or pass "
                             "format='tsv' if the file is separated by tabs (sep=';' if by "
                             "semicolons).")


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



# -- encodings -------------------------------------------------------------------------------------

WESTERN = ["Très bien, merci. Le café était froid, où est ma commande ?",
           "Grüße aus München: die Größe der Straßenschuhe ist falsch.",
           "¿Dónde está mi pedido? La niña pagó con tarjeta, señor.",
           "Não recebi a encomenda; a situação é crítica, ação já!"]


def csv_bytes(texts: list[str], encoding: str, header: str = "text") -> bytes:
    return (header + "\n" + "".join(f'"{t}"\n' for t in texts)).encode(encoding)


def test_latin1_french_german_spanish_portuguese_are_read_right(project, tmp_path):
    path = tmp_path / "western.csv"
    path.write_bytes(csv_bytes(WESTERN, "latin-1"))
    stored = import_data(project, path, name="w")
    params = stored.value.transform.params
    assert (params["encoding"], params["encoding_detected"]) == ("cp1252", True)
    assert load(project, "w")["input"].tolist() == WESTERN
    assert describe_import(stored) == ("Imported 4 rows from western.csv (csv; encoding cp1252, "
                                       "detected) as version 1 of 'w'.")


def test_cp1252_euro_and_curly_quotes(project, tmp_path):
    texts = ["The fee was 20 € – “too much”, isn’t it?", "Prix : 5 € … c’est l’été"]
    path = tmp_path / "win.csv"
    path.write_bytes(csv_bytes(texts, "cp1252"))
    stored = import_data(project, path, name="win")
    assert stored.value.transform.params["encoding"] == "cp1252"
    assert load(project, "win")["input"].tolist() == texts


def test_utf8_and_a_given_encoding_are_recorded(project, tmp_path):
    path = tmp_path / "u.csv"
    path.write_bytes(csv_bytes(WESTERN + ["Ελληνικά και русский"], "utf-8"))
    stored = import_data(project, path, name="u")
    assert stored.value.transform.params["encoding"] == "utf-8"
    assert load(project, "u")["input"].tolist()[-1] == "Ελληνικά και русский"
    latin = tmp_path / "l.csv"
    latin.write_bytes(csv_bytes(WESTERN, "latin-1"))
    stored = import_data(project, latin, name="l", encoding="latin-1")
    params = stored.value.transform.params
    assert (params["encoding"], params["encoding_detected"]) == ("latin-1", False)
    assert describe_import(stored).startswith("Imported 4 rows from l.csv (csv; encoding "
                                              "latin-1, as given)")


def test_a_version_is_described_with_the_encoding_only_while_it_is_the_import(project, tmp_path):
    from workbench.data.versioning import save_version

    path = tmp_path / "w.csv"
    path.write_bytes(csv_bytes(WESTERN, "cp1252"))
    detected = import_data(project, path, name="w")
    assert describe_version(detected) == ("Dataset 'w' holds 4 rows (version 1, made by "
                                          "import, read as cp1252 (detected)).")
    latin = tmp_path / "l.csv"
    latin.write_bytes(csv_bytes(WESTERN[:1], "latin-1"))
    given = import_data(project, latin, name="l", encoding="latin-1")
    assert describe_version(given) == ("Dataset 'l' holds 1 row (version 1, made by import, "
                                       "read as latin-1).")
    cleaned = save_version(project, "w", load(project, "w").head(3), transform="clean",
                           parent=detected.version)
    assert describe_version(cleaned) == "Dataset 'w' holds 3 rows (version 2, made by clean)."


def test_cyrillic_in_cp1251_is_not_read_as_western(project, tmp_path):
    texts = ["Привет, мой заказ не пришел.", "Пожалуйста, верните деньги за заказ."]
    path = tmp_path / "ru.csv"
    path.write_bytes(csv_bytes(texts, "cp1251"))
    stored = import_data(project, path, name="ru")
    assert stored.value.transform.params["encoding"] == "cp1251"
    assert load(project, "ru")["input"].tolist() == texts


def test_an_uncertain_encoding_is_refused_naming_the_line(project, tmp_path):
    # Byte 0xA4 is ¤ in cp1252 and € in ISO-8859-15: both read as plausible text. (Line 3 is
    # French, not 'Café crčme ŕ la française' in cp1250: see the Central European tests.)
    path = tmp_path / "amb.csv"
    path.write_bytes(b"text\nplain line\nCaf\xe9 cr\xe8me \xe0 la fran\xe7aise\n"
                     b"Total 20 \xa4 please\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="amb")
    assert err.value.message == ("amb.csv is not UTF-8 and its encoding is not certain: line 4 "
                                 "reads 'Total 20 ¤ please' in cp1252 but 'Total 20 € please' "
                                 "in iso-8859-15.")
    assert "encoding='cp1252' or encoding='iso-8859-15'" in err.value.fix
    assert snapshot(project) == before
    import_data(project, path, name="amb", encoding="iso-8859-15")
    assert load(project, "amb")["input"].tolist()[-1] == "Total 20 € please"


def test_utf8_with_one_latin1_line_is_refused_naming_it(project, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_bytes("text\nCafé crème\nNaïve résumé\n".encode() + b"Fa\xe7ade\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="m")
    assert err.value.message.startswith("mixed.csv is UTF-8 except on line 4, where byte "
                                        "b'\\xe7' is not")
    # one single-byte encoding for the whole file would garble the UTF-8 lines: fix the one line
    assert err.value.fix == ("Re-type the accented characters on line 4 (or paste that row again "
                             "from a UTF-8 copy) and save the file as UTF-8; the other lines are "
                             "UTF-8, so an encoding= for the whole file would garble them.")
    assert snapshot(project) == before


# -- columns, formats and where errors are ---------------------------------------------------------

def test_duplicate_column_names_are_refused_when_mapped(project, tmp_path):
    path = tmp_path / "dupcols.csv"
    path.write_text("id,text,label,text\n1,first,a,second\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="d", expected="label")
    assert err.value.message == ("dupcols.csv has 2 columns named 'text' (columns 2 and 4), so "
                                 "it is not clear which one is the input.")
    assert "rename one in the file's header" in err.value.fix
    assert snapshot(project) == before
    # metadata='*' names no column: the duplicated ones are left out with a note, as unmapped
    star = tmp_path / "star.csv"
    star.write_text("text,notes,label,notes,channel\nhello,n1,a,n2,web\n")
    stored = import_data(project, star, name="star", expected="label", metadata="*")
    assert stored.value.transform.params["notes"] == [
        "columns 2 and 4 of star.csv are all named 'notes'; none of them was imported (they "
        "were not mapped)"]
    assert stored.value.transform.params["mapping"]["metadata"] == {"channel": "channel"}
    assert loaded(project, "star")[["input", "expected", "channel"]].to_dict("records") == [
        {"input": "hello", "expected": "a", "channel": "web"}]


def test_duplicate_column_names_not_mapped_are_named_in_a_note(project, tmp_path):
    path = tmp_path / "dupnotes.csv"
    path.write_text("text,notes,label,notes\nhello,n1,a,n2\n")
    stored = import_data(project, path, name="d", expected="label")
    assert stored.value.transform.params["notes"] == [
        "columns 2 and 4 of dupnotes.csv are all named 'notes'; none of them was imported (they "
        "were not mapped)"]
    assert "Note: columns 2 and 4" in describe_import(stored)
    assert loaded(project, "d")[["input", "expected"]].to_dict("records") == [
        {"input": "hello", "expected": "a"}]


def test_a_json_array_saved_as_jsonl_says_so(project, tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}],
                               indent=2))
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="j", expected="label")
    assert err.value.message == ("rows.jsonl holds a JSON array (line 1 starts with '['), not "
                                 "one JSON object per line as JSONL does.")
    assert err.value.fix == ("Import it as a JSON array with format='json', or rename the file "
                             "to .json.")
    assert snapshot(project) == before
    import_data(project, path, name="j", expected="label", format="json")
    assert loaded(project, "j")["input"].tolist() == ["a", "b"]


MULTILINE = ('id,text,label\n1,"first line\nsecond line\nthird line",a\n2,plain,b\n'
             '3,"two\nlines",c\n')


def test_errors_after_multiline_fields_name_the_physical_line(project, tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text(MULTILINE + "4,bad,row,extra\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="m", expected="label")
    assert err.value.message == ("multi.csv line 8 (data row 4) has 4 comma-separated fields, "
                                 "but the header has 3: '4,bad,row,extra'.")
    assert snapshot(project) == before

    path.write_text(MULTILINE + "2,again,d\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="m", id="id")
    assert err.value.message == ("Id column 'id' must be unique, but '2' appears in row 2 "
                                 "(line 5), row 4 (line 8) (1 repeated id(s) in all).")

    path.write_text(MULTILINE + '4,"never closed,d\n5,x,e\n')
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="m")
    assert err.value.message.startswith("multi.csv line 8 (data row 4) opens a quoted field "
                                        "that is never closed")
    assert snapshot(project) == before

    path.write_text(MULTILINE)
    import_data(project, path, name="m", expected="label", id="id")
    assert loaded(project, "m")["input"].tolist() == ["first line\nsecond line\nthird line",
                                                      "plain", "two\nlines"]


def test_a_missing_input_hint_never_proposes_the_answer_column(project, tmp_path):
    path = tmp_path / "qa.csv"
    path.write_text("question,answer\nWhat is 2+2?,The answer is four because two and two make "
                    "four.\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="qa", expected="answer")
    assert err.value.fix == "Map the right ones, e.g. import_data(..., input='question')."
    with pytest.raises(ImportFailed) as err:  # expected not given: 'answer' is still no input
        import_data(project, path, name="qa")
    assert err.value.fix == "Map the right ones, e.g. import_data(..., input='question')."
    odd = tmp_path / "odd.csv"
    odd.write_text("prompt_text,answer,score\nWhy is the sky blue?,Rayleigh scattering of "
                   "sunlight in the air,3\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, odd, name="odd")
    assert err.value.fix == "Map the right ones, e.g. import_data(..., input='prompt_text')."
    two = tmp_path / "two.csv"
    two.write_text("title,body,label\nLogin,I cannot log in,account\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, two, name="two", expected="label")
    assert err.value.fix == "Map the right ones, e.g. import_data(..., input='body')."


def test_progress_reports_bytes_read(project, tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("text,label\n" + "".join(f"message {i},x\n" for i in range(3000)))
    seen = []
    import_data(project, path, name="p", expected="label",
                progress=lambda d, t: seen.append((d, t)))
    size = path.stat().st_size
    assert seen and seen[-1] == (2 * size, 2 * size)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_reimport_losses_name_the_work_a_fresh_import_would_drop(project, tmp_path):
    """Importing again in a finished project starts from the raw file: the notebook asks first,
    naming what the new version lacks."""
    from workbench import pii
    from workbench.data.importing import reimport_losses
    from workbench.data.splitting import split

    path = tmp_path / "t.csv"
    rows = "\n".join(f"{i},Refund for jane{i}@example.com please,{['billing', 'other'][i % 2]}"
                     for i in range(40))
    path.write_text("id,text,label\n" + rows + "\n", encoding="utf-8")
    assert reimport_losses(project, "t") == []  # nothing there yet
    import_data(project, path, name="t", input="text", expected="label", id="id")
    assert reimport_losses(project, "t") == []  # nothing done since the import
    pii.redact_dataset(project, "t")
    split(project, "t")
    losses = reimport_losses(project, "t")
    assert len(losses) == 2
    assert losses[0].startswith("version 3: the train/validation/test split")
    assert losses[1].startswith("version 2: its personal data redacted")


# -- rows with the wrong number of fields ----------------------------------------------------------

def test_a_first_row_with_one_field_too_many_is_refused_not_shifted(project, tmp_path):
    """pandas takes the first column for the row index when the first data row has one field
    more than the header: every row would shift and the first field of each would be lost."""
    path = tmp_path / "shift.csv"
    path.write_text("text,label\nÀ bientôt, ça va,x\nbonjour,y\n", encoding="utf-8")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="s", expected="label")
    assert err.value.message == ("shift.csv line 2 (data row 1) has 3 comma-separated fields, "
                                 "but the header has 2: 'À bientôt, ça va,x'.")
    assert snapshot(project) == before


def test_a_row_with_one_field_too_many_in_a_later_chunk_is_refused(project, tmp_path,
                                                                    monkeypatch):
    from workbench.data import importing

    monkeypatch.setattr(importing, "_CHUNK_ROWS", 2)
    path = tmp_path / "later.csv"
    good = "".join(f"row {i},x\n" for i in range(5))
    path.write_text("text,label\n" + good + "Paris, France,y\n" + good)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="l", expected="label")
    assert err.value.message.startswith("later.csv line 7 (data row 6) has 3 comma-separated")
    path.write_text("text,label\nParis, France,y\n" + good * 3)  # the index taken in every chunk
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="l", expected="label")
    assert err.value.message.startswith("later.csv line 2 (data row 1) has 3 comma-separated")
    path.write_text("text,label\n" + good * 3)
    import_data(project, path, name="l", expected="label")
    assert loaded(project, "l")["input"].tolist() == [f"row {i}" for i in range(5)] * 3


def test_a_row_with_too_few_fields_is_refused_naming_it(project, tmp_path):
    """pandas fills a short row's missing fields with "" (as an empty cell): it would import with
    an empty input or label and no word."""
    path = tmp_path / "short.csv"
    path.write_text("id,text\n1,a\n2\n3,z\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="s", id="id")
    assert err.value.message == ("short.csv line 3 (data row 2) has 1 comma-separated field, but "
                                 "the header has 2: '2'.")
    assert "one field per column" in err.value.fix
    assert snapshot(project) == before
    tsv = tmp_path / "short.tsv"
    tsv.write_text('text\tlabel\tnote\n"two\nlines"\tx\t\nb\ty\n')
    with pytest.raises(ImportFailed) as err:
        import_data(project, tsv, name="s", expected="label")
    assert err.value.message == ("short.tsv line 4 (data row 2) has 2 tab-separated fields, but "
                                 "the header has 3: 'b\\ty'.")
    # empty fields written out are fine, and so is an empty last column
    path.write_text("id,text,label\n1,a,\n2,,x\n3,z,\n")
    import_data(project, path, name="s", id="id", expected="label")
    assert loaded(project, "s")["input"].tolist() == ["a", "", "z"]


@pytest.mark.parametrize("given", ["utf-8", "UTF8", "utf_8"])
def test_utf8_with_bom_and_encoding_given_as_utf8(project, tmp_path, given):
    csv = tmp_path / "bom.csv"
    csv.write_bytes("\ufeffid,text\nA1,naïve résumé\n".encode())
    stored = import_data(project, csv, name="bom", id="id", encoding=given)
    params = stored.value.transform.params
    assert (params["encoding"], params["encoding_detected"]) == ("utf-8-sig", False)
    assert loaded(project, "bom")[["id", "input"]].to_dict("records") == [
        {"id": "A1", "input": "naïve résumé"}]
    jsonl = tmp_path / "bom.jsonl"
    jsonl.write_bytes("\ufeff".encode() + b'{"text": "caf\xc3\xa9"}\n')
    import_data(project, jsonl, name="bomj", encoding=given)
    assert loaded(project, "bomj")["input"].tolist() == ["café"]


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_bom_says_which_encoding_to_pass(project, tmp_path, codec):
    path = tmp_path / "wide.csv"
    path.write_bytes("text,label\nhello,greet\nçà et là,other\n".encode(codec))
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="w", expected="label")
    assert err.value.message == (f"wide.csv looks like {codec.upper()} without a byte-order mark "
                                 "(every other byte is zero; its first line reads "
                                 "'text,label' in it).")
    assert err.value.fix == f"Pass encoding='{codec}', or save the file as UTF-8."
    assert "\\x00" not in str(err.value)
    assert snapshot(project) == before
    import_data(project, path, name="w", expected="label", encoding=codec)
    assert loaded(project, "w")["input"].tolist() == ["hello", "çà et là"]


# -- Central European and Turkish code pages -------------------------------------------------------

FRENCH = ["Très bien, merci. Le café était froid, où est ma commande ?",
          "Je voudrais être remboursé : la livraison a déjà trois jours de retard.",
          "Ça ne marche plus après la mise à jour, c'est très gênant."]
SPANISH = ["¿Dónde está mi pedido? La niña pagó con tarjeta, señor.",
           "No puedo iniciar sesión; la contraseña no funciona desde ayer.",
           "Quiero cancelar la suscripción y recibir el reembolso del año."]
PORTUGUESE = ["Não recebi a encomenda; a situação é crítica, ação já!",
              "A fatura veio com o preço errado e não consigo alterá-la.",
              "Obrigado pela atenção, mas o problema continua após a atualização."]
GERMAN = ["Grüße aus München: die Größe der Straßenschuhe ist falsch.",
          "Ich möchte mein Abonnement kündigen, bitte bestätigen Sie das.",
          "Die Rückerstattung für die Bestellung fehlt seit über zwei Wochen."]


@pytest.mark.parametrize("codec", ["latin-1", "cp1252"])
@pytest.mark.parametrize("texts", [FRENCH, SPANISH, PORTUGUESE, GERMAN],
                         ids=["french", "spanish", "portuguese", "german"])
def test_one_western_language_is_not_taken_for_central_european(project, tmp_path, codec, texts):
    """cp1250 reads è as č, à as ŕ, ñ as ń, ã as ă, õ as ő...: each word may still look Czech or
    Polish, but no one Central European language holds the letters of the whole file."""
    path = tmp_path / "one.csv"
    path.write_bytes(csv_bytes(texts, codec))
    stored = import_data(project, path, name="one")
    assert stored.value.transform.params["encoding"] == "cp1252"
    assert load(project, "one")["input"].tolist() == texts


@pytest.mark.parametrize("codec,texts", [
    ("cp1250", ["Árvíztűrő tükörfúrógép Kőszívű", "A szállítás késik, kérem a pénzemet vissza."]),
    ("cp1250", ["Zażółć gęślą jaźń", "Przesyłka nie dotarła, proszę o zwrot pieniędzy."]),
    ("cp1250", ["Příliš žluťoučký kůň úpěl ďábelské ódy", "Zásilka nedorazila, prosím o vrácení."]),
    ("cp1254", ["Şişli'de çok güzel bir gün geçirdik, ağaçlar yeşil.",
                "Siparişim gelmedi, lütfen paramı iade edin."]),
], ids=["hungarian", "polish", "czech", "turkish"])
def test_central_european_and_turkish_code_pages_are_read_right(project, tmp_path, codec, texts):
    path = tmp_path / "ce.csv"
    path.write_bytes(csv_bytes(texts, codec))
    stored = import_data(project, path, name="ce")
    params = stored.value.transform.params
    assert (params["encoding"], params["encoding_detected"]) == (codec, True)
    assert load(project, "ce")["input"].tolist() == texts


def test_hungarian_is_not_read_as_western(project, tmp_path):
    """The reviewer's file: the old detector read it as cp1252 ('Árvíztûrõ'), without a word."""
    path = tmp_path / "hu.csv"
    path.write_bytes(csv_bytes(["Árvíztűrő tükörfúrógép Kőszívű"], "cp1250"))
    import_data(project, path, name="hu")
    assert load(project, "hu")["input"].tolist() == ["Árvíztűrő tükörfúrógép Kőszívű"]


def test_a_word_plausible_in_several_code_pages_is_refused(project, tmp_path):
    """'Şişli' alone reads as a word in cp1252 (Icelandic þ), cp1250 (Romanian ţ) and cp1254
    (Turkish ş): nothing in the file tells them apart, so the import asks."""
    path = tmp_path / "tr.csv"
    path.write_bytes(csv_bytes(["Şişli"], "cp1254"))
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="tr")
    assert err.value.message == ("tr.csv is not UTF-8 and its encoding is not certain: line 2 "
                                 "reads '\"Þiþli\"' in cp1252 but '\"Ţiţli\"' in cp1250 or "
                                 "'\"Şişli\"' in cp1254.")
    assert "encoding='cp1254'" in err.value.fix
    assert snapshot(project) == before
    import_data(project, path, name="tr", encoding="cp1254")
    assert load(project, "tr")["input"].tolist() == ["Şişli"]
    # 'Café crème' alone is as much Czech read as cp1250 ('crčme'); a sentence more tells
    path.write_bytes(csv_bytes(["Café crème"], "cp1252"))
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="fr")
    assert err.value.message == ("tr.csv is not UTF-8 and its encoding is not certain: line 2 "
                                 "reads '\"Café crème\"' in cp1252 but '\"Café crčme\"' in cp1250.")
    assert err.value.fix == ("Pass the encoding that shows that line right, e.g. "
                             "encoding='cp1252' or encoding='cp1250' (or save the file as UTF-8).")
    path.write_bytes(csv_bytes(["Café crème", "Ça va très bien, merci à vous."], "cp1252"))
    import_data(project, path, name="fr")
    assert load(project, "fr")["input"].tolist()[1] == "Ça va très bien, merci à vous."


# -- other separators ------------------------------------------------------------------------------

@pytest.mark.parametrize("sep,word", [(";", "semicolons"), ("|", "vertical bars")])
def test_a_file_separated_by_another_character_says_so(project, tmp_path, sep, word):
    path = tmp_path / "semi.csv"
    path.write_text(f"text{sep}label\nhello{sep}pos\nbye, then{sep}neg\n")
    before = snapshot(project)
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="s", expected="label")
    assert err.value.message == (f"semi.csv looks separated by {word}, not commas: its header "
                                 f"is one column, 'text{sep}label'.")
    assert err.value.fix == (f"Pass sep='{sep}' (or save the file as CSV with commas).")
    assert f"input='text{sep}label'" not in str(err.value)
    assert snapshot(project) == before
    stored = import_data(project, path, name="s", expected="label", sep=sep)
    assert stored.value.transform.params["sep"] == sep
    assert loaded(project, "s")[["input", "expected"]].to_dict("records") == [
        {"input": "hello", "expected": "pos"}, {"input": "bye, then", "expected": "neg"}]


def test_tabs_in_a_csv_say_format_tsv_and_separators_are_never_proposed(project, tmp_path):
    path = tmp_path / "tabs.csv"
    path.write_text("text\tlabel\nhello\tpos\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, path, name="t", expected="label")
    assert err.value.message == ("tabs.csv looks separated by tabs, not commas: its header is "
                                 "one column, 'text\\tlabel'.")
    assert err.value.fix == "Pass format='tsv' (or save the file as CSV with commas)."
    import_data(project, path, name="t", expected="label", format="tsv")
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("id,message;label\n1,hello;pos\n")
    with pytest.raises(ImportFailed) as err:
        import_data(project, mixed, name="m")
    assert "message;label" not in err.value.fix
    with pytest.raises(ImportFailed, match="sep="):
        import_data(project, mixed, name="m", sep="ab")
