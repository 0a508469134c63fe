"""Import a dataset from CSV, TSV, JSONL, a JSON array, Parquet or a pandas DataFrame.

A column mapping says which source column is the ``input``, which is the ``expected`` output (label
or reference answer, optional) and which are kept as metadata. The text encoding is detected
(charset-normalizer) when it is not given, and the whole file is read and checked before anything
is written: a bad file raises a ``DatasetError`` naming the row or column and the fix, and leaves
the project exactly as it was. A good file is copied into ``data/raw/`` (named by its content hash)
and becomes a new dataset version whose transform records the file, format, encoding and mapping.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.versions import DatasetError, DatasetVersion, save_version
from workbench.records import Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

FORMATS = ("csv", "tsv", "jsonl", "json", "parquet")
_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
             ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
RESERVED = ("id", "input", "expected")
SPLIT_NAMES = ("train", "validation", "test")
_SHOWN = 5  # bad rows named in an error message


class ImportFailed(DatasetError):
    """A file or DataFrame could not be imported."""


@dataclass
class _Parsed:
    frame: pd.DataFrame
    locate: Any  # row position -> "line 7" / "row 3"; how a person finds the row in the source
    notes: list[str] = field(default_factory=list)


# -- public ----------------------------------------------------------------------------------------

def import_data(project: Project, source: str | os.PathLike | pd.DataFrame, *, name: str,
                input: str = "text", expected: str | None = None,
                metadata: Sequence[str] | Mapping[str, str] | str = (), id: str | None = None,
                format: str | None = None, encoding: str | None = None
                ) -> Stored[DatasetVersion]:
    """Import ``source`` as a new version of dataset ``name``.

    ``input``/``expected``/``id`` name source columns; ``metadata`` is a list of source columns to
    keep, a ``{source: new_name}`` mapping, or ``"*"`` for every other column. Without ``id`` each
    row gets a stable id from a hash of its input (plus which repeat of that input it is, so exact
    duplicates stay distinct and re-importing the same rows gives the same ids).

    Importing into a name that already exists makes its next version, with the version it
    replaces as parent, so ``diff`` shows what the new file changed."""
    import pandas as pd

    if not name or not isinstance(name, str):
        raise ImportFailed("The dataset needs a name.", "Pass name='support' (any short word).")
    raw: bytes | None = None
    params: dict[str, Any]
    if isinstance(source, pd.DataFrame):
        fmt = "dataframe"
        parsed = _Parsed(source.reset_index(drop=True),
                         _locator(source.index, "row with index"))
        params = {"source": "DataFrame", "format": fmt, "encoding": None}
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            where = "is a folder" if path.is_dir() else "does not exist"
            raise ImportFailed(f"{path} {where}, so there is nothing to import.",
                               "Pass the path of a CSV, TSV, JSONL, JSON or Parquet file.")
        fmt = _format_of(path, format)
        raw = path.read_bytes()
        if not raw.strip():
            raise ImportFailed(f"{path.name} is empty.", "Choose a file with a header and rows.")
        used_encoding = None
        if fmt == "parquet":
            parsed = _read_parquet(raw, path.name)
        else:
            text, used_encoding = _decode(raw, encoding, path.name)
            parsed = _PARSERS[fmt](text, path.name)
        params = {"source": path.name, "format": fmt, "encoding": used_encoding}

    frame, mapping, notes = _map_columns(parsed, input=input, expected=expected,
                                         metadata=metadata, id_column=id,
                                         source_label=params["source"])
    params["mapping"] = mapping
    params["rows"] = len(frame)
    if notes or parsed.notes:
        params["notes"] = parsed.notes + notes
    # Everything above only read; from here on the project changes, and a failure undoes it.
    return _store(project, name, frame, raw, params, fmt)


# -- reading ---------------------------------------------------------------------------------------

def _format_of(path: Path, format: str | None) -> str:
    if format is not None:
        fmt = format.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "pq": "parquet", "tab": "tsv"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ImportFailed(f"Unknown format {format!r}.", f"Use one of {list(FORMATS)}.")
        return fmt
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ImportFailed(f"Cannot tell the format of {path.name} from its suffix "
                           f"{path.suffix or '(none)'!r}.",
                           f"Pass format= one of {list(FORMATS)}, or rename the file.")
    return fmt


def _decode(raw: bytes, encoding: str | None, label: str) -> tuple[str, str]:
    """The file's text and the encoding that read it: the given one, else UTF-8 (with or without
    a byte-order mark), else what charset-normalizer detects."""
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportFailed(f"{encoding!r} is not an encoding Python knows.",
                               "Use a name like 'utf-8', 'latin-1' or 'cp1252', or leave "
                               "encoding out to detect it.") from None
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError as exc:
            raise _decode_error(raw, exc, label, encoding) from None
        return text.removeprefix("\ufeff"), encoding
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8):].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise _decode_error(raw, exc, label, "utf-8-sig") from None
    if not raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            pass
    from charset_normalizer import from_bytes

    matches = from_bytes(raw)
    best = matches.best()
    if best is None:
        raise ImportFailed(f"{label} does not look like text in any known encoding (it may be "
                           "binary, or a Parquet/Excel file with the wrong suffix).",
                           "Pass encoding= if you know it, or format='parquet' for Parquet.")
    # A short Western-European sample decodes equally cleanly as several code pages; charset-
    # normalizer then picks one arbitrarily (cp1250 turns "crème" into "crčme"). On a tie prefer
    # cp1252, what Excel and most Western tools write.
    for match in matches:
        if (match.chaos, match.coherence) == (best.chaos, best.coherence) and \
                "cp1252" in match.could_be_from_charset:
            return raw.decode("cp1252"), "cp1252"
    return str(best).removeprefix("\ufeff"), best.encoding


def _decode_error(raw: bytes, exc: UnicodeDecodeError, label: str, encoding: str) -> DatasetError:
    line = raw[:exc.start].count(b"\n") + 1
    return ImportFailed(f"{label} is not valid {encoding}: byte {raw[exc.start:exc.start + 1]!r} "
                        f"on line {line} cannot be decoded.",
                        "Leave encoding out to detect it, or pass the file's real encoding "
                        "(e.g. encoding='cp1252').")


def _read_delimited(text: str, label: str, sep: str) -> _Parsed:
    import pandas as pd

    try:
        # Every cell as written: "NA" or "null" in a support message is text, not a missing value;
        # an empty cell is "" (the profile reports it); only a row that is short of fields is null.
        frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False,
                            na_values=[], skip_blank_lines=True)
    except pd.errors.EmptyDataError:
        raise ImportFailed(f"{label} has no header row.",
                           "The first line must name the columns.") from None
    except pd.errors.ParserError as exc:
        kind = "tab" if sep == "\t" else "comma"
        raise ImportFailed(f"{label} could not be parsed: {str(exc).strip()}.",
                           f"That row has more {kind}-separated fields than the header: quote "
                           "fields that contain the separator (\"a, b\"), or pass format='tsv'/"
                           "'csv' if the separator is the other one.") from None
    return _Parsed(frame, lambda i: f"row {i + 1} (line {i + 2} if no field spans lines)")


def _read_csv(text: str, label: str) -> _Parsed:
    return _read_delimited(text, label, ",")


def _read_tsv(text: str, label: str) -> _Parsed:
    return _read_delimited(text, label, "\t")


def _read_jsonl(text: str, label: str) -> _Parsed:
    import pandas as pd

    records, lines = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{label} line {number} is not valid JSON: {exc.msg} at column "
                               f"{exc.colno}: {_clip(line)}",
                               "Fix or delete that line; each line must be one JSON object.") \
                from None
        if not isinstance(value, dict):
            raise ImportFailed(f"{label} line {number} is a JSON {type(value).__name__}, not an "
                               f"object: {_clip(line)}",
                               "Write each row as an object, e.g. {\"text\": \"...\", "
                               "\"label\": \"...\"}.")
        records.append(value)
        lines.append(number)
    if not records:
        raise ImportFailed(f"{label} has no rows.", "Add one JSON object per line.")
    return _Parsed(pd.DataFrame.from_records(records), lambda i: f"line {lines[i]}")


def _read_json(text: str, label: str) -> _Parsed:
    import pandas as pd

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportFailed(f"{label} is not valid JSON: {exc.msg} at line {exc.lineno} column "
                           f"{exc.colno}.", "Fix the file, or save it as JSONL (one object per "
                           "line) and pass format='jsonl'.") from None
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise ImportFailed(f"{label} holds a JSON object, not an array of rows.",
                               "Write the rows as a JSON array: [{\"text\": ...}, ...].")
        value = value[lists[0]]
    if not isinstance(value, list) or not value:
        raise ImportFailed(f"{label} holds no rows.", "Write the rows as a JSON array of objects.")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise ImportFailed(f"{label} item {i + 1} of the array is a JSON "
                               f"{type(item).__name__}, not an object.",
                               "Make every item an object with named fields.")
    return _Parsed(pd.DataFrame.from_records(value), lambda i: f"item {i + 1}")


def _read_parquet(raw: bytes, label: str) -> _Parsed:
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise ImportFailed(f"{label} could not be read as Parquet: {exc}.",
                           "Check the file is Parquet (not CSV renamed) and not truncated; "
                           "pass format= if the suffix is wrong.") from None
    return _Parsed(frame.reset_index(drop=True), lambda i: f"row {i + 1}")


_PARSERS = {"csv": _read_csv, "tsv": _read_tsv, "jsonl": _read_jsonl, "json": _read_json}


def _locator(index, prefix: str):
    labels = list(index)
    return lambda i: f"{prefix} {labels[i]!r}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# -- mapping and checks ----------------------------------------------------------------------------

def _map_columns(parsed: _Parsed, *, input: str, expected: str | None,
                 metadata: Sequence[str] | Mapping[str, str] | str, id_column: str | None,
                 source_label: str) -> tuple[pd.DataFrame, dict[str, Any], list[str]]:
    import pandas as pd

    src = parsed.frame
    available = [str(c) for c in src.columns]
    src.columns = available
    wanted = {"input": input, "expected": expected, "id": id_column}
    if isinstance(metadata, str):
        if metadata != "*":
            metadata = [metadata]
        else:
            used = {c for c in wanted.values() if c}
            metadata = [c for c in available if c not in used]
    meta_map = dict(metadata) if isinstance(metadata, Mapping) else {c: c for c in metadata}
    missing = [c for c in [input, expected, id_column, *meta_map] if c and c not in available]
    if missing:
        guesses = []
        if input not in available:
            guesses.append(f"input={_closest(input, available) or _longest_text(src)!r}")
        for role, column in (("expected", expected), ("id", id_column)):
            if column and column not in available:
                guess = _closest(column, available)
                guesses.append(f"{role}={guess!r}" if guess else f"{role}=<one of the columns>")
        if any(c not in available for c in meta_map):
            guesses.append("metadata=[...]")
        raise ImportFailed(f"{source_label} has no column(s) {missing}; its columns are "
                           f"{available}.",
                           f"Map the right ones, e.g. import_data(..., {', '.join(guesses)}).")
    for role, column in wanted.items():
        if column and column in meta_map:
            raise ImportFailed(f"Column {column!r} is mapped both as {role} and as metadata.",
                               "Map each source column once.")
    clashes = [new for new in meta_map.values() if new in RESERVED]
    if clashes:
        raise ImportFailed(f"Metadata column(s) {clashes} would take a reserved name "
                           f"({list(RESERVED)}).",
                           "Rename them with a mapping, e.g. metadata={'id': 'source_id'}.")
    if len(set(meta_map.values())) != len(meta_map):
        raise ImportFailed("Two metadata columns map to the same new name.",
                           "Give each metadata column its own name.")
    if src.empty:
        raise ImportFailed(f"{source_label} has a header but no rows.", "Add rows to import.")

    locate = parsed.locate
    notes: list[str] = []
    texts = src[input]
    bad = [i for i, v in enumerate(texts.tolist()) if not isinstance(v, str)]
    if bad:
        shown = ", ".join(f"{locate(i)} ({_describe(texts.iloc[i])})" for i in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise ImportFailed(f"Column {input!r} (the input) must hold text in every row; "
                           f"{len(bad)} row(s) do not: {shown}{more}.",
                           "Fill in or delete those rows in the source (or drop them from the "
                           "DataFrame with .dropna(subset=[...])), then import again.")
    out = pd.DataFrame({"input": texts.astype(object)})
    if expected is not None:
        values = src[expected].tolist()
        out["expected"] = [_expected_value(v) for v in values]
        if any(isinstance(v, (dict, list)) for v in values):
            notes.append(f"structured values in {expected!r} were stored as JSON text")
    else:
        out["expected"] = None
    if id_column is not None:
        ids = src[id_column]
        nulls = [i for i, v in enumerate(ids.tolist()) if _is_missing(v) or v == ""]
        if nulls:
            raise ImportFailed(f"Id column {id_column!r} is empty in "
                               f"{', '.join(locate(i) for i in nulls[:_SHOWN])}.",
                               "Give every row an id, or leave id= out to make ids.")
        ids = ids.map(_id_text)
        dupes = ids[ids.duplicated(keep=False)]
        if not dupes.empty:
            first = dupes.iloc[0]
            rows = [locate(i) for i in dupes.index[dupes == first][:_SHOWN]]
            raise ImportFailed(f"Id column {id_column!r} must be unique, but {first!r} appears "
                               f"in {', '.join(rows)} ({dupes.nunique()} repeated id(s) in all).",
                               "Make the ids unique in the source, or leave id= out to make "
                               "ids.")
        out.insert(0, "id", ids.astype(object).tolist())
    else:
        out.insert(0, "id", make_ids(out["input"]))
    for column, new in meta_map.items():
        values, note = _metadata_values(src[column], column)
        out[new] = values
        if note:
            notes.append(note)
    if "split" in out.columns:
        unknown = sorted(set(out["split"].dropna().astype(str)) - set(SPLIT_NAMES))
        if unknown:
            raise ImportFailed(f"Metadata column 'split' holds {unknown}, but a split column may "
                               f"only hold {list(SPLIT_NAMES)}.",
                               "Rename it with metadata={'split': 'source_split'}.")
    _check_storable(out, source_label)
    mapping = {"input": input, "expected": expected, "id": id_column, "metadata": meta_map}
    return out, mapping, notes


def make_ids(texts: pd.Series) -> list[str]:
    """Stable row ids: a hash of the input and which repeat of it the row is. Re-importing the
    same rows (even reordered, or with rows added) gives the same ids, so diffs stay readable."""
    repeat = texts.groupby(texts, sort=False).cumcount().tolist()
    return [hashlib.blake2b(f"{t}\x1f{k}".encode(), digest_size=8).hexdigest()
            for t, k in zip(texts.tolist(), repeat)]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or \
        type(value).__name__ in ("NAType", "NaTType")


def _describe(value: Any) -> str:
    return "empty" if _is_missing(value) else f"{type(value).__name__} {_clip(repr(value), 30)}"


def _expected_value(value: Any) -> str | None:
    if _is_missing(value):
        return None
    if isinstance(value, str):
        return value if value != "" else None
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if hasattr(value, "tolist"):  # numpy scalars and arrays (from Parquet)
        value = value.tolist()
        return json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _metadata_values(series: pd.Series, column: str) -> tuple[Any, str | None]:
    """Metadata as Parquet can store it: CSV text that is all numbers becomes numbers; nested or
    mixed values become JSON text (Parquet needs one type per column)."""
    import pandas as pd

    if series.dtype == object or pd.api.types.is_string_dtype(series.dtype):
        values = series.tolist()
        present = [v for v in values if not _is_missing(v)]
        if present and all(isinstance(v, str) for v in present):
            filled = [v for v in present if v != ""]
            if filled:
                numbers = pd.to_numeric(pd.Series(filled), errors="coerce")
                if numbers.notna().all():
                    return pd.to_numeric(series.replace("", None)), None
            return series.astype(object).where(series.notna(), None).tolist(), None
        types = {type(v) for v in present}
        if len(types) > 1 or any(isinstance(v, (dict, list)) for v in present):
            converted = [None if _is_missing(v) else
                         (v if isinstance(v, str) else json.dumps(_plain(v), ensure_ascii=False))
                         for v in values]
            return converted, f"metadata {column!r} mixed value types and was stored as text"
        return values, None
    return series.to_numpy(), None


def _plain(value: Any) -> Any:
    return value.tolist() if hasattr(value, "tolist") else value


def _check_storable(frame: pd.DataFrame, source_label: str) -> None:
    """Catch what Parquet would refuse now, before anything is written."""
    import pyarrow as pa

    for column in frame.columns:
        try:
            pa.array(frame[column], from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise ImportFailed(f"Column {column!r} from {source_label} cannot be stored: {exc}.",
                               "Give the column one value type (all text or all numbers), or "
                               "leave it out of metadata.") from None


def _closest(name: str, available: list[str]) -> str | None:
    import difflib

    folded = {c.casefold().strip(): c for c in available}
    if name.casefold().strip() in folded:
        return folded[name.casefold().strip()]
    match = difflib.get_close_matches(name, available, n=1, cutoff=0.75)
    return match[0] if match else None


def _longest_text(frame: pd.DataFrame) -> str | None:
    """The column that most looks like free text: the longest strings on average."""
    best, best_length = None, -1.0
    for column in frame.columns:
        values = frame[column].head(200)
        texts = [v for v in values.tolist() if isinstance(v, str)]
        if texts:
            length = sum(map(len, texts)) / len(texts)
            if length > best_length:
                best, best_length = column, length
    return best


# -- writing ---------------------------------------------------------------------------------------

def _store(project: Project, name: str, frame: pd.DataFrame, raw: bytes | None,
           params: dict[str, Any], fmt: str) -> Stored[DatasetVersion]:
    from workbench.data.versions import frame_hash, get_version
    from workbench.fsutil import atomic_write_bytes

    created: list[Path] = []  # what this import added, removed again if it fails
    raw_dir = project.data_dir / "raw"
    try:
        if raw is not None:
            digest = hashlib.sha256(raw).hexdigest()
            suffix = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "json": ".json",
                      "parquet": ".parquet"}[fmt]
            raw_path = raw_dir / f"{digest[:16]}{suffix}"
            params["raw_file"] = raw_path.relative_to(project.path).as_posix()
            params["raw_sha256"] = digest
            if not raw_dir.exists():
                raw_dir.mkdir(parents=True)
                created.append(raw_dir)
            if not raw_path.exists():
                atomic_write_bytes(raw_path, raw)
                created.append(raw_path)
        try:
            parent = get_version(project, name).version
        except DatasetError:
            parent = None
        version_file = project.path / f"data/{frame_hash(frame.reset_index(drop=True))[:16]}" \
                                      ".parquet"
        if not version_file.exists():
            created.append(version_file)
        return save_version(project, name, frame, transform="import", params=params,
                            parent=parent)
    except BaseException:
        for path in reversed(created):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except OSError:
                pass
        raise
