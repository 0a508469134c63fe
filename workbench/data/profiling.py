"""Profile a dataset: sizes, lengths, empties, label balance, exact and near duplicates, and the
rows whose label is likely wrong.

"Quality over quantity": a few hundred clean, correctly labelled, non-duplicated examples teach and
evaluate better than thousands of noisy ones. The profile shows where the noise is; the cleaning
steps (``workbench.data.cleaning``) and a review of ``label_issues`` remove it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench.data.versioning import DatasetError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import plotly.graph_objects as go

DEFAULT_THRESHOLD = 0.92
# Embedding is the slow part (~3 ms a row on a quiet laptop CPU, several times that on a busy one):
# a profile finds near duplicates itself only up to this many distinct inputs (~15 s) and otherwise
# says how to ask for them explicitly.
NEAR_DUPLICATE_PROFILE_LIMIT = 5_000
_BLOCK_ELEMENTS = 16_000_000  # similarity block size (rows x columns): ~64 MB of float32


@dataclass(frozen=True, eq=False)  # holds DataFrames, which have no single truth value
class DataProfile:
    """What ``profile(df)`` found. ``summary`` is a one-column table for people; the fields are
    for code (and for the widgets and reports that draw them)."""

    rows: int
    columns: list[str]
    input_chars: dict[str, float]  # min, p5, median, mean, p95, max
    input_words: dict[str, float]
    empty_inputs: int  # null, empty or whitespace-only input
    missing_expected: int
    labels: dict[str, int] | None  # label -> rows, when expected holds labels
    splits: dict[str, int] | None
    exact_duplicates: pd.DataFrame  # group, id, input, expected
    near_duplicates: pd.DataFrame | None  # id_a, id_b, similarity; None when not computed
    near_duplicate_threshold: float | None
    notes: list[str] = field(default_factory=list)
    lengths: pd.Series | None = field(default=None, repr=False)  # chars per row, for the figures
    expected_values: pd.Series | None = field(default=None, repr=False)

    @property
    def exact_duplicate_rows(self) -> int:
        """Rows that repeat an earlier row's input (what drop_exact_duplicates would remove)."""
        df = self.exact_duplicates
        return 0 if df.empty else len(df) - df["group"].nunique()

    @property
    def conflicting_labels(self) -> int:
        """Groups of identical inputs that carry different expected values."""
        df = self.exact_duplicates
        if df.empty:
            return 0
        return int((df.groupby("group")["expected"].nunique(dropna=False) > 1).sum())

    @property
    def summary(self) -> pd.DataFrame:
        import pandas as pd

        rows: list[tuple[str, Any]] = [
            ("rows", self.rows),
            ("columns", ", ".join(self.columns)),
            ("input length (chars): min / median / p95 / max",
             _fmt_stats(self.input_chars)),
            ("input length (words): min / median / p95 / max",
             _fmt_stats(self.input_words)),
            ("empty inputs", self.empty_inputs),
            ("missing expected", self.missing_expected),
        ]
        if self.labels is not None:
            total = sum(self.labels.values()) or 1
            rows.append(("labels", len(self.labels)))
            rows.append(("label balance", ", ".join(f"{k} {v} ({v / total:.0%})"
                                                    for k, v in self.labels.items())))
            smallest = min(self.labels.values())
            rows.append(("smallest / largest label", f"{smallest} / {max(self.labels.values())}"))
        if self.splits is not None:
            rows.append(("splits", ", ".join(f"{k} {v}" for k, v in self.splits.items())))
        rows.append(("exact duplicate rows", self.exact_duplicate_rows))
        rows.append(("inputs with conflicting labels", self.conflicting_labels))
        if self.near_duplicates is not None:
            rows.append((f"near-duplicate pairs (cosine >= {self.near_duplicate_threshold})",
                         len(self.near_duplicates)))
        else:
            rows.append(("near-duplicate pairs", "not computed"))
        for note in self.notes:
            rows.append(("note", note))
        return pd.DataFrame(rows, columns=["metric", "value"]).set_index("metric")

    def _repr_html_(self) -> str:
        return self.summary.to_html()

    def figures(self) -> dict[str, go.Figure]:
        """Plotly figures: ``lengths`` (histogram of input length), ``labels`` (label balance),
        ``lengths_by_label`` (box plot), ``quality`` (empties and duplicates), ``splits``."""
        import plotly.express as px
        import plotly.graph_objects as go

        figs: dict[str, go.Figure] = {}
        lengths = self.lengths if self.lengths is not None else _empty_series()
        figs["lengths"] = px.histogram(
            x=lengths, nbins=min(60, max(10, len(lengths) // 20 or 10)),
            labels={"x": "input length (characters)"},
            title=f"Input length — median {self.input_chars.get('median', 0):.0f} characters")
        figs["lengths"].update_layout(yaxis_title="rows", bargap=0.05)
        if self.labels:
            names, counts = list(self.labels), list(self.labels.values())
            figs["labels"] = go.Figure(go.Bar(x=names, y=counts, text=counts,
                                              textposition="auto"))
            figs["labels"].update_layout(title="Label balance", xaxis_title="label",
                                         yaxis_title="rows")
            if self.expected_values is not None:
                frame = {"label": self.expected_values, "characters": lengths}
                figs["lengths_by_label"] = px.box(frame, x="label", y="characters",
                                                  title="Input length by label")
        quality = {"empty inputs": self.empty_inputs,
                   "exact duplicate rows": self.exact_duplicate_rows,
                   "conflicting labels": self.conflicting_labels}
        if self.near_duplicates is not None:
            quality["near-duplicate pairs"] = len(self.near_duplicates)
        figs["quality"] = go.Figure(go.Bar(x=list(quality), y=list(quality.values()),
                                           text=list(quality.values()), textposition="auto"))
        figs["quality"].update_layout(title=f"Data quality ({self.rows} rows)",
                                      yaxis_title="count")
        if self.splits:
            figs["splits"] = go.Figure(go.Bar(x=list(self.splits), y=list(self.splits.values()),
                                              text=list(self.splits.values()),
                                              textposition="auto"))
            figs["splits"].update_layout(title="Rows per split", yaxis_title="rows")
        return figs


def _empty_series():
    import pandas as pd

    return pd.Series([], dtype=float)


def _fmt_stats(stats: dict[str, float]) -> str:
    if not stats:
        return "-"
    return " / ".join(f"{stats[k]:.0f}" for k in ("min", "median", "p95", "max"))


def _stats(values: pd.Series) -> dict[str, float]:
    if values.empty:
        return {}
    q = values.quantile([0.05, 0.5, 0.95])
    return {"min": float(values.min()), "p5": float(q.iloc[0]), "median": float(q.iloc[1]),
            "mean": round(float(values.mean()), 2), "p95": float(q.iloc[2]),
            "max": float(values.max())}


# -- profile ---------------------------------------------------------------------------------------

def profile(df: pd.DataFrame, *, near_duplicates: bool | None = None,
            threshold: float = DEFAULT_THRESHOLD, progress: bool = False) -> DataProfile:
    """Profile a dataset frame (``id``, ``input``, ``expected``, ...).

    ``near_duplicates``: True always embeds every distinct input to find near duplicates, False
    never does; None (default) does it up to 5,000 distinct inputs and notes how otherwise."""
    from workbench.data.versioning import _labels

    _require(df, ("id", "input"))
    texts = df["input"]
    as_text = texts.where(texts.notna(), "").astype(str)
    chars = as_text.str.len()
    words = as_text.str.split().str.len().fillna(0)
    empty = int((as_text.str.strip() == "").sum())
    notes: list[str] = []
    expected = df["expected"] if "expected" in df.columns else None
    missing_expected = int(expected.isna().sum()) if expected is not None else len(df)
    labels = None
    expected_values = None
    if expected is not None and len(df) and _labels(df) is not None:
        counts = expected.dropna().astype(str).value_counts()
        labels = {str(k): int(v) for k, v in counts.items()}
        expected_values = expected.astype(object).where(expected.notna(), "(none)").astype(str)
    splits = None
    if "split" in df.columns:
        splits = {str(k): int(v) for k, v in df["split"].value_counts().items()}
    exact = exact_duplicates(df)
    distinct = int(as_text.nunique())
    near = None
    if near_duplicates is None:
        near_duplicates = distinct <= NEAR_DUPLICATE_PROFILE_LIMIT
        if not near_duplicates:
            notes.append(f"near duplicates not computed for {distinct:,} distinct inputs "
                         "(embedding takes ~3 ms a row); call near_duplicates(df) to find them, "
                         "or profile(df, near_duplicates=True)")
    if near_duplicates:
        near = _find_near_duplicates(df, threshold=threshold, progress=progress)
    return DataProfile(rows=len(df), columns=[str(c) for c in df.columns],
                       input_chars=_stats(chars), input_words=_stats(words.astype(float)),
                       empty_inputs=empty, missing_expected=missing_expected, labels=labels,
                       splits=splits, exact_duplicates=exact, near_duplicates=near,
                       near_duplicate_threshold=threshold if near is not None else None,
                       notes=notes, lengths=chars.reset_index(drop=True),
                       expected_values=None if expected_values is None
                       else expected_values.reset_index(drop=True))


def _require(df: Any, columns: Sequence[str]) -> None:
    import pandas as pd

    if not isinstance(df, pd.DataFrame):
        raise DatasetError(f"Expected a pandas DataFrame, got {type(df).__name__}.",
                           "Load a version first: workbench.data.load(project, name).")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"The frame has no column(s) {missing}; it has {list(df.columns)}.",
                           "Use a frame from workbench.data.load(...) or import_data(...).")


def exact_duplicates(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``input`` is identical to another row's: one row per member, columns ``group``
    (0, 1, ... largest group first), ``id``, ``input``, ``expected``. Empty when there are none."""
    import pandas as pd

    _require(df, ("id", "input"))
    columns = ["group", "id", "input", "expected"]
    texts = df["input"]
    repeated = texts.duplicated(keep=False) & texts.notna()
    if not repeated.any():
        return pd.DataFrame(columns=columns)
    dup = df.loc[repeated, ["id", "input"]].copy()
    dup["expected"] = df.loc[repeated, "expected"] if "expected" in df.columns else None
    dup["_order"] = range(len(dup))
    first = dup.groupby("input", sort=False)["_order"].transform("min")
    size = dup.groupby("input", sort=False)["_order"].transform("size")
    dup = dup.assign(_first=first, _size=size).sort_values(["_size", "_first", "_order"],
                                                           ascending=[False, True, True])
    codes, _ = pd.factorize(dup["_first"])
    dup["group"] = codes
    return dup[columns].reset_index(drop=True)


# -- near duplicates -------------------------------------------------------------------------------

_cache: OrderedDict[str, Any] = OrderedDict()
_cache_lock = threading.Lock()
_CACHE_SIZE = 50_000  # ~75 MB of vectors; profile, clean and split often embed the same texts


def embed_texts(texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
    """Unit-length embeddings of ``texts`` from the bundled model, in order. Texts are embedded
    shortest first (batches then need little padding) and remembered for the next call."""
    import numpy as np

    from workbench.llm.embeddings import DIMENSIONS, embed

    texts = list(texts)
    out = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    todo: dict[str, list[int]] = {}
    with _cache_lock:
        for i, text in enumerate(texts):
            vector = _cache.get(text)
            if vector is None:
                todo.setdefault(text, []).append(i)
            else:
                out[i] = vector
    if todo:
        pending = sorted(todo, key=len)
        batch = 2048
        chunks = range(0, len(pending), batch)
        if progress:
            from tqdm.auto import tqdm

            chunks = tqdm(chunks, desc="embedding", unit_scale=batch)
        for start in chunks:
            part = pending[start:start + batch]
            vectors = embed(part)
            with _cache_lock:
                for text, vector in zip(part, vectors):
                    out[todo[text]] = vector
                    _cache[text] = vector
                    if len(_cache) > _CACHE_SIZE:
                        _cache.popitem(last=False)
    return out


def similar_pairs(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Index pairs (i < j) whose cosine similarity is at least ``threshold``.

    The n x n similarity matrix is never held whole: row blocks are multiplied against the rows
    after them, so memory stays ~64 MB and each pair is computed once."""
    import numpy as np

    n = len(vectors)
    rows_i, rows_j, sims = [], [], []
    block = max(1, min(n, _BLOCK_ELEMENTS // max(n, 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        product = vectors[start:stop] @ vectors[start:].T  # (block, n - start)
        # keep only the upper triangle: column offset > row offset within the block
        product[np.tril_indices(stop - start, k=0, m=n - start)] = -1.0
        i, j = np.nonzero(product >= threshold)
        rows_i.append(i + start)
        rows_j.append(j + start)
        sims.append(product[i, j])
    if not rows_i:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(rows_i), np.concatenate(rows_j), np.concatenate(sims)


def near_duplicates(texts_or_df: pd.DataFrame | Sequence[str],
                    threshold: float = DEFAULT_THRESHOLD, *,
                    progress: bool = False) -> pd.DataFrame:
    """Pairs of different inputs whose embeddings (bundled all-MiniLM-L6-v2) have a cosine
    similarity of at least ``threshold``: columns ``id_a``, ``id_b``, ``similarity``, most
    similar first, ``id_a`` the earlier row.

    Identical inputs are exact duplicates (``exact_duplicates``), not listed here; a repeated
    input takes part through its first row. Given a list of texts, ids are positions."""
    import numpy as np
    import pandas as pd

    if not 0 < threshold <= 1:
        raise DatasetError(f"threshold must be a cosine similarity in (0, 1], not {threshold}.",
                           "0.92 finds paraphrases with small edits; 0.85 is looser.")
    if isinstance(texts_or_df, pd.DataFrame):
        _require(texts_or_df, ("id", "input"))
        ids = texts_or_df["id"].tolist()
        texts = texts_or_df["input"].tolist()
    else:
        texts = list(texts_or_df)
        ids = list(range(len(texts)))
    keep: dict[str, int] = {}
    for i, text in enumerate(texts):
        if isinstance(text, str) and text.strip() and text not in keep:
            keep[text] = i
    columns = ["id_a", "id_b", "similarity"]
    if len(keep) < 2:
        return pd.DataFrame(columns=columns)
    positions = np.fromiter(keep.values(), dtype=np.int64, count=len(keep))
    vectors = embed_texts(list(keep), progress=progress)
    i, j, sims = similar_pairs(vectors, threshold)
    a, b = positions[i], positions[j]
    order = np.lexsort((b, a, -sims))
    id_array = np.asarray(ids, dtype=object)
    return pd.DataFrame({"id_a": id_array[a[order]], "id_b": id_array[b[order]],
                         "similarity": np.round(sims[order].astype(float), 4)},
                        columns=columns)


_find_near_duplicates = near_duplicates  # profile() has a parameter of the same name


def duplicate_groups(df: pd.DataFrame, pairs: pd.DataFrame | None = None, *,
                     key=None) -> np.ndarray:
    """A group number per row: rows with the same input (after ``key``) or linked by a
    near-duplicate pair (directly or through others) share a group."""
    import numpy as np
    import pandas as pd
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(df)
    texts = df["input"].where(df["input"].notna(), "").astype(str)
    if key is not None:
        texts = texts.map(key)
    first_of_text = pd.Series(np.arange(n)).groupby(texts.to_numpy()).transform("min").to_numpy()
    src, dst = [np.arange(n)], [first_of_text]
    if pairs is not None and len(pairs):
        position = pd.Series(np.arange(n), index=df["id"].to_numpy())
        src.append(position.loc[pairs["id_a"].to_numpy()].to_numpy())
        dst.append(position.loc[pairs["id_b"].to_numpy()].to_numpy())
    s, d = np.concatenate(src), np.concatenate(dst)
    graph = coo_matrix((np.ones(len(s), dtype=np.int8), (s, d)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


# -- label issues ----------------------------------------------------------------------------------

def _out_of_fold_probabilities(df: pd.DataFrame, folds: int = 5) -> pd.DataFrame:
    """Out-of-fold class probabilities from the classical baseline (TF-IDF + logistic
    regression): each row is scored by a model that never saw it. Columns are the labels
    (sorted), index is ``df``'s."""
    from workbench.baseline import out_of_fold_probabilities

    return out_of_fold_probabilities(df, folds=folds)


# What label_issues scores rows with; tests and experiments may swap in another model.
OUT_OF_FOLD = _out_of_fold_probabilities


def label_issues(df: pd.DataFrame, probabilities: pd.DataFrame | np.ndarray | None = None, *,
                 folds: int = 5) -> pd.DataFrame:
    """Rows whose given label is likely wrong, most suspicious first, for a person to review.

    Confident learning (cleanlab's ``find_label_issues``) over out-of-fold predicted
    probabilities from the classical baseline (TF-IDF + logistic regression), unless you pass
    ``probabilities``: a DataFrame with one column per label, or an array whose columns are the
    sorted labels, one row per row of ``df``. Columns of the result: ``id``, ``input``,
    ``given_label``, ``suggested_label``, ``confidence`` (the model's probability for the
    suggestion) and ``label_quality`` (its probability for the given label; low is suspicious).
    Rows without a label or without text are left out."""
    import numpy as np
    import pandas as pd
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from workbench.data.versioning import _labels

    _require(df, ("id", "input", "expected"))
    columns = ["id", "input", "given_label", "suggested_label", "confidence", "label_quality"]
    # a row without a label, or without text, cannot be judged
    judged = df["expected"].notna() & (df["expected"].astype(object).where(
        df["expected"].notna(), "").astype(str).str.strip() != "")
    judged &= df["input"].notna() & (df["input"].astype(object).where(
        df["input"].notna(), "").astype(str).str.strip() != "")
    labelled = df[judged]
    if labelled.empty or _labels(labelled) is None:
        raise DatasetError("The expected column does not hold labels (it is empty, or free "
                           "text with many distinct values), so there are no labels to check.",
                           "label_issues works on classification data; for free-text answers "
                           "review a sample by hand or with an LLM judge.")
    given = labelled["expected"].astype(str)
    counts = given.value_counts()
    if len(counts) < 2:
        raise DatasetError(f"Every labelled row has the label {counts.index[0]!r}; there is "
                           "nothing to compare it with.", "Label examples of other classes.")
    if probabilities is None:
        small = counts[counts < 2]
        if len(small):
            raise DatasetError(f"Label(s) {list(small.index)} occur only once, too few to "
                               "predict from the other rows.",
                               "Check whether they are typos of another label (fix them), or "
                               "label more examples of them.")
        frame = OUT_OF_FOLD(labelled, folds=max(2, min(folds, int(counts.min()))))
    elif isinstance(probabilities, pd.DataFrame):
        frame = probabilities.loc[labelled.index] if len(probabilities) == len(df) \
            else probabilities
    else:
        probabilities = np.asarray(probabilities, dtype=float)
        if probabilities.shape[0] == len(df):
            probabilities = probabilities[judged.to_numpy()]
        frame = pd.DataFrame(probabilities, index=labelled.index,
                             columns=sorted(counts.index)[:probabilities.shape[1]])
    classes = [str(c) for c in frame.columns]
    unknown = sorted(set(given) - set(classes))
    if unknown or len(frame) != len(labelled):
        raise DatasetError(f"The probabilities do not match the data ({len(frame)} rows for "
                           f"{len(labelled)} labelled rows; labels without a column: {unknown}).",
                           "Pass one row per labelled row and one column per label.")
    codes = np.array([classes.index(label) for label in given])
    pred = frame.to_numpy(dtype=float)
    # n_jobs=1: cleanlab otherwise forks a process pool, and forked workers inside a notebook
    # server can hang for good (they inherit its threads and ignore SIGTERM).
    ranked = find_label_issues(codes, pred, return_indices_ranked_by="self_confidence",
                               n_jobs=1)
    quality = get_label_quality_scores(codes, pred, method="self_confidence")
    best = pred.argmax(axis=1)
    rows = labelled.iloc[ranked]
    return pd.DataFrame({"id": rows["id"].to_numpy(), "input": rows["input"].to_numpy(),
                         "given_label": given.iloc[ranked].to_numpy(),
                         "suggested_label": [classes[k] for k in best[ranked]],
                         "confidence": np.round(pred[ranked, best[ranked]], 4),
                         "label_quality": np.round(quality[ranked], 4)}, columns=columns)


def review_items(df: pd.DataFrame, ids: Iterable[Any]) -> list[dict[str, Any]]:
    """The rows ``ids`` names (e.g. ``label_issues(...)["id"]``), in that order, as items for a
    person to review: ``id``, ``input`` and the current ``label``. Ids no longer in ``df`` (a
    later cleaning step dropped them) are left out, so suspects found on one version can be
    reviewed on a newer one."""
    current = df.set_index("id")
    return [{"id": row_id, "input": str(current.at[row_id, "input"]),
             "label": str(current.at[row_id, "expected"])}
            for row_id in ids if row_id in current.index]
