"""Question answering over documents (RAG): a small retriever and the Ragas metrics.

- ``load_documents`` / ``load_qa``: the bundled help centre (``datasets/product_docs``) and its
  questions with reference answers and supporting document ids (``datasets/product_qa.jsonl``);
- ``Retriever``: paragraph chunks embedded with the bundled all-MiniLM-L6-v2, cosine top-k;
- ``answer``: a RAG prompt through the gateway;
- metrics with Ragas' published definitions (docs.ragas.io, "Available metrics"):

  * ``context_precision`` — rank-aware: ``sum_k(precision@k * v_k) / (relevant chunks in top K)``
    with ``v_k`` the relevance verdict of the chunk at rank k; the verdicts come from a judge
    (``llm_context_precision``) or, deterministically, from the QA file's supporting document ids
    (``id_context_precision``);
  * ``context_recall`` — reference-answer statements attributable to the retrieved context /
    all reference statements (``llm_context_recall``); ``id_context_recall`` is the id-based
    variant: supporting documents retrieved / supporting documents;
  * ``faithfulness`` — claims in the answer supported by the context / claims in the answer;
  * ``answer_relevancy`` — mean cosine similarity between the question and questions generated
    from the answer, 0 when the answer is noncommittal ("I don't know").

Each LLM step (statement extraction, verification, attribution, question generation) is one
gateway call to a ``judge_model`` with its prompt defined below, so it can be read and changed.
Ragas itself is not used: it needs LangChain-style LLM wrappers and network access by default;
the math here is tested against the worked examples in Ragas' documentation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from workbench.project import Project
    from workbench.records import Completion

EmbedFn = Callable[[Sequence[str]], "np.ndarray"]


class RagError(WorkbenchError):
    """The RAG data or a judge reply could not be used."""


# -- data ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Document:
    id: str
    title: str
    text: str


@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    reference: str
    doc_ids: tuple[str, ...]
    answerable: bool = True


def _datasets() -> Path:
    from workbench.bundled import datasets_dir

    return datasets_dir()


def load_documents(folder: str | Path | None = None) -> list[Document]:
    """The Markdown documents in ``folder`` (default: the bundled help centre), id = file stem,
    title = the first ``# `` heading."""
    folder = Path(folder) if folder is not None else _datasets() / "product_docs"
    paths = sorted(folder.glob("*.md"))
    if not paths:
        raise RagError(f"There are no .md documents in {folder}.",
                       "Point load_documents() at a folder of Markdown files.")
    docs = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        heading = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")),
                       path.stem)
        docs.append(Document(path.stem, heading, text))
    return docs


def load_qa(path: str | Path | None = None) -> list[QAItem]:
    """Questions with reference answers and supporting document ids (JSONL, one per line)."""
    path = Path(path) if path is not None else _datasets() / "product_qa.jsonl"
    items = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            items.append(QAItem(str(row["id"]), row["question"], row["reference"],
                                tuple(row.get("doc_ids") or ()),
                                bool(row.get("answerable", True))))
        except (ValueError, KeyError, TypeError) as exc:
            raise RagError(f"Line {n} of {path} is not a QA item ({type(exc).__name__}: {exc}).",
                           "Each line needs id, question, reference and doc_ids.") from None
    return items


# -- retrieval -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Chunk:
    doc_id: str
    text: str
    score: float = 0.0


def chunk_document(doc: Document, chunk_size: int = 600) -> list[Chunk]:
    """Paragraphs packed into chunks of at most ``chunk_size`` characters (a longer paragraph is
    its own chunk). Each chunk starts with the document title, so it is understandable alone."""
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", doc.text)
                  if p.strip() and not p.strip().startswith("# ")]
    chunks, current = [], ""
    for para in paragraphs:
        para = " ".join(para.split())
        if current and len(current) + 1 + len(para) > chunk_size:
            chunks.append(current)
            current = para
        else:
            current = f"{current} {para}".strip()
    if current:
        chunks.append(current)
    return [Chunk(doc.id, f"{doc.title}: {c}") for c in chunks]


def _default_embed(texts: Sequence[str]):
    from workbench.llm.embeddings import embed

    return embed(list(texts))


class Retriever:
    """Cosine top-k over chunk embeddings (bundled all-MiniLM-L6-v2 unless ``embed_fn`` is given:
    any function from a list of texts to unit-length row vectors)."""

    def __init__(self, documents: Sequence[Document], chunk_size: int = 600,
                 embed_fn: EmbedFn | None = None):
        self.chunk_size = chunk_size
        self.embed_fn = embed_fn or _default_embed
        self.chunks = [c for d in documents for c in chunk_document(d, chunk_size)]
        if not self.chunks:
            raise RagError("The documents have no text to retrieve from.",
                           "Give the retriever non-empty documents.")
        self._vectors = self.embed_fn([c.text for c in self.chunks])

    def retrieve(self, question: str, k: int = 3) -> list[Chunk]:
        import numpy as np

        query = np.asarray(self.embed_fn([question]))[0]
        scores = np.asarray(self._vectors) @ query
        top = np.argsort(-scores, kind="stable")[:k]
        return [Chunk(self.chunks[i].doc_id, self.chunks[i].text, float(scores[i])) for i in top]


# -- answering -----------------------------------------------------------------------------------

RAG_SYSTEM = (
    "You answer customer questions using only the help-centre excerpts given with the question. "
    "If the excerpts do not contain the answer, say that you don't know. Answer in one to three "
    "sentences.")
RAG_TEMPLATE = "Help-centre excerpts:\n{context}\n\nQuestion: {question}\nAnswer:"


@dataclass
class RagAnswer:
    question: str
    answer: str | None
    chunks: list[Chunk]
    completion: Completion | None = None
    error: str | None = None

    @property
    def contexts(self) -> list[str]:
        return [c.text for c in self.chunks]


def format_context(chunks: Sequence[Chunk]) -> str:
    return "\n".join(f"[{i}] ({c.doc_id}) {c.text}" for i, c in enumerate(chunks, 1))


def answer(project: Project | None, question: str, retriever: Retriever,
           model: str | None = None, k: int = 3, **options: Any) -> RagAnswer:
    """Retrieve ``k`` chunks and answer from them. A failed model call lands in ``error``."""
    from workbench import llm

    chunks = retriever.retrieve(question, k)
    prompt = RAG_TEMPLATE.format(context=format_context(chunks), question=question)
    try:
        reply = llm.complete(prompt, model=model, project=project, system=RAG_SYSTEM,
                             **{"temperature": 0, **options})
    except WorkbenchError as exc:
        return RagAnswer(question, None, chunks, None, exc.one_line())
    return RagAnswer(question, reply.text.strip(), chunks, reply)


# -- metric results ------------------------------------------------------------------------------

METRIC_NAMES = ("id_context_precision", "id_context_recall", "context_precision",
                "context_recall", "faithfulness", "answer_relevancy")


@dataclass(frozen=True)
class MetricResult:
    """One metric on one question: ``value`` in [0, 1] (NaN when it cannot be computed), a reason
    for people, and the intermediate steps (statements, verdicts, generated questions)."""

    name: str
    value: float
    reason: str
    steps: dict[str, Any] = field(default_factory=dict)

    def as_score(self, threshold: float | None = None):
        from workbench.evaluate.scorers import Score

        passed = None if threshold is None or math.isnan(self.value) else \
            self.value >= threshold
        return Score(self.value, passed, self.reason)


NAN = float("nan")


# -- the math (pure functions, tested against Ragas' documented examples) ------------------------

def context_precision(verdicts: Sequence[bool | int]) -> float:
    """Ragas context precision@K from relevance verdicts in rank order:
    ``sum_k(precision@k * v_k) / (number of relevant chunks in the top K)``; 0 with none."""
    relevant = 0
    total = 0.0
    for k, v in enumerate(verdicts, 1):
        if v:
            relevant += 1
            total += relevant / k
    return total / relevant if relevant else 0.0


def fraction(verdicts: Sequence[bool | int]) -> float:
    """Share of true verdicts (faithfulness, context recall); NaN when there are none."""
    return sum(1 for v in verdicts if v) / len(verdicts) if verdicts else NAN


def mean_cosine(question_vector, generated_vectors) -> float:
    import numpy as np

    q = np.asarray(question_vector, dtype=float)
    g = np.asarray(generated_vectors, dtype=float)
    if g.size == 0:
        return NAN
    g = g.reshape(len(g), -1)
    cos = (g @ q) / (np.linalg.norm(g, axis=1) * np.linalg.norm(q) + 1e-12)
    return float(cos.mean())


# -- deterministic (non-LLM) variants ------------------------------------------------------------

def id_context_precision(chunks: Sequence[Chunk], relevant_doc_ids: Sequence[str]) -> MetricResult:
    """Rank-aware context precision with ``v_k`` = "the chunk comes from a supporting document".
    (Ragas' own ``IDBasedContextPrecision`` is the plain share of relevant ids, not rank-aware.)"""
    if not relevant_doc_ids:
        return MetricResult("id_context_precision", NAN,
                            "The question has no supporting documents to compare with")
    verdicts = [c.doc_id in relevant_doc_ids for c in chunks]
    value = context_precision(verdicts)
    ranks = [i for i, v in enumerate(verdicts, 1) if v]
    reason = (f"Supporting chunks at ranks {ranks} of {len(chunks)}" if ranks else
              f"None of the {len(chunks)} retrieved chunks comes from a supporting document")
    return MetricResult("id_context_precision", value, reason, {"verdicts": verdicts})


def id_context_recall(chunks: Sequence[Chunk], relevant_doc_ids: Sequence[str]) -> MetricResult:
    """Supporting documents that appear among the retrieved chunks / supporting documents."""
    if not relevant_doc_ids:
        return MetricResult("id_context_recall", NAN,
                            "The question has no supporting documents to compare with")
    found = {c.doc_id for c in chunks}
    hits = [d for d in relevant_doc_ids if d in found]
    missing = [d for d in relevant_doc_ids if d not in found]
    reason = f"Retrieved {len(hits)} of {len(relevant_doc_ids)} supporting documents" + \
        (f"; missing {missing}" if missing else "")
    return MetricResult("id_context_recall", len(hits) / len(relevant_doc_ids), reason,
                        {"found": hits, "missing": missing})


def split_sentences(text: str) -> list[str]:
    """A deterministic stand-in for LLM statement extraction: one statement per sentence."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])", " ".join((text or "").split()))
    return [p.strip() for p in parts if len(p.strip()) > 1]


# -- LLM steps: prompts ---------------------------------------------------------------------------

STATEMENTS_PROMPT = """Break the answer below into short, standalone factual statements. Each \
statement must be understandable without the others (replace pronouns with what they refer to). \
Reply with a JSON list of strings and nothing else.

Question: {question}
Answer: {text}
Statements:"""

VERIFY_PROMPT = """Context:
{context}

For each numbered statement, decide whether it can be directly inferred from the context above. \
Reply with a JSON list with one object per statement, in order: \
{{"statement": "...", "reason": "...", "verdict": 1 or 0}} (1 = supported, 0 = not supported). \
Nothing else.

Statements:
{statements}"""

ATTRIBUTION_PROMPT = """Question: {question}
Context:
{context}

Reference answer statements:
{statements}

For each numbered statement of the reference answer, decide whether it can be attributed to the \
context. Reply with a JSON list with one object per statement, in order: \
{{"statement": "...", "reason": "...", "attributed": 1 or 0}}. Nothing else."""

CHUNK_RELEVANCE_PROMPT = """Question: {question}
Reference answer: {reference}
Context: {context}

Was this context useful in arriving at the reference answer? Reply with a JSON object \
{{"reason": "...", "verdict": 1 or 0}} and nothing else."""

QUESTIONS_PROMPT = """Write {n} different questions that the answer below answers, and say \
whether the answer is noncommittal (evasive or vague, like "I don't know" or "I'm not sure"). \
Reply with a JSON object {{"questions": ["...", ...], "noncommittal": 1 or 0}} and nothing else.

Answer: {text}"""


def _judge_json(prompt: str, judge_model: str, project: Project | None) -> Any:
    """One judge call; the first JSON value in its reply. Raises RagError when there is none."""
    from workbench import llm

    reply = llm.complete(prompt, model=judge_model, project=project, temperature=0).text
    return parse_json_reply(reply)


def parse_json_reply(reply: str) -> Any:
    text = reply.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1).strip()
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "[{":
            try:
                return decoder.raw_decode(text[i:])[0]
            except ValueError:
                continue
    raise RagError(f"The judge's reply has no JSON in it: {reply[:80]!r}.",
                   "Use a stronger judge model, or check the judge prompt.")


def _verdicts(rows: Any, key: str, n: int) -> list[bool]:
    """Read ``n`` 0/1 verdicts from a judge's JSON list (objects with ``key``, or bare numbers)."""
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), [rows])
    if not isinstance(rows, list) or len(rows) != n:
        raise RagError(f"The judge gave {len(rows) if isinstance(rows, list) else 'no'} verdicts "
                       f"for {n} statements.", "Use a stronger judge model.")
    out = []
    for row in rows:
        value = row.get(key, row.get("verdict")) if isinstance(row, dict) else row
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(value == 1)
        else:
            out.append(str(value).strip().lower() in ("1", "1.0", "true", "yes"))
    return out


def _statements(text: str, question: str, judge_model: str | None,
                project: Project | None) -> list[str]:
    if judge_model is None:
        return split_sentences(text)
    rows = _judge_json(STATEMENTS_PROMPT.format(question=question, text=text), judge_model,
                       project)
    if isinstance(rows, dict):
        rows = next((v for v in rows.values() if isinstance(v, list)), [])
    return [str(s).strip() for s in rows if str(s).strip()]


def _numbered(statements: Sequence[str]) -> str:
    return "\n".join(f"{i}. {s}" for i, s in enumerate(statements, 1))


def _guard(name: str, fn: Callable[[], MetricResult]) -> MetricResult:
    try:
        return fn()
    except WorkbenchError as exc:
        return MetricResult(name, NAN, f"Could not be computed: {exc.one_line()}")


# -- LLM-judged metrics ---------------------------------------------------------------------------

def faithfulness(question: str, answer_text: str, contexts: Sequence[str], judge_model: str, *,
                 project: Project | None = None,
                 statements: Sequence[str] | None = None) -> MetricResult:
    """Claims in the answer supported by the context / claims in the answer. ``statements``
    skips the extraction call (e.g. ``split_sentences(answer)`` as the non-LLM extraction)."""

    def run() -> MetricResult:
        claims = list(statements) if statements is not None else \
            _statements(answer_text, question, judge_model, project)
        if not claims:
            return MetricResult("faithfulness", NAN, "The answer makes no claims to check")
        rows = _judge_json(VERIFY_PROMPT.format(context="\n\n".join(contexts),
                                                statements=_numbered(claims)),
                           judge_model, project)
        verdicts = _verdicts(rows, "verdict", len(claims))
        unsupported = [c for c, v in zip(claims, verdicts) if not v]
        reason = f"{sum(verdicts)} of {len(claims)} claims are supported by the context" + \
            (f"; not supported: {unsupported[0]!r}" if unsupported else "")
        return MetricResult("faithfulness", fraction(verdicts), reason,
                            {"statements": claims, "verdicts": verdicts})

    return _guard("faithfulness", run)


def llm_context_recall(question: str, reference: str, contexts: Sequence[str], judge_model: str,
                       *, project: Project | None = None,
                       statements: Sequence[str] | None = None) -> MetricResult:
    """Reference statements attributable to the retrieved context / reference statements.
    Without ``statements``, the reference is split into sentences, as Ragas does."""

    def run() -> MetricResult:
        claims = list(statements) if statements is not None else split_sentences(reference)
        if not claims:
            return MetricResult("context_recall", NAN, "The reference answer is empty")
        rows = _judge_json(ATTRIBUTION_PROMPT.format(question=question,
                                                     context="\n\n".join(contexts),
                                                     statements=_numbered(claims)),
                           judge_model, project)
        verdicts = _verdicts(rows, "attributed", len(claims))
        missing = [c for c, v in zip(claims, verdicts) if not v]
        reason = f"{sum(verdicts)} of {len(claims)} reference statements are in the context" + \
            (f"; missing: {missing[0]!r}" if missing else "")
        return MetricResult("context_recall", fraction(verdicts), reason,
                            {"statements": claims, "verdicts": verdicts})

    return _guard("context_recall", run)


def llm_context_precision(question: str, reference: str, contexts: Sequence[str],
                          judge_model: str, *, project: Project | None = None) -> MetricResult:
    """Rank-aware context precision with one judge verdict per chunk ("was it useful to arrive at
    the reference answer?")."""

    def run() -> MetricResult:
        if not contexts:
            return MetricResult("context_precision", NAN, "Nothing was retrieved")
        verdicts = []
        for ctx in contexts:
            row = _judge_json(CHUNK_RELEVANCE_PROMPT.format(question=question,
                                                            reference=reference, context=ctx),
                              judge_model, project)
            verdicts.extend(_verdicts([row] if isinstance(row, dict) else row, "verdict", 1))
        ranks = [i for i, v in enumerate(verdicts, 1) if v]
        reason = (f"Useful chunks at ranks {ranks} of {len(contexts)}" if ranks else
                  f"None of the {len(contexts)} chunks was useful")
        return MetricResult("context_precision", context_precision(verdicts), reason,
                            {"verdicts": verdicts})

    return _guard("context_precision", run)


def answer_relevancy(question: str, answer_text: str, judge_model: str, *, n: int = 3,
                     project: Project | None = None,
                     embed_fn: EmbedFn | None = None) -> MetricResult:
    """Mean cosine similarity between the question and ``n`` questions the judge writes from the
    answer (bundled embeddings), times 0 when the judge calls the answer noncommittal."""

    def run() -> MetricResult:
        reply = _judge_json(QUESTIONS_PROMPT.format(n=n, text=answer_text), judge_model, project)
        if isinstance(reply, list):
            reply = {"questions": reply, "noncommittal": 0}
        questions = [str(q) for q in reply.get("questions", []) if str(q).strip()]
        noncommittal = str(reply.get("noncommittal", 0)).strip().lower() in ("1", "true", "yes")
        if not questions:
            return MetricResult("answer_relevancy", NAN, "The judge wrote no questions")
        vectors = (embed_fn or _default_embed)([question, *questions])
        similarity = mean_cosine(vectors[0], vectors[1:])
        value = 0.0 if noncommittal else similarity
        reason = ("The answer is noncommittal" if noncommittal else
                  f"Questions generated from the answer have mean similarity {similarity:.2f} "
                  "to the question")
        return MetricResult("answer_relevancy", value, reason,
                            {"questions": questions, "noncommittal": noncommittal,
                             "similarity": similarity})

    return _guard("answer_relevancy", run)


# -- a whole evaluation ---------------------------------------------------------------------------

def evaluate_rag(project: Project | None, items: Sequence[QAItem], retriever: Retriever,
                 model: str | None = None, *, k: int = 3, judge_model: str | None = None,
                 progress: bool = True) -> pd.DataFrame:
    """Answer every item and score it: the id-based metrics always, the four judged Ragas
    metrics when ``judge_model`` is given (answer relevancy embeds with the retriever's
    embeddings). One row per item, metrics in columns, reasons in ``<metric>_reason``."""
    import pandas as pd

    rows = []
    iterator = items
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(items, desc="RAG eval", unit="question")
    for item in iterator:
        result = answer(project, item.question, retriever, model, k)
        metrics = [id_context_precision(result.chunks, item.doc_ids),
                   id_context_recall(result.chunks, item.doc_ids)]
        if judge_model is not None and result.answer is not None:
            metrics += [
                llm_context_precision(item.question, item.reference, result.contexts,
                                      judge_model, project=project),
                llm_context_recall(item.question, item.reference, result.contexts,
                                   judge_model, project=project),
                faithfulness(item.question, result.answer, result.contexts, judge_model,
                             project=project),
                answer_relevancy(item.question, result.answer, judge_model, project=project,
                                 embed_fn=retriever.embed_fn),
            ]
        row = {"id": item.id, "question": item.question, "answer": result.answer,
               "reference": item.reference, "retrieved": [c.doc_id for c in result.chunks],
               "expected_docs": list(item.doc_ids), "answerable": item.answerable,
               "error": result.error}
        for m in metrics:
            row[m.name] = m.value
            row[f"{m.name}_reason"] = m.reason
        rows.append(row)
    return pd.DataFrame(rows)


def summarize_rag(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per metric of ``evaluate_rag``'s table: items scored, mean and its 95% bootstrap
    interval (items a metric could not score are left out, not counted as 0)."""
    import math

    import pandas as pd

    from workbench.evaluate.stats import bootstrap_interval

    rows = []
    for column in scores.columns:
        if column.endswith("_reason") or column not in METRIC_NAMES:
            continue
        values = [float(v) for v in scores[column] if v is not None and v == v]
        low, high = bootstrap_interval(values) if len(values) > 1 else (math.nan, math.nan)
        rows.append({"metric": column, "scored": len(values),
                     "mean": sum(values) / len(values) if values else math.nan,
                     "low": low, "high": high})
    return pd.DataFrame(rows, columns=["metric", "scored", "mean", "low", "high"])
