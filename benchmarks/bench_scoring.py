"""Scoring throughput on 10,000 items, and judge calibration on the bundled labelled sample.

    .venv/bin/python benchmarks/bench_scoring.py [--items N] [--semantic-items N]
                                                 [--skip-semantic] [--model MODEL]

1. Rule-based scorers (exact, normalized, contains, regex, json_valid, length, BLEU, chrF,
   ROUGE-L) on ``--items`` (default 10,000) distinct synthetic support replies against their
   references: items/s per scorer, and all of them together through the run engine's
   ``_score`` (the path a run takes per item).
2. Semantic similarity (bundled all-MiniLM-L6-v2) separately: ``prepare`` embeds every distinct
   text in batches of 64, then scoring only looks vectors up. Reported with and without the
   one-off model load.
3. Judge calibration on ``datasets/judge_calibration.jsonl`` (60 replies labelled pass/fail by
   people). The default judge is a SCRIPTED STAND-IN (``fake/keyword-judge``): a keyword rule
   (rude phrases, numbers the reference does not contain, too little overlap with the
   reference), not a language model. It shows the calibration machinery end to end; its kappa
   says nothing about any real judge. ``--model openai/gpt-4o-mini`` (any gateway model id)
   runs the same rubric through the gateway as a real judge.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SUBJECTS = ["Your refund", "The replacement Dock", "Your invoice", "The reset link", "Your order",
            "The investigation", "Your API key", "The export", "Your upgrade", "The return label"]
VERBS = ["will arrive within", "is processed in", "expires after", "ships within",
         "is sent within", "stays valid for", "is ready in", "is reviewed within"]
UNITS = ["business days", "days", "minutes", "hours"]
TAILS = ["from the order page.", "to your original payment method.", "by e-mail.",
         "once the carrier confirms.", "after the identity check.", "at no cost to you.",
         "unless you cancel first.", "as you prefer."]
FILLERS = ["Thanks for your patience.", "Sorry for the trouble.", "Happy to help!",
           "Let me know if anything else comes up.", ""]


def synthetic_items(n: int, seed: int = 11) -> tuple[list[str], list[str]]:
    """``n`` distinct (output, reference) pairs: a reference sentence, and a reply that keeps it,
    paraphrases part of it, changes the number, or answers something else."""
    rng = random.Random(seed)
    outputs, references = [], []
    for i in range(n):
        number = rng.randint(2, 90)
        ref = (f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {number} {rng.choice(UNITS)} "
               f"{rng.choice(TAILS)} (case {i})")
        kind = i % 5
        if kind == 0:
            out = ref
        elif kind == 1:
            out = f"{rng.choice(FILLERS)} {ref}".strip()
        elif kind == 2:
            out = ref.replace(str(number), str(number + rng.randint(1, 9)), 1)
        elif kind == 3:
            out = json.dumps({"answer": ref, "confidence": round(rng.random(), 2)})
        else:
            words = ref.split()
            rng.shuffle(words)
            out = " ".join(words[: max(3, len(words) // 2)])
        outputs.append(out)
        references.append(ref)
    return outputs, references


def rule_scorers():
    from workbench.evaluate.scorers import (
        bleu,
        chrf,
        contains,
        exact_match,
        json_valid,
        length,
        normalized_match,
        regex,
        rouge,
    )

    return [exact_match(field="output"), normalized_match(field="output"),
            contains(text="business days"), regex(r"\b\d+ (?:business )?days\b"), json_valid(),
            length(min_chars=20, max_chars=400), bleu(), chrf(), rouge("rougeL")]


def bench_rules(n: int) -> None:
    from workbench.runs import _score

    outputs, references = synthetic_items(n)
    scorers = rule_scorers()
    print(f"Rule-based scorers on {n:,} distinct synthetic items (one process, one core):")
    print(f"  {'scorer':<22}{'items/s':>12}{'µs/item':>10}{'pass rate':>11}")
    for scorer in scorers:
        start = time.perf_counter()
        passed = sum(bool(scorer(o, r).passed) for o, r in zip(outputs, references, strict=True))
        took = time.perf_counter() - start
        print(f"  {scorer.name:<22}{n / took:>12,.0f}{1e6 * took / n:>10.1f}{passed / n:>11.1%}")
    start = time.perf_counter()
    for o, r in zip(outputs, references, strict=True):
        _score(scorers, o, r, None, None, item={"input": "q", "latency_s": 0.5, "cost_usd": 0.0})
    took = time.perf_counter() - start
    print(f"  {'all 9 via _score':<22}{n / took:>12,.0f}{1e6 * took / n:>10.1f}")


def bench_semantic(n: int) -> None:
    from workbench.evaluate.scorers import semantic_similarity
    from workbench.llm.embeddings import _load

    outputs, references = synthetic_items(n)
    start = time.perf_counter()
    _load()
    load_s = time.perf_counter() - start
    scorer = semantic_similarity(threshold=0.8)
    start = time.perf_counter()
    scorer.prepare(outputs, references)
    embed_s = time.perf_counter() - start
    start = time.perf_counter()
    passed = sum(bool(scorer(o, r).passed) for o, r in zip(outputs, references, strict=True))
    score_s = time.perf_counter() - start
    distinct = len(set(outputs) | set(references))
    print(f"\nSemantic similarity on {n:,} items ({distinct:,} distinct texts, CPU):")
    print(f"  model load (once)         {load_s:8.2f} s")
    print(f"  embed, batches of 64      {embed_s:8.2f} s  ({distinct / embed_s:,.0f} texts/s)")
    print(f"  score (vector lookups)    {score_s:8.2f} s  ({n / score_s:,.0f} items/s)")
    print(f"  end to end after load     {n / (embed_s + score_s):8,.0f} items/s, pass rate "
          f"{passed / n:.1%} at 0.8")


def keyword_judge() -> str:
    from workbench.evaluate.judge_sample import stand_in_judge

    return stand_in_judge()


def bench_calibration(model: str | None) -> None:
    from workbench.evaluate.calibration import DEFAULT_BAR, agreement
    from workbench.evaluate.judge import Rubric, judge

    rows = [json.loads(line) for line in
            (ROOT / "datasets" / "judge_calibration.jsonl").read_text("utf-8").splitlines()
            if line.strip()]
    rubric = Rubric(criteria=["The answer is correct according to the reference answer",
                              "It invents no policy, price, number or feature",
                              "It is polite and helpful to the customer"],
                    reference_required=True, name="support-answer")
    judge_model = model or keyword_judge()
    print(f"\nJudge calibration on datasets/judge_calibration.jsonl ({len(rows)} items, "
          f"{sum(r['human_verdict'] == 'pass' for r in rows)} pass by people):")
    if model is None:
        print("  judge: fake/keyword-judge — a SCRIPTED STAND-IN (keyword rule, not a model);")
        print("         its numbers show the machinery, not the quality of any LLM judge;")
        print("         the rule was written with this sample in view, so its agreement is")
        print("         optimistic by construction.")
    else:
        print(f"  judge: {model} through the gateway, rubric {rubric.name!r}, temperature 0")
    judged, human, unscored = {}, {}, 0
    start = time.perf_counter()
    for r in rows:
        s = judge(None, rubric, question=r["question"], answer=r["answer"],
                  reference=r["reference"], judge_model=judge_model)
        human[r["id"]] = r["human_verdict"] == "pass"
        if s.parsed_ok:
            judged[r["id"]] = bool(s.passed)
        else:
            unscored += 1
    took = time.perf_counter() - start
    a = agreement(judged, human, bar=DEFAULT_BAR)
    print(f"  scored {a.n}/{len(rows)} ({unscored} replies unreadable) in {took:.1f} s")
    print(f"  agreement {a.percent:.1%}, Cohen's kappa {a.kappa:.3f}; trusted at the default "
          f"bar {DEFAULT_BAR:g}: {'yes' if a.trusted else 'no'}")
    print(f"  {a.reason}")
    by_kind: dict[str, list[bool]] = {}
    for r in rows:
        if r["id"] in judged:
            by_kind.setdefault(r["kind"], []).append(judged[r["id"]] == human[r["id"]])
    print("  agreement by kind: " + ", ".join(f"{k} {sum(v)}/{len(v)}"
                                             for k, v in sorted(by_kind.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--semantic-items", type=int, default=10_000)
    parser.add_argument("--skip-semantic", action="store_true")
    parser.add_argument("--model", help="a real judge model through the gateway")
    args = parser.parse_args()
    bench_rules(args.items)
    if not args.skip_semantic:
        bench_semantic(args.semantic_items)
    bench_calibration(args.model)


if __name__ == "__main__":
    main()
