"""PII detection and redaction, the labelled sample, and the gateway's privacy rule."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from workbench import pii
from workbench.privacy import project_policy

ROOT = Path(__file__).resolve().parents[1]


def _types(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for e in pii.detect(text):
        found.setdefault(e.type, []).append(e.text)
    return found


# -- the labelled sample -------------------------------------------------------------------------

def test_sample_spans_are_well_formed():
    sample = pii.load_sample()
    assert 150 <= len(sample) <= 300
    support = {t: 0 for t in pii.ENTITY_TYPES}
    for row in sample:
        text, last_end = row["text"], 0
        for e in sorted(row["entities"], key=lambda e: e["start"]):
            assert e["type"] in pii.ENTITY_TYPES
            assert last_end <= e["start"] < e["end"] <= len(text), row
            value = text[e["start"]:e["end"]]
            assert value == value.strip() and value, row
            last_end = e["end"]
            support[e["type"]] += 1
    assert min(support.values()) >= 15, support
    assert sum(not row["entities"] for row in sample) >= 30  # messages without any PII


def test_sample_is_what_its_generator_writes():
    spec = importlib.util.spec_from_file_location(
        "make_pii_sample", ROOT / "datasets" / "tools" / "make_pii_sample.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert gen.sample_rows() == pii.load_sample()


# Measured on the independent set when the detector was last changed (see the datasheet); a
# change that loses ground there fails here.
EVAL_MAX_LEAK = 0.12
EVAL_MIN_F1 = 0.86


def test_evaluate_meets_the_targets():
    report = pii.evaluate()
    assert list(report.index) == [*pii.ENTITY_TYPES, "STRUCTURED", "ALL", "MACRO"]
    for type_ in pii.STRUCTURED_TYPES:
        assert report.at[type_, "recall"] >= 0.95, report
    assert report.at["PERSON", "recall"] >= 0.85, report
    assert report.at["ALL", "precision"] >= 0.9, report


def test_evaluate_reports_misses_and_false_alarms(tmp_path):
    path = tmp_path / "sample.jsonl"
    rows = [  # a gold name the detector cannot see, and an unlabelled email
        {"text": "the parcel is for bob, he lives here",
         "entities": [{"type": "PERSON", "start": 18, "end": 21}]},
        {"text": "write to jane@example.com", "entities": []},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    report = pii.evaluate(path)
    assert report.at["PERSON", "recall"] == 0.0
    assert report.at["EMAIL", "precision"] == 0.0
    assert report.at["ALL", "fn"] == 1 and report.at["ALL", "fp"] == 1
    # The missed name is still in the redacted text: it leaked.
    assert report.at["PERSON", "leaked"] == 1 and report.at["PERSON", "leak_rate"] == 1.0
    assert report.attrs["pii_free_texts"] == 1 and report.attrs["pii_free_false_positives"] == 1


def test_leak_rate_counts_values_left_word_for_word(tmp_path):
    path = tmp_path / "sample.jsonl"
    text = "Call +44 20 7946 0958 or write to ann.lee@example.com"
    rows = [{"text": text, "entities": [
        {"type": "PHONE", "start": 5, "end": 21},
        # Labelled as a person here: found as an EMAIL it is a false type, but redacted.
        {"type": "PERSON", "start": 34, "end": 53}]}]
    path.write_text(json.dumps(rows[0]))
    report = pii.evaluate(path)
    assert report.at["PHONE", "leaked"] == 0 and report.at["PERSON", "leaked"] == 0
    assert report.at["PERSON", "fn"] == 1 and report.at["EMAIL", "fp"] == 1
    assert report.at["MACRO", "recall"] == pytest.approx((1.0 + 0.0) / 2)


def test_independent_set_is_scored_apart_from_the_tuning_sample():
    """The set written without looking at the detector: its figures are the honest ones, and
    they must stay within reach of the tuning sample's (they were measured at resolution)."""
    rows = pii.load_sample(pii.EVAL_PATH)
    texts = {r["text"] for r in rows}
    assert not texts & {r["text"] for r in pii.load_sample()}, "the sets share texts"
    report = pii.evaluate(pii.EVAL_PATH)
    assert report.attrs["pii_free_texts"] >= 40
    assert {t for t in pii.ENTITY_TYPES if report.at[t, "support"] >= 5} == set(pii.ENTITY_TYPES)
    assert report.at["ALL", "leak_rate"] <= EVAL_MAX_LEAK, report
    assert report.at["ALL", "f1"] >= EVAL_MIN_F1, report


# -- detection -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, type_, value", [
    # US Social Security numbers, with and without separators.
    ("The W-2 shows SSN 219-09-9999 but mine ends differently.", "SSN", "219-09-9999"),
    ("social security no. 078 05 1120", "SSN", "078 05 1120"),
    ("SSN:536224180 (please mask it)", "SSN", "536224180"),
    # Phones: national forms of more regions, slash forms, call logs with durations after.
    ("Festnetz 040 / 4711 0815 ab 9 Uhr", "PHONE", "040 / 4711 0815"),
    ("whatsapp (31) 99876-5432", "PHONE", "(31) 99876-5432"),
    ("mobile 0423 111 222 is best", "PHONE", "0423 111 222"),
    ("+33 6 12 34 56 78 2m44s outgoing", "PHONE", "+33 6 12 34 56 78"),
    ("0117 496 0777 00:12:09 inbound", "PHONE", "0117 496 0777"),
    # Mastercard's 2-series.
    ("paid with 2223 0000 4841 0010", "CARD", "2223 0000 4841 0010"),
    # Addresses in continental, Indian and lower-case forms.
    ("Lieferung an Piazza Navona 45, 00186 Roma bitte", "ADDRESS", "Piazza Navona 45, 00186 Roma"),
    ("envoyez au 3 boulevard Victor Hugo, 06000 Nice", "ADDRESS",
     "3 boulevard Victor Hugo, 06000 Nice"),
    ("Office: 12 Park Street, Kolkata, West Bengal 700016", "ADDRESS",
     "12 Park Street, Kolkata, West Bengal 700016"),
    ("my place is 88 pine rd, boise, id 83702", "ADDRESS", "88 pine rd, boise, id 83702"),
    # Names: other scripts' letters, lower case after a cue, a surname-only NER hit.
    ("Called back Şebnem Doğan about the refund.", "PERSON", "Şebnem Doğan"),
    ("Notes from Phạm Quỳnh Anh: the second parcel is missing.", "PERSON", "Phạm Quỳnh Anh"),
    ("hello its sofia again, any news?", "PERSON", "sofia"),
    ("Reviewed by Pádraig Ó Ceallaigh today.", "PERSON", "Pádraig Ó Ceallaigh"),
    # Secrets in configuration, connection strings, headers, other languages.
    ("STRIPE_SECRET=Kx9#mQ2vLp7w\nPORT=8080", "SECRET", "Kx9#mQ2vLp7w"),
    ("mysql://report:Zebra-42-Lamp@10.1.2.3/sales", "SECRET", "Zebra-42-Lamp"),
    ("-H 'Authorization: Bearer 9fQ2LmZx81KpRt44abcdWq'", "SECRET", "9fQ2LmZx81KpRt44abcdWq"),
    ("Mein Passwort ist Sonne!2024 seit gestern", "SECRET", "Sonne!2024"),
    # More address forms: Spanish abbreviations, PO boxes, block numbers, two lines.
    ("Dirección: C/ Alcalá 45, 28014 Madrid", "ADDRESS", "C/ Alcalá 45, 28014 Madrid"),
    ("Mail goes to PO Box 918, Hobart TAS 7001", "ADDRESS", "PO Box 918, Hobart TAS 7001"),
    ("Office: 4-5-1 Kita, Kita-ku, Osaka 530-0001", "ADDRESS",
     "4-5-1 Kita, Kita-ku, Osaka 530-0001"),
    ("Ship to:\n10 Downing Lane\nYork YO1 7HH", "ADDRESS", "10 Downing Lane\nYork YO1 7HH"),
])
def test_shapes_that_used_to_be_missed(text, type_, value):
    assert value in _types(text).get(type_, []), pii.detect(text)


@pytest.mark.parametrize("text", [
    "000-45-6789 and 666-12-3456 are not SSNs, nor is 987-65-4321.",
    "Changelog: 5.0.2.1 is out; 5.0.2.2 follows next week.",
    "upgraded the agent from 7.1.0.4 to 7.1.1.0 yesterday",
    "REDIS_HOST=cache\nWORKER_COUNT=4\nENABLE_SSO=true",
    "# TODO: drop the legacy path\n# NOTE: keep until March",
    "Guten Morgen, die Lieferung kam ohne Rechnung. Die Ware ist beschädigt.",
    "Hola, la Factura del Pedido está mal.",
    "We validate uploads with Adler-32 and CRC32 before storing them.",
    "Meeting 10.30 - 11.45 in room B; budget 1.234.567,00 EUR.",
    "my password is incorrect and the reset link expired",
    "API_KEY=${API_KEY}\nTOKEN_TTL=3600\nSECRET_NAME=prod/payments\nDB_PASSWORD=changeme",
    "password_reset_url: https://example.com/reset",
])
def test_traps_that_used_to_be_taken_for_pii(text):
    assert pii.detect(text) == [], pii.detect(text)


def test_ip_addresses_stay_found_beside_version_words():
    found = _types("After the update, logins from 198.51.100.23 are blocked; build 4.2.0.1.")
    assert found.get("IP_ADDRESS") == ["198.51.100.23"]


@pytest.mark.parametrize("text, type_, value", [
    ("Please reply to maria.gonzalez@outlook.com today.", "EMAIL", "maria.gonzalez@outlook.com"),
    ("Call me on +44 20 7946 0958 after 5pm.", "PHONE", "+44 20 7946 0958"),
    ("My number is (415) 555-0198.", "PHONE", "(415) 555-0198"),
    ("Card 4111 1111 1111 1111 was charged twice.", "CARD", "4111 1111 1111 1111"),
    ("Use 5555-5555-5555-4444 instead.", "CARD", "5555-5555-5555-4444"),
    ("Refund to DE89 3704 0044 0532 0130 00 please.", "IBAN", "DE89 3704 0044 0532 0130 00"),
    ("IBAN GB29NWBK60161331926819 is mine.", "IBAN", "GB29NWBK60161331926819"),
    ("Blocked from 203.0.113.45 since noon.", "IP_ADDRESS", "203.0.113.45"),
    ("Our host 2001:db8:85a3::8a2e:370:7334 is down.", "IP_ADDRESS",
     "2001:db8:85a3::8a2e:370:7334"),
    ("Ship to 742 Evergreen Terrace, Springfield, IL 62704 please.", "ADDRESS",
     "742 Evergreen Terrace, Springfield, IL 62704"),
    ("New address: 42 Rue de Rivoli, 75001 Paris.", "ADDRESS", "42 Rue de Rivoli, 75001 Paris"),
    ("Hi, my name is Oluwaseun Adeyemi and I need help.", "PERSON", "Oluwaseun Adeyemi"),
    ("Kind regards,\nIngrid Nilsson", "PERSON", "Ingrid Nilsson"),
    ("The key is sk-proj-4fG7hJ2kL9mN3pQ8rS1tU6vW0xY5zA2bC7dE9fG1 oops.", "SECRET",
     "sk-proj-4fG7hJ2kL9mN3pQ8rS1tU6vW0xY5zA2bC7dE9fG1"),
    ("aws key AKIAIOSFODNN7EXAMPLE leaked", "SECRET", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_16C7e42F292c6912E7710c838347Ae178B4a in the logs", "SECRET",
     "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
])
def test_each_type_is_found_in_realistic_text(text, type_, value):
    assert value in _types(text).get(type_, []), pii.detect(text)


def test_entities_carry_offsets_and_scores():
    text = "Mail jane@example.com or call +1 415-555-0132."
    found = pii.detect(text)
    assert [(e.type, e.text) for e in found] == [("EMAIL", "jane@example.com"),
                                                 ("PHONE", "+1 415-555-0132")]
    for e in found:
        assert text[e.start:e.end] == e.text and 0 < e.score <= 1


@pytest.mark.parametrize("text", [
    "Card 4111 1111 1111 1112 was charged twice.",  # fails Luhn
    "My card number is 5555-5555-5555-4445.",
])
def test_luhn_invalid_card_numbers_are_not_cards(text):
    assert "CARD" not in _types(text)


@pytest.mark.parametrize("text", [
    "Refund to DE88 3704 0044 0532 0130 00 please.",  # check digits off by one
    "IBAN GB28NWBK60161331926819 is mine.",
])
def test_bad_iban_checksums_are_not_ibans(text):
    assert "IBAN" not in _types(text)


@pytest.mark.parametrize("text", [
    "Order ORD-2025-448071 was cancelled on 03/14/2025, refund $1,249.99.",
    "I was charged €49.99 on 03.04.2025 and again on 04.04.2025.",
    "Version 2.0.1.5 of the driver, build 20250311, commit 9fceb02.",
    "Tracking 1Z999AA10123456784, invoice INV-000123, order #4839201756.",
    "thanks, works now",
    "",
])
def test_hard_negatives_are_left_alone(text):
    assert pii.detect(text) == []


def test_no_network_while_building_and_detecting(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    fresh = pii._build_analyzer()  # what analyzer() does once per process
    results = fresh.analyze(text="write to someone@mail.example.co.uk or visit", language="en",
                            entities=["EMAIL_ADDRESS"])
    assert [r.entity_type for r in results] == ["EMAIL_ADDRESS"]


def test_importing_pii_and_the_gateway_loads_no_nlp():
    code = ("import sys, workbench, workbench.pii, workbench.llm.gateway; "
            "print([m for m in ('presidio_analyzer', 'spacy', 'pandas', 'tldextract') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"


# -- redaction -----------------------------------------------------------------------------------

def test_placeholders_are_consistent_within_a_text_and_across_texts():
    placeholders = pii.Placeholders()
    first = pii.redact("Ann (ann@example.com) and Bo (bo@example.com) wrote; ann@example.com "
                       "again.", placeholders=placeholders)
    assert first.text.count("<EMAIL_1>") == 2 and first.text.count("<EMAIL_2>") == 1
    assert "@" not in first.text
    second = pii.redact("Call +44 20 7946 0958, or email BO@example.com.",
                        placeholders=placeholders)
    third = pii.redact("Same phone: +44 (0)20 7946 0958? No: +44 20-7946-0958.",
                       placeholders=placeholders)
    assert "<EMAIL_2>" in second.text and "<PHONE_1>" in second.text
    assert "<PHONE_1>" in third.text
    assert placeholders.counts["EMAIL"] == 2


def test_mask_mode_keeps_length_and_hides_every_character():
    text = "Card 4111 1111 1111 1111, mail jane@example.com."
    red = pii.redact(text, mode="mask")
    assert len(red.text) == len(text)
    assert red.text == "Card " + "*" * 19 + ", mail " + "*" * 16 + "."
    assert red.counts == {"CARD": 1, "EMAIL": 1}
    with pytest.raises(ValueError):
        pii.redact(text, mode="shred")


def test_redact_messages_shares_one_map_and_keeps_roles():
    messages = [{"role": "system", "content": "You are a help desk."},
                {"role": "user", "content": "I'm Priya Raghunathan, priya@example.com."},
                {"role": "assistant", "content": "Thanks, Priya Raghunathan."},
                {"role": "user", "content": [{"type": "text", "text": "priya@example.com again"}]}]
    out = pii.redact_messages(messages)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"] == "You are a help desk."
    assert out[1]["content"] == "I'm <PERSON_1>, <EMAIL_1>."
    assert out[2]["content"] == "Thanks, <PERSON_1>."
    assert out[3]["content"][0]["text"] == "<EMAIL_1> again"
    assert messages[1]["content"] == "I'm Priya Raghunathan, priya@example.com."  # not mutated


def test_scan_returns_one_row_per_entity():
    df = pii.scan(["nothing here", "mail a@example.com and b@example.com", None,
                   "mail a@example.com and b@example.com", "IP 10.0.0.12"])
    assert list(df.columns) == ["row", "type", "text", "start", "end", "score"]
    assert df[["row", "type", "text"]].values.tolist() == [
        [1, "EMAIL", "a@example.com"], [1, "EMAIL", "b@example.com"],
        [3, "EMAIL", "a@example.com"], [3, "EMAIL", "b@example.com"],
        [4, "IP_ADDRESS", "10.0.0.12"]]
    assert pii.counts_by_type(df).to_dict("records") == [
        {"type": "EMAIL", "found": 4}, {"type": "IP_ADDRESS", "found": 1}]
    assert pii.counts_by_type(pii.scan(["nothing here"])).to_dict("list") == {
        "type": [], "found": []}


def test_redact_dataset_saves_a_new_version_without_pii(project):
    from workbench.data.versioning import load, save_version, versions

    df = pd.DataFrame({
        "id": ["a", "b", "c"],
        "input": ["Refund card 4111 1111 1111 1111 for jane@example.com",
                  "jane@example.com again, from 203.0.113.45",
                  "No personal data in this one."],
        "expected": ["billing", "account", "other"]})
    first = save_version(project, "tickets", df, transform="import")
    stored = pii.redact_dataset(project, "tickets")
    assert stored.version == first.version + 1
    value = stored.value
    assert value.parent == first.version
    assert value.transform.name == "redact_pii"
    assert value.transform.params == {"mode": "placeholder", "columns": ["input"],
                                      "counts": {"EMAIL": 2, "CARD": 1, "IP_ADDRESS": 1}}
    assert pii.describe_redaction(value.transform.params) == (
        "2 email, 1 card, 1 ip address replaced by placeholders.")
    out = load(project, "tickets")
    assert out["input"].tolist() == ["Refund card <CARD_1> for <EMAIL_1>",
                                     "<EMAIL_1> again, from <IP_ADDRESS_1>",
                                     "No personal data in this one."]
    assert pii.scan(out["input"]).empty
    assert out["expected"].tolist() == df["expected"].tolist()
    assert versions(project, "tickets")["transform"].tolist() == ["import", "redact_pii"]


# -- the privacy rule and the gateway ------------------------------------------------------------

def _set_privacy(project, rules):
    def change(card):
        card.setdefault("constraints", {})["privacy"] = rules
    project.update_card(change)


@pytest.mark.parametrize("rules, forbids", [
    (["no PII to external APIs"], True),
    (["Never send personal data to third-party services"], True),
    (["PII must not leave for hosted models"], True),
    (["keep logs for 30 days"], False),
    ([], False),
])
def test_privacy_rule_phrasings(project, rules, forbids):
    _set_privacy(project, rules)
    assert project_policy(project).external_pii_forbidden is forbids


def test_sample_project_forbids_pii_to_external_apis(sample_project):
    assert project_policy(sample_project).external_pii_forbidden


def test_gateway_redacts_hosted_calls_when_the_card_says_so(sample_project, monkeypatch):
    from workbench.llm import gateway

    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")
    call = gateway.prepare("Mail me at jane@example.com", "openai/gpt-4o-mini",
                           project=sample_project)
    content = call.messages[-1]["content"]
    assert "<EMAIL_1>" in content and "jane@example.com" not in content
    assert call.redacted == {"EMAIL": 1}
    assert gateway._span_attributes(call)["workbench.pii_redacted"] == {"EMAIL": 1}

    local = gateway.prepare("Mail me at jane@example.com", "fake/echo", project=sample_project)
    assert local.messages[-1]["content"] == "Mail me at jane@example.com"
    assert local.redacted is None
    assert "workbench.pii_redacted" not in gateway._span_attributes(local)


def test_gateway_leaves_hosted_calls_alone_without_the_rule(project, monkeypatch):
    from workbench.llm import gateway

    monkeypatch.setenv("WORKBENCH_ALLOW_HOSTED", "1")
    _set_privacy(project, [])
    call = gateway.prepare("Mail me at jane@example.com", "openai/gpt-4o-mini", project=project)
    assert call.messages[-1]["content"] == "Mail me at jane@example.com"
    assert call.redacted is None
