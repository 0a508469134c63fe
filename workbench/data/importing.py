"""Import a dataset from CSV, TSV, JSONL, a JSON array, Parquet or a pandas DataFrame.

A column mapping says which source column is the ``input``, which is the ``expected`` output (label
or reference answer, optional) and which are kept as metadata. The whole file is read and checked
before anything is written: a bad file raises an ``ImportFailed`` naming the physical line (and the
data row) or the column and the fix, and leaves the project exactly as it was. A good file is
copied into ``data/raw/`` (named by its content hash) and becomes a new dataset version whose
transform records the file, format, encoding (and whether it was detected) and mapping.

Files are read in chunks, never whole: CSV and TSV through pandas' parser 100,000 rows at a time,
JSONL line by line (a JSON array is the exception: it is one document). The encoding, when it is
not given, is UTF-8 if the file is valid UTF-8; otherwise the Western European code pages and the
Central European (cp1250) and Turkish (cp1254) ones are tried first. A single-byte file decodes in
all of them, so each reading is judged: it must be clean (no symbols glued to letters: Polish
'Za¿ó³æ' in cp1252 is not), then the one whose accented words fit the alphabets of the fewest
languages wins (``_plausibility``: Hungarian 'Kőszívű' read as cp1252 is 'Kõszívû', a word no
language writes; French 'crème à' read as cp1250 is 'crčme ŕ', Czech and Slovak at once). If
none is clean, charset-normalizer proposes one. When two readings are equally plausible but
differ on characters the file holds ('Şişli' alone is Turkish, or Icelandic 'Þiþli' in cp1252,
or Romanian 'Ţiţli' in cp1250), the import refuses and shows the first line that reads
differently, rather than guess.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import json
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.data.versioning import DatasetError, DatasetVersion, save_version
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
_BLOCK = 1 << 20  # bytes read at a time
_CHUNK_ROWS = 100_000  # rows parsed at a time
_BAR_BYTES = 20_000_000  # progress=None shows a bar for files this large
_SAMPLE_BYTES = 1 << 20  # lines with non-ASCII bytes kept to judge an encoding

Progress = bool | Callable[[int, int], None] | None


class ImportFailed(DatasetError):
    """A file or DataFrame could not be imported."""


@dataclass
class _Parsed:
    frame: pd.DataFrame  # the mapped source columns only
    locate: Any  # row position -> "row 3 (line 7)"; how a person finds the row in the source
    plan: _Plan
    notes: list[str] = field(default_factory=list)


@dataclass
class _Plan:
    """Which source column plays which part."""

    input: str
    expected: str | None
    id: str | None
    metadata: dict[str, str]

    @property
    def needed(self) -> list[str]:
        return list(dict.fromkeys(c for c in [self.input, self.expected, self.id,
                                              *self.metadata] if c))

    def mapping(self) -> dict[str, Any]:
        return {"input": self.input, "expected": self.expected, "id": self.id,
                "metadata": self.metadata}


# -- public ----------------------------------------------------------------------------------------

def import_data(project: Project, source: str | os.PathLike | pd.DataFrame, *, name: str,
                input: str = "text", expected: str | None = None,
                metadata: Sequence[str] | Mapping[str, str] | str = (), id: str | None = None,
                format: str | None = None, encoding: str | None = None,
                sep: str | None = None, progress: Progress = None) -> Stored[DatasetVersion]:
    """Import ``source`` as a new version of dataset ``name``.

    ``input``/``expected``/``id`` name source columns; ``metadata`` is a list of source columns to
    keep, a ``{source: new_name}`` mapping, or ``"*"`` for every other column. Without ``id`` each
    row gets a stable id from a hash of its input (plus which repeat of that input it is, so exact
    duplicates stay distinct and re-importing the same rows gives the same ids).

    ``sep`` is the field separator of a CSV file that does not use commas (``sep=';'``, as
    spreadsheets write in many countries); TSV is ``format='tsv'``.

    ``encoding`` is detected when left out; the version's ``transform.params`` record the one used
    (``encoding``) and whether it was detected (``encoding_detected``). ``progress`` is True (a
    tqdm bar), False, a function ``(bytes_done, bytes_total)`` (the file is read twice: once to
    check its bytes and encoding, once for its rows), or None: a bar for files over 20 MB.

    Importing into a name that already exists makes its next version, with the version it
    replaces as parent, so ``diff`` shows what the new file changed."""
    import pandas as pd

    if not name or not isinstance(name, str):
        raise ImportFailed("The dataset needs a name.", "Pass name='support' (any short word).")
    wanted = dict(input=input, expected=expected, metadata=metadata, id_column=id)
    params: dict[str, Any]
    scan: _Scan | None = None
    path: Path | None = None
    if isinstance(source, pd.DataFrame):
        fmt = "dataframe"
        src = source.reset_index(drop=True)
        plan, notes = _plan([str(c) for c in src.columns], **wanted, source_label="The DataFrame",
                            preview=lambda: src, rename_hint="rename one (df.columns = [...])")
        src = src.iloc[:, [list(map(str, src.columns)).index(c) for c in plan.needed]]
        src.columns = plan.needed
        parsed = _Parsed(src, _locator(source.index, "row with index"), plan, notes)
        params = {"source": "DataFrame", "format": fmt, "encoding": None}
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            where = "is a folder" if path.is_dir() else "does not exist"
            raise ImportFailed(f"{path} {where}, so there is nothing to import.",
                               "Pass the path of a CSV, TSV, JSONL, JSON or Parquet file.")
        fmt = _format_of(path, format)
        label = path.name
        if sep is not None and (fmt not in ("csv", "tsv") or not isinstance(sep, str)
                                or len(sep) != 1 or sep in "\"\r\n"):
            raise ImportFailed(f"sep={sep!r} cannot be used: it is one character that separates "
                               "the fields of a CSV or TSV file.",
                               "Pass e.g. sep=';', or leave sep out for commas (tabs in TSV).")
        bar = _Bar(progress, 2 * path.stat().st_size, label)
        try:
            scan = _scan(path, None if fmt == "parquet" else encoding, label, bar,
                         text=fmt != "parquet")
            if scan.blank:
                raise ImportFailed(f"{label} is empty.", "Choose a file with a header and rows.")
            used_encoding, detected = None, None
            if fmt == "parquet":
                parsed = _read_parquet(path, label, wanted)
            else:
                if encoding is not None:
                    used_encoding, detected = scan.encoding, False
                else:
                    used_encoding, detected = _detect(path, scan, label), True
                if fmt in _SEPARATORS:
                    parsed = _read_delimited(path, used_encoding, label, wanted, bar,
                                             sep or _SEPARATORS[fmt])
                else:
                    parsed = _READERS[fmt](path, used_encoding, label, wanted, bar)
            bar.finish()
        finally:
            bar.close()
        params = {"source": label, "format": fmt, "encoding": used_encoding}
        if detected is not None:
            params["encoding_detected"] = detected
        if sep is not None:
            params["sep"] = sep

    frame, plan, notes = _build(parsed, source_label=params["source"])
    params["mapping"] = plan.mapping()
    params["rows"] = len(frame)
    if notes or parsed.notes:
        params["notes"] = parsed.notes + notes
    # Everything above only read; from here on the project changes, and a failure undoes it.
    return _store(project, name, frame, path, scan, params, fmt)


def describe_import(stored: Stored[DatasetVersion]) -> str:
    """One sentence on what an import made, for notebooks and the command line: rows, dataset
    version, file, format and the encoding that read it (and whether it was detected), then one
    line per note (duplicate column names left out, values stored as text)."""
    value = stored.value
    params = value.transform.params
    how = params.get("format", "?")
    if params.get("encoding"):
        how += f"; encoding {params['encoding']}"
        if "encoding_detected" in params:
            how += ", detected" if params["encoding_detected"] else ", as given"
    rows = f"{value.rows:,} row{'s' if value.rows != 1 else ''}"
    lines = [f"Imported {rows} from {params.get('source', '?')} ({how}) as version "
             f"{stored.version} of '{stored.name}'."]
    lines += [f"Note: {note}." for note in params.get("notes", [])]
    return "\n".join(lines)


def describe_version(stored: Stored[DatasetVersion]) -> str:
    """One sentence on a dataset version as it stands, for a notebook that finds the dataset
    already in the project: rows, version, the step that made it and, when that step was the
    import, the encoding that read the file (``(detected)`` when it was not given):
    ``Dataset 'support' holds 120 rows (version 1, made by import, read as cp1252 (detected)).``
    """
    value = stored.value
    params = value.transform.params
    read_as = ""
    if value.transform.name == "import" and params.get("encoding"):
        read_as = f", read as {params['encoding']}" + \
            (" (detected)" if params.get("encoding_detected") else "")
    rows = f"{value.rows:,} row{'s' if value.rows != 1 else ''}"
    return (f"Dataset '{stored.name}' holds {rows} (version {stored.version}, made by "
            f"{value.transform.name}{read_as}).")


_WORK_SINCE_IMPORT = {
    "redact_pii": "its personal data redacted (a fresh import brings the raw values back)",
    "clean": "the cleaning steps",
    "label": "the labels fixed by hand",
    "split": "the train/validation/test split",
    "add_test_cases": "the test cases added from production",
}


def reimport_losses(project: Project, name: str) -> list[str]:
    """What the newest version of dataset ``name`` holds that a fresh import of the raw file
    would not: the work done on it since it was last imported (redaction, cleaning, labels,
    the split, added test cases), newest first. Empty when there is no such dataset or nothing
    was done since the import, so importing again is safe; otherwise ask before importing.
    """
    from workbench.data.versioning import datasets, get_version

    if name not in datasets(project):
        return []
    losses: list[str] = []
    stored = get_version(project, name)
    while stored.value.transform.name != "import":
        value = stored.value
        what = _WORK_SINCE_IMPORT.get(value.transform.name, f"the '{value.transform.name}' step")
        if value.transform.name == "add_test_cases":
            cases = value.transform.params.get("cases") or []
            what += f" ({len(cases)} rows)" if cases else ""
        losses.append(f"version {stored.version}: {what}")
        if value.parent is None:
            break
        stored = get_version(project, name, value.parent)
    return losses


# -- progress --------------------------------------------------------------------------------------

class _Bar:
    def __init__(self, progress: Progress, total: int, label: str):
        self.total, self.done = total, 0
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True or (progress is None and total >= 2 * _BAR_BYTES):
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"import {label}")

    def add(self, n: int) -> None:
        n = min(n, self.total - self.done)
        if n <= 0:
            return
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.callback is not None:
            self.callback(self.done, self.total)

    def finish(self) -> None:
        self.add(self.total - self.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _Counting(io.RawIOBase):
    """A binary file that reports how many bytes were read (for progress while pandas parses)."""

    def __init__(self, path: Path, bar: _Bar):
        self.raw = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.bar = bar

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self.raw.readinto(buffer)
        self.bar.add(n or 0)
        return n

    def close(self) -> None:
        self.raw.close()
        super().close()


# -- reading the bytes and choosing the encoding ---------------------------------------------------

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


@dataclass
class _Scan:
    """What one pass over the file's bytes found."""

    sha256: str
    size: int
    blank: bool  # nothing but whitespace
    high: list[int]  # byte values >= 0x80 present in the file
    encoding: str | None  # the given encoding, or UTF-8, when the whole file decodes in it
    bom: bool


def _scan(path: Path, encoding: str | None, label: str, bar: _Bar, *,
          text: bool = True) -> _Scan:
    """Hash the file, note which non-ASCII bytes it holds, and check that it decodes in the given
    encoding (or in UTF-8 when none is given) — one pass, a block at a time. A file that starts
    with the UTF-8 byte-order mark is read as utf-8-sig when UTF-8 is given or detected."""
    check = encoding
    if encoding is not None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportFailed(f"{encoding!r} is not an encoding Python knows.",
                               "Use a name like 'utf-8', 'latin-1' or 'cp1252', or leave "
                               "encoding out to detect it.") from None
    wide = check is not None and codecs.lookup(check).name.startswith(("utf-16", "utf-32"))
    digest = hashlib.sha256()
    seen = bytearray(256)
    blank, size, newlines, head = True, 0, 0, b""
    decoder = None
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            if size == 0 and text and not wide:  # UTF-16 without a BOM: ASCII reads as UTF-8
                _check_not_utf16(block[:4096], label)
            if size == 0:
                head = block[:4]
                if check is not None and head.startswith(codecs.BOM_UTF8) and \
                        codecs.lookup(check).name == "utf-8":
                    check = "utf-8-sig"  # utf-8 given: the BOM is not part of the first column
                if check is None:
                    check = "utf-8-sig" if head.startswith(codecs.BOM_UTF8) else "utf-8"
                    if head.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):
                        check = "utf-32"
                    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
                        check = "utf-16"
                decoder = codecs.getincrementaldecoder(check)() if check else None
            digest.update(block)
            if blank and block.strip():
                blank = False
            if not block.isascii():
                for value in set(block.translate(None, _ASCII)):
                    seen[value] = 1
            if decoder is not None:
                pending = len(decoder.getstate()[0])
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    if encoding is not None:  # the user's encoding does not fit: say where
                        offset = size - pending + exc.start
                        fh.seek(0)
                        before = fh.read(offset)
                        raise _decode_error(before.count(b"\n") + 1,
                                            exc.object[exc.start:exc.start + 1], label,
                                            encoding) from None
                    decoder = None
            newlines += block.count(b"\n")
            size += len(block)
            bar.add(len(block))
    if decoder is not None:
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            if encoding is not None:
                raise _decode_error(newlines + 1, exc.object[exc.start:exc.start + 1], label,
                                    encoding) from None
            decoder = None
    if encoding is None and check in ("utf-16", "utf-32") and decoder is None:
        raise ImportFailed(f"{label} starts with a {check.upper()} byte-order mark but is not "
                           f"valid {check.upper()}.", "Re-save it as UTF-8 and import again.")
    used = check if encoding is not None or decoder is not None else None
    return _Scan(digest.hexdigest(), size, blank, [v for v in range(128, 256) if seen[v]],
                 used, head.startswith(codecs.BOM_UTF8))


_ASCII = bytes(range(128))


def _check_not_utf16(start: bytes, label: str) -> None:
    """Refuse a file whose first bytes are mostly zero at every other place and nowhere else:
    UTF-16 without a byte-order mark, which would otherwise read as text full of NUL characters.
    (A file with a byte-order mark never gets here.)"""
    if b"\x00" not in start or start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return
    start = start[:len(start) // 2 * 2]
    pairs = len(start) // 2
    even, odd = start[0::2].count(0), start[1::2].count(0)
    for codec, zeros, others in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if pairs and zeros >= pairs * 0.3 and others <= pairs * 0.05:
            first = start.decode(codec, errors="replace").splitlines()[0] if start else ""
            raise ImportFailed(f"{label} looks like {codec.upper()} without a byte-order mark "
                               "(every other byte is zero; its first line reads "
                               f"{_clip(first.lstrip(chr(0xFEFF)), 60)!r} in it).",
                               f"Pass encoding='{codec}', or save the file as UTF-8.")


def _decode_error(line: int, byte: bytes, label: str, encoding: str) -> ImportFailed:
    return ImportFailed(f"{label} is not valid {encoding}: byte {byte!r} on line {line} cannot "
                        "be decoded.",
                        "Leave encoding out to detect it, or pass the file's real encoding "
                        "(e.g. encoding='cp1252').")


# Western European single-byte code pages, in order of preference when they read a file the same,
# then the Central European and Turkish Windows code pages, which share most of their letters.
_WESTERN = ("cp1252", "iso-8859-15", "latin-1")
_LATIN = (*_WESTERN, "cp1250", "cp1254")
# The accented letters of the languages written in those code pages (lower case; ª º are the
# ordinal signs of 1º, 2ª). A word is plausible when one language holds all its accented letters.
_ALPHABETS = {
    "French": "àâæçéèêëîïôœùûüÿ", "German": "äöüß", "Spanish": "áéíñóúüºª",
    "Portuguese": "áâãàçéêíóôõúºª", "Italian": "àèéìíîòóùúºª", "Catalan": "àçèéíïòóúüºª",
    "Dutch": "áéíóúàèëïöü", "Danish": "æøåé", "Norwegian": "æøåéèóòô", "Swedish": "åäöé",
    "Finnish": "åäöšž", "Icelandic": "áðéíóúýþæö", "Faroese": "áðíóúýæø", "Irish": "áéíóú",
    "Estonian": "äöõüšž", "Czech": "áčďéěíňóřšťúůýž", "Slovak": "áäčďéíĺľňóôŕšťúýž",
    "Polish": "ąćęłńóśźż", "Hungarian": "áéíóöőúüű", "Slovenian": "čšžćđ",
    "Croatian": "čćđšž", "Romanian": "ăâîşţșț", "Albanian": "çë", "Turkish": "çğıİöşüâîû",
}
_WORD_INNER = set("´`")  # symbols that may stand between two letters (don´t)
_NEVER_BY_LETTER = set("¹¤¦¨¸¼½¾¬¯±×÷¶§¢¥£€")  # symbols that do not touch a letter in text
_WORD = re.compile(r"[^\W\d_]+")
_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|"
                            rb"[\xf0-\xf4][\x80-\xbf]{3}")


@dataclass
class _Reading:
    """How plausible a decoding of the file's non-ASCII lines is."""

    odd: int  # characters that do not occur like that in text (symbols glued to letters, ...)
    non_ascii: int
    foreign_words: int  # 3+ letters, none ASCII: Ïðèâåò is Cyrillic read as cp1252
    accented_words: int  # words with a non-ASCII letter

    @property
    def clean(self) -> bool:
        return self.odd == 0 if self.non_ascii < 100 else self.odd <= self.non_ascii / 100

    @property
    def western(self) -> bool:
        return self.clean and self.foreign_words <= self.accented_words / 5


def _judge(text: str) -> _Reading:
    import unicodedata

    odd = non_ascii = 0
    for match in re.finditer(r"[^\x00-\x7f]", text):
        char, at = match.group(), match.start()
        non_ascii += 1
        if char.isalpha() or char.isspace():
            continue
        before = text[at - 1].isalpha() if at > 0 else False
        after = text[at + 1].isalpha() if at + 1 < len(text) else False
        category = unicodedata.category(char)
        if category in ("Cc", "Co", "Cn") or \
                (before and after and category[0] in "SN" and char not in _WORD_INNER) or \
                (char in _NEVER_BY_LETTER and (before or after)) or \
                (char in "¿¡" and before):
            odd += 1
    foreign = accented = 0
    for word in _WORD.findall(text):
        if not word.isascii():
            accented += 1
            if len(word) >= 3 and not any(c.isascii() for c in word):
                foreign += 1
    return _Reading(odd, non_ascii, foreign, accented)


def _letter(char: str) -> str:
    lower = char.lower()
    return lower if len(lower) == 1 else char  # İ lowers to two characters


def _plausibility(text: str) -> tuple[int, int, int]:
    """(implausible words, languages needed, -fits) for one reading of the sample; lower is
    more plausible. First how many words have accented letters that no single language writes
    together ('Kõszívû': õ is Portuguese or Estonian, û French). Then how many languages it
    takes to hold every other accented word (chosen greedily, the language that holds most words
    first): text is written in few languages, and the wrong code page scatters a file's letters
    over many ('crème à la' is French; read as cp1250, 'crčme ŕ la' wants Czech or Slovak for č
    and Slovak for ŕ, and a third language as soon as ç, ù or ê appears). Last, how many of the
    words those languages hold (a word held by two of them counts twice): 'Où ... München' is
    French and German, whose alphabets both hold 'München'; read as cp1250, 'Oů' is Czech, a
    language that holds no other word of the file."""
    implausible = 0
    holders: dict[frozenset[str], int] = {}  # languages that hold a word -> how many words
    known: dict[frozenset[str], frozenset[str]] = {}
    for word in _WORD.findall(text):
        if word.isascii():
            continue
        accented = frozenset(_letter(c) for c in word if not c.isascii())
        languages = known.get(accented)
        if languages is None:
            languages = known[accented] = frozenset(
                name for name, letters in _ALPHABETS.items() if accented <= set(letters))
        if languages:
            holders[languages] = holders.get(languages, 0) + 1
        else:
            implausible += 1
    chosen: list[str] = []
    left = dict(holders)
    while left:
        counts: dict[str, int] = {}
        for languages, words in left.items():
            for name in languages:
                counts[name] = counts.get(name, 0) + words
        best = max(_ALPHABETS, key=lambda name: counts.get(name, 0))
        left = {languages: words for languages, words in left.items() if best not in languages}
        chosen.append(best)
    fits = sum(words * len(languages.intersection(chosen)) for languages, words in holders.items())
    return implausible, len(chosen), -fits


def _sample(path: Path) -> list[tuple[int, bytes]]:
    """The first lines (number, bytes) that hold non-ASCII bytes: they are what tells code pages
    apart."""
    lines, kept = [], 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.isascii():
                lines.append((number, line.rstrip(b"\r\n")))
                kept += len(line)
                if kept >= _SAMPLE_BYTES:
                    break
    return lines


def _detect(path: Path, scan: _Scan, label: str) -> str:
    """The encoding to read ``path`` with, or ImportFailed naming a line when the choice is not
    clear (see the module docstring)."""
    if scan.encoding is not None:  # valid UTF-8 (plain ASCII included), or UTF-16/32 with a BOM
        return scan.encoding
    sample = _sample(path)  # not empty: a file that is not UTF-8 has a non-ASCII byte
    joined = b"\n".join(line for _, line in sample)
    utf8 = sum(len(m.group()) for m in _UTF8_SEQUENCE.finditer(joined))
    high = sum(1 for b in joined if b >= 0x80) if len(joined) < 65536 else \
        len(joined.translate(None, _ASCII))
    if utf8 * 2 >= high:  # mostly UTF-8 sequences: a file that mixes encodings
        for number, line in sample:
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = line.decode("utf-8", errors="replace")
                raise ImportFailed(
                    f"{label} is UTF-8 except on line {number}, where byte "
                    f"{line[exc.start:exc.start + 1]!r} is not: "
                    f"{_clip(shown[max(0, exc.start - 30):], 70)!r} (the file mixes "
                    "encodings, e.g. rows pasted from another file).",
                    f"Re-type the accented characters on line {number} (or paste that row "
                    "again from a UTF-8 copy) and save the file as UTF-8; the other lines are "
                    "UTF-8, so an encoding= for the whole file would garble them.")
    readings: dict[str, tuple[tuple[str, ...], _Reading]] = {}
    for name in _LATIN:
        chars = []
        for value in scan.high:
            try:
                char = bytes([value]).decode(name)
            except UnicodeDecodeError:
                break
            if 0x80 <= ord(char) < 0xA0:  # a C1 control: never what a text file means
                break
            chars.append(char)
        else:
            readings[name] = (tuple(chars), _judge(joined.decode(name)))
    latin = [name for name, (_, reading) in readings.items() if reading.western]
    if latin:
        # Of the clean Latin-script readings the most plausible wins (_plausibility); those as
        # plausible that read the file's bytes differently make the choice a guess: refuse.
        scores = {name: _plausibility(joined.decode(name)) for name in latin}
        best = min(scores.values())
        first, *others = [name for name in latin if scores[name] == best]
        differ = list(dict.fromkeys(
            name for name in others if readings[name][0] != readings[first][0]))
        if differ:
            raise _ambiguous(path, sample, label, first, *differ)
        return first
    from charset_normalizer import from_bytes

    matches = list(from_bytes(joined))
    if not matches:
        raise ImportFailed(f"{label} does not look like text in any known encoding (it may be "
                           "binary, or a Parquet/Excel file with the wrong suffix).",
                           "Pass encoding= if you know it, or format='parquet' for Parquet.")
    # charset-normalizer ranks close readings of a short sample almost at random (mac_cyrillic
    # over cp1251 for plain Russian): a reading as clean and nearly as coherent as its best is a
    # rival. Among rivals a Windows code page wins (what most tools write); otherwise refuse.
    best = matches[0]
    text = str(best)
    rivals = [m for m in matches[1:] if m.chaos <= best.chaos + 0.05
              and m.coherence >= best.coherence - 0.1 and str(m) != text
              and _judge(str(m)).clean]
    if rivals and _judge(text).clean:
        windows = [m for m in [best, *rivals] if re.fullmatch(r"cp125\d", m.encoding)]
        if len(windows) == 1:
            best, text, rivals = windows[0], str(windows[0]), []
    rival = rivals[0] if rivals else None
    if not _judge(text).clean or rival is not None:
        other = rival.encoding if rival is not None else next(iter(readings), None)
        if other is not None and other != best.encoding:
            raise _ambiguous(path, sample, label, best.encoding, other)
        raise ImportFailed(f"{label} is not UTF-8, and no encoding reads it as clean text "
                           f"(the closest, {best.encoding}, gives "
                           f"{_clip(_first_odd_line(sample, best.encoding), 70)!r}).",
                           "Pass the file's encoding (encoding='...'), or save it as UTF-8.")
    encoding = best.encoding
    if not _decodes(path, encoding):
        raise ImportFailed(f"{label} looks like {encoding}, but not every line decodes in it.",
                           "Pass the file's encoding (encoding='...'), or save it as UTF-8.")
    return encoding


def _decodes(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        with open(path, "rb") as fh:
            while block := fh.read(_BLOCK):
                decoder.decode(block)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _first_odd_line(sample: list[tuple[int, bytes]], encoding: str) -> str:
    for number, line in sample:
        text = line.decode(encoding, errors="replace")
        if not _judge(text).clean:
            return f"line {number}: {text}"
    return ""


def _ambiguous(path: Path, sample: list[tuple[int, bytes]], label: str, a: str,
               *others: str) -> ImportFailed:
    """The first line that reads differently in encoding ``a`` and the others, every reading
    shown."""
    def lines():
        yield from sample
        with open(path, "rb") as fh:  # past the sample (rare: it holds the first megabyte)
            for number, line in enumerate(fh, start=1):
                if number > sample[-1][0] and not line.isascii():
                    yield number, line.rstrip(b"\r\n")

    names = [a, *others]
    passes = " or ".join(f"encoding='{name}'" for name in names)
    for number, line in lines():
        texts = [line.decode(name, errors="replace") for name in names]
        if len(set(texts)) > 1:
            at = min(next((i for i, (x, y) in enumerate(zip(texts[0], text)) if x != y),
                          len(texts[0])) for text in texts[1:] if text != texts[0])
            start = max(0, at - 25)
            shown = [f"{_clip(text[start:], 50)!r} in {name}" for name, text in zip(names, texts)
                     if name == a or text != texts[0]]  # the readings this line tells apart
            rest = " or ".join(shown[1:])
            return ImportFailed(
                f"{label} is not UTF-8 and its encoding is not certain: line {number} reads "
                f"{shown[0]} but {rest}.",
                f"Pass the encoding that shows that line right, e.g. {passes} (or save the "
                "file as UTF-8).")
    return ImportFailed(f"{label} is not UTF-8 and its encoding is not certain "
                        f"({' or '.join(names)}).", f"Pass {passes}, or save the file as UTF-8.")


# -- parsing ---------------------------------------------------------------------------------------

def _open_text(path: Path, encoding: str):
    return open(path, encoding=encoding, newline="")  # noqa: SIM115 - callers close it


def _records(path: Path, encoding: str, sep: str):
    """(first physical line, fields) of each CSV record, blank lines skipped as pandas skips
    them; the standard library's reader, used only to say where something is."""
    import csv

    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    with _open_text(path, encoding) as fh:
        reader = csv.reader(fh, delimiter=sep)
        end = 0
        for fields in reader:
            start, end = end + 1, reader.line_num
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            yield start, fields


class _CsvLines:
    """Row position -> "row 3 (line 7)". The lines are worked out only when an error names a
    row, by reading the file again: a quoted field may span lines, so row n is not line n + 1."""

    def __init__(self, path: Path, encoding: str, sep: str):
        self.path, self.encoding, self.sep = path, encoding, sep
        self.starts: list[int] | None = None

    def __call__(self, i: int) -> str:
        if self.starts is None:
            records = _records(self.path, self.encoding, self.sep)
            next(records, None)  # the header
            self.starts = [start for start, _ in records]
        line = self.starts[i] if i < len(self.starts) else None
        return f"row {i + 1}" + (f" (line {line})" if line is not None else "")


def _header(path: Path, encoding: str, sep: str, label: str) -> list[str]:
    first = next(_records(path, encoding, sep), None)
    if first is None:
        raise ImportFailed(f"{label} has no header row.", "The first line must name the columns.")
    # pandas' names for unnamed columns, so messages list what pandas users know
    return [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(first[1])]


def _read_delimited(path: Path, encoding: str, label: str, wanted: dict, bar: _Bar,
                    sep: str) -> _Parsed:
    import numpy as np
    import pandas as pd

    columns = _header(path, encoding, sep, label)
    if len(columns) == 1 and wanted["input"] not in columns:
        found = [c for c in _OTHER_SEPARATORS if c != sep and c in columns[0]]
        if found:
            other, name = found[0], _OTHER_SEPARATORS[found[0]]
            how = "format='tsv'" if other == "\t" and sep == "," else \
                "format='csv'" if other == "," and sep == "\t" else f"sep='{other}'"
            kind = _sep_name(sep)[1]
            save = "CSV with commas" if sep == "," else "TSV with tabs"
            raise ImportFailed(f"{label} looks separated by {name}, not {kind}: its header is one "
                               f"column, {columns[0]!r}.", f"Pass {how} (or save the file as "
                               f"{save}).")
    # Every cell as written: "NA" or "null" in a support message is text, not a missing value;
    # an empty cell is "" (the profile reports it). A row short of fields reads the same (its
    # missing cells are "" too), so short rows are looked for below and refused.
    options = dict(sep=sep, dtype=str, keep_default_na=False, na_values=[],
                   skip_blank_lines=True, encoding=encoding)

    def preview():
        frame = pd.read_csv(path, nrows=200, **options)
        frame.columns = columns[:len(frame.columns)]
        return frame

    plan, notes = _plan(columns, **wanted, source_label=label, preview=preview,
                        rename_hint="rename one in the file's header")
    positions = [columns.index(c) for c in plan.needed]
    chunks = []
    handle = _Counting(path, bar)
    try:
        # Chunks keep memory to one chunk of every column plus the mapped columns of all rows.
        reader = pd.read_csv(io.BufferedReader(handle, _BLOCK), chunksize=_CHUNK_ROWS,
                             **options)
        rows, last_empty = 0, None
        for chunk in reader:
            # A first data row with one field more than the header makes pandas take the first
            # column for the row labels, in every chunk, without a word: the rows would shift.
            index = chunk.index
            if not (isinstance(index, pd.RangeIndex) and index.start == rows
                    and index.step == 1):
                raise _parse_error(path, encoding, label, sep, len(columns), None)
            # A short row's last cell is "": only such rows send the file to be read again, up
            # to the last of them, counting fields.
            if len(columns) > 1:
                empty = np.flatnonzero((chunk.iloc[:, -1] == "").to_numpy())
                if len(empty):
                    last_empty = rows + int(empty[-1])
            rows += len(chunk)
            part = chunk.iloc[:, positions]
            part.columns = plan.needed
            chunks.append(part)
    except pd.errors.EmptyDataError:
        raise ImportFailed(f"{label} has no header row.",
                           "The first line must name the columns.") from None
    except pd.errors.ParserError as exc:
        raise _parse_error(path, encoding, label, sep, len(columns), exc) from None
    finally:
        handle.close()
    if last_empty is not None:
        _check_widths(path, encoding, label, sep, len(columns), last_empty + 1)
    frame = pd.concat(chunks, ignore_index=True) if chunks else \
        pd.DataFrame({c: pd.Series([], dtype=object) for c in plan.needed})
    return _Parsed(frame, _CsvLines(path, encoding, sep), plan, notes)


def _check_widths(path: Path, encoding: str, label: str, sep: str, width: int,
                  until: int) -> None:
    """Refuse the first row (up to data row ``until``) with fewer fields than the header, naming
    its physical line."""
    kind, name = _sep_name(sep)
    for row, (start, fields) in enumerate(_records(path, encoding, sep)):
        if row > until:
            return
        if row and len(fields) < width:
            raise ImportFailed(
                f"{label} line {start} (data row {row}) has {len(fields)} {kind}-separated "
                f"field{'s' if len(fields) != 1 else ''}, but the header has {width}: "
                f"{_clip(sep.join(fields))!r}.",
                f"Give the row one field per column (an empty field is nothing between two "
                f"{name}), or delete it, then import again.")


def _parse_error(path: Path, encoding: str, label: str, sep: str, width: int,
                 exc: Exception | None) -> ImportFailed:
    """pandas counts records, not lines, once a quoted field spans lines: find the physical line
    of the bad row again with the standard library's reader. ``exc`` is None when pandas did not
    raise but took the first column for the row labels (a first row with a field too many)."""
    kind = _sep_name(sep)[0]
    if sep == ",":
        fix = ("Quote fields that contain a comma (\"a, b\"), or pass format='tsv' if the file "
               "is separated by tabs (sep=';' if by semicolons).")
    elif sep == "\t":
        fix = "Quote fields that contain a tab, or pass format='csv' if the file is separated by " \
              "commas."
    else:
        fix = (f"Quote fields that contain a {kind} (\"a{sep} b\"), or pass the file's own "
               "separator as sep=.")
    last = None
    try:
        for row, (start, fields) in enumerate(_records(path, encoding, sep)):
            last = (row, start, fields)
            if row and len(fields) > width:
                return ImportFailed(
                    f"{label} line {start} (data row {row}) has {len(fields)} {kind}-separated "
                    f"fields, but the header has {width}: {_clip(sep.join(fields))!r}.", fix)
    except Exception:  # the standard reader failing too: fall back to pandas' words
        last = None
    if exc is None:
        return ImportFailed(f"{label} has a row with more {kind}-separated fields than the "
                            "header (pandas read the first column as row labels).", fix)
    if "EOF inside string" in str(exc) and last is not None:
        row, start, _ = last
        return ImportFailed(f"{label} line {start} (data row {row}) opens a quoted field that is "
                            "never closed, so the rest of the file would be one cell.",
                            "Close the quote (a quote inside a quoted field is written twice: "
                            "\"\"), then import again.")
    return ImportFailed(f"{label} could not be parsed: {str(exc).strip()} (pandas counts rows; "
                        "the physical line may be later if a quoted field spans lines).", fix)


def _read_jsonl(path: Path, encoding: str, label: str, wanted: dict, bar: _Bar) -> _Parsed:
    import pandas as pd

    frames, records, lines = [], [], []
    first = True
    with _open_text(path, encoding) as fh:
        for number, line in enumerate(fh, start=1):
            bar.add(len(line))  # characters, close enough to bytes for a progress bar
            if not line.strip():
                continue
            if first and line.lstrip().startswith("["):
                raise ImportFailed(f"{label} holds a JSON array (line {number} starts with '['), "
                                   "not one JSON object per line as JSONL does.",
                                   "Import it as a JSON array with format='json', or rename the "
                                   "file to .json.")
            first = False
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ImportFailed(f"{label} line {number} is not valid JSON: {exc.msg} at "
                                   f"column {exc.colno}: {_clip(line.strip())}",
                                   "Fix or delete that line; each line must be one JSON "
                                   "object.") from None
            if not isinstance(value, dict):
                raise ImportFailed(f"{label} line {number} is a JSON {type(value).__name__}, "
                                   f"not an object: {_clip(line.strip())}",
                                   "Write each row as an object, e.g. {\"text\": \"...\", "
                                   "\"label\": \"...\"}.")
            records.append(value)
            lines.append(number)
            if len(records) == _CHUNK_ROWS:
                frames.append(pd.DataFrame.from_records(records))
                records = []
    if records:
        frames.append(pd.DataFrame.from_records(records))
    if not frames:
        raise ImportFailed(f"{label} has no rows.", "Add one JSON object per line.")
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return _subset(frame, lambda i: f"line {lines[i]}", label, wanted,
                   "rename one of the keys")


def _read_json(path: Path, encoding: str, label: str, wanted: dict, bar: _Bar) -> _Parsed:
    import pandas as pd

    try:
        value = json.loads(path.read_text(encoding=encoding))  # one document: read whole
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
    return _subset(pd.DataFrame.from_records(value), lambda i: f"item {i + 1}", label, wanted,
                   "rename one of the keys")


def _read_parquet(path: Path, label: str, wanted: dict) -> _Parsed:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several types for a damaged or foreign file
        raise ImportFailed(f"{label} could not be read as Parquet: {exc}.",
                           "Check the file is Parquet (not CSV renamed) and not truncated; "
                           "pass format= if the suffix is wrong.") from None
    return _subset(frame.reset_index(drop=True), lambda i: f"row {i + 1}", label, wanted,
                   "rename one of the columns")


def _subset(frame: pd.DataFrame, locate, label: str, wanted: dict, rename_hint: str) -> _Parsed:
    columns = [str(c) for c in frame.columns]
    plan, notes = _plan(columns, **wanted, source_label=label, preview=lambda: frame,
                        rename_hint=rename_hint)
    part = frame.iloc[:, [columns.index(c) for c in plan.needed]]
    part.columns = plan.needed
    return _Parsed(part, locate, plan, notes)


_READERS = {"jsonl": _read_jsonl, "json": _read_json}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
# Separators a header of one column may hold: the file is not separated by commas.
_OTHER_SEPARATORS = {";": "semicolons", "|": "vertical bars", "\t": "tabs", ",": "commas"}
_NOT_IN_NAMES = ";|\t"  # a column name holding one is a header in another separator


def _sep_name(sep: str) -> tuple[str, str]:
    """('comma', 'commas') for ',': how messages call a separator."""
    plural = _OTHER_SEPARATORS.get(sep, f"{sep!r} characters")
    return {"vertical bars": "vertical-bar", "semicolons": "semicolon", "tabs": "tab",
            "commas": "comma"}.get(plural, repr(sep)), plural


def _locator(index, prefix: str):
    labels = list(index)
    return lambda i: f"{prefix} {labels[i]!r}"


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# -- mapping and checks ----------------------------------------------------------------------------

# Column names that usually hold what the model reads, and ones that usually hold the answer: a
# hint for a missing input column never proposes the latter.
_INPUT_NAMES = {"text", "input", "message", "question", "prompt", "query", "body", "content",
                "utterance", "sentence", "review", "comment", "description", "request",
                "ticket_text", "instruction"}
_ANSWER_NAMES = {"label", "labels", "answer", "expected", "output", "target", "intent",
                 "category", "class", "response", "reference", "gold", "y", "completion",
                 "solution", "topic", "sentiment"}


def _plan(columns: list[str], *, input: str, expected: str | None,
          metadata: Sequence[str] | Mapping[str, str] | str, id_column: str | None,
          source_label: str, preview: Callable[[], pd.DataFrame],
          rename_hint: str) -> tuple[_Plan, list[str]]:
    """Check the mapping against the source's column names, before any row is read."""
    wanted = {"input": input, "expected": expected, "id": id_column}
    if isinstance(metadata, str):
        if metadata != "*":
            metadata = [metadata]
        else:
            # every other column, but not one whose name is shared: '*' did not name it, so it
            # is left out with a note below, as an unmapped column is
            used = {c for c in wanted.values() if c}
            shared = {c for i, c in enumerate(columns) if c in columns[:i]} if \
                len(set(columns)) < len(columns) else set()
            metadata = [c for c in dict.fromkeys(columns) if c not in used and c not in shared]
    meta_map = dict(metadata) if isinstance(metadata, Mapping) else {c: c for c in metadata}
    needed = [c for c in [input, expected, id_column, *meta_map] if c]
    notes = []
    positions: dict[str, list[int]] = {}
    for i, column in enumerate(columns):
        positions.setdefault(column, []).append(i + 1)
    for column, where in positions.items():
        if len(where) < 2:
            continue
        places = f"columns {', '.join(map(str, where[:-1]))} and {where[-1]}"
        if column in needed:
            role = next((r for r, c in wanted.items() if c == column), "metadata")
            raise ImportFailed(f"{source_label} has {len(where)} columns named {column!r} "
                               f"({places}), so it is not clear which one is the {role}.",
                               f"Give each column its own name ({rename_hint}), then import "
                               "again.")
        notes.append(f"{places} of {source_label} are all named {column!r}; none of them was "
                     "imported (they were not mapped)")
    available = list(positions)
    missing = [c for c in needed if c not in positions]
    if missing:
        taken = {c for c in [expected, id_column, *meta_map] if c}
        guesses = []
        if input not in positions:
            guess = _guess_input(input, [c for c in available if c not in taken], preview)
            guesses.append(f"input={guess!r}" if guess else "input=<the column with the text>")
        for role, column in (("expected", expected), ("id", id_column)):
            if column and column not in positions:
                free = [c for c in available if c not in taken and c != input]
                guess = _closest(column, free)
                guesses.append(f"{role}={guess!r}" if guess else f"{role}=<one of the columns>")
        if any(c not in positions for c in meta_map):
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
    return _Plan(input, expected, id_column, meta_map), notes


def _build(parsed: _Parsed, *, source_label: str) -> tuple[pd.DataFrame, _Plan, list[str]]:
    """The dataset frame (id, input, expected, metadata) from the mapped source columns, after
    checking every row."""
    import numpy as np
    import pandas as pd

    src, plan = parsed.frame, parsed.plan
    input, expected, id_column = plan.input, plan.expected, plan.id
    if src.empty:
        raise ImportFailed(f"{source_label} has a header but no rows.", "Add rows to import.")
    locate = parsed.locate
    notes: list[str] = []
    # Text columns stay in pandas' Arrow-backed string dtype when the source gave them so (CSV,
    # and most DataFrames under pandas 3): a million rows as Python strings would take three
    # times the memory. Object columns (JSON, mixed DataFrames) are checked value by value.
    texts = src[input]
    if _arrow_text(texts):
        bad = np.flatnonzero(texts.isna().to_numpy()).tolist()
    else:
        bad = [i for i, v in enumerate(texts.tolist()) if not isinstance(v, str)]
    if bad:
        shown = ", ".join(f"{locate(i)} ({_describe(texts.iloc[i])})" for i in bad[:_SHOWN])
        more = f" and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
        raise ImportFailed(f"Column {input!r} (the input) must hold text in every row; "
                           f"{len(bad)} row(s) do not: {shown}{more}.",
                           "Fill in or delete those rows in the source (or drop them from the "
                           "DataFrame with .dropna(subset=[...])), then import again.")
    out = pd.DataFrame({"input": texts if _arrow_text(texts) else texts.astype(object)})
    if expected is None:
        out["expected"] = None
    elif _arrow_text(src[expected]):
        values = src[expected]
        out["expected"] = values.mask(values == "")
    else:
        values = src[expected].tolist()
        out["expected"] = [_expected_value(v) for v in values]
        if any(isinstance(v, (dict, list)) for v in values):
            notes.append(f"structured values in {expected!r} were stored as JSON text")
    if id_column is not None:
        ids = src[id_column]
        if _arrow_text(ids):
            nulls = np.flatnonzero((ids.isna() | (ids == "")).to_numpy()).tolist()
        else:
            nulls = [i for i, v in enumerate(ids.tolist()) if _is_missing(v) or v == ""]
        if nulls:
            raise ImportFailed(f"Id column {id_column!r} is empty in "
                               f"{', '.join(locate(i) for i in nulls[:_SHOWN])}.",
                               "Give every row an id, or leave id= out to make ids.")
        if not _arrow_text(ids):
            ids = ids.map(_id_text).astype(object)
        dupes = ids[ids.duplicated(keep=False)]
        if not dupes.empty:
            first = dupes.iloc[0]
            rows = [locate(i) for i in dupes.index[dupes == first][:_SHOWN]]
            raise ImportFailed(f"Id column {id_column!r} must be unique, but {first!r} appears "
                               f"in {', '.join(rows)} ({dupes.nunique()} repeated id(s) in all).",
                               "Make the ids unique in the source, or leave id= out to make "
                               "ids.")
        out.insert(0, "id", ids)
    else:
        out.insert(0, "id", make_ids(out["input"]))
    for column, new in plan.metadata.items():
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
    return out, plan, notes


def _arrow_text(series: pd.Series) -> bool:
    import pandas as pd

    return isinstance(series.dtype, pd.StringDtype)


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

    if _arrow_text(series):  # text from CSV: numbers if every filled cell is one
        filled = series[series.notna() & (series != "")]
        if len(filled) and pd.to_numeric(filled, errors="coerce").notna().all():
            return pd.to_numeric(series.replace("", None)), None
        return series, None
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

    # 'text;label' is a header in another separator, never a column to map
    available = [c for c in available if not any(s in c for s in _NOT_IN_NAMES)]
    folded = {c.casefold().strip(): c for c in available}
    if name.casefold().strip() in folded:
        return folded[name.casefold().strip()]
    match = difflib.get_close_matches(name, available, n=1, cutoff=0.75)
    return match[0] if match else None


def _guess_input(name: str, free: list[str], preview: Callable[[], pd.DataFrame]) -> str | None:
    """A column to propose as the input: one named like ``name``; else the one column named like
    an input (text, message, question, ...); else the one text column whose name is not an
    answer's (label, answer, intent, ...). None when that leaves no single candidate: no hint
    beats a wrong one."""
    close = _closest(name, free)
    if close:
        return close
    free = [c for c in free if not any(s in c for s in _NOT_IN_NAMES)]
    folded = {c: c.casefold().strip().replace(" ", "_") for c in free}
    named = [c for c in free if folded[c] in _INPUT_NAMES]
    if len(named) == 1:
        return named[0]
    if named:
        return None
    try:
        frame = preview()
    except Exception:  # a hint is not worth a second error
        return None
    texts = [c for c in free if folded[c] not in _ANSWER_NAMES and c in frame.columns
             and _is_text(frame[c])]
    return texts[0] if len(texts) == 1 else None


def _is_text(series: pd.Series) -> bool:
    values = [v for v in series.head(200).tolist() if isinstance(v, str) and v]
    if not values:
        return False
    numbers = sum(1 for v in values if re.fullmatch(r"[-+]?[\d.,]+", v.strip()))
    return numbers < len(values) / 2 and sum(map(len, values)) / len(values) > 3


# -- writing ---------------------------------------------------------------------------------------

def _copy_raw(path: Path, target: Path, sha256: str, label: str) -> None:
    """Copy ``path`` to ``target`` atomically, checking it is still the file that was read."""
    from workbench.fsutil import atomic_writer

    digest = hashlib.sha256()
    with atomic_writer(target) as out, open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            digest.update(block)
            out.write(block)
        if digest.hexdigest() != sha256:  # raised inside: the copy never takes the name
            raise ImportFailed(f"{label} changed while it was being imported.",
                               "Import it again once whatever writes it has finished.")


def _store(project: Project, name: str, frame: pd.DataFrame, path: Path | None,
           scan: _Scan | None, params: dict[str, Any], fmt: str) -> Stored[DatasetVersion]:
    from workbench.data.versioning import get_version

    created: list[Path] = []  # what this import added, removed again if it fails
    raw_dir = project.data_dir / "raw"
    try:
        if path is not None and scan is not None:
            digest = scan.sha256
            suffix = {"csv": ".csv", "tsv": ".tsv", "jsonl": ".jsonl", "json": ".json",
                      "parquet": ".parquet"}[fmt]
            raw_path = raw_dir / f"{digest[:16]}{suffix}"
            params["raw_file"] = raw_path.relative_to(project.path).as_posix()
            params["raw_sha256"] = digest
            if not raw_dir.exists():
                raw_dir.mkdir(parents=True)
                created.append(raw_dir)
            if not raw_path.exists():
                _copy_raw(path, raw_path, digest, params["source"])
                created.append(raw_path)
        try:
            parent = get_version(project, name).version
        except DatasetError:
            parent = None
        data_dir = project.path / "data"
        before = {p.name for p in data_dir.glob("*.parquet")}
        try:
            return save_version(project, name, frame, transform="import", params=params,
                                parent=parent)
        except BaseException:  # the version file it wrote, if any (hashing again costs seconds)
            created += [p for p in data_dir.glob("*.parquet") if p.name not in before]
            raise
    except BaseException:
        for made in reversed(created):
            try:
                made.rmdir() if made.is_dir() else made.unlink()
            except OSError:
                pass
        raise
