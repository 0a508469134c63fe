"""The card's privacy rules, read in one place, and what the workbench does about each.

Rules are free text in ``[constraints] privacy``, so they are read the way a person would read
them. Three kinds are enforced:

- **No PII to external models** ("no PII to external APIs", "PII prohibited in hosted models",
  "never send personal data to third-party vendors"): the gateway redacts every call to a
  hosted model; the bundled model runs here and is left alone.
- **No raw inputs in logs** ("do not log raw inputs", "never store raw prompts"): traces and
  the service's feedback keep the text with its PII replaced by placeholders.
- **Trace retention** ("delete traces after 30 days", "keep logs for 2 weeks"): spans older than
  that are deleted when the project opens and, in long-running processes, every hour.
- **No PII in answers** ("no PII in answers", "never show personal data in responses"): the
  served deployment replaces the PII in its answers by placeholders before sending them
  (``workbench.serve.safety``).

Any other rule ("keep data in the EU") is kept on the card as a reminder but the workbench cannot
enforce it; ``policy(...).unenforced`` lists such rules so the card form and notebooks can say so.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.project import Project

_PERSONAL = re.compile(r"\b(?:pii|phi|personal(?:ly identifiable)?\s+(?:data|information|info|"
                       r"details)|personal|customer data|user data|sensitive data)\b")
_EXTERNAL = re.compile(r"\b(?:external|hosted|third[- ]?part(?:y|ies)|outside|cloud|vendors?|"
                       r"providers?|apis?|remote|saas|off[- ]site|openai|anthropic|gemini|"
                       r"non[- ]local)\b")
_LOCAL_ONLY = re.compile(r"\b(?:stays?|remains?|kept|keep|only)\b.{0,30}\b(?:local(?:ly)?|"
                         r"on[- ]prem\w*|in[- ]house|on[- ]device|on this machine)\b"
                         r"|\blocal(?:ly)?\s+only\b")
_PROHIBITION = re.compile(r"(?:^|\b)(?:no|never|not|none|cannot|can't|mustn't|don'?t|doesn'?t|"
                          r"without|forbid\w*|prohibit\w*|disallow\w*|ban(?:ned)?|block\w*|"
                          r"barred|redact\w*|strip\w*|mask\w*|must be removed)\b")
_LOGGING = re.compile(r"\b(?:log|logs|logged|logging|store|stored|storing|save|saved|keep|"
                      r"kept|record|recorded|persist\w*|trace|traces|traced)\b")
_RAW = re.compile(r"\b(?:raw|unredacted|plain[- ]?text|verbatim|full)\s+(?:user\s+)?(?:inputs?|"
                  r"prompts?|text|messages?|requests?|queries|data|content)\b"
                  r"|\b(?:user|customer)\s+(?:inputs?|prompts?|messages?|text)\b"
                  r"|\binputs?\b|\bprompts?\b")
_RETENTION = re.compile(
    r"\b(?:delete|deleted|purge|purged|remove|removed|drop|dropped|expire|expired|erase|erased|"
    r"retain|retained|retention|keep|kept|store|stored)\b"
    r".{0,40}?\b(\d+)\s*(day|days|d|week|weeks|month|months|year|years)\b")
_TRACE_WORDS = re.compile(r"\b(?:traces?|spans?|logs?|logged|logging|telemetry|records?|"
                          r"requests?|history|retention|retain\w*)\b")
_ANSWERS = re.compile(r"\b(?:outputs?|answers?|repl(?:y|ies)|responses?|completions?|"
                      r"generated (?:text|content)|what the (?:model|service|assistant|bot) "
                      r"(?:says|returns|sends|writes))\b")
_UNITS_DAYS = {"day": 1, "days": 1, "d": 1, "week": 7, "weeks": 7, "month": 30, "months": 30,
               "year": 365, "years": 365}


def forbids_external_pii(rule: str) -> bool:
    """Whether one rule forbids sending personal data to an external (hosted) model."""
    text = " ".join(rule.lower().split())
    if not _PERSONAL.search(text):
        return False
    if _LOCAL_ONLY.search(text):
        return True
    return bool(_EXTERNAL.search(text) and _PROHIBITION.search(text))


def forbids_raw_logging(rule: str) -> bool:
    """Whether one rule says raw (unredacted) inputs must not be logged or stored."""
    text = " ".join(rule.lower().split())
    return bool(_LOGGING.search(text) and _RAW.search(text) and _PROHIBITION.search(text))


def forbids_pii_in_answers(rule: str) -> bool:
    """Whether one rule says the service's answers must not carry personal data."""
    text = " ".join(rule.lower().split())
    return bool(_PERSONAL.search(text) and _ANSWERS.search(text) and _PROHIBITION.search(text)
                and not _LOGGING.search(text))


def retention_days(rule: str) -> int | None:
    """The number of days one rule keeps traces for ("delete traces after 30 days" -> 30)."""
    text = " ".join(rule.lower().split())
    m = _RETENTION.search(text)
    if m is None or not _TRACE_WORDS.search(text):
        return None
    return int(m.group(1)) * _UNITS_DAYS[m.group(2)]


@dataclass(frozen=True)
class PrivacyPolicy:
    external_pii_forbidden: bool = False
    raw_logging_forbidden: bool = False
    trace_retention_days: int | None = None
    unenforced: tuple[str, ...] = field(default_factory=tuple)
    output_pii_forbidden: bool = False

    def effects(self) -> list[str]:
        """One sentence per rule: what the workbench does, or that it cannot enforce it."""
        out = []
        if self.external_pii_forbidden:
            out.append("Calls to hosted models are sent with PII replaced by placeholders "
                       "(the bundled model runs here and sees the text as written).")
        if self.raw_logging_forbidden:
            out.append("Traces and the service's feedback keep inputs and outputs with PII "
                       "replaced by placeholders, never the raw text.")
        if self.trace_retention_days is not None:
            out.append(f"Traces older than {self.trace_retention_days} days are deleted.")
        if self.output_pii_forbidden:
            out.append("The served deployment's answers are sent with PII replaced by "
                       "placeholders.")
        out += [f"'{rule}' is kept as a reminder; the workbench cannot enforce it, so check it "
                "where the data goes (your model provider's settings, your hosting)."
                for rule in self.unenforced]
        return out


def policy(rules: Iterable[Any]) -> PrivacyPolicy:
    """The policy a list of privacy rules sets (non-text entries are ignored)."""
    if isinstance(rules, str):
        rules = [rules]
    external = raw = answers = False
    days: list[int] = []
    unenforced = []
    for rule in rules:
        if not isinstance(rule, str) or not rule.strip():
            continue
        e, r, d = forbids_external_pii(rule), forbids_raw_logging(rule), retention_days(rule)
        a = forbids_pii_in_answers(rule)
        external, raw, answers = external or e, raw or r, answers or a
        if d is not None:
            days.append(d)
        if not (e or r or a or d is not None):
            unenforced.append(rule.strip())
    # Several retention rules: the shortest one holds.
    return PrivacyPolicy(external, raw, min(days) if days else None, tuple(unenforced),
                         answers)


_cache: dict[str, tuple[float, PrivacyPolicy]] = {}
_cache_lock = threading.Lock()


def project_policy(project: Project) -> PrivacyPolicy:
    """The open project's policy, re-read when the card file changes. The raw rules are read,
    not the validated card, so a mistake elsewhere in the card never switches a rule off."""
    path = project.card_path
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return PrivacyPolicy()
    key = str(path)
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
    rules = project.card().get("constraints", {}).get("privacy", [])
    result = policy(rules if isinstance(rules, list) else [rules])
    with _cache_lock:
        _cache[key] = (stamp, result)
    return result


# -- enforcing: text kept in traces, and trace retention --------------------------------------------

_TEXT_ATTRIBUTES = ("gen_ai.input.messages", "gen_ai.output.messages", "workbench.request",
                    "workbench.input", "workbench.output", "workbench.variables", "input",
                    "output", "variables")


def redact_for_logs(attributes: dict[str, Any]) -> dict[str, Any]:
    """A copy of span attributes with the PII in their text redacted (placeholders shared within
    the span, so "the same email twice" still reads as such)."""
    from workbench import pii

    placeholders = pii.Placeholders()
    out = dict(attributes)
    for key in _TEXT_ATTRIBUTES:
        if key in out:
            out[key] = _redact_value(out[key], placeholders)
    out["workbench.logged_redacted"] = True
    return out


def _redact_value(value: Any, placeholders) -> Any:
    from workbench import pii

    if isinstance(value, str):
        return pii.redact(value, placeholders=placeholders).text
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return pii.redact_messages(value, placeholders=placeholders)
    if isinstance(value, dict):
        return {k: _redact_value(v, placeholders) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_value(v, placeholders) for v in value]
    return value


_SWEEP_EVERY_S = 3600.0
_last_sweep: dict[str, float] = {}


def sweep_traces(project: Project, *, now: float | None = None, force: bool = False) -> int:
    """Delete the spans older than the card's retention rule; returns how many went. Runs at
    most once an hour per project unless ``force``."""
    days = project_policy(project).trace_retention_days
    if days is None:
        return 0
    now = time.time() if now is None else now
    key = str(project.path)
    with _cache_lock:
        if not force and now - _last_sweep.get(key, 0.0) < _SWEEP_EVERY_S:
            return 0
        _last_sweep[key] = now
    cutoff = now - days * 86400
    project.store.flush()
    if project.store.db.execute("SELECT 1 FROM spans WHERE start_time < ? LIMIT 1",
                                (cutoff,)).fetchone() is None:
        return 0
    with project.store.write() as db:
        cursor = db.execute("DELETE FROM spans WHERE start_time < ?", (cutoff,))
    return cursor.rowcount


def redact_text_for_logs(project: Project, text: str | None) -> str | None:
    """``text`` as the project may store it in logs: redacted under "do not log raw inputs"."""
    if text is None or not project_policy(project).raw_logging_forbidden:
        return text
    from workbench import pii

    return pii.redact(text).text
