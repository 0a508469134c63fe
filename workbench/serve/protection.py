"""What stands between a request and the model: API keys, per-key rate limits, the rules for
text fields and JSON bodies. Pure functions and small classes; the ASGI guard that applies them
is ``workbench.serve.guard``."""

from __future__ import annotations

import hashlib
import os
import re

from workbench.serve.deployment import ENV_API_KEYS, NotDeployed

MIN_KEY_CHARS = 16
USER_CHARS = 128  # an end-user id (OpenAI's `user`, the X-Workbench-User header)
MAX_DEPTH = 32  # JSON nesting in a request body (a valid one nests 1 level)
MAX_LISTED = 10  # problems a 422 names; the rest are counted
UNKNOWN_ROUTE = "(unknown path)"  # what traces and counts record for a path the service lacks
# Characters refused in text fields: C0 controls but tab, newline and carriage return; DEL and
# the C1 controls; bidirectional embeddings, overrides and isolates (they reorder what a reader
# sees, "Trojan Source"); lone surrogates (not text: UTF-8 cannot encode them).
_REFUSED_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                            "\ud800-\udfff]")
# The same rule in the OpenAPI document (an ECMA-262 pattern; surrogates cannot be written there).
TEXT_PATTERN = ("^[^\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f\\u202a-\\u202e"
                "\\u2066-\\u2069]*$")
_COUNT_REFUSAL = ("INSERT INTO refusal_counts VALUES (?, ?, ?, ?, 1) ON CONFLICT "
                  "(minute, client, route, status) DO UPDATE SET untraced = untraced + 1")


def api_keys_from_env() -> list[str]:
    return [k.strip() for k in os.environ.get(ENV_API_KEYS, "").split(",") if k.strip()]


def _checked_keys(keys: list[str]) -> list[str]:
    keys = [str(k).strip() for k in keys if str(k).strip()]
    fix = "Make keys with: python -c \"import secrets; print(secrets.token_urlsafe(24))\""
    short = [k for k in keys if len(k) < MIN_KEY_CHARS]
    if short:
        raise NotDeployed(f"{len(short)} API key(s) are shorter than {MIN_KEY_CHARS} characters: "
                          "short keys can be guessed.", fix)
    odd = [k for k in keys if not all("!" <= c <= "~" for c in k)]
    if odd:
        raise NotDeployed(f"{len(odd)} API key(s) have characters other than printable ASCII "
                          "(spaces included): an HTTP header does not carry them as they are.",
                          fix)
    return keys


def _key_id(key: str) -> str:
    """What traces record about a key: a digest, never the key."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _match_key(offered: bytes, keys: dict[bytes, str]) -> str | None:
    """The client id of ``offered`` (the exact bytes sent) when it is one of the keys (compared
    in constant time)."""
    import hmac

    digest = hashlib.sha256(offered).digest()
    found = None
    for known, client in keys.items():
        if hmac.compare_digest(digest, known):
            found = client
    return found


_BEARER = re.compile(rb"bearer[ \t]+(.*)", re.I | re.S)


def _offered_key(headers: list[tuple[bytes, bytes]]) -> tuple[bytes | None, str | None]:
    """The key a request carries, from its raw headers: ``(key, None)``; ``(None, None)`` when
    it carries none; ``(None, why)`` when what it carries cannot be a key. Only the spaces and
    tabs around a header value are header syntax; anything else (a no-break space, any byte
    outside printable ASCII) is part of what was sent, so it is refused, never stripped."""
    auth = [v for k, v in headers if k.lower() == b"authorization"]
    other = [v for k, v in headers if k.lower() == b"x-api-key"]
    if len(auth) > 1 or len(other) > 1:
        return None, "the request has more than one Authorization or X-API-Key header"
    offered = []
    if auth:
        bearer = _BEARER.fullmatch(auth[0].strip(b" \t"))
        if bearer:
            offered.append(bearer.group(1).strip(b" \t"))
        elif not other:
            return None, "the Authorization header is not 'Bearer KEY'"
    if other:
        offered.append(other[0].strip(b" \t"))
    if not offered:
        return None, None
    if len(set(offered)) > 1:
        return None, "Authorization and X-API-Key carry different keys"
    key = offered[0]
    if not key or not all(0x21 <= b <= 0x7E for b in key):
        return None, "the key has characters no key has (keys are printable ASCII, no spaces)"
    return key, None


def _clean_text(value: str) -> str:
    """A text field without the characters ``_REFUSED_CHARS`` names."""
    found = _REFUSED_CHARS.search(value)
    if found:
        char = found.group()
        kind = ("a lone surrogate" if "\ud800" <= char <= "\udfff" else
                "a bidirectional control character" if char >= "\u202a" else
                "a control character")
        raise ValueError(f"contains {kind} (U+{ord(char):04X} at character "
                         f"{found.start() + 1}); send plain text (tabs and newlines are fine)")
    return value


def _checked_user(value: str | None) -> str | None:
    """The end-user id a caller sends (its own id for the person it asks for), or None when it
    sends none or an empty one; ValueError when it has more than ``USER_CHARS`` characters, or
    any character that is not printable (controls, bidirectional controls, lone surrogates)."""
    if value is None or value == "":
        return None
    if len(value) > USER_CHARS:
        raise ValueError(f"has {len(value)} characters; at most {USER_CHARS} are kept")
    if value.strip() != value or not value.isprintable():
        raise ValueError("has spaces around it or characters that are not printable; send an "
                         "id such as a user number or a hash of one")
    return value


_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.S)


def _depth(body: bytes) -> int:
    """How deeply a JSON text nests arrays and objects (strings left out)."""
    depth = deepest = 0
    # one pass: a string (an unterminated one runs to the end) or a bracket
    for token in _JSON_TOKENS.finditer(body):
        if token.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token.group() in (b"]", b"}"):
            depth -= 1
    return deepest
