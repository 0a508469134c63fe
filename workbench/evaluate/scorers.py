"""Scorers: small typed factories that return a callable, registered with their arguments.

    >>> s = normalized_match(ignore_case=True)
    >>> s("Billing.", "billing")
    Score(value=1.0, passed=True, reason="Output 'Billing.' matches expected 'billing'")
    >>> s.spec()
    {'name': 'normalized_match', 'args': {'ignore_case': True, 'strip_punctuation': True, ...}}

A scorer is called as ``scorer(output, expected, parsed=..., parse_ok=..., item=...)`` and
returns a ``Score`` whose reason is a sentence for people. ``item`` (the stored item row: input,
latency_s, cost_usd, ...) reaches only scorer functions that take an ``item`` argument (the
budgets, the judge), so four-argument scorers keep working. ``scorer.spec()`` is plain JSON, and
``scorer_from_spec(spec)`` rebuilds the same scorer, so a run can be re-scored from its log.

Aggregate metrics for classification come from scikit-learn (``classification_report``), BLEU and
chrF from sacrebleu (per item, and over the whole corpus: ``corpus_score``), ROUGE from
rouge-score, schemas from jsonschema; nothing here re-implements what they provide. They (and
scikit-learn, pandas, the embedding model) are imported when a scorer is made or a function
called.
"""

from __future__ import annotations

import inspect
import json
import re
import string
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import WorkbenchError

if TYPE_CHECKING:
    import pandas as pd

Field = Literal["parsed", "output"]
UNPARSED = "(unparsed)"
OTHER = "(other)"
_SHOW = 60  # characters of an output quoted in a reason


class UnknownScorer(WorkbenchError):
    pass


@dataclass(frozen=True)
class Score:
    """One item's score: ``value`` in [0, 1] and ``passed``. An item that could not be scored
    (no expected value, a judge reply that could not be read, ...) has both None: it is left
    out of every mean and rate, never counted as a 0."""

    value: float | None
    passed: bool | None
    reason: str


class Scorer:
    """A scoring function with the name and arguments of the factory that made it."""

    def __init__(self, name: str, args: dict[str, Any], fn: Callable[..., Score]):
        self.name = name
        self.args = args
        self._fn = fn
        # Scorers written before the item was passed take four arguments: only functions that
        # ask for ``item`` (or take **kwargs) receive it, so old and plugin scorers keep working.
        try:
            params = inspect.signature(fn).parameters
        except (TypeError, ValueError):
            params = {}
        self._wants_item = "item" in params or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    def __call__(self, output: str | None, expected: Any = None, *, parsed: Any = None,
                 parse_ok: bool | None = None, item: dict[str, Any] | None = None) -> Score:
        """Score one output. ``item`` is the stored item row (input, latency_s, cost_usd, ...)
        for scorers that need more than the output and the expected value."""
        if self._wants_item:
            return self._fn(output, expected, parsed, parse_ok, item=item)
        return self._fn(output, expected, parsed, parse_ok)

    def prepare(self, outputs: Sequence[Any], expected: Sequence[Any]) -> None:
        """Precompute what scoring these pairs needs in one batch (embeddings for
        ``semantic_similarity``); a no-op for scorers with nothing to precompute."""
        prepare = getattr(self._fn, "prepare", None)
        if prepare is not None:
            prepare(outputs, expected)

    @property
    def has_corpus_score(self) -> bool:
        """Whether the scorer also has a corpus-level form (``bleu``, ``chrf``)."""
        return getattr(self._fn, "corpus", None) is not None

    def corpus_score(self, outputs: Sequence[str | None],
                     expected: Sequence[Any]) -> CorpusScore:
        """The corpus-level score over all the pairs (see ``corpus_score``)."""
        corpus = getattr(self._fn, "corpus", None)
        if corpus is None:
            raise UnknownScorer(f"The scorer {self.name!r} has no corpus-level score; only its "
                                "per-item scores and their mean.",
                                f"Corpus-level scores exist for {', '.join(_CORPUS_NAMES)}.")
        if len(outputs) != len(expected):
            raise ValueError(f"{len(outputs)} outputs but {len(expected)} expected values")
        return corpus(list(outputs), list(expected))

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "args": dict(self.args)}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"{self.name}({args})"


_REGISTRY: dict[str, Callable[..., Scorer]] = {}


def register_scorer(factory: Callable[..., Callable[..., Score]]) -> Callable[..., Scorer]:
    """Turn a factory returning ``fn(output, expected, parsed, parse_ok) -> Score`` into one that
    returns a ``Scorer`` carrying its name and (defaulted) arguments, and register it by name."""
    signature = inspect.signature(factory)

    def make(*args: Any, **kwargs: Any) -> Scorer:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return Scorer(factory.__name__, dict(bound.arguments), factory(*args, **kwargs))

    make.__name__ = factory.__name__
    make.__doc__ = factory.__doc__
    make.__signature__ = signature  # type: ignore[attr-defined]
    _REGISTRY[factory.__name__] = make
    return make


def scorer_from_spec(spec: dict[str, Any] | str) -> Scorer:
    """Rebuild a scorer from ``{"name": ..., "args": {...}}`` (or just its name)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec.get("name")
    if name not in _REGISTRY:
        raise UnknownScorer(f"There is no scorer named {name!r}.",
                            f"Known scorers: {', '.join(sorted(_REGISTRY))}.")
    try:
        return _REGISTRY[name](**(spec.get("args") or {}))
    except TypeError as exc:
        raise UnknownScorer(f"Scorer {name!r} cannot take the arguments {spec.get('args')} "
                            f"({exc}).", f"See help(workbench.evaluate.{name}).") from None


def scorer_names() -> list[str]:
    return sorted(_REGISTRY)


def scorer_keys(names: Sequence[str]) -> list[str]:
    """The key each scorer's results are stored under in a run: its name, and ``name_2``,
    ``name_3``, ... for a name used again."""
    keys: list[str] = []
    for name in names:
        key, n = name, 2
        while key in keys:
            key, n = f"{name}_{n}", n + 1
        keys.append(key)
    return keys


# -- helpers -------------------------------------------------------------------------------------

def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(text) > _SHOW:
        text = text[:_SHOW - 1] + "…"
    return repr(text)


def normalize_text(text: Any, *, ignore_case: bool = True, strip_punctuation: bool = True,
                   collapse_whitespace: bool = True) -> str:
    """The comparable form of a label or answer: Unicode NFKC, and optionally case-folded,
    without punctuation, with runs of whitespace collapsed."""
    text = unicodedata.normalize("NFKC", "" if text is None else str(text))
    if ignore_case:
        text = text.casefold()
    if strip_punctuation:
        text = "".join(" " if unicodedata.category(c).startswith("P") or c in string.punctuation
                       else c for c in text)
    if collapse_whitespace:
        text = " ".join(text.split())
    return text.strip()


def _candidate(field: Field, output: str | None, parsed: Any,
               parse_ok: bool | None) -> tuple[Any, Score | None]:
    """The value a matcher compares, or a failing score when there is nothing to compare."""
    if output is None:
        return None, Score(0.0, False, "There is no output (the call failed)")
    if field == "parsed" and parse_ok is False:
        return None, Score(0.0, False, f"Output {_show(output)} could not be parsed")
    if field == "parsed" and parsed is not None:
        return parsed, None
    return output, None


def _as_comparable(value: Any, expected: Any) -> tuple[Any, Any]:
    """Structured values compare as data: an expected JSON string is decoded first."""
    if isinstance(value, (dict, list)) and isinstance(expected, str):
        try:
            expected = json.loads(expected)
        except ValueError:
            pass
    return value, expected


def _no_expected(expected: Any) -> bool:
    return expected is None or (isinstance(expected, float) and expected != expected)


# -- the scorers ---------------------------------------------------------------------------------

@register_scorer
def exact_match(field: Field = "parsed") -> Callable[..., Score]:
    """1 when the value (the parsed one by default, else the raw output) equals ``expected``."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if _no_expected(expected):
            return Score(None, None, "The item has no expected value to compare with")
        value, failed = _candidate(field, output, parsed, parse_ok)
        if failed:
            return failed
        value, expected = _as_comparable(value, expected)
        if value == expected:
            return Score(1.0, True, f"Output {_show(value)} equals expected {_show(expected)}")
        return Score(0.0, False,
                     f"Output {_show(value)} does not equal expected {_show(expected)}")

    return score


@register_scorer
def normalized_match(ignore_case: bool = True, strip_punctuation: bool = True,
                     field: Field = "parsed") -> Callable[..., Score]:
    """Exact match after normalising Unicode, spacing and optionally case and punctuation."""

    def norm(v: Any) -> str:
        if isinstance(v, (dict, list)):
            v = json.dumps(v, sort_keys=True)
        return normalize_text(v, ignore_case=ignore_case, strip_punctuation=strip_punctuation)

    def score(output, expected, parsed, parse_ok) -> Score:
        if _no_expected(expected):
            return Score(None, None, "The item has no expected value to compare with")
        value, failed = _candidate(field, output, parsed, parse_ok)
        if failed:
            return failed
        value, expected = _as_comparable(value, expected)
        if value == expected or norm(value) == norm(expected):
            return Score(1.0, True, f"Output {_show(value)} matches expected {_show(expected)}")
        return Score(0.0, False, f"Output {_show(value)} does not equal expected "
                                 f"{_show(expected)}")

    return score


@register_scorer
def contains(text: str | None = None, ignore_case: bool = True) -> Callable[..., Score]:
    """1 when the raw output contains ``text`` (or, with no text, the item's expected value)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        needle = text if text is not None else expected
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if _no_expected(needle):
            return Score(None, None, "There is no text to look for")
        hay, pin = (output.casefold(), str(needle).casefold()) if ignore_case else \
            (output, str(needle))
        if pin in hay:
            return Score(1.0, True, f"Output {_show(output)} contains {_show(str(needle))}")
        return Score(0.0, False,
                     f"Output {_show(output)} does not contain {_show(str(needle))}")

    return score


@register_scorer
def regex(pattern: str, ignore_case: bool = False) -> Callable[..., Score]:
    """1 when the pattern is found anywhere in the raw output (``re.search``)."""
    compiled = re.compile(pattern, re.IGNORECASE if ignore_case else 0)

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if compiled.search(output):
            return Score(1.0, True, f"Output {_show(output)} matches /{pattern}/")
        return Score(0.0, False, f"Output {_show(output)} does not match /{pattern}/")

    return score


@register_scorer
def json_valid() -> Callable[..., Score]:
    """1 when the raw output is valid JSON (a fenced ```json block is accepted)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        text = output.strip()
        fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
        if fenced:
            text = fenced.group(1)
        try:
            json.loads(text)
        except ValueError as exc:
            return Score(0.0, False, f"Output {_show(output)} is not valid JSON ({exc.msg} at "
                                     f"character {exc.pos})")
        return Score(1.0, True, "Output is valid JSON")

    return score


@register_scorer
def parsed_ok() -> Callable[..., Score]:
    """1 when the prompt's parser accepted the output (a valid label, or the schema)."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if parse_ok is False:
            return Score(0.0, False, f"Output {_show(output)} could not be parsed")
        shown = parsed if parsed is not None else output
        return Score(1.0, True, f"Output parsed as {_show(shown)}")

    return score


# -- text overlap, structure, meaning, budgets ---------------------------------------------------
# sacrebleu, rouge-score, jsonschema and the embedding model are imported when a scorer is made,
# so ``import workbench.evaluate`` stays light.

def _optional(module: str, package: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise WorkbenchError(f"This scorer requires optional dependencies ({package}).",
                             f"Install with: pip install {package}") from None


def _text_pair(output: str | None, expected: Any) -> tuple[str, str] | Score:
    if output is None:
        return Score(0.0, False, "There is no output (the call failed)")
    if _no_expected(expected):
        return Score(None, None, "The item has no expected value to compare with")
    reference = expected if isinstance(expected, str) else json.dumps(expected, default=str)
    return output, reference


def _references(expected: Any) -> list[str] | None:
    """The reference texts of an item for BLEU and chrF: a list of strings is several
    references (any of them may match); other values are one reference (JSON when not text);
    None when the item has none."""
    if _no_expected(expected):
        return None
    if isinstance(expected, (list, tuple)) and expected \
            and all(isinstance(e, str) for e in expected):
        return list(expected)
    return [expected if isinstance(expected, str) else json.dumps(expected, default=str)]


def _shown_references(references: list[str]) -> str:
    more = len(references) - 1
    return references[0] + (f" (and {more} other reference{'s' * (more > 1)})" if more else "")


@dataclass(frozen=True)
class CorpusScore:
    """A corpus-level score over all the items of a run, from sacrebleu's corpus functions:
    n-gram statistics are summed over the items before the score is computed, so it is not
    the mean of the items' sentence scores (and is the figure papers report).

    ``value`` is sacrebleu's score scaled to 0-1 (NaN, and no signature, with no item to
    score); ``n`` the items
    in the corpus (those with a reference); ``no_output`` how many of them had no output
    (a failed call), scored as an empty output, as the mean of sentence scores counts them
    as 0; ``signature`` sacrebleu's description of the settings (tokeniser, smoothing,
    number of references, version)."""

    metric: str  # "corpus BLEU", "corpus chrF"
    value: float
    n: int
    no_output: int
    signature: str

    @property
    def sentence_metric(self) -> str:
        """What the mean of the per-item scores is called beside it ("mean sentence BLEU")."""
        return "mean sentence " + self.metric.removeprefix("corpus ")


_CORPUS_NAMES = ("bleu", "chrf")


def _corpus(label: str, make_metric: Callable[[], Any]) -> Callable[..., CorpusScore]:
    """The corpus-level form of a sacrebleu metric, for ``fn.corpus``."""

    def corpus(outputs: list[Any], expected: list[Any]) -> CorpusScore:
        hypotheses, references, no_output = [], [], 0
        for output, exp in zip(outputs, expected, strict=True):
            refs = _references(exp)
            if refs is None:  # left out, as the item's sentence score is
                continue
            no_output += output is None
            hypotheses.append("" if output is None else str(output))
            references.append(refs)
        if not hypotheses:
            return CorpusScore(label, float("nan"), 0, 0, "")
        metric = make_metric()  # a fresh one: sacrebleu metrics keep the references they saw
        # sacrebleu takes one stream per reference position; None where an item has fewer.
        width = max(len(r) for r in references)
        streams = [[r[i] if i < len(r) else None for r in references] for i in range(width)]
        result = metric.corpus_score(hypotheses, streams)
        return CorpusScore(label, result.score / 100, len(hypotheses), no_output,
                           str(metric.get_signature()))

    return corpus


def corpus_score(scorer: Scorer | str | dict[str, Any], outputs: Sequence[str | None],
                 expected: Sequence[Any]) -> CorpusScore:
    """Corpus-level BLEU or chrF (sacrebleu's ``corpus_bleu`` / ``corpus_chrf``, with the
    tokenisation and settings of the sentence scorer) over all the pairs.

        >>> corpus_score("bleu", outputs, references).value     # 0-1
        >>> corpus_score(chrf(), outputs, references).metric
        'corpus chrF'

    ``scorer`` is a scorer, its name or its spec. An expected value that is a list of strings
    gives several references for that item. Items with no expected value are left out; items
    with no output (None: the call failed) count as an empty output, as the run's mean of
    sentence scores counts them as 0."""
    made = scorer if isinstance(scorer, Scorer) else scorer_from_spec(scorer)
    return made.corpus_score(outputs, expected)


def corpus_scores(specs: Sequence[dict[str, Any] | str], outputs: Sequence[str | None],
                  expected: Sequence[Any]) -> dict[str, CorpusScore]:
    """Each corpus-level score of a run's scorers (their specs, in order), keyed as the run
    stores their per-item scores (``scorer_keys``). Scorers without a corpus form, or that
    cannot be rebuilt here, are skipped."""
    names = [spec if isinstance(spec, str) else str(spec.get("name")) for spec in specs]
    out: dict[str, CorpusScore] = {}
    for key, name, spec in zip(scorer_keys(names), names, specs, strict=True):
        if name not in _CORPUS_NAMES:
            continue
        try:
            made = scorer_from_spec(spec)
        except UnknownScorer:
            continue
        if made.has_corpus_score:
            out[key] = made.corpus_score(outputs, expected)
    return out


def _threshold_score(metric: str, value: float, threshold: float, output: str,
                     reference: str) -> Score:
    value = min(max(float(value), 0.0), 1.0)
    passed = value >= threshold
    side = "at or above" if passed else "below"
    return Score(value, passed, f"{metric} of output {_show(output)} against expected "
                                f"{_show(reference)} is {value:.3f}, {side} {threshold:g}")


def _extract_json(text: str) -> Any:
    text = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.DOTALL)
    return json.loads(fenced.group(1) if fenced else text)


@register_scorer
def json_schema(schema: dict[str, Any]) -> Callable[..., Score]:
    """1 when the output (the parsed value when there is one, else the raw output read as JSON)
    validates against the JSON Schema ``schema`` (jsonschema, the draft the schema names)."""
    jsonschema = _optional("jsonschema", "jsonschema")
    validator_cls = jsonschema.validators.validator_for(schema)
    validator_cls.check_schema(schema)  # a broken schema fails when the scorer is made
    validator = validator_cls(schema)

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if isinstance(parsed, (dict, list)) and parse_ok is not False:
            value = parsed
        else:
            try:
                value = _extract_json(output)
            except ValueError as exc:
                return Score(0.0, False, f"Output {_show(output)} is not valid JSON "
                                         f"({getattr(exc, 'msg', exc)})")
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return Score(1.0, True, "Output matches the JSON schema")
        where = "/".join(str(p) for p in error.absolute_path) or "the top level"
        return Score(0.0, False, f"Output does not match the JSON schema at {where}: "
                                 f"{error.message}")

    return score


def _sacrebleu_scorer(label: str, metric: Any, threshold: float) -> Callable[..., Score]:
    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        references = _references(expected)
        if references is None:
            return Score(None, None, "The item has no expected value to compare with")
        value = metric.sentence_score(output, references).score / 100
        return _threshold_score(label, value, threshold, output, _shown_references(references))

    return score


@register_scorer
def bleu(threshold: float = 0.5) -> Callable[..., Score]:
    """Sentence BLEU (sacrebleu: 13a tokeniser, exponential smoothing, effective order) of the
    output against the expected text (a list of strings: several references), scaled from
    0-100 to 0-1; passes at ``threshold``. Over a run, ``corpus_score`` gives corpus BLEU
    (``sacrebleu.corpus_bleu``, same tokeniser and smoothing; effective order is for single
    sentences only), shown beside the mean of these sentence scores."""
    sacrebleu = _optional("sacrebleu", "sacrebleu")
    score = _sacrebleu_scorer("BLEU", sacrebleu.metrics.BLEU(effective_order=True), threshold)
    score.corpus = _corpus("corpus BLEU", sacrebleu.metrics.BLEU)  # type: ignore[attr-defined]
    return score


@register_scorer
def chrf(threshold: float = 0.5) -> Callable[..., Score]:
    """Sentence chrF (sacrebleu) of the output against the expected text (a list of strings:
    several references), scaled to 0-1. Over a run, ``corpus_score`` gives corpus chrF
    (``sacrebleu.corpus_chrf``, same settings)."""
    sacrebleu = _optional("sacrebleu", "sacrebleu")
    score = _sacrebleu_scorer("chrF", sacrebleu.metrics.CHRF(), threshold)
    score.corpus = _corpus("corpus chrF", sacrebleu.metrics.CHRF)  # type: ignore[attr-defined]
    return score


@register_scorer
def rouge(variant: str = "rougeL", threshold: float = 0.5,
          use_stemmer: bool = True) -> Callable[..., Score]:
    """ROUGE F-measure (rouge-score; ``rouge1``, ``rouge2``, ``rougeL``, ``rougeLsum``) of the
    output against the expected text."""
    rouge_scorer = _optional("rouge_score.rouge_scorer", "rouge-score")
    scorer = rouge_scorer.RougeScorer([variant], use_stemmer=use_stemmer)

    def score(output, expected, parsed, parse_ok) -> Score:
        pair = _text_pair(output, expected)
        if isinstance(pair, Score):
            return pair
        value = scorer.score(pair[1], pair[0])[variant].fmeasure  # (target, prediction)
        return _threshold_score(f"{variant} F1", value, threshold, *pair)

    return score


class _EmbeddingCache:
    """Unit vectors by text, filled in batches: scoring 10,000 items embeds each distinct text
    once, in batches of 64, instead of calling the model per item."""

    def __init__(self, limit: int = 50_000):
        self.limit = limit
        self.vectors: dict[str, Any] = {}

    def fill(self, texts: Sequence[str]) -> None:
        from workbench.llm.embeddings import embed

        missing = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if not missing:
            return
        if len(self.vectors) + len(missing) > self.limit:
            self.vectors.clear()
        for text, vector in zip(missing, embed(missing), strict=True):
            self.vectors[text] = vector

    def get(self, text: str) -> Any:
        if text not in self.vectors:
            self.fill([text])
        return self.vectors[text]


_EMBEDDINGS = _EmbeddingCache()


@register_scorer
def semantic_similarity(threshold: float = 0.8) -> Callable[..., Score]:
    """Cosine similarity of the output and the expected text with the bundled embedding model
    (all-MiniLM-L6-v2), clipped to 0-1. Call ``scorer.prepare(outputs, expected)`` before a
    large batch to embed every text in batches first."""

    def score(output, expected, parsed, parse_ok) -> Score:
        pair = _text_pair(output, expected)
        if isinstance(pair, Score):
            return pair
        _EMBEDDINGS.fill(list(pair))
        value = float(_EMBEDDINGS.get(pair[0]) @ _EMBEDDINGS.get(pair[1]))
        return _threshold_score("Semantic similarity", value, threshold, *pair)

    def prepare(outputs: Sequence[Any], expected: Sequence[Any]) -> None:
        texts = [o for o in outputs if isinstance(o, str)]
        texts += [e if isinstance(e, str) else json.dumps(e, default=str)
                  for e in expected if not _no_expected(e)]
        _EMBEDDINGS.fill(texts)

    score.prepare = prepare  # type: ignore[attr-defined]
    return score


@register_scorer
def length(min_chars: int | None = None, max_chars: int | None = None) -> Callable[..., Score]:
    """1 when the raw output's length in characters is within [min_chars, max_chars]."""

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        n = len(output)
        if min_chars is not None and n < min_chars:
            return Score(0.0, False, f"Output has {n} characters, fewer than the minimum "
                                     f"{min_chars}")
        if max_chars is not None and n > max_chars:
            return Score(0.0, False, f"Output has {n} characters, more than the maximum "
                                     f"{max_chars}")
        return Score(1.0, True, f"Output has {n} characters, within the limits")

    return score


FormatKind = Literal["json", "json_object", "label", "single_line", "no_markdown"]
_MARKDOWN = re.compile(r"(^\s{0,3}#{1,6}\s|\*\*|^\s*[-*+]\s|```|^\s*\d+\.\s|\[[^\]]+\]\()",
                       re.MULTILINE)


@register_scorer
def format_check(kind: FormatKind = "single_line",
                 labels: list[str] | None = None) -> Callable[..., Score]:
    """Whether the raw output has a format: ``json`` (any JSON value), ``json_object`` (a JSON
    object), ``label`` (exactly one of ``labels`` after normalising case and punctuation),
    ``single_line`` (no line breaks), ``no_markdown`` (no headings, bold, lists, code fences or
    links)."""
    if kind == "label" and not labels:
        raise ValueError("format_check(kind='label') needs labels=[...]")
    if kind not in ("json", "json_object", "label", "single_line", "no_markdown"):
        raise ValueError(f"Unknown format kind {kind!r}: use json, json_object, label, "
                         "single_line or no_markdown")
    keys = {normalize_text(label): label for label in labels or ()}

    def score(output, expected, parsed, parse_ok) -> Score:
        if output is None:
            return Score(0.0, False, "There is no output (the call failed)")
        if kind in ("json", "json_object"):
            try:
                value = _extract_json(output)
            except ValueError:
                return Score(0.0, False, f"Output {_show(output)} is not valid JSON")
            if kind == "json_object" and not isinstance(value, dict):
                return Score(0.0, False, f"Output {_show(output)} is JSON but not an object")
            return Score(1.0, True, f"Output is a JSON {'object' if kind != 'json' else 'value'}")
        if kind == "label":
            found = keys.get(normalize_text(output))
            if found is not None:
                return Score(1.0, True, f"Output {_show(output)} is the label {found!r}")
            return Score(0.0, False, f"Output {_show(output)} is not one of the labels "
                                     f"{', '.join(labels or [])}")
        if kind == "single_line":
            if "\n" in output.strip():
                return Score(0.0, False, f"Output {_show(output)} spans "
                                         f"{len(output.strip().splitlines())} lines, not one")
            return Score(1.0, True, "Output is a single line")
        found = _MARKDOWN.search(output)
        if found:
            return Score(0.0, False, f"Output {_show(output)} uses Markdown "
                                     f"({_show(found.group(0).strip())})")
        return Score(1.0, True, "Output has no Markdown")

    return score


def _item_number(item: dict[str, Any] | None, key: str) -> float | None:
    value = (item or {}).get(key)
    if value is None or (isinstance(value, float) and value != value):
        return None
    return float(value)


@register_scorer
def latency_budget(max_s: float) -> Callable[..., Score]:
    """1 when the item's latency (``item["latency_s"]``, seconds) is at most ``max_s``. A
    cached answer's latency says nothing about the model, so it is not scored."""

    def score(output, expected, parsed, parse_ok, item=None) -> Score:
        latency = _item_number(item, "latency_s")
        if latency is None:
            return Score(None, None, "The item has no recorded latency")
        if (item or {}).get("cached"):
            return Score(None, None, "The answer came from the cache, so its latency is not "
                                    "scored")
        if latency <= max_s:
            return Score(1.0, True, f"Latency {latency:.3g} s is within the budget of "
                                    f"{max_s:g} s")
        return Score(0.0, False, f"Latency {latency:.3g} s is over the budget of {max_s:g} s")

    return score


@register_scorer
def cost_budget(max_usd: float) -> Callable[..., Score]:
    """1 when the item's cost (``item["cost_usd"]``, US dollars, every call it made) is at
    most ``max_usd``."""

    def score(output, expected, parsed, parse_ok, item=None) -> Score:
        cost = _item_number(item, "cost_usd")
        if cost is None:
            return Score(None, None, "The item has no recorded cost")
        if cost <= max_usd:
            return Score(1.0, True, f"Cost ${cost:.4g} is within the budget of ${max_usd:.4g}")
        return Score(0.0, False, f"Cost ${cost:.4g} is over the budget of ${max_usd:.4g}")

    return score


def budget_scorers_from_card(card: Any) -> list[Scorer]:
    """``latency_budget`` and ``cost_budget`` from the card's ``p95_latency`` and
    ``cost_per_request`` targets (converted to seconds and US dollars); the ones the card has.

    Per item these are budgets, not the aggregates: an item over the p95 target is one of the
    slow 5% the target allows; the run's p95 against the card is the aggregate check."""
    out: list[Scorer] = []
    latency = card.metric("p95_latency")
    if latency is not None:
        out.append(latency_budget(max_s=latency.target_in_canonical_unit()))
    cost = card.metric("cost_per_request")
    if cost is not None:
        out.append(cost_budget(max_usd=cost.target_in_canonical_unit()))
    return out


def default_scorers(task_type: str | None) -> list[Scorer]:
    """The scorers a run uses when none are given. Classification compares the parsed label with
    the expected one after normalising case and punctuation; every task also records whether
    the output parsed."""
    if task_type == "classification":
        return [normalized_match(ignore_case=True, strip_punctuation=True), parsed_ok()]
    if task_type == "extraction":
        return [exact_match(), parsed_ok()]
    return [normalized_match(), parsed_ok()]


# -- aggregate metrics ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ClassificationMetrics:
    """Classification metrics from scikit-learn, over ``labels`` (the expected labels and any
    the prompt declares). A prediction outside them counts as wrong for its expected class and
    shows in the confusion matrix as ``(other)``; a failed parse as ``(unparsed)``."""

    n: int
    accuracy: float
    macro_f1: float
    precision: float  # macro
    recall: float  # macro
    labels: list[str]
    per_class: pd.DataFrame  # label, precision, recall, f1, support
    confusion: pd.DataFrame  # rows: expected, columns: predicted

    def as_metrics(self) -> dict[str, float]:
        """The card's metric names and their values."""
        return {"accuracy": self.accuracy, "macro_f1": self.macro_f1,
                "precision": self.precision, "recall": self.recall}

    def _repr_html_(self) -> str:
        return (f"<p>accuracy {self.accuracy:.3f}, macro F1 {self.macro_f1:.3f} over {self.n} "
                f"items</p>" + self.per_class._repr_html_() + self.confusion._repr_html_())


def canonical_label(value: Any, labels: Sequence[str]) -> str:
    """``value`` as one of ``labels`` when it matches one after normalisation, else as text
    (``(unparsed)`` for None)."""
    if value is None or (isinstance(value, float) and value != value):
        return UNPARSED
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text in labels:
        return text
    key = normalize_text(text)
    for label in labels:
        if normalize_text(label) == key:
            return label
    return text


def classification_report(expected: Sequence[Any], predicted: Sequence[Any], *,
                          labels: Sequence[str] | None = None) -> ClassificationMetrics:
    """Accuracy, per-class precision/recall/F1, macro F1 and the confusion matrix.

    Predictions are matched to labels after normalising case and punctuation (``Billing.`` is
    ``billing``); ``None`` stands for an output that did not parse."""
    import pandas as pd
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    if len(expected) != len(predicted):
        raise ValueError(f"expected has {len(expected)} items but predicted {len(predicted)}")
    y_true = [str(e) for e in expected]
    known = sorted(set(y_true) | set(labels or ()))
    y_pred = [canonical_label(p, known) for p in predicted]
    if not y_true:
        empty = pd.DataFrame(columns=["label", "precision", "recall", "f1", "support"])
        nan = float("nan")
        return ClassificationMetrics(0, nan, nan, nan, nan, known, empty, pd.DataFrame())
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=known, zero_division=0)
    macro_p, macro_r, macro_f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=known, average="macro", zero_division=0)
    extras = sorted({y for y in y_pred if y not in known} - {UNPARSED})
    # One "(other)" column for predictions outside the label set keeps the matrix square-ish
    # and readable when a model invents labels.
    shown_pred = [y if y in known or y == UNPARSED else OTHER for y in y_pred]
    columns = known + ([OTHER] if extras else []) + ([UNPARSED] if UNPARSED in y_pred else [])
    matrix = confusion_matrix(y_true, shown_pred, labels=columns)
    confusion = pd.DataFrame(matrix, index=pd.Index(columns, name="expected"),
                             columns=pd.Index(columns, name="predicted")).loc[known]
    per_class = pd.DataFrame({"label": known, "precision": p.astype(float),
                              "recall": r.astype(float), "f1": f.astype(float),
                              "support": s.astype(int)})
    return ClassificationMetrics(
        n=len(y_true), accuracy=float(accuracy_score(y_true, y_pred)), macro_f1=float(macro_f),
        precision=float(macro_p), recall=float(macro_r), labels=known, per_class=per_class,
        confusion=confusion)
