"""Cleaning steps, applied in order and recorded as one transform.

Each step is a small frozen dataclass made by a factory function (``drop_empty()``,
``filter_length(min_chars=5)``, ...) with a ``name`` and its ``params``, so the transform that a
``clean`` leaves in the dataset's lineage can rebuild the same steps (``step_from_dict``).
``apply_steps`` is pure, for previews; ``clean`` saves the result as one new version.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from workbench.data.versioning import DatasetError, DatasetVersion
from workbench.records import Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

TEXT_COLUMNS = ("input", "expected")


class CleaningError(DatasetError):
    """A cleaning step is unknown, badly configured, or would leave no rows."""


@dataclass(frozen=True)
class Step:
    """One cleaning step. Subclasses set ``name`` and implement ``apply``."""

    name: ClassVar[str] = ""

    @property
    def params(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    def apply(self, df: pd.DataFrame) -> pd.DataFrame:
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.name, **self.params}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


def _text_columns(df: pd.DataFrame, columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c in df.columns]


def _map_text(df: pd.DataFrame, columns: Sequence[str], fn) -> pd.DataFrame:
    out = df.copy()
    for column in _text_columns(df, columns):
        values = out[column].astype(object)
        out[column] = [fn(v) if isinstance(v, str) else v for v in values.tolist()]
    return out


_HSPACE = re.compile(r"[^\S\n]+")  # any whitespace except a newline (tabs, NBSP, thin spaces)
_SPACE_AROUND_NEWLINE = re.compile(r" ?\n ?")
_MANY_NEWLINES = re.compile(r"\n{3,}")
_ANY_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class NormalizeWhitespace(Step):
    name: ClassVar[str] = "normalize_whitespace"
    columns: tuple[str, ...] = TEXT_COLUMNS
    keep_newlines: bool = True

    def apply(self, df):
        def fix(text: str) -> str:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            if not self.keep_newlines:
                return _ANY_SPACE.sub(" ", text).strip()
            text = _SPACE_AROUND_NEWLINE.sub("\n", _HSPACE.sub(" ", text))
            return _MANY_NEWLINES.sub("\n\n", text).strip()

        return _map_text(df, self.columns, fix)


def _is_invisible(ch: str) -> bool:
    category = unicodedata.category(ch)
    return (category == "Cf" or (category == "Cc" and ch not in "\n\t\r"))


@dataclass(frozen=True)
class NormalizeUnicode(Step):
    name: ClassVar[str] = "normalize_unicode"
    form: str = "NFKC"
    columns: tuple[str, ...] = TEXT_COLUMNS
    strip_invisible: bool = True  # zero-width spaces, BOMs, control characters

    def apply(self, df):
        def fix(text: str) -> str:
            text = unicodedata.normalize(self.form, text)
            if self.strip_invisible:
                text = "".join(ch for ch in text if not _is_invisible(ch))
            return text

        return _map_text(df, self.columns, fix)


@dataclass(frozen=True)
class DropEmpty(Step):
    name: ClassVar[str] = "drop_empty"
    columns: tuple[str, ...] = ("input",)

    def apply(self, df):
        keep = None
        for column in _text_columns(df, self.columns):
            values = df[column]
            ok = values.notna() & (values.astype(object).where(values.notna(), "")
                                   .astype(str).str.strip() != "")
            keep = ok if keep is None else keep & ok
        return df if keep is None else df[keep]


@dataclass(frozen=True)
class DropExactDuplicates(Step):
    name: ClassVar[str] = "drop_exact_duplicates"
    on: tuple[str, ...] = ("input",)

    def apply(self, df):
        return df[~df.duplicated(subset=list(_text_columns(df, self.on)), keep="first")]


@dataclass(frozen=True)
class DropNearDuplicates(Step):
    """Keeps the first row of each near-duplicate group (exact repeats included)."""

    name: ClassVar[str] = "drop_near_duplicates"
    threshold: float = 0.92

    def apply(self, df):
        from workbench.data.profiling import near_duplicates

        df = df[~df["input"].duplicated(keep="first") | df["input"].isna()]
        pairs = near_duplicates(df, threshold=self.threshold)
        if pairs.empty:
            return df
        # Walk rows in order: a row survives unless an earlier surviving row is its neighbour.
        position = {row_id: i for i, row_id in enumerate(df["id"].tolist())}
        neighbours: dict[int, list[int]] = {}
        for a, b in zip(pairs["id_a"].tolist(), pairs["id_b"].tolist()):
            i, j = sorted((position[a], position[b]))
            neighbours.setdefault(i, []).append(j)
        dropped: set[int] = set()
        for i in sorted(neighbours):
            if i not in dropped:
                dropped.update(neighbours[i])
        keep = [i not in dropped for i in range(len(df))]
        return df[keep]


@dataclass(frozen=True)
class FilterLength(Step):
    name: ClassVar[str] = "filter_length"
    min_chars: int | None = None
    max_chars: int | None = None
    column: str = "input"

    def apply(self, df):
        if self.column not in df.columns:
            raise CleaningError(f"filter_length: the dataset has no column {self.column!r} "
                                f"(it has {list(df.columns)}).",
                                "Pass column= one of those, or leave it out for the input.")
        lengths = df[self.column].astype(object).where(df[self.column].notna(), "") \
            .astype(str).str.len()
        keep = lengths >= (self.min_chars or 0)
        if self.max_chars is not None:
            keep &= lengths <= self.max_chars
        return df[keep]


# -- factories (what notebooks call) ---------------------------------------------------------------

def normalize_whitespace(columns: Sequence[str] = TEXT_COLUMNS, *,
                         keep_newlines: bool = True) -> Step:
    """Trim, turn tabs/NBSP/runs of spaces into one space, unify line endings, keep at most one
    blank line (or, with ``keep_newlines=False``, make every text one line)."""
    return NormalizeWhitespace(tuple(columns), keep_newlines)


def normalize_unicode(form: str = "NFKC", columns: Sequence[str] = TEXT_COLUMNS, *,
                      strip_invisible: bool = True) -> Step:
    """Unicode normalisation (NFKC folds full-width letters, ligatures and compatibility forms
    into their plain equivalents) and, by default, removal of invisible characters."""
    if form not in ("NFC", "NFKC", "NFD", "NFKD"):
        raise CleaningError(f"Unknown Unicode normal form {form!r}.",
                            "Use 'NFKC' (recommended for text data), 'NFC', 'NFD' or 'NFKD'.")
    return NormalizeUnicode(form, tuple(columns), strip_invisible)


def drop_empty(columns: Sequence[str] = ("input",)) -> Step:
    """Drop rows whose input (or each of ``columns``) is missing, empty or only whitespace."""
    return DropEmpty(tuple(columns))


def drop_exact_duplicates(on: Sequence[str] = ("input",)) -> Step:
    """Drop rows that repeat an earlier row's input exactly (keeps the first)."""
    return DropExactDuplicates(tuple(on))


def drop_near_duplicates(threshold: float = 0.92) -> Step:
    """Drop rows whose input is a near duplicate (cosine similarity of the bundled embeddings
    >= ``threshold``) of an earlier kept row, exact repeats included."""
    if not 0 < threshold <= 1:
        raise CleaningError(f"threshold must be in (0, 1], not {threshold}.",
                            "0.92 catches small edits; lower values drop paraphrases too.")
    return DropNearDuplicates(float(threshold))


def filter_length(min_chars: int | None = None, max_chars: int | None = None, *,
                  column: str = "input") -> Step:
    """Keep rows whose ``column`` has between ``min_chars`` and ``max_chars`` characters."""
    if min_chars is None and max_chars is None:
        raise CleaningError("filter_length needs min_chars, max_chars or both.",
                            "For example filter_length(min_chars=10, max_chars=2000).")
    if min_chars is not None and max_chars is not None and min_chars > max_chars:
        raise CleaningError(f"min_chars ({min_chars}) is larger than max_chars ({max_chars}).",
                            "Swap them.")
    return FilterLength(min_chars, max_chars, column)


STEPS: dict[str, Any] = {f.__name__: f for f in (normalize_whitespace, normalize_unicode,
                                                  drop_empty, drop_exact_duplicates,
                                                  drop_near_duplicates, filter_length)}


def step_from_dict(spec: str | dict[str, Any] | Step) -> Step:
    """A step from its name (``"drop_empty"``), its recorded dict (``{"step": "filter_length",
    "min_chars": 5}``) or itself."""
    if isinstance(spec, Step):
        return spec
    if isinstance(spec, str):
        spec = {"step": spec}
    if not isinstance(spec, dict) or "step" not in spec:
        raise CleaningError(f"Cannot read {spec!r} as a cleaning step.",
                            "Pass steps like drop_empty() or {'step': 'drop_empty'}.")
    params = {k: v for k, v in spec.items() if k != "step"}
    factory = STEPS.get(spec["step"])
    if factory is None:
        raise CleaningError(f"Unknown cleaning step {spec['step']!r}.",
                            f"Known steps: {sorted(STEPS)}.")
    try:
        return factory(**params)
    except TypeError as exc:
        raise CleaningError(f"Step {spec['step']!r} got bad parameters {params}: {exc}.",
                            f"See help(workbench.data.cleaning.{spec['step']}).") from None


# -- applying --------------------------------------------------------------------------------------

def _changed_rows(before: pd.DataFrame, after: pd.DataFrame) -> int:
    """Rows kept by a step whose values it changed (matched by id)."""
    common = before.set_index("id").loc[after["id"]]
    now = after.set_index("id")
    changed = None
    for column in now.columns:
        old, new = common[column], now[column]
        differs = ~((old == new) | (old.isna() & new.isna()))
        changed = differs if changed is None else changed | differs
    return 0 if changed is None else int(changed.sum())


def apply_steps(df: pd.DataFrame, steps: Sequence[Step | str | dict[str, Any]]
                ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Apply ``steps`` in order without saving anything: the cleaned frame and a report with one
    row per step (``step``, ``params``, ``rows_in``, ``rows_out``, ``changed``, ``dropped``)."""
    import pandas as pd

    from workbench.data.versioning import check_frame

    check_frame(df)
    resolved = [step_from_dict(s) for s in steps]
    if not resolved:
        raise CleaningError("No cleaning steps were given.",
                            "Pass a list such as [normalize_whitespace(), drop_empty()].")
    report = []
    current = df.reset_index(drop=True)
    for step in resolved:
        after = step.apply(current).reset_index(drop=True)
        report.append({"step": step.name, "params": step.params, "rows_in": len(current),
                       "rows_out": len(after), "changed": _changed_rows(current, after),
                       "dropped": len(current) - len(after)})
        current = after
    return current, pd.DataFrame(report, columns=["step", "params", "rows_in", "rows_out",
                                                  "changed", "dropped"])


def clean(project: Project, name: str, steps: Sequence[Step | str | dict[str, Any]],
          version: int | str | None = None) -> Stored[DatasetVersion]:
    """Apply ``steps`` to a version of ``name`` (latest by default) and save the result as one
    new version whose transform lists every step with its parameters and what it did. When the
    result holds the same rows as the latest version, that version is returned unchanged."""
    from workbench.data.versioning import get_version, load, save_version

    source = get_version(project, name, version)
    df = load(project, name, source.version)
    cleaned, report = apply_steps(df, steps)
    if cleaned.empty:
        worst = report.loc[report["dropped"].idxmax()]
        raise CleaningError(f"These steps would drop all {len(df)} rows of {name} "
                            f"v{source.version} ({worst['step']} dropped {worst['dropped']}).",
                            "Loosen that step (e.g. a wider length range) and preview with "
                            "apply_steps(df, steps) first.")
    params = {"steps": [{"step": r.step, "params": r.params, "changed": int(r.changed),
                         "dropped": int(r.dropped)} for r in report.itertuples()],
              "rows_before": len(df), "rows_after": len(cleaned)}
    return save_version(project, name, cleaned, transform="clean", params=params,
                        parent=source.version)
