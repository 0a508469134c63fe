"""Evaluation: scorers for single items and aggregate metrics over a run.

Importing this package loads neither scikit-learn nor pandas; ``classification_report`` does,
when called. Later parts of phase 6 (judges, calibration, statistics, red-teaming, load tests)
live beside ``scorers`` in this package.
"""

# Registers ``assertions`` (per-item checks, as an imported promptfoo suite has), likewise.
from workbench.evaluate import assertions as _assertions  # noqa: E402,F401

# Registers the ``llm_judge`` scorer, so runs that used it can be rebuilt from their specs.
from workbench.evaluate import judge as _judge  # noqa: E402,F401  (pydantic only at import)
from workbench.evaluate.scorers import (
    ClassificationMetrics,
    CorpusScore,
    Score,
    Scorer,
    UnknownScorer,
    bleu,
    budget_scorers_from_card,
    canonical_label,
    chrf,
    classification_report,
    contains,
    corpus_score,
    cost_budget,
    default_scorers,
    exact_match,
    format_check,
    json_schema,
    json_valid,
    latency_budget,
    length,
    normalize_text,
    normalized_match,
    parsed_ok,
    regex,
    register_scorer,
    rouge,
    scorer_from_spec,
    scorer_names,
    semantic_similarity,
)

__all__ = [
    "bleu", "budget_scorers_from_card", "chrf", "cost_budget", "format_check", "json_schema",
    "latency_budget", "length", "rouge", "semantic_similarity",
    "ClassificationMetrics", "CorpusScore", "Score", "Scorer", "UnknownScorer",
    "canonical_label", "classification_report", "contains", "corpus_score", "default_scorers",
    "exact_match", "json_valid", "normalize_text", "normalized_match", "parsed_ok", "regex",
    "register_scorer", "scorer_from_spec", "scorer_names",
]
