"""RAG: bundled documents and questions, retrieval, and the Ragas metrics checked against the
worked examples in Ragas' documentation (docs.ragas.io, v0.1.21 and v0.2 metric pages), with
scripted fake judges returning the examples' verdicts."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from workbench.evaluate import rag
from workbench.evaluate.rag import (
    Chunk,
    Document,
    Retriever,
    answer_relevancy,
    context_precision,
    evaluate_rag,
    faithfulness,
    id_context_precision,
    id_context_recall,
    llm_context_precision,
    llm_context_recall,
    load_documents,
    load_qa,
    split_sentences,
)


def bag_of_words(texts):
    """A tiny deterministic embedder for tests: hashed word counts, unit length."""
    out = np.zeros((len(texts), 256))
    for i, text in enumerate(texts):
        for word in text.lower().replace("?", " ").replace(".", " ").split():
            out[i, sum(map(ord, word)) % 256] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture
def judge(fake_model):
    """A fake judge: a function from the prompt text to its reply, set per test."""
    script = {}

    def reply(messages):
        prompt = messages[-1]["content"]
        script.setdefault("prompts", []).append(prompt)
        return script["fn"](prompt)

    return fake_model("rag-judge", reply), script


# -- bundled data ---------------------------------------------------------------------------------

def test_bundled_documents_and_questions_fit_together():
    docs = load_documents()
    qa = load_qa()
    ids = {d.id for d in docs}
    assert 8 <= len(docs) <= 12
    assert 30 <= len(qa) <= 40
    assert len({q.id for q in qa}) == len(qa)
    for item in qa:
        assert set(item.doc_ids) <= ids, item.id
        assert item.question.strip() and item.reference.strip()
    unanswerable = [q for q in qa if not q.answerable]
    assert 3 <= len(unanswerable) <= 6
    assert all(d.title and len(d.text) > 200 for d in docs)


def test_chunks_keep_their_document_and_title():
    doc = Document("refunds", "Refunds", "# Refunds\n\nFirst paragraph.\n\nSecond paragraph.")
    assert rag.chunk_document(doc, chunk_size=20) == [
        Chunk("refunds", "Refunds: First paragraph."),
        Chunk("refunds", "Refunds: Second paragraph.")]
    assert rag.chunk_document(doc, chunk_size=600) == [
        Chunk("refunds", "Refunds: First paragraph. Second paragraph.")]


def test_retriever_ranks_by_cosine():
    docs = [Document("a", "Shipping", "# Shipping\n\nParcels ship from Rotterdam in 3 days."),
            Document("b", "Passwords", "# Passwords\n\nReset links are valid for 30 minutes.")]
    retriever = Retriever(docs, embed_fn=bag_of_words)
    top = retriever.retrieve("How long are reset links valid?", k=2)
    assert [c.doc_id for c in top] == ["b", "a"]
    assert top[0].score > top[1].score


# -- the math: Ragas' documented examples ---------------------------------------------------------

def test_context_precision_formula():
    # Ragas "Where is France and what is its capital?": the relevant chunk first -> 1.0,
    # the same chunk second behind an irrelevant one -> precision@2 = 1/2.
    assert context_precision([1, 0]) == 1.0
    assert context_precision([0, 1]) == 0.5
    # relevant at ranks 3 and 4 of 5: (1/3 + 2/4) / 2
    assert context_precision([0, 0, 1, 1, 0]) == pytest.approx(0.41667, abs=1e-4)
    assert context_precision([0, 0, 0]) == 0.0


def test_llm_context_precision_france_example(judge):
    model, script = judge
    high = ["France, in Western Europe, encompasses medieval cities, alpine villages and "
            "Mediterranean beaches. Paris, its capital, is famed for its fashion houses.",
            "The country is also renowned for its wines and sophisticated cuisine."]
    script["fn"] = lambda p: json.dumps({"reason": "-", "verdict": int("Paris, its capital" in
                                                                        p.split("Context:")[1])})
    question = "Where is France and what is it's capital?"
    reference = "France is in Western Europe and its capital is Paris."
    assert llm_context_precision(question, reference, high, model).value == 1.0
    low = llm_context_precision(question, reference, high[::-1], model)
    assert low.value == 0.5
    assert low.reason == "Useful chunks at ranks [2] of 2"


def test_faithfulness_einstein_example(judge):
    # Ragas faithfulness: "Einstein was born in Germany on 20th March 1879." has two statements,
    # of which the context supports one -> 0.5.
    model, script = judge
    context = ["Albert Einstein (born 14 March 1879) was a German-born theoretical physicist, "
               "widely held to be one of the greatest and most influential scientists of all "
               "time."]
    statements = ["Einstein was born in Germany.", "Einstein was born on 20th March 1879."]

    def reply(prompt):
        if prompt.startswith("Break the answer"):
            return json.dumps(statements)
        assert "German-born theoretical physicist" in prompt
        assert "2. Einstein was born on" in prompt
        return json.dumps([{"statement": statements[0], "reason": "German-born", "verdict": 1},
                           {"statement": statements[1], "reason": "date differs", "verdict": 0}])

    script["fn"] = reply
    result = faithfulness("Where and when was Einstein born?",
                          "Einstein was born in Germany on 20th March 1879.", context, model)
    assert (result.value, result.steps["verdicts"]) == (0.5, [True, False])
    assert result.reason == ("1 of 2 claims are supported by the context; not supported: "
                             "'Einstein was born on 20th March 1879.'")
    assert len(script["prompts"]) == 2


def test_context_recall_france_example(judge):
    # Ragas context recall: the low-recall context mentions Western Europe but not Paris.
    model, script = judge
    context = ["France, in Western Europe, encompasses medieval cities, alpine villages and "
               "Mediterranean beaches. The country is also renowned for its wines."]
    script["fn"] = lambda p: '```json\n[{"statement": "France is in Western Europe", ' \
                             '"attributed": 1}, {"statement": "Its capital is Paris", ' \
                             '"attributed": "0"}]\n```'
    result = llm_context_recall("Where is France and what is it's capital?",
                                "France is in Western Europe and its capital is Paris.", context,
                                model, statements=["France is in Western Europe.",
                                                   "Its capital is Paris."])
    assert result.value == 0.5
    assert result.reason.endswith("missing: 'Its capital is Paris.'")


def test_answer_relevancy_is_mean_cosine_and_zero_when_noncommittal(judge):
    model, script = judge
    vectors = {"Q": [1.0, 0.0], "g1": [1.0, 0.0], "g2": [0.0, 1.0], "g3": [1.0, 1.0]}
    fake_embed = lambda texts: np.array([vectors[t] for t in texts])  # noqa: E731
    script["fn"] = lambda p: json.dumps({"questions": ["g1", "g2", "g3"], "noncommittal": 0})
    result = answer_relevancy("Q", "an answer", model, embed_fn=fake_embed)
    assert result.value == pytest.approx((1 + 0 + 1 / math.sqrt(2)) / 3)
    script["fn"] = lambda p: json.dumps({"questions": ["g1"], "noncommittal": 1})
    evasive = answer_relevancy("Q", "I don't know", model, embed_fn=fake_embed)
    assert (evasive.value, evasive.reason) == (0.0, "The answer is noncommittal")


def test_unreadable_judge_gives_nan_with_a_reason(judge):
    model, script = judge
    script["fn"] = lambda p: "I think it is fine."
    result = faithfulness("q", "An answer.", ["ctx"], model, statements=["An answer."])
    assert math.isnan(result.value)
    assert result.reason.startswith("Could not be computed: The judge's reply has no JSON")
    script["fn"] = lambda p: "[1]"
    wrong = llm_context_recall("q", "One. Two.", ["ctx"], model)
    assert "gave 1 verdicts for 2 statements" in wrong.reason


# -- deterministic variants -----------------------------------------------------------------------

def test_verdicts_read_numbers_and_words():
    from workbench.evaluate.rag import _verdicts

    rows = [{"verdict": 1.0}, {"verdict": 0}, {"verdict": "yes"}, {"verdict": "1"}, 1, 0.0]
    assert _verdicts(rows, "verdict", 6) == [True, False, True, True, True, False]


def test_id_based_metrics():
    chunks = [Chunk("shipping", "x"), Chunk("refunds", "y"), Chunk("shipping", "z")]
    p = id_context_precision(chunks, ["refunds", "returns-hardware"])
    assert (p.value, p.reason) == (0.5, "Supporting chunks at ranks [2] of 3")
    r = id_context_recall(chunks, ["refunds", "returns-hardware"])
    assert (r.value, r.reason) == (0.5, "Retrieved 1 of 2 supporting documents; missing "
                                        "['returns-hardware']")
    assert math.isnan(id_context_recall(chunks, []).value)
    assert split_sentences("Yes. It costs $8 per month. Two months are free!") == [
        "Yes.", "It costs $8 per month.", "Two months are free!"]


def test_answer_and_evaluate_with_fake_models(project, judge, fake_model):
    model, script = judge

    def reply(prompt):
        if prompt.startswith("Write 3 different questions"):
            return json.dumps({"questions": ["How much is Plus?"], "noncommittal": 0})
        if prompt.startswith("Break the answer"):
            return json.dumps(["Plus costs $8 per month."])
        if "Reference answer statements" in prompt:
            return json.dumps([{"attributed": 1}])
        if prompt.startswith("Question:"):
            return json.dumps({"verdict": int("$8" in prompt.split("Context:")[1])})
        return json.dumps([{"verdict": 1}])

    script["fn"] = reply
    fake_model("rag-answerer", ["Plus costs $8 per month."])
    retriever = Retriever(load_documents(), embed_fn=bag_of_words)
    item = next(q for q in load_qa() if q.id == "Q01")
    result = rag.answer(project, item.question, retriever, "fake/echo", k=2)
    assert result.answer.startswith("Help-centre excerpts:\n[1] (")
    assert result.answer.endswith(f"Question: {item.question}\nAnswer:")
    table = evaluate_rag(project, [item], retriever, "fake/rag-answerer", k=3,
                         judge_model=model, progress=False)
    row = table.iloc[0]
    assert row["answer"] == "Plus costs $8 per month."
    assert row["faithfulness"] == 1.0 and row["context_recall"] == 1.0
    assert row["answer_relevancy"] > 0.5
    assert 0 <= row["context_precision"] <= 1 and 0 <= row["id_context_recall"] <= 1


@pytest.mark.model
def test_bundled_embeddings_retrieve_the_supporting_documents():
    qa = [q for q in load_qa() if q.doc_ids]
    retriever = Retriever(load_documents())
    recall = [id_context_recall(retriever.retrieve(q.question, 3), q.doc_ids).value for q in qa]
    assert np.mean(recall) >= 0.9


def test_the_summary_has_a_mean_and_interval_per_metric_and_skips_the_unscored():
    import math

    import pandas as pd

    from workbench.evaluate.rag import summarize_rag

    scores = pd.DataFrame({"id": list("abcd"), "id_context_recall": [1.0, 0.0, 1.0, math.nan],
                           "id_context_recall_reason": ["", "", "", ""],
                           "faithfulness": [1.0, 1.0, 1.0, 1.0]})
    table = summarize_rag(scores).set_index("metric")
    assert table.loc["id_context_recall", "scored"] == 3
    assert table.loc["id_context_recall", "mean"] == pytest.approx(2 / 3)
    low, high = table.loc["id_context_recall", ["low", "high"]]
    assert 0 <= low < 2 / 3 < high <= 1
    assert table.loc["faithfulness", "mean"] == 1.0 and "id_context_recall_reason" not in table.index
