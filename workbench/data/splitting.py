"""Train / validation / test splits that do not leak.

A split is only honest when nothing in the test set was seen in training. Rows are therefore
grouped first — identical inputs (ignoring case, spacing and Unicode form) and near duplicates
(bundled embeddings) form one group — and whole groups are assigned to splits, stratified by label
when ``expected`` holds labels, deterministically for a given seed. ``check_leakage`` proves it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from workbench.data.versioning import DatasetError, DatasetVersion
from workbench.records import Stored

if TYPE_CHECKING:
    import pandas as pd

    from workbench.project import Project

SPLITS = ("train", "validation", "test")
_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation", "eval": "test"}


class SplitError(DatasetError):
    """A split could not be made or read."""


def _key(text: str) -> str:
    """What counts as "the same item": case, spacing and Unicode compatibility forms ignored."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _check_ratios(ratios: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(r) for r in ratios)
    if len(values) != 3 or any(r < 0 for r in values) or abs(sum(values) - 1) > 1e-6 \
            or values[0] == 0:
        raise SplitError(f"ratios must be three non-negative fractions for train, validation "
                         f"and test that add up to 1, with some train; got {tuple(ratios)}.",
                         "For example ratios=(0.7, 0.15, 0.15) or (0.8, 0.2, 0.0).")
    return values  # type: ignore[return-value]


def assign_splits(df: pd.DataFrame, *, ratios: Sequence[float] = (0.7, 0.15, 0.15),
                  seed: int = 0, stratify: bool = True, near_duplicate_threshold: float | None
                  = 0.92, pairs: pd.DataFrame | None = None) -> tuple[pd.DataFrame,
                                                                      dict[str, Any]]:
    """The pure part of ``split``: ``df`` with a ``split`` column, and what was done (for the
    transform's params). ``pairs`` reuses near-duplicate pairs already found."""
    import numpy as np
    import pandas as pd

    from workbench.data.profiling import duplicate_groups, near_duplicates
    from workbench.data.versioning import _labels, check_frame

    check_frame(df)
    ratios = _check_ratios(ratios)
    df = df.reset_index(drop=True)
    if df.empty:
        raise SplitError("The dataset has no rows to split.", "Import some data first.")
    notes: list[str] = []
    if "split" in df.columns:
        notes.append("replaced the split this version already had")
    if pairs is None and near_duplicate_threshold is not None:
        pairs = near_duplicates(df, threshold=near_duplicate_threshold)
    groups = duplicate_groups(df, pairs, key=_key)
    n_groups = int(groups.max()) + 1
    sizes = np.bincount(groups, minlength=n_groups)

    labels = None
    if stratify:
        if df["expected"].notna().any() and _labels(df) is not None:
            labels = df["expected"].astype(object).where(df["expected"].notna(), "(none)") \
                .astype(str)
        else:
            notes.append("not stratified: expected holds no labels (empty or free text)")
    if labels is not None:
        # a group's label is its most common one (ties: the first in sort order)
        counts = pd.DataFrame({"group": groups, "label": labels.to_numpy()}).value_counts() \
            .reset_index().sort_values(["group", "count", "label"], ascending=[True, False, True])
        group_label = counts.drop_duplicates("group").set_index("group")["label"] \
            .reindex(range(n_groups)).to_numpy(dtype=object)
    else:
        group_label = np.array(["(all)"] * n_groups, dtype=object)

    rng = np.random.default_rng(seed)
    order = rng.permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]  # big groups first, packs better
    target = np.array(ratios)
    assigned = np.full(n_groups, -1)
    global_counts = np.zeros(3)
    small: list[str] = []
    needed = max(1, int(np.ceil(1 / min(r for r in ratios if r > 0))))
    for label in sorted(set(group_label.tolist())):
        members = order[group_label[order] == label]
        total = sizes[members].sum()
        counts = np.zeros(3)
        if labels is not None and len(members) < needed:
            small.append(f"{label} ({total})")
        for g in members:
            deficit = target * (total) - counts
            deficit[target == 0] = -np.inf
            # ties (common for small classes) go where the whole dataset is furthest behind
            overall = target * (global_counts.sum() + sizes[g]) - global_counts
            choice = max(range(3), key=lambda s: (round(deficit[s], 9), overall[s], -s))
            assigned[g] = choice
            counts[choice] += sizes[g]
            global_counts[choice] += sizes[g]
    if small:
        notes.append("too few examples to stratify for label(s) " + ", ".join(small) +
                     f": each needs at least {needed} to reach every split, so some splits "
                     "lack them")
    out = df.copy()
    out["split"] = np.array(SPLITS, dtype=object)[assigned[groups]]
    grouped = int((sizes[groups] > 1).sum())
    info: dict[str, Any] = {
        "ratios": list(ratios), "seed": seed, "stratified_by": "expected" if labels is not None
        else None, "near_duplicate_threshold": near_duplicate_threshold,
        "groups": n_groups, "rows_in_shared_groups": grouped,
        "counts": {s: int((out["split"] == s).sum()) for s in SPLITS},
    }
    if labels is not None:
        info["label_counts"] = {s: {str(k): int(v) for k, v in
                                    labels[out["split"] == s].value_counts().sort_index().items()}
                                for s in SPLITS}
    if notes:
        info["notes"] = notes
    return out, info


def split(project: Project, name: str, version: int | str | None = None,
          ratios: Sequence[float] = (0.7, 0.15, 0.15), seed: int = 0, stratify: bool = True,
          near_duplicate_threshold: float | None = 0.92) -> Stored[DatasetVersion]:
    """Add a ``split`` column (train / validation / test) to a version of ``name`` and save it as
    a new version. Identical and near-duplicate inputs (``near_duplicate_threshold``; None for
    identical only) stay in one split; labels keep their proportions in each split when
    ``stratify`` and ``expected`` holds labels. The same data, ratios and seed give the same
    split. The result is checked for leakage before it is saved."""
    from workbench.data.profiling import near_duplicates
    from workbench.data.versioning import get_version, load, save_version

    source = get_version(project, name, version)
    df = load(project, name, source.version)
    pairs = None
    if near_duplicate_threshold is not None:
        pairs = near_duplicates(df, threshold=near_duplicate_threshold)
    out, info = assign_splits(df, ratios=ratios, seed=seed, stratify=stratify,
                              near_duplicate_threshold=near_duplicate_threshold, pairs=pairs)
    leaks = check_leakage(out, near_duplicate_threshold=near_duplicate_threshold, pairs=pairs)
    if not leaks.empty:  # cannot happen unless grouping is broken; never save a leaky split
        raise SplitError(f"The split leaks {len(leaks)} pair(s) across splits.",
                         "Report this as a bug, with the dataset.")
    return save_version(project, name, out, transform="split", params=info,
                        parent=source.version)


def check_leakage(df: pd.DataFrame, near_duplicate_threshold: float | None = 0.92, *,
                  pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pairs of rows in different splits that are the same item (``kind`` "exact": equal input
    ignoring case, spacing and Unicode form) or near duplicates (``kind`` "near"). Columns
    ``id_a``, ``split_a``, ``id_b``, ``split_b``, ``kind``, ``similarity``; empty when the split
    is clean."""
    import pandas as pd

    from workbench.data.profiling import near_duplicates

    columns = ["id_a", "split_a", "id_b", "split_b", "kind", "similarity"]
    if "split" not in df.columns:
        raise SplitError("The frame has no split column, so there is nothing to check.",
                         "Split the dataset first: workbench.data.split(project, name).")
    df = df.reset_index(drop=True)
    rows: list[dict[str, Any]] = []
    keys = df["input"].map(lambda t: _key(t) if isinstance(t, str) else None)
    frame = pd.DataFrame({"id": df["id"], "split": df["split"], "key": keys}).dropna(
        subset=["key"])
    for _, group in frame[frame["key"].duplicated(keep=False)].groupby("key", sort=False):
        if group["split"].nunique() < 2:
            continue
        first = group.iloc[0]
        for other in group.iloc[1:].itertuples():
            if other.split != first["split"]:
                rows.append({"id_a": first["id"], "split_a": first["split"], "id_b": other.id,
                             "split_b": other.split, "kind": "exact", "similarity": 1.0})
    if pairs is None and near_duplicate_threshold is not None:
        pairs = near_duplicates(df, threshold=near_duplicate_threshold)
    if pairs is not None and len(pairs):
        split_of = dict(zip(df["id"].tolist(), df["split"].tolist()))
        key_of = dict(zip(df["id"].tolist(), keys.tolist()))
        for a, b, sim in zip(pairs["id_a"].tolist(), pairs["id_b"].tolist(),
                             pairs["similarity"].tolist()):
            if split_of[a] != split_of[b] and key_of[a] != key_of[b]:  # else listed as exact
                rows.append({"id_a": a, "split_a": split_of[a], "id_b": b,
                             "split_b": split_of[b], "kind": "near", "similarity": sim})
    return pd.DataFrame(rows, columns=columns)


def version_leaks(project: Project, name: str, version: int | str | None = None, *,
                  near_duplicate_threshold: float | None = 0.92) -> pd.DataFrame:
    """``check_leakage`` on a stored version of ``name`` (the latest by default): the check a
    person reads after a split to see that no item or near duplicate sits in two splits."""
    from workbench.data.versioning import load

    return check_leakage(load(project, name, version),
                         near_duplicate_threshold=near_duplicate_threshold)


def load_split(project: Project, name: str, which: str,
               version: int | str | None = None) -> pd.DataFrame:
    """The rows of one split (``"train"``, ``"validation"`` or ``"test"``) of a split version."""
    from workbench.data.versioning import get_version, load

    which = _ALIASES.get(which, which)
    if which not in SPLITS:
        raise SplitError(f"There is no split {which!r}.", f"Use one of {list(SPLITS)}.")
    stored = get_version(project, name, version)
    if "split" not in stored.value.columns:
        raise SplitError(f"{name} v{stored.version} has not been split.",
                         f"Split it first: workbench.data.split(project, {name!r}).")
    df = load(project, name, stored.version)
    return df[df["split"] == which].reset_index(drop=True)
