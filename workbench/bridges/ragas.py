"""An optional check that the workbench's RAG metrics agree with Ragas' own implementation.

The workbench computes the Ragas metrics itself (``workbench.evaluate.rag``: Ragas needs
LangChain-style model wrappers and the network by default). When ``ragas`` is installed,
``compare_with_ragas`` scores the bundled help-centre questions both ways on the same retrieved
documents and reports each metric side by side, with the largest difference:

- **context recall (id-based)**: ``id_context_recall`` against Ragas' ``IDBasedContextRecall``
  (supporting documents retrieved / supporting documents);
- **context precision (id-based)**: the share of retrieved documents that support the answer,
  against Ragas' ``IDBasedContextPrecision`` (not rank-aware in Ragas; the workbench's
  ``id_context_precision`` is the rank-aware variant, compared with Ragas' average-precision
  routine when this Ragas version has it).

These metrics need no judge model, so the comparison is exact and offline; the LLM-judged ones
(faithfulness, answer relevancy) follow the same published formulas but depend on the judge's
verdicts, so they are compared by formula in ``tests/test_rag.py`` on Ragas' worked examples.
Ragas is not a dependency: ``pip install ragas`` to run this check.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any

from workbench.bridges import BridgeError
from workbench.errors import MissingDependency

if TYPE_CHECKING:
    import pandas as pd

TOLERANCE = 1e-9


def _ragas() -> Any:
    try:
        import ragas.metrics as metrics
        from ragas.dataset_schema import SingleTurnSample
    except ImportError as exc:
        if (exc.name or "ragas").split(".")[0] == "ragas":
            raise MissingDependency("Comparing the RAG metrics with Ragas",
                                    "pip install ragas") from None
        raise BridgeError(f"Ragas is installed but does not import: {exc}.",
                          "Install versions of ragas and its LangChain packages that work "
                          "together (pip install -U ragas langchain-community).") from None
    missing = [n for n in ("IDBasedContextPrecision", "IDBasedContextRecall")
               if not hasattr(metrics, n)]
    if missing:
        raise BridgeError(f"This Ragas has no {', '.join(missing)}.",
                          "Install a Ragas with the id-based metrics (0.2 or newer).")
    return metrics, SingleTurnSample


def _score(metric: Any, sample: Any) -> float:
    return float(asyncio.run(metric.single_turn_ascore(sample)))


def compare_with_ragas(*, k: int = 3, limit: int | None = None,
                       embed_fn: Any = None) -> pd.DataFrame:
    """Per question of the bundled help-centre set: the workbench's and Ragas' id-based context
    precision and recall on the same top-``k`` retrieved documents. ``attrs["agree"]`` is True
    when every pair is equal (within 1e-9); ``attrs["sentence"]`` says so in words."""
    import pandas as pd

    from workbench.evaluate.rag import (
        Retriever,
        context_precision,
        id_context_recall,
        load_documents,
        load_qa,
    )

    metrics, Sample = _ragas()
    ragas_precision, ragas_recall = metrics.IDBasedContextPrecision(), \
        metrics.IDBasedContextRecall()
    average_precision = getattr(getattr(metrics, "LLMContextPrecisionWithReference", None),
                                "_calculate_average_precision", None)
    retriever = Retriever(load_documents(), embed_fn=embed_fn)
    rows = []
    for item in [q for q in load_qa() if q.doc_ids][:limit]:
        chunks = retriever.retrieve(item.question, k=k)
        seen: dict[str, Any] = {}
        for chunk in chunks:  # one entry per document, in rank order
            seen.setdefault(chunk.doc_id, chunk)
        docs = list(seen.values())
        ids = [c.doc_id for c in docs]
        verdicts = [d in item.doc_ids for d in ids]
        sample = Sample(retrieved_context_ids=ids, reference_context_ids=list(item.doc_ids))
        row = {"id": item.id, "retrieved": ", ".join(ids),
               "recall_workbench": id_context_recall(docs, item.doc_ids).value,
               "recall_ragas": _score(ragas_recall, sample),
               "precision_workbench": sum(verdicts) / len(verdicts) if verdicts else math.nan,
               "precision_ragas": _score(ragas_precision, sample)}
        if average_precision is not None:
            row["ranked_precision_workbench"] = context_precision(verdicts)
            row["ranked_precision_ragas"] = float(average_precision(None, verdicts))
        rows.append(row)
    frame = pd.DataFrame(rows)
    pairs = [c.removesuffix("_workbench") for c in frame.columns if c.endswith("_workbench")]
    worst = {p: float((frame[f"{p}_workbench"] - frame[f"{p}_ragas"]).abs().max())
             for p in pairs}
    agree = all(v <= TOLERANCE for v in worst.values())
    frame.attrs["worst_difference"] = worst
    frame.attrs["agree"] = agree
    frame.attrs["sentence"] = (
        f"On {len(frame)} help-centre questions, the workbench and Ragas "
        + ("agree on every metric" if agree else "disagree")
        + " (largest difference: "
        + ", ".join(f"{p.replace('_', ' ')} {v:.2g}" for p, v in worst.items()) + ").")
    return frame


__all__ = ["compare_with_ragas"]
