"""Generate datasets/pii_eval.jsonl: an independently written evaluation set for PII detection.

Written for this project (CC0) WITHOUT looking at the PII detector, its tests or its tuning
sample: the templates, value pools and annotation rules below are this file's own. Never tune
the detector against this file -- it exists to give an honest, held-out score.

Deterministic (fixed seed, standard library only). Run from the repository root:

    python datasets/tools/make_pii_eval.py

Each line is ``{"id": "e0001", "text": ..., "entities": [{"type": T, "start": s, "end": e}],
"kind": FAMILY}`` with Python ``str`` offsets into ``text`` (end exclusive). Types: EMAIL, PHONE,
CARD, IBAN, IP_ADDRESS, ADDRESS, PERSON, SECRET, SSN.

Templates use two kinds of slot:

* ``{TYPE:key}`` -- a gold span; ``key`` names the value (``p.full``, ``phone.uk``, ``iban.de``...).
* ``{key}``      -- a filler that is NOT personal data (order numbers, dates, versions, UUIDs,
  invalid SSNs, Luhn-invalid numbers, city names...): the traps.

``{{`` and ``}}`` are literal braces. A ``#n`` suffix makes a second, different value of the same
kind (``phone.uk#2``); the same key used twice in one text gives the same value (a person's first
name in the greeting and the full name in the signature). ``|lower`` / ``|upper`` change case.
Texts are built by concatenating pieces, so offsets are exact by construction, and are then
checked again.

All values are invented. Card numbers pass Luhn and IBANs pass mod-97 but are random; SSNs are
random numbers in the valid ranges; keys and tokens are random strings with realistic prefixes.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "pii_eval.jsonl"
SEED = 4242017

ENTITY_TYPES = ("EMAIL", "PHONE", "CARD", "IBAN", "IP_ADDRESS", "ADDRESS", "PERSON", "SECRET", "SSN")

# --------------------------------------------------------------------------------------------
# Value pools
# --------------------------------------------------------------------------------------------

# (culture, given name, family name, order) -- order "W": given family; "E": family given.
NAMES = [
    ("tr", "Şükrü", "Doğan", "W"), ("tr", "Ayşegül", "Kılıç", "W"), ("tr", "Çağla", "Öztürk", "W"),
    ("tr", "Barış", "Güneş", "W"), ("tr", "Ilgın", "Aydoğdu", "W"),
    ("vn", "Hoa", "Nguyễn Thị", "E"), ("vn", "Minh", "Trần Văn", "E"), ("vn", "Lan", "Phạm Thị", "E"),
    ("ng", "Adébáyọ̀", "Ògúnlẹ́yẹ", "W"), ("ng", "Folake", "Adewale", "W"),
    ("ng", "Chukwuemeka", "Eze", "W"), ("ng", "Temitope", "Bakare", "W"),
    ("pl", "Małgorzata", "Wiśniewska", "W"), ("pl", "Zbigniew", "Łukasiewicz", "W"),
    ("pl", "Grażyna", "Szczepańska", "W"),
    ("ie", "Seán", "Ó Súilleabháin", "W"), ("ie", "Caoimhe", "Ní Bhriain", "W"),
    ("ie", "Ciarán", "Mac Giolla Phádraig", "W"), ("ie", "Niamh", "MacAodha", "W"),
    ("no", "Bjørn", "Åkesson", "W"), ("no", "Sigríður", "Þórsdóttir", "W"), ("no", "Åsa", "Lindgren", "W"),
    ("no", "Jukka", "Mäkelä", "W"), ("no", "Freja", "Østergaard", "W"),
    ("ar", "Abdulrahman", "Al-Otaibi", "W"), ("ar", "Layla", "Haddad", "W"), ("ar", "Yousef", "Abu-Zaid", "W"),
    ("ar", "Nour", "El-Khoury", "W"), ("ar", "Khadija", "Benali", "W"),
    ("nl", "Pieter", "van der Berg", "W"), ("nl", "Sanne", "de Vries", "W"), ("nl", "Joost", "van den Heuvel", "W"),
    ("nl", "Maartje", "Verhoeven", "W"),
    ("es", "María José", "de la Fuente", "W"), ("es", "Javier", "Ruiz-Zafón", "W"),
    ("es", "Guadalupe", "Ortega Ramírez", "W"), ("es", "Iñaki", "Etxeberria", "W"),
    ("fr", "Anne-Sophie", "Lefèvre", "W"), ("fr", "François", "Girard", "W"), ("fr", "Hélène", "Fauré", "W"),
    ("fr", "Gaëlle", "Le Goff", "W"), ("fr", "Renée", "Beauchamp", "W"),
    ("de", "Jürgen", "Weiß", "W"), ("de", "Friederike", "Bäcker", "W"), ("de", "Klaus-Dieter", "Hoffmann", "W"),
    ("de", "Lena", "Müller-Lüdenscheidt", "W"), ("de", "Torsten", "Großkopf", "W"),
    ("it", "Giuseppe", "Esposito", "W"), ("it", "Chiara", "Ferrara", "W"), ("it", "Lorenzo", "De Luca", "W"),
    ("it", "Niccolò", "Dall'Olio", "W"),
    ("pt", "Luíza", "Gonçalves", "W"), ("pt", "Thiago", "Albuquerque", "W"), ("pt", "Conceição", "Magalhães", "W"),
    ("in", "Venkatesh", "Subramaniam", "W"), ("in", "Ananya", "Krishnamurthy", "W"),
    ("in", "Harpreet", "Kaur Sandhu", "W"), ("in", "Sanjay", "Iyer", "W"),
    ("en", "Bethany", "Holloway", "W"), ("en", "Marcus", "Whitfield", "W"), ("en", "Gregory", "O'Connell", "W"),
    ("en", "Tamika", "Washington", "W"), ("en", "Dwayne", "McAllister", "W"), ("en", "Courtney", "Vance-Riley", "W"),
    ("en", "Eleni", "Papadopoulou", "W"), ("en", "Zsófia", "Horváth", "W"), ("en", "Yael", "Ben-David", "W"),
    ("en", "Wanjiru", "Kamau", "W"), ("en", "Abena", "Owusu", "W"), ("en", "Tevita", "Fifita", "W"),
    ("en", "Mihai", "Popescu", "W"), ("en", "Dragana", "Jovanović", "W"),
    ("cn", "Yang", "Liu", "E"), ("cn", "Xiaoming", "Huang", "E"), ("cn", "Jie", "Zhou", "E"),
    ("kr", "Min-jun", "Kim", "E"), ("kr", "Seo-yeon", "Lee", "E"), ("kr", "Jae-hyun", "Choi", "E"),
    ("jp", "Haruto", "Kobayashi", "W"), ("jp", "Aiko", "Yamamoto", "W"),
]
CULTURES = sorted({n[0] for n in NAMES})
FEMALE = {"Ayşegül", "Çağla", "Ilgın", "Hoa", "Lan", "Folake", "Temitope", "Małgorzata", "Grażyna", "Caoimhe",
          "Niamh", "Sigríður", "Åsa", "Freja", "Layla", "Nour", "Khadija", "Sanne", "Maartje", "María José",
          "Guadalupe", "Anne-Sophie", "Hélène", "Gaëlle", "Renée", "Friederike", "Lena", "Chiara", "Luíza",
          "Conceição", "Ananya", "Harpreet", "Bethany", "Tamika", "Courtney", "Eleni", "Zsófia", "Yael",
          "Wanjiru", "Abena", "Dragana", "Seo-yeon", "Aiko"}

EMAIL_DOMAINS = {
    "de": ["web.de", "gmx.net", "posteo.de", "t-online.de"],
    "fr": ["orange.fr", "free.fr", "laposte.net"],
    "it": ["libero.it", "virgilio.it", "tiscali.it"],
    "es": ["telefonica.net", "hotmail.es"],
    "pt": ["uol.com.br", "terra.com.br", "sapo.pt"],
    "nl": ["ziggo.nl", "kpnmail.nl"],
    "tr": ["yandex.com.tr", "hotmail.com.tr"],
    "in": ["rediffmail.com"],
    "kr": ["naver.com"],
    "cn": ["qq.com", "163.com"],
}
GENERIC_DOMAINS = ["icloud.com", "fastmail.com", "hey.com", "zoho.com", "hotmail.com", "yahoo.com",
                   "northwind-logistics.com", "bluheron.io", "veldt-analytics.co.uk", "marisol-travel.es"]
ROLE_EMAILS = ["support@kestreldrive.com", "billing@kestreldrive.com", "no-reply@notify.kestreldrive.com",
               "facturacion@marisol-travel.es", "kundenservice@nordlicht-versand.de", "help@bluheron.io"]

COMPANIES = ["Northwind Logistics GmbH", "Blue Heron Analytics", "Duarte & Filhos Lda.", "Kestrel Drive",
             "Nordlicht Versand AG", "Marisol Travel S.L.", "Veldt Analytics Ltd", "Anatolia Tekstil A.Ş.",
             "Brightwater Dental Group", "Osprey Freight BV"]
PRODUCTS = ["Kestrel Drive Pro", "Kestrel Dock", "Team plan", "Business Annual", "Family plan"]
CITIES = ["Amsterdam", "Lisbon", "Toulouse", "Pune", "Denver", "Leeds", "Osaka", "Curitiba", "Izmir",
          "Rotterdam", "Bologna", "Valencia", "Halifax", "Brisbane", "Lagos", "Hanoi", "Kraków", "Cork"]
HANDLES = ["guest4821", "night_owl", "user_77", "visitor-3310", "anon_k", "webchat-1192"]

# Phone formats: d = any digit, n = 2-9.
PHONES = {
    "us": ["(ndd) ndd-dddd", "ndd-ndd-dddd", "+1 ndd-ndd-dddd", "+1 (ndd) ndd-dddd", "ndd.ndd.dddd",
           "1-ndd-ndd-dddd", "+1 ndd ndd dddd"],
    "uk": ["+44 20 7ddd dddd", "020 8ddd dddd", "07ddd dddddd", "+44 7ddd dddddd", "0151 ddd dddd",
           "+44 (0)161 ddd dddd", "+44 113 ddd dddd", "01632 dddddd"],
    "uk_call": ["+44 20 7ddd dddd", "0151 ddd dddd", "+44 7ddd dddddd", "0113 ddd dddd"],
    "uk_mobile": ["07ddd dddddd", "+44 7ddd dddddd", "+44 (0)7ddd dddddd"],
    "uk_local": ["0151 ddd dddd", "0113 ddd dddd", "0117 ddd dddd", "020 7ddd dddd"],
    "de": ["+49 30 dddddddd", "+49 (0)221 ddd dd dd", "0171 ddddddd", "+49 151 dddddddd", "030-dddddd",
           "069 ddd ddd-dd", "089 / dddd dddd"],
    "de_slash": ["089 / dddd dddd", "030 / ddd ddd dd", "0221/ddd dd dd", "040 / ddd ddd-d"],
    "de_mobile": ["0171 ddddddd", "0152 dddddddd", "+49 151 ddd ddddd", "0176-dddddddd"],
    "fr": ["06 dd dd dd dd", "07 dd dd dd dd", "+33 6 dd dd dd dd", "+33 (0)1 dd dd dd dd", "01.dd.dd.dd.dd",
           "04 dd dd dd dd"],
    "fr_mobile": ["06 dd dd dd dd", "07 dd dd dd dd", "+33 6 dd dd dd dd", "+33 (0)7 dd dd dd dd"],
    "fr_fixed": ["01 dd dd dd dd", "+33 1 dd dd dd dd", "05.dd.dd.dd.dd", "04 dd dd dd dd"],
    "br": ["(11) 9dddd-dddd", "+55 21 9dddd-dddd", "+55 (31) 9dddd-dddd", "(48) 3ddd-dddd"],
    "in": ["+91 98ddd ddddd", "+91-22-dddd-dddd", "+91 7ddddddddd", "080 dddd dddd", "09ddd ddddd"],
    "jp": ["+81 3-dddd-dddd", "090-dddd-dddd", "03-dddd-dddd", "+81 90 dddd dddd", "06-dddd-dddd"],
    "au": ["+61 4dd ddd ddd", "(02) dddd dddd", "04dd ddd ddd", "+61 3 dddd dddd", "(08) dddd dddd"],
    "es": ["+34 6dd dd dd dd", "91 ddd dd dd", "+34 912 ddd ddd", "6dd ddd ddd"],
    "it": ["+39 3dd ddd dddd", "02 dddd dddd", "+39 06 dddd dddd", "3dd ddd dddd"],
    "ng": ["+234 803 ddd dddd", "0803 ddd dddd", "+234 (0)809 ddd dddd", "0706 ddd dddd"],
    "ae": ["+971 50 ddd dddd", "04 ddd dddd", "+971 4 ddd dddd", "055-ddd-dddd"],
    "mx": ["+52 55 dddd dddd", "+52 1 33 dddd dddd", "(55) dddd-dddd", "+52 (81) dddd-dddd"],
    "nl": ["+31 6 dddddddd", "020-ddd dddd", "06-dddddddd", "+31 (0)10 ddd dddd"],
    "tr": ["+90 5dd ddd dd dd", "0532 ddd dd dd", "0(212) ddd dd dd", "+90 (216) ddd dd dd"],
    "pt": ["+351 91d ddd ddd", "21 ddd dddd", "+351 22 ddd dddd"],
    "ca": ["+1 416 ndd dddd", "(604) ndd-dddd", "+1-514-ndd-dddd"],
    "ie": ["+353 87 ddd dddd", "01 ddd dddd", "+353 (0)21 ddd dddd"],
    "kr": ["+82 10-dddd-dddd", "010-dddd-dddd"],
    "cn": ["+86 138 dddd dddd", "+86 10 dddd dddd"],
}
PHONE_ANY = ["us", "uk", "de", "fr", "br", "in", "jp", "au", "es", "it", "ng", "ae", "mx", "nl", "tr", "pt",
             "ca", "ie", "kr", "cn"]

ADDR = {
    "us": {
        "streets": ["Oak St", "Maple Avenue", "Elm Street", "Pine Ridge Rd", "Martin Luther King Jr Blvd",
                    "W 42nd St", "Lakeview Dr", "Cedar Ln", "Sycamore Court", "N Broadway"],
        "cities": [("Portland", "OR", "97201"), ("Austin", "TX", "78704"), ("Columbus", "OH", "43215"),
                   ("Denver", "CO", "80205"), ("Raleigh", "NC", "27601"), ("Madison", "WI", "53703"),
                   ("Brooklyn", "NY", "11215"), ("Tucson", "AZ", "85719"), ("Savannah", "GA", "31401")],
    },
    "uk": [("Kingsley Road", "Leeds", "LS6 2AB"), ("Mill Lane", "Cambridge", "CB2 1RX"),
           ("Whiteladies Road", "Bristol", "BS8 2PH"), ("Wilmslow Road", "Manchester", "M14 5TP"),
           ("Byres Road", "Glasgow", "G12 8TB"), ("Cathays Terrace", "Cardiff", "CF24 4HX"),
           ("Unthank Road", "Norwich", "NR2 2PA"), ("Lordship Lane", "London", "SE22 8HN")],
    "ca": [("Rue Sainte-Catherine Ouest", "Montréal", "QC", "H3B 1A5"), ("Queen St W", "Toronto", "ON", "M5H 2N2"),
           ("Kingsway", "Vancouver", "BC", "V5V 3E1"), ("Jasper Ave", "Edmonton", "AB", "T5J 1S9"),
           ("Spring Garden Rd", "Halifax", "NS", "B3J 1G1")],
    "de": [("Hauptstraße", "10115", "Berlin"), ("Lindenallee", "50968", "Köln"), ("Am Sonnenhang", "81545", "München"),
           ("Schillerstr.", "70173", "Stuttgart"), ("Bergstraße", "69120", "Heidelberg"),
           ("Königsallee", "40212", "Düsseldorf"), ("Große Bleichen", "20354", "Hamburg"),
           ("Weißenburger Straße", "04275", "Leipzig")],
    "fr": [("avenue Jean Jaurès", "31000", "Toulouse"), ("rue des Lilas", "69003", "Lyon"),
           ("boulevard Haussmann", "75009", "Paris"), ("rue de la République", "13002", "Marseille"),
           ("quai des Chartrons", "33000", "Bordeaux"), ("place Stanislas", "54000", "Nancy")],
    "it": [("Corso Como", "20154", "Milano", "MI"), ("Via dei Mille", "80121", "Napoli", "NA"),
           ("Piazza Santo Spirito", "50125", "Firenze", "FI"), ("Via Garibaldi", "10122", "Torino", "TO"),
           ("Via del Corso", "00186", "Roma", "RM"), ("Strada Maggiore", "40125", "Bologna", "BO")],
    "es": [("Calle de Alcalá", "28014", "Madrid"), ("Carrer de Mallorca", "08008", "Barcelona"),
           ("Avenida de la Constitución", "41004", "Sevilla"), ("Calle Colón", "46004", "Valencia"),
           ("Gran Vía", "48011", "Bilbao")],
    "nl": [("Prinsengracht", "1016 GV", "Amsterdam"), ("Oudegracht", "3511 AX", "Utrecht"),
           ("Witte de Withstraat", "3012 BN", "Rotterdam"), ("Grote Markt", "9711 LV", "Groningen"),
           ("Stratumseind", "5611 ET", "Eindhoven")],
    "in": [("MG Road", "Pune", "Maharashtra", "411001"), ("100 Feet Road, Indiranagar", "Bengaluru", "Karnataka", "560038"),
           ("Anna Salai", "Chennai", "Tamil Nadu", "600002"), ("Linking Road, Bandra West", "Mumbai", "Maharashtra", "400050"),
           ("Park Street", "Kolkata", "West Bengal", "700016"), ("Sector 18", "Noida", "Uttar Pradesh", "201301")],
    "br": [("Rua Augusta", "Consolação", "São Paulo", "SP", "01304-001"),
           ("Av. Atlântica", "Copacabana", "Rio de Janeiro", "RJ", "22021-001"),
           ("Rua da Bahia", "Centro", "Belo Horizonte", "MG", "30160-011"),
           ("Av. Sete de Setembro", "Centro", "Salvador", "BA", "40060-001"),
           ("Rua XV de Novembro", "Centro", "Curitiba", "PR", "80020-310")],
    "jp": [("Meguro", "Meguro-ku", "Tokyo", "153-0063"), ("Umeda", "Kita-ku", "Osaka", "530-0001"),
           ("Tenjin", "Chuo-ku", "Fukuoka", "810-0001"), ("Sakae", "Naka-ku", "Nagoya", "460-0008")],
    "au": [("Beach Road", "Bondi", "NSW", "2026"), ("Flinders Lane", "Melbourne", "VIC", "3000"),
           ("Adelaide Street", "Brisbane", "QLD", "4000"), ("Hay Street", "Perth", "WA", "6000"),
           ("Rundle Street", "Adelaide", "SA", "5000")],
    "tr": [("Bağdat Caddesi", "34728", "Kadıköy/İstanbul"), ("Atatürk Bulvarı", "06420", "Çankaya/Ankara"),
           ("Kıbrıs Şehitleri Caddesi", "35220", "Alsancak/İzmir")],
    "pt": [("Rua Garrett", "1200-203", "Lisboa"), ("Rua de Santa Catarina", "4000-447", "Porto"),
           ("Avenida da Liberdade", "1250-096", "Lisboa")],
    "ie": [("Grafton Street", "Dublin 2", "D02 VF65"), ("Shop Street", "Galway", "H91 FK2N"),
           ("Oliver Plunkett Street", "Cork", "T12 AX7D")],
}
ADDR_ANY = ["us", "uk", "ca", "de", "fr", "it", "es", "nl", "in", "br", "jp", "au", "tr", "pt", "ie", "pobox"]

PW_WORDS = ["Blauwal", "tornado", "Kiwi", "Sonnenblume", "marmalade", "Zitrone", "falcon", "Papagei",
            "Oceano", "girasole", "Lavanda", "copper", "Mantequilla", "otter", "Kaplumbağa"]

# --------------------------------------------------------------------------------------------
# Checksums
# --------------------------------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def luhn_complete(partial: str) -> str:
    for c in "0123456789":
        if luhn_ok(partial + c):
            return partial + c
    raise AssertionError("unreachable")


def iban_numeric(s: str) -> int:
    return int("".join(str(int(ch, 36)) for ch in s))


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "").upper()
    return iban_numeric(s[4:] + s[:4]) % 97 == 1


def ssn_ok(area: int, group: int, serial: int) -> bool:
    return 0 < area < 900 and area != 666 and group != 0 and serial != 0


# --------------------------------------------------------------------------------------------
# Value generators
# --------------------------------------------------------------------------------------------

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    # small helpers ---------------------------------------------------------------------------
    def digits(self, n: int) -> str:
        return "".join(self.r.choice(string.digits) for _ in range(n))

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pattern(self, pat: str) -> str:
        out = []
        for ch in pat:
            if ch == "d":
                out.append(self.r.choice(string.digits))
            elif ch == "n":
                out.append(self.r.choice("23456789"))
            else:
                out.append(ch)
        return "".join(out)

    # persons ---------------------------------------------------------------------------------
    def persona(self, culture: str | None, used: set, female: bool = False) -> dict:
        pool = [n for n in NAMES if (culture is None or n[0] == culture) and (n[1], n[2]) not in used
                and (not female or n[1] in FEMALE)]
        cult, given, family, order = self.r.choice(pool)
        used.add((given, family))
        full = f"{given} {family}" if order == "W" else f"{family} {given}"
        initial = self.r.choice("ABCDEFGHJKLMNPRSTW")
        p = {"first": given, "last": family, "full": full,
             "fullmi": f"{given} {initial}. {family}" if order == "W" else full}
        p["email"] = self.email_for(cult, given, family)
        return p

    @staticmethod
    def ascii_fold(s: str) -> str:
        special = {"ı": "i", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L", "ß": "ss", "đ": "d", "Đ": "D",
                   "þ": "th", "Þ": "Th", "æ": "ae", "ð": "d", "œ": "oe", "İ": "I"}
        s = "".join(special.get(c, c) for c in s)
        s = unicodedata.normalize("NFKD", s)
        s = "".join(c for c in s if not unicodedata.combining(c))
        return "".join(c for c in s.lower() if c.isascii() and c.isalnum())

    def email_for(self, culture: str, given: str, family: str) -> str:
        f = self.ascii_fold(given.split()[0])
        last = self.ascii_fold(family)
        doms = EMAIL_DOMAINS.get(culture)
        dom = self.r.choice(doms) if doms and self.r.random() < 0.6 else self.r.choice(GENERIC_DOMAINS)
        style = self.r.randrange(7)
        local = [f"{f}.{last}", f"{f[0]}{last}", f"{f}{last}{self.r.randint(1, 99)}", f"{last}.{f}",
                 f"{f}_{last}", f"{f}{self.r.randint(70, 99)}", f"{f}.{last}+support"][style]
        email = f"{local}@{dom}"
        if self.r.random() < 0.1:  # some people type it capitalised
            email = f"{local[0].upper()}{local[1:]}@{dom[0].upper()}{dom[1:]}"
        return email

    # phones ----------------------------------------------------------------------------------
    def phone(self, variant: str) -> str:
        cc = self.r.choice(PHONE_ANY) if variant == "any" else variant
        for _ in range(100):
            v = self.pattern(self.r.choice(PHONES[cc]))
            if cc in ("us", "ca") and "555" in v:
                continue
            return v
        raise AssertionError(variant)

    # cards -----------------------------------------------------------------------------------
    def card_digits(self, brand: str) -> str:
        if brand == "any":
            brand = self.r.choice(["visa", "mc5", "mc2", "amex", "discover"])
        if brand == "visa":
            prefix, length = "4" + self.digits(5), 16
        elif brand == "mc5":
            prefix, length = str(self.r.randint(51, 55)) + self.digits(4), 16
        elif brand == "mc2":
            prefix, length = str(self.r.randint(2221, 2720)) + self.digits(2), 16
        elif brand == "amex":
            prefix, length = self.r.choice(["34", "37"]) + self.digits(4), 15
        elif brand == "discover":
            prefix, length = self.r.choice(["6011" + self.digits(2), str(self.r.randint(644, 649)) + self.digits(3),
                                            "65" + self.digits(4)]), 16
        else:
            raise KeyError(brand)
        body = prefix + self.digits(length - 1 - len(prefix))
        num = luhn_complete(body)
        assert luhn_ok(num) and len(num) == length
        return num

    def group_card(self, num: str, sep: str) -> str:
        if len(num) == 15:
            parts = [num[:4], num[4:10], num[10:]]
        else:
            parts = [num[i:i + 4] for i in range(0, 16, 4)]
        return sep.join(parts)

    def card(self, variant: str) -> str:
        brand, _, fmt = variant.partition("_")
        num = self.card_digits(brand)
        sep = {"space": " ", "dash": "-", "none": ""}.get(fmt) if fmt else self.r.choice([" ", " ", "-", ""])
        return self.group_card(num, sep)

    def bad_card(self) -> str:
        num = self.card_digits(self.r.choice(["visa", "mc5", "discover"]))
        bad = num[:-1] + str((int(num[-1]) + self.r.randint(1, 9)) % 10)
        assert not luhn_ok(bad)
        return self.group_card(bad, self.r.choice([" ", "-", ""]))

    # IBAN ------------------------------------------------------------------------------------
    IBAN_BBAN = {
        "de": lambda g: g.digits(18),
        "fr": lambda g: g.digits(10) + g.digits(11) + g.digits(2),
        "es": lambda g: g.digits(20),
        "it": lambda g: g.r.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + g.digits(10) + g.digits(12),
        "nl": lambda g: g.r.choice(["ABNA", "INGB", "RABO", "TRIO", "SNSB"]) + g.digits(10),
        "gb": lambda g: g.r.choice(["NWBK", "BARC", "LOYD", "HBUK", "MIDL"]) + g.digits(14),
        "be": lambda g: g.digits(12),
        "at": lambda g: g.digits(16),
        "ch": lambda g: g.digits(17),
        "pt": lambda g: g.digits(21),
        "pl": lambda g: g.digits(24),
        "tr": lambda g: g.digits(5) + "0" + g.digits(16),
        "ie": lambda g: g.r.choice(["AIBK", "BOFI"]) + g.digits(14),
    }

    def iban(self, variant: str) -> str:
        cc, _, fmt = variant.partition("_")
        if cc == "any":
            cc = self.r.choice(sorted(self.IBAN_BBAN))
        bban = self.IBAN_BBAN[cc](self)
        country = cc.upper()
        check = 98 - iban_numeric(bban + country + "00") % 97
        compact = f"{country}{check:02d}{bban}"
        assert iban_ok(compact)
        if fmt == "compact" or (not fmt and self.r.random() < 0.3):
            return compact
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))

    # IP --------------------------------------------------------------------------------------
    def ip4(self) -> str:
        kind = self.r.randrange(4)
        o = lambda: self.r.randint(1, 254)  # noqa: E731
        if kind == 0:
            return f"10.{self.r.randint(0, 254)}.{o()}.{o()}"
        if kind == 1:
            return f"192.168.{self.r.randint(0, 40)}.{o()}"
        if kind == 2:
            return f"172.{self.r.randint(16, 31)}.{o()}.{o()}"
        first = self.r.choice([23, 31, 45, 62, 77, 81, 85, 91, 103, 141, 151, 178, 185, 188, 194, 203, 212, 217])
        return f"{first}.{o()}.{o()}.{o()}"

    def ip6(self) -> str:
        kind = self.r.randrange(4)
        g = lambda: format(self.r.randint(1, 0xFFFF), "x")  # noqa: E731
        prefix = self.r.choice(["2001:db8", "2a02:810d", "2a01:4f8", "2600:1700", "2001:16b8", "2a00:23c5"])
        if kind == 0:
            return ":".join([prefix] + [g() for _ in range(6)])
        if kind == 1:
            return f"{prefix}:{g()}::{g()}:{g()}:{g()}"
        if kind == 2:
            return f"fe80::{g()}:{g()}:{g()}:{g()}"
        return f"{prefix}::{g()}"

    # addresses -------------------------------------------------------------------------------
    def address(self, variant: str) -> str:
        r = self.r
        v = r.choice(ADDR_ANY) if variant == "any" else variant
        n = r.randint(2, 240)
        if v in ("us", "us_lower", "us_ml"):
            street = r.choice(ADDR["us"]["streets"])
            city, st, zc = r.choice(ADDR["us"]["cities"])
            form = 3 if v == "us_ml" else r.randrange(3)
            if v == "us_lower":
                street = street.lower().replace("avenue", "ave").replace("street", "st").replace("drive", "dr")
                return f"{n} {street}, {city.lower()}, {st.lower()} {zc}"
            if form == 0:
                return f"{n} {street}, {city}, {st} {zc}"
            if form == 1:
                return f"{n} {street}, Apt {r.randint(1, 30)}{r.choice('ABCD')}, {city}, {st} {zc}"
            if form == 2:
                return f"{n * 10 + r.randint(0, 9)} {street} Suite {r.randint(1, 9)}00, {city}, {st} {zc}-{self.digits(4)}"
            return f"{n} {street}\n{city}, {st} {zc}"
        if v in ("uk", "uk_ml"):
            street, city, pc = r.choice(ADDR["uk"])
            if v == "uk_ml":
                return f"{n} {street}\n{city}\n{pc}"
            form = r.randrange(3)
            if form == 0:
                return f"{n} {street}, {city} {pc}"
            if form == 1:
                return f"Flat {r.randint(1, 12)}, {n} {street}, {city}, {pc}"
            return f"{n} {street}, {city}, {pc}"
        if v == "ca":
            street, city, prov, pc = r.choice(ADDR["ca"])
            if r.random() < 0.4:
                return f"{r.randint(101, 1904)}-{n} {street}, {city}, {prov} {pc}"
            return f"{n} {street}, {city}, {prov} {pc}"
        if v in ("de", "de_ml"):
            street, pc, city = r.choice(ADDR["de"])
            hn = f"{n}{r.choice(['', '', '', 'a', 'b'])}"
            if v == "de_ml":
                return f"{street} {hn}\n{pc} {city}"
            return r.choice([f"{street} {hn}, {pc} {city}", f"{street} {hn}, D-{pc} {city}"])
        if v in ("fr", "fr_ml"):
            street, pc, city = r.choice(ADDR["fr"])
            form = 2 if v == "fr_ml" else r.randrange(2)
            if form == 0:
                return f"{n} {street}, {pc} {city}"
            if form == 1:
                return f"{n} bis {street}, {pc} {city}"
            return f"{n}, {street}\n{pc} {city.upper()}"
        if v == "it":
            street, pc, city, prov = r.choice(ADDR["it"])
            if r.random() < 0.5:
                return f"{street} {n}, {pc} {city}"
            return f"{street}, {n} - {pc} {city} ({prov})"
        if v == "es":
            street, pc, city = r.choice(ADDR["es"])
            floor = r.choice(["3º B", "2º izq.", "1.º 2.ª", "bajo A"])
            if r.random() < 0.5:
                return f"{street} {n}, {floor}, {pc} {city}"
            return f"{street}, {n}, {pc} {city}"
        if v in ("nl", "nl_ml"):
            street, pc, city = r.choice(ADDR["nl"])
            if v == "nl_ml":
                return f"{street} {n}-{r.randint(1, 3)}\n{pc} {city}"
            return f"{street} {n}, {pc} {city}"
        if v == "in":
            street, city, state, pin = r.choice(ADDR["in"])
            form = r.randrange(3)
            if form == 0:
                return f"{n} {street}, {city}, {state} {pin}"
            if form == 1:
                bld = r.choice(["Prestige Towers", "Sai Krupa Apartments", "Green Park Residency"])
                return f"Flat {r.randint(1, 20)}{r.choice('ABC')}, {bld}, {street}, {city}, {state} {pin}"
            return f"{n}, {street}, {city} - {pin}"
        if v == "br":
            street, bairro, city, uf, cep = r.choice(ADDR["br"])
            if r.random() < 0.5:
                return f"{street}, {n * 7} - {bairro}, {city} - {uf}, {cep}"
            return f"{street} {n * 7}, apto {r.randint(11, 154)}, {bairro}, {city}/{uf}, CEP {cep}"
        if v == "jp":
            area, ward, city, pc = r.choice(ADDR["jp"])
            chome = f"{r.randint(1, 5)}-{r.randint(1, 20)}-{r.randint(1, 30)}"
            if r.random() < 0.5:
                return f"{chome} {area}, {ward}, {city} {pc}"
            return f"Room {r.randint(2, 9)}0{r.randint(1, 9)}, {chome} {area}, {ward}, {city} {pc}"
        if v == "au":
            street, sub, st, pc = r.choice(ADDR["au"])
            form = r.randrange(3)
            if form == 0:
                return f"{n} {street}, {sub} {st} {pc}"
            if form == 1:
                return f"Unit {r.randint(1, 30)}, {n} {street}, {sub} {st} {pc}"
            return f"{r.randint(1, 30)}/{n} {street}, {sub} {st} {pc}"
        if v == "tr":
            street, pc, district = r.choice(ADDR["tr"])
            return f"{street} No: {n} D: {r.randint(1, 24)}, {pc} {district}"
        if v == "pt":
            street, pc, city = r.choice(ADDR["pt"])
            if r.random() < 0.5:
                return f"{street} {n}, {r.randint(1, 6)}º Esq., {pc} {city}"
            return f"{street}, n.º {n}, {pc} {city}"
        if v == "ie":
            street, city, code = r.choice(ADDR["ie"])
            return r.choice([f"{n} {street}, {city}, {code}", f"Apt {r.randint(1, 40)}, {n} {street}, {city} {code}"])
        if v == "ae":
            return r.choice([f"Villa {n}, Street {r.randint(1, 60)}, Al Barsha 2, Dubai",
                             f"Apartment {r.randint(101, 2408)}, Sun Tower, Al Reem Island, Abu Dhabi"])
        if v == "pobox":
            box = r.randint(100, 9999)
            return r.choice([f"PO Box {box}, Anchorage, AK 99509", f"P.O. Box {box}, Halifax, NS B3J 2K9",
                             f"Postfach {box // 100} {box % 100:02d}, 40003 Düsseldorf",
                             f"GPO Box {box}, Sydney NSW 2001"])
        raise KeyError(variant)

    # secrets ---------------------------------------------------------------------------------
    def password(self) -> str:
        r = self.r
        form = r.randrange(4)
        if form == 0:
            return f"{r.choice(PW_WORDS)}{r.choice('!#$%&*?')}{self.digits(r.randint(2, 4))}"
        if form == 1:
            return f"{r.choice(PW_WORDS).lower()}-{r.choice(PW_WORDS)}-{self.digits(2)}"
        if form == 2:
            return self.chars(ALNUM + "!#%&*+?", r.randint(10, 16))
        return f"{r.choice(PW_WORDS)}{self.digits(4)}{r.choice('!?.')}"

    def secret(self, variant: str) -> str:
        r = self.r
        urlsafe = ALNUM + "-_"
        if variant == "pw":
            return self.password()
        if variant == "pw_url":
            return self.chars(ALNUM, r.randint(6, 10)) + r.choice(["_", "-", "."]) + self.chars(ALNUM, r.randint(4, 8))
        if variant == "stripe":
            return "sk_live_" + self.chars(ALNUM, r.randint(24, 34))
        if variant == "stripe_whsec":
            return "whsec_" + self.chars(ALNUM, 32)
        if variant == "github":
            return "ghp_" + self.chars(ALNUM, 36)
        if variant == "github_pat":
            return "github_pat_" + self.chars(ALNUM, 22) + "_" + self.chars(ALNUM, 59)
        if variant == "aws_id":
            return "AKIA" + self.chars(string.ascii_uppercase + "234567", 16)
        if variant == "aws_secret":
            return self.chars(ALNUM + "/+", 40)
        if variant == "slack":
            return f"xoxb-{self.digits(12)}-{self.digits(13)}-{self.chars(ALNUM, 24)}"
        if variant == "slack_webhook":
            return f"T{self.chars(string.ascii_uppercase + string.digits, 8)}/B{self.chars(string.ascii_uppercase + string.digits, 10)}/{self.chars(ALNUM, 24)}"
        if variant == "gitlab":
            return "glpat-" + self.chars(urlsafe, 20)
        if variant == "openai":
            return "sk-proj-" + self.chars(urlsafe, 48)
        if variant == "google":
            return "AIza" + self.chars(urlsafe, 35)
        if variant == "sendgrid":
            return f"SG.{self.chars(urlsafe, 22)}.{self.chars(urlsafe, 43)}"
        if variant == "npm":
            return "npm_" + self.chars(ALNUM, 36)
        if variant == "hf":
            return "hf_" + self.chars(string.ascii_letters, 34)
        if variant == "mailgun":
            return "key-" + self.chars(HEX, 32)
        if variant == "twilio":
            return "SK" + self.chars(HEX, 32)
        if variant == "hex32":
            return self.chars(HEX, 32)
        if variant == "hex64":
            return self.chars(HEX, 64)
        if variant == "django":
            return "django-insecure-" + self.chars(string.ascii_lowercase + string.digits + "!$%^&*(-_=+)", 50)
        if variant == "azure":
            return self.chars(ALNUM + "+/", 86) + "=="
        if variant == "jwt":
            header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
            payload = json.dumps({"sub": self.digits(8), "scope": r.choice(["billing:write", "admin", "read"]),
                                  "iat": 1700000000 + r.randint(0, 30000000)}, separators=(",", ":"))
            p64 = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
            return f"{header}.{p64}.{self.chars(urlsafe, 43)}"
        if variant == "bearer":
            return self.chars(urlsafe, 40)
        raise KeyError(variant)

    # SSN -------------------------------------------------------------------------------------
    def ssn(self, variant: str) -> str:
        r = self.r
        while True:
            area, group, serial = r.randint(1, 899), r.randint(1, 99), r.randint(1, 9999)
            if ssn_ok(area, group, serial):
                break
        fmt = variant if variant in ("dash", "space", "none") else r.choice(["dash", "dash", "space", "none"])
        sep = {"dash": "-", "space": " ", "none": ""}[fmt]
        return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"

    def bad_ssn(self) -> str:
        r = self.r
        kind = r.randrange(5)
        area, group, serial = r.randint(1, 665), r.randint(1, 99), r.randint(1, 9999)
        if kind == 0:
            area = 0
        elif kind == 1:
            area = 666
        elif kind == 2:
            area = r.randint(900, 999)
        elif kind == 3:
            group = 0
        else:
            serial = 0
        assert not ssn_ok(area, group, serial)
        return f"{area:03d}-{group:02d}-{serial:04d}"

    # fillers (never personal data) -------------------------------------------------------------
    def filler(self, name: str, ctx: dict) -> str:
        r = self.r
        y = r.choice([2023, 2024, 2025])
        mon = r.randint(1, 12)
        day = r.randint(1, 28)
        if name == "order":
            return r.choice([f"#{self.digits(6)}", f"ORD-{y}-{self.digits(6)}", f"A{self.digits(8)}",
                             f"{self.chars(string.ascii_uppercase, 3)}-{self.digits(5)}"])
        if name == "invoice":
            return r.choice([f"INV-{y}-{self.digits(5)}", f"RE-{y}-{self.digits(5)}", f"FAC{self.digits(7)}",
                             f"F-{y}/{self.digits(4)}"])
        if name == "ticket":
            return r.choice([f"INC{self.digits(7)}", f"TKT-{self.digits(5)}", f"#{self.digits(5)}",
                             f"CASE-{self.digits(6)}"])
        if name == "tracking":
            return r.choice(["1Z" + self.chars(string.ascii_uppercase + string.digits, 6) + self.digits(10),
                             f"{self.chars(string.ascii_uppercase, 2)}{self.digits(9)}{r.choice(['DE', 'NL', 'GB', 'FR'])}",
                             "JJD" + self.digits(18)])
        if name == "date":
            months = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                      "October", "November", "December"]
            return r.choice([f"{y}-{mon:02d}-{day:02d}", f"{mon:02d}/{day:02d}/{y}", f"{day} {months[mon - 1]} {y}",
                             f"{months[mon - 1][:3]} {day}"])
        if name == "date_de":
            return f"{day:02d}.{mon:02d}.{y}"
        if name == "date_fr":
            return r.choice([f"{day:02d}/{mon:02d}/{y}", f"{day} {['janvier', 'février', 'mars', 'avril', 'mai', 'juin'][mon % 6]}"])
        if name == "date_es":
            return f"{day} de {['enero', 'febrero', 'marzo', 'abril', 'mayo', 'junio'][mon % 6]}"
        if name == "time":
            return r.choice([f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}", f"{r.randint(1, 12)}:{r.randint(0, 59):02d} {r.choice(['am', 'pm'])}"])
        if name == "time24":
            return f"{r.randint(7, 19):02d}:{r.randint(0, 59):02d}"
        if name == "dur_hms":
            return f"00:{r.randint(0, 25):02d}:{r.randint(0, 59):02d}"
        if name == "hms":
            return f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}"
        if name == "duration":
            return r.choice([f"{r.randint(0, 14)}m{r.randint(0, 59):02d}s", f"00:{r.randint(0, 29):02d}:{r.randint(0, 59):02d}",
                             f"{r.randint(1, 59)}s", f"{r.randint(1, 29)}:{r.randint(0, 59):02d}"])
        if name == "price":
            a, c = r.randint(5, 1499), r.randint(0, 99)
            return r.choice([f"${a}.{c:02d}", f"€{a},{c:02d}", f"£{a}.{c:02d}", f"{a},{c:02d} €", f"R$ {a},{c:02d}",
                             f"₺{a},{c:02d}", f"{a:,}".replace(",", ".") + f",{c:02d} EUR"])
        if name == "ver3":
            return r.choice(["", "v"]) + f"{r.randint(1, 12)}.{r.randint(0, 30)}.{r.randint(0, 20)}"
        if name == "ver4":
            return f"{r.randint(1, 12)}.{r.randint(0, 9)}.{r.randint(0, 20)}.{r.randint(1, 40)}"
        if name == "ver4b":  # the version after ver4 in the same text
            parts = ctx["ver4"].split(".")
            parts[-1] = str(int(parts[-1]) + 1)
            return ".".join(parts)
        if name == "uuid":
            h = self.chars(HEX, 32)
            return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{r.choice('89ab')}{h[17:20]}-{h[20:]}"
        if name == "sha":
            return self.chars(HEX, 40)
        if name == "sha7":
            return self.chars(HEX, 7)
        if name == "badssn":
            return self.bad_ssn()
        if name == "badcard":
            return self.bad_card()
        if name == "last4":
            return self.digits(4)
        if name == "exp":
            return f"{r.randint(1, 12):02d}/{r.randint(26, 31)}"
        if name == "ext":
            return str(r.randint(10, 4999))
        if name == "city":
            return r.choice(CITIES)
        if name == "company":
            return r.choice(COMPANIES)
        if name == "product":
            return r.choice(PRODUCTS)
        if name == "domain":
            return r.choice(["kestreldrive.com", "northwind-logistics.com", "bluheron.io", "osprey-freight.nl"])
        if name == "handle":
            return r.choice(HANDLES)
        if name == "zip5":
            return r.choice(["97201", "78704", "43215", "80205", "27601"])
        if name == "bic":
            return r.choice(["COBADEFFXXX", "DEUTDEFF", "BNPAFRPP", "INGBNL2A", "BSCHESMM", "UNCRITMM"])
        if name == "empid":
            return f"E-{self.digits(5)}"
        if name == "clf_date":
            mons = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
            return f"{day:02d}/{mons[mon - 1]}/{y}:{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} +0000"
        if name == "iso_ts":
            return f"{y}-{mon:02d}-{day:02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}.{self.digits(3)}Z"
        if name == "rfc_date":
            return f"{r.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])}, {day} {['Jan', 'Mar', 'Jun', 'Sep', 'Nov'][mon % 5]} {y} {r.randint(7, 19):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d} {r.choice(['+0100', '+0000', '-0500', '+0200'])}"
        if name == "port":
            return str(r.choice([5432, 3306, 6379, 8080, 8443, 27017, 9200]))
        if name == "pid":
            return str(r.randint(1000, 65000))
        raise KeyError(f"unknown filler {name!r}")


# --------------------------------------------------------------------------------------------
# Templates
# --------------------------------------------------------------------------------------------

# Texts WITH personal data: (family, template)
PII_TEMPLATES = [
    # chat --------------------------------------------------------------------------------------
    ("chat", "hey, this is {PERSON:p.first|lower} from {company} accounts payable — can't log in since the {ver3} update. my email is {EMAIL:p.email}"),
    ("chat", "{PERSON:p.first|lower}: hi! order {order} still hasn't shipped :( can u call me on {PHONE:phone.us}?"),
    ("chat", "[{time}] <{handle}> my name is {PERSON:p.full|lower}, account email {EMAIL:p.email}\n[{time#2}] Agent {PERSON:q.first}: thanks! checking now"),
    ("chat", "Agent {PERSON:q.first}: Could you confirm the last four digits of the card?\nCustomer: {last4}. Actually here's the whole thing {CARD:card.visa_none} lol\nAgent {PERSON:q.first}: Please don't share full card numbers in chat — I've masked it."),
    ("chat", "hi its {PERSON:p.first|lower} again 🙂 the password reset mail never arrives, tried {EMAIL:p.email} and my work one {EMAIL:p.email#2}"),
    ("chat", "User: ok my new password is {SECRET:sec.pw} can you check if it works\nBot: For your security, never share passwords. I've flagged this message for deletion."),
    ("chat", "yo, quick one — what's the IP I should whitelist? ours is {IP_ADDRESS:ip4} (office in {city})"),
    ("chat", "Thanks so much {PERSON:ng_p.first}! Everything works now 🙏"),
    ("chat", "{PERSON:p.full} joined the chat\n{PERSON:p.first}: Hello? Is anyone there? It's about invoice {invoice}\n{PERSON:q.first} (Support): Hi {PERSON:p.first}, I'm here — give me a sec."),
    # support e-mails ---------------------------------------------------------------------------
    ("support_email", "Subject: Double charge on invoice {invoice}\n\nHello,\n\nI was charged twice ({price} each) on my card ending in {last4}. The full number is {CARD:card.any} if you need it.\n\nBest regards,\n{PERSON:p.full}\n{PHONE:phone.uk}"),
    ("support_email", "Hi {PERSON:q.first},\n\nFollowing up on {ticket}. I spoke with {PERSON:r.full} yesterday and was told the refund would take 5–7 business days. It has now been two weeks.\n\nRegards,\n{PERSON:p.full}"),
    ("support_email", "Hello Kestrel team,\n\nplease cancel the {product} for my account ({EMAIL:p.email}) effective {date}. Send the final invoice to {EMAIL:p.email#2} instead, that's my accountant.\n\nThanks\n{PERSON:p.first}"),
    ("support_email", "Dear Support,\n\nthe Kestrel Dock arrived damaged (photos attached). Please ship the replacement to\n\n{PERSON:p.full}\n{ADDRESS:addr.us_ml}\n\nOrder {order}, tracking {tracking}.\n\nBest,\n{PERSON:p.first}"),
    ("support_email", "Hi,\n\nmy company changed its bank. New details for the direct debit:\nAccount holder: {company}\nIBAN: {IBAN:iban.gb}\nBIC: {bic}\n\nKind regards,\n{PERSON:p.full}\nFinance Manager"),
    ("support_email", "Hello, I would like a refund to my bank account rather than the card. IBAN {IBAN:iban.any}, account holder {PERSON:p.full}. Thank you!"),
    ("support_email", "To whom it may concern,\n\nI am writing on behalf of my mother, Mrs {PERSON:pf.full}, who can no longer manage her account. Her phone is {PHONE:phone.ie} and mine is {PHONE:phone.ie#2}.\n\nSincerely,\n{PERSON:q.full}"),
    # signatures --------------------------------------------------------------------------------
    ("email_signature", "Thanks,\n\n{PERSON:p.full}\nHead of Procurement, {company}\n{ADDRESS:addr.uk_ml}\nM: {PHONE:phone.uk_mobile} | T: {PHONE:phone.uk#2}"),
    ("email_signature", "Looking forward to your reply.\n\n--\n{PERSON:p.fullmi}\nSenior Data Engineer | {company}\n{EMAIL:p.email} | {PHONE:phone.us}\n{ADDRESS:addr.us_ml}"),
    ("email_signature", "Cheers,\n{PERSON:p.first}\n\n{PERSON:p.full} · Operations\nmob. {PHONE:phone.au}\n{ADDRESS:addr.au}"),
    ("email_signature", "Best regards / Mit freundlichen Grüßen\n\n{PERSON:de_p.full}\n{company}\n{ADDRESS:addr.de_ml}\nTel. {PHONE:phone.de}\nFax {PHONE:phone.de#2}\n{EMAIL:de_p.email}"),
    ("email_signature", "Saludos cordiales,\n\n{PERSON:es_p.full}\nResponsable de Compras — {company}\n{ADDRESS:addr.es}\nTel.: {PHONE:phone.es} · Móvil: {PHONE:phone.es#2}"),
    ("email_signature", "Bien à vous,\n\n{PERSON:fr_pf.full}\nDirectrice administrative\n{ADDRESS:addr.fr_ml}\nStandard : {PHONE:phone.fr_fixed} (poste {ext})"),
    # email threads -------------------------------------------------------------------------------
    ("email_thread", "From: {PERSON:p.full} <{EMAIL:p.email}>\nTo: {EMAIL:role.support}\nDate: {rfc_date}\nSubject: Re: [{ticket}] refund\n\n> On {date}, {PERSON:q.full} wrote:\n> We have issued the refund.\n\nStill nothing on my statement. {PERSON:p.first}"),
    ("email_thread", "-----Original Message-----\nFrom: {EMAIL:p.email}\nSent: {rfc_date}\nTo: {EMAIL:role.billing}\nCc: {EMAIL:q.email}\nSubject: invoice {invoice} wrong VAT ID\n\nHi, please correct the VAT ID and re-issue. Thanks, {PERSON:p.first}"),
    ("email_thread", "Am {date_de} schrieb {PERSON:de_q.full} <{EMAIL:de_q.email}>:\n> Sehr geehrte Frau {PERSON:de_pf.last},\n> Ihre Rücksendung ist eingegangen.\n\nDanke, aber wann kommt die Gutschrift?\n{PERSON:de_pf.first}"),
    # CRM ---------------------------------------------------------------------------------------
    ("crm_note", "Customer: {PERSON:p.full}\nAgent: {PERSON:q.first}\nChannel: phone\nSummary: caller disputes charge of {price} on {date}; card {CARD:card.mc2} — refund approved, ref {ticket}."),
    ("crm_note", "[CRM] Contact updated by {PERSON:q.full} on {date}\n  name: {PERSON:p.full}\n  email: {EMAIL:p.email}\n  phone: {PHONE:phone.any}\n  address: {ADDRESS:addr.any}"),
    ("crm_note", "Escalating to {PERSON:q.first} — {PERSON:p.full} has called three times about {ticket}. Customer is polite but frustrated; prefers callbacks on {PHONE:phone.any}."),
    ("crm_note", "Customer {PERSON:vn_p.full} (prefers to be called {PERSON:vn_p.first}) reports that the app crashes on login after updating to {ver3}. Device: Pixel 7."),
    ("crm_note", "Assigned to: {PERSON:kr_p.full}\nReporter: {PERSON:cn_p.full}\nPriority: P2\nComponent: billing-service\nDescription: webhook from {IP_ADDRESS:ip4} rejected with 403 since {date}."),
    ("crm_note", "Note from {PERSON:ie_p.full}: please don't call before 10am. Best number is {PHONE:phone.ie}."),
    ("crm_note", "Account owner changed from {PERSON:p.full} to {PERSON:q.full} (approved by {PERSON:r.first} in Legal). Old owner's email {EMAIL:p.email} removed from billing contacts."),
    ("crm_note", "Order placed by {PERSON:ar_p.full}, delivery to {ADDRESS:addr.ae}. Courier needs a phone: {PHONE:phone.ae}."),
    ("crm_note", "Contract signed by {PERSON:nl_p.full} and {PERSON:es_p.full} on {date}. Counter-signed copy sent to {EMAIL:nl_p.email}."),
    ("crm_note", "Ticket opened by {PERSON:pl_p.full}; attachment: faktura_{invoice}.pdf. Wants the invoice addressed to {company} instead of the private name."),
    ("chat", "Hi, {PERSON:no_p.full} here from the Oslo office — can you move my licence to {EMAIL:no_p.email}?"),
    ("crm_note", "VIP: {PERSON:tr_p.full}. Language: Turkish. Do not send marketing. Direct line {PHONE:phone.tr}."),
    ("crm_note", "Dr. {PERSON:p.full} asked us to send the report to the clinic fax {PHONE:phone.de}. Brightwater Dental Group account #{last4}."),
    ("crm_note", "Callback requested by Mr {PERSON:p.last} re. order {order}; says the courier left the parcel at {ADDRESS:addr.uk} (not his address)."),
    ("crm_note", "lead: {PERSON:in_p.full} | {company} | {EMAIL:in_p.email} | {PHONE:phone.in} | interested in Business Annual, budget {price}"),
    ("crm_note", "Caller verified with DOB and postcode. Name on account: {PERSON:p.fullmi}. Updated mobile to {PHONE:phone.uk_mobile}."),
    # call logs --------------------------------------------------------------------------------
    ("call_log", "CALL LOG {date}\n{time24}  IN   {PHONE:phone.uk_call} {duration}  answered by {PERSON:q.first}\n{time24#2}  OUT  {PHONE:phone.de} {duration#2}  voicemail\n{time24#3}  IN   {PHONE:phone.us} {duration#3}  missed"),
    ("call_log", "{date} {hms} inbound call from {PHONE:phone.uk_local} {dur_hms} — caller {PERSON:p.full} asked about {product} renewal"),
    ("call_log", "caller_id,start,duration,agent\n{PHONE:phone.any},{iso_ts},{duration},{PERSON:q.first|lower}\n{PHONE:phone.any#2},{iso_ts#2},{duration#2},{PERSON:r.first|lower}"),
    ("call_log", "Missed call: {PHONE:phone.fr_mobile} ({time}), then {PHONE:phone.br} ({time#2}, 2 attempts). No voicemail left."),
    ("call_log", "Rückruf von Herrn {PERSON:de_p.last} unter {PHONE:phone.de_slash} um {time24} Uhr, Dauer {dur_hms}. Thema: Rechnung {invoice}."),
    ("call_log", "IVR transcript {ticket}: \"please call me back on {PHONE:phone.ng} I'm {PERSON:ng_p.full} my order number is {order}\""),
    # configs / code / logs ----------------------------------------------------------------------
    ("env_config", "# .env (production) — please rotate!\nDATABASE_URL=postgres://orders_app:{SECRET:sec.pw_url}@{IP_ADDRESS:ip4}:5432/orders\nSTRIPE_SECRET_KEY={SECRET:sec.stripe}\nLOG_LEVEL=info\nMAX_RETRIES=5"),
    ("env_config", "SLACK_BOT_TOKEN={SECRET:sec.slack}\nSLACK_CHANNEL=#support-escalations\nTIMEOUT_SECONDS=30\n# NOTE: the bot only needs chat:write"),
    ("env_config", "[default]\naws_access_key_id = {SECRET:sec.aws_id}\naws_secret_access_key = {SECRET:sec.aws_secret}\nregion = eu-central-1\noutput = json"),
    ("env_config", "SENDGRID_API_KEY={SECRET:sec.sendgrid}\nMAIL_FROM={EMAIL:role.noreply}\nMAIL_REPLY_TO={EMAIL:role.support}"),
    ("env_config", "export OPENAI_API_KEY=\"{SECRET:sec.openai}\"  # personal key, don't share\nexport MODEL=gpt-4o-mini"),
    ("env_config", "MONGO_URI=mongodb+srv://admin:{SECRET:sec.pw_url}@cluster0.ab1cd.mongodb.net/prod?retryWrites=true\nREDIS_URL=redis://{IP_ADDRESS:ip4}:6379/0\nLOG_LEVEL=warn"),
    ("env_config", "HF_TOKEN={SECRET:sec.hf}\nMAILGUN_API_KEY={SECRET:sec.mailgun}\nTWILIO_API_KEY={SECRET:sec.twilio}\nSENTRY_ENVIRONMENT=staging"),
    ("env_config", "//registry.npmjs.org/:_authToken={SECRET:sec.npm}\nalways-auth=true"),
    ("env_config", "STRIPE_WEBHOOK_SECRET={SECRET:sec.stripe_whsec}\nAPI_KEY={SECRET:sec.hex32}\nAPI_BASE_URL=https://api.{domain}/v2\nMAX_RETRIES=3"),
    ("yaml_config", "database:\n  host: {IP_ADDRESS:ip4}\n  port: 5432\n  user: reporting\n  password: \"{SECRET:sec.pw}\"\n  sslmode: require\ncache:\n  url: redis://{IP_ADDRESS:ip4#2}:6379/0"),
    ("yaml_config", "storage:\n  connection_string: \"DefaultEndpointsProtocol=https;AccountName=kestrelprodlogs;AccountKey={SECRET:sec.azure};EndpointSuffix=core.windows.net\"\n  container: exports"),
    ("yaml_config", "alerting:\n  slack_webhook: https://hooks.slack.com/services/{SECRET:sec.slack_webhook}\n  on_call: {EMAIL:p.email}\n  escalate_after: 15m"),
    ("code_snippet", "const map = new google.maps.Map(el, {{ zoom: 12 }});\n// TODO: move key to server side\nconst MAPS_KEY = '{SECRET:sec.google}';"),
    ("code_snippet", "SECRET_KEY = '{SECRET:sec.django}'\nDEBUG = False\nALLOWED_HOSTS = ['{IP_ADDRESS:ip4}', 'localhost']\n# FIXME: read these from the environment"),
    ("code_snippet", "client = KestrelClient(\n    api_key=\"{SECRET:sec.hex64}\",  # TODO remove before commit\n    timeout=30,\n    max_retries=MAX_RETRIES,\n)"),
    ("code_snippet", "git clone https://oauth2:{SECRET:sec.gitlab}@gitlab.{domain}/platform/infra.git\ncd infra && git checkout {sha7}"),
    ("code_snippet", "# test fixture — real customer?? please check\nCUSTOMER = {{\"name\": \"{PERSON:p.full}\", \"ssn\": \"{SSN:ssn.dash}\", \"email\": \"{EMAIL:p.email}\"}}"),
    ("shell_command", "curl -X POST https://api.{domain}/v2/charges \\\n  -H \"Authorization: Bearer {SECRET:sec.jwt}\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"amount\": 4200, \"currency\": \"eur\"}}'"),
    ("shell_command", "curl -s -H 'Authorization: token {SECRET:sec.github}' https://api.github.com/user/repos | jq '.[].name'"),
    ("shell_command", "ssh deploy@{IP_ADDRESS:ip4} -p 2222   # password is {SECRET:sec.pw}\nsudo systemctl restart billing-api"),
    ("shell_command", "$ psql \"postgresql://analyst:{SECRET:sec.pw_url}@{IP_ADDRESS:ip4}:5432/warehouse\" -c 'select count(*) from orders'\n count\n-------\n 48213"),
    ("shell_command", "$ ping -6 {IP_ADDRESS:ip6}\nPING {IP_ADDRESS:ip6}: 56 data bytes\nRequest timeout for icmp_seq 0"),
    ("stack_trace", "Traceback (most recent call last):\n  File \"/srv/app/billing/sync.py\", line 214, in push_invoice\n    resp = client.post(url, json=payload)\nrequests.exceptions.ConnectionError: HTTPSConnectionPool(host='{IP_ADDRESS:ip4}', port=8443): Max retries exceeded with url: /v1/invoices/{invoice} (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f3a2c1d90>: Failed to establish a new connection: [Errno 111] Connection refused'))"),
    ("stack_trace", "ERROR {iso_ts} [worker-{pid}] ValidationError: customer.email '{EMAIL:p.email}' already exists (request_id={uuid})\n  at CustomerService.create (customer.ts:88:13)\n  at async Router.handle (router.ts:41:5)"),
    ("stack_trace", "psycopg2.OperationalError: connection to server at \"{IP_ADDRESS:ip4}\", port 5432 failed: FATAL:  password authentication failed for user \"app\"\n(hint: tried password '{SECRET:sec.pw}')"),
    ("server_log", "{IP_ADDRESS:ip4} - - [{clf_date}] \"GET /account/settings HTTP/1.1\" 200 5123 \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n{IP_ADDRESS:ip6} - - [{clf_date#2}] \"POST /api/login HTTP/2\" 401 87 \"-\" \"okhttp/4.9.3\""),
    ("server_log", "{iso_ts} WARN  [ingress-nginx] upstream {IP_ADDRESS:ip4}:8080 timed out (pod api-7c9f8d-x2k4q, release {ver3})"),
    ("server_log", "sshd[{pid}]: Failed password for invalid user admin from {IP_ADDRESS:ip4} port 51122 ssh2\nsshd[{pid#2}]: Failed password for root from {IP_ADDRESS:ip4#2} port 40414 ssh2"),
    ("server_log", "{iso_ts} INFO login ok user={EMAIL:p.email} ip={IP_ADDRESS:ip6} mfa=totp app_version={ver4}"),
    ("server_log", "Jan 12 04:11:09 fw01 kernel: [UFW BLOCK] IN=eth0 OUT= SRC={IP_ADDRESS:ip4} DST={IP_ADDRESS:ip4#2} LEN=60 PROTO=TCP SPT=44321 DPT=22"),
    # forms and payloads -----------------------------------------------------------------------
    ("web_form", "name={PERSON:p.full}\nemail={EMAIL:p.email}\nphone={PHONE:phone.any}\ncard={CARD:card.any}\nmessage=please cancel my subscription"),
    ("web_form", "Full name: {PERSON:p.full}\nStreet address: {ADDRESS:addr.ca}\nPhone (optional): {PHONE:phone.ca}\nHow did you hear about us? Podcast"),
    ("web_form", "Nome: {PERSON:it_p.first}\nCognome: {PERSON:it_p.last}\nIndirizzo: {ADDRESS:addr.it}\nCellulare: {PHONE:phone.it}"),
    ("json_payload", "{{\"customer\": {{\"name\": \"{PERSON:p.full}\", \"email\": \"{EMAIL:p.email}\", \"ip\": \"{IP_ADDRESS:ip4}\"}}, \"order_id\": \"{order}\", \"total\": \"{price}\", \"request_id\": \"{uuid}\"}}"),
    ("json_payload", "{{\"event\": \"payment_failed\", \"card\": \"{CARD:card.mc5_none}\", \"billing_address\": \"{ADDRESS:addr.us}\", \"attempt\": 3, \"trace\": \"{sha}\"}}"),
    # billing / fraud / payroll ------------------------------------------------------------------
    ("billing_note", "Please charge my Amex {CARD:card.amex}, exp {exp}, for the annual plan ({price})."),
    ("billing_note", "card no: {CARD:card.discover}  (discover) — name on card {PERSON:p.full|upper}"),
    ("billing_note", "Payment declined for {CARD:card.mc2_dash}; customer says the limit is fine. Invoice {invoice}, amount {price}."),
    ("billing_note", "Refund {price} to IBAN {IBAN:iban.de} (account holder: {PERSON:de_p.full}) — approved by {PERSON:q.first}."),
    ("billing_note", "Customer updated payment method: old card {badcard} was rejected as invalid, new card {CARD:card.visa_space} accepted."),
    ("fraud_note", "Chargeback: card {CARD:card.visa} used from {IP_ADDRESS:ip4} (geo: {city}) and {IP_ADDRESS:ip4#2}; billing name {PERSON:p.full}, billing address {ADDRESS:addr.us}."),
    ("fraud_note", "Suspicious signups from {IP_ADDRESS:ip6} — same card {CARD:card.amex_none} on 4 accounts ({EMAIL:p.email}, {EMAIL:q.email}, ...). Blocked."),
    ("payroll_form", "Direct deposit form — Employee: {PERSON:p.full}; Employee ID {empid}; SSN: {SSN:ssn.dash}; start date {date}."),
    ("payroll_form", "Hi, I'm filling out the W-9. My SSN is {SSN:ssn.any} and my name is {PERSON:p.full}. Is that all you need?"),
    ("payroll_form", "Applicant {PERSON:p.full}, DOB {date}, social security no. {SSN:ssn.space} — verified against ID on file."),
    ("payroll_form", "ssn {SSN:ssn.none}, last name {PERSON:p.last|lower}, zip {zip5}"),
    ("payroll_form", "Correction: the SSN on the form ({badssn}) is a typo — the right one is {SSN:ssn.dash}."),
    ("payroll_form", "SS#: {SSN:ssn.any}\nEmployer: {company}\nW-2 mailing address: {ADDRESS:addr.us}"),
    ("payroll_form", "please update my tax info, social security number {SSN:ssn.none} (the old one {badssn} was entered wrong by HR)"),
    # short messages --------------------------------------------------------------------------
    ("sms", "Your parcel {tracking} is out for delivery. Questions? Call {PHONE:phone.uk} or reply STOP."),
    ("sms", "Hi {PERSON:p.first}, your appointment is confirmed for {date} at {time}. Reply C to cancel."),
    ("sms", "WhatsApp: {PHONE:phone.ae} — send me the quote there pls"),
    ("agent_reply", "Hi {PERSON:p.first},\n\nThanks for reaching out. Your ticket {ticket} has been resolved.\n\nBest,\n{PERSON:q.first}\n{company} Support"),
    ("agent_reply", "Hi {PERSON:p.first}, you can reach our billing desk at {PHONE:phone.us} ext. {ext} and ask for {PERSON:q.first}."),
    ("agent_reply", "Dear Ms. {PERSON:pf.full}, we've updated your address to {ADDRESS:addr.uk}. If this is wrong, reply to {EMAIL:role.support}."),
    ("agent_reply", "G'day {PERSON:p.first}, we've noted your new address ({ADDRESS:addr.au}) — the old one in {city} has been removed."),
    # addresses -------------------------------------------------------------------------------
    ("shipping", "Ship to: {PERSON:p.full}, {ADDRESS:addr.us}"),
    ("shipping", "pls send the replacement to {ADDRESS:addr.us_lower} thx"),
    ("shipping", "Could you update my delivery address to {ADDRESS:addr.uk}? I've moved from {city}."),
    ("shipping", "New mailing address: {ADDRESS:addr.ca}, Canada"),
    ("shipping", "Deliver to {PERSON:in_p.full}, {ADDRESS:addr.in}. Mobile: {PHONE:phone.in}"),
    ("shipping", "Shipping address: {ADDRESS:addr.jp}, Japan. Tel {PHONE:phone.jp}"),
    ("shipping", "Please mail the paper invoice to {ADDRESS:addr.pobox}."),
    ("shipping", "Consignee: {PERSON:p.full}\n{ADDRESS:addr.nl_ml}\nNetherlands\nRef: {order}"),
    ("shipping", "Address on file is {ADDRESS:addr.ie} but the courier keeps going to the old one."),
    ("shipping", "My new address is {ADDRESS:addr.any}. Please also update the invoice address for {invoice}."),
    # other languages --------------------------------------------------------------------------
    ("ticket_de", "Sehr geehrte Damen und Herren,\n\nleider ist die Lieferung zu meiner Bestellung {order} unvollständig angekommen. Bitte senden Sie den fehlenden Artikel an:\n\n{ADDRESS:addr.de}\n\nMit freundlichen Grüßen\n{PERSON:de_p.full}\nTel.: {PHONE:phone.de_slash}"),
    ("ticket_de", "Frau {PERSON:de_pf.last} hat angerufen wegen der Rechnung {invoice}. Rückruf unter {PHONE:phone.de_mobile}."),
    ("ticket_de", "Hallo {PERSON:de_p.first}, danke für die Info. Das neue Passwort lautet {SECRET:sec.pw} – bitte nach dem ersten Login ändern."),
    ("ticket_de", "Guten Tag, bitte buchen Sie den Betrag künftig von meinem Konto ab: {IBAN:iban.de}. Kontoinhaber: {PERSON:de_p.full}. Danke!"),
    ("ticket_de", "Bankverbindung: {PERSON:de_p.full}, IBAN {IBAN:iban.at}, BIC {bic}. Bitte Gutschrift für Bestellung {order}."),
    ("ticket_fr", "Bonjour,\n\nJe n'ai toujours pas reçu ma commande n° {order}. Mon adresse est bien {ADDRESS:addr.fr}. Vous pouvez me joindre au {PHONE:phone.fr_mobile}.\n\nCordialement,\n{PERSON:fr_p.full}"),
    ("ticket_fr", "Mme {PERSON:fr_pf.full} souhaite être rappelée au {PHONE:phone.fr}. Merci {PERSON:q.first} !"),
    ("ticket_fr", "Merci {PERSON:fr_p.first} pour votre retour ! Le remboursement sera fait sur le compte {IBAN:iban.fr} sous 5 jours."),
    ("ticket_fr", "Bonjour, voici mon RIB pour le prélèvement : {IBAN:iban.be}. Mon adresse mail est {EMAIL:fr_p.email}."),
    ("ticket_es", "Buenos días, soy {PERSON:es_p.full}. Quiero cambiar la cuenta de domiciliación a {IBAN:iban.es}. Gracias."),
    ("ticket_es", "Sra. {PERSON:es_pf.full} solicita la baja del servicio a partir del {date_es}. Teléfono de contacto: {PHONE:phone.es}."),
    ("ticket_es", "Hola {PERSON:es_p.first}, gracias por tu paciencia. Mi contraseña es {SECRET:sec.pw} y sigo sin poder entrar."),
    ("ticket_es", "Dirección de envío: {ADDRESS:addr.es}. Horario de entrega: de 9:00 a 14:00. Mi número es {PHONE:phone.mx}, llámame por favor."),
    ("ticket_it", "Buongiorno, mi chiamo {PERSON:it_p.full} e vorrei aggiornare l'indirizzo di spedizione: {ADDRESS:addr.it}. Grazie mille!"),
    ("ticket_it", "Coordinate bancarie per il rimborso: IBAN {IBAN:iban.it}, intestato a {PERSON:it_p.full}."),
    ("ticket_it", "Ciao {PERSON:it_p.first}, cellulare: {PHONE:phone.it} (dopo le 18). La fattura {invoice} è sbagliata."),
    ("ticket_pt", "Olá! Meu pedido {order} veio com defeito. Meu telefone é {PHONE:phone.br} e o endereço de entrega é {ADDRESS:addr.br}. Att, {PERSON:pt_p.first}"),
    ("ticket_pt", "Bom dia, sou {PERSON:pt_p.full}. Morada: {ADDRESS:addr.pt}. Conta para reembolso: {IBAN:iban.pt}"),
    ("ticket_nl", "Goedemiddag, ik ben {PERSON:nl_p.full}. Mijn IBAN is {IBAN:iban.nl}, graag het bedrag van {price} terugstorten. Met vriendelijke groet."),
    ("ticket_nl", "Retouradres: {ADDRESS:addr.nl}. Bel gerust: {PHONE:phone.nl}."),
    ("ticket_tr", "Merhaba, ben {PERSON:tr_p.full}. Siparişim ({order}) hâlâ gelmedi. Adresim: {ADDRESS:addr.tr}. Telefon: {PHONE:phone.tr}"),
    ("ticket_tr", "İade için hesap bilgilerim: {IBAN:iban.tr}, alıcı {PERSON:tr_p.full}. Teşekkürler."),
    ("ticket_pl", "Dzień dobry, proszę o zwrot na konto {IBAN:iban.pl}. Pozdrawiam, {PERSON:pl_p.full}"),
    ("ticket_ch", "Grüezi, bitte überweisen Sie die Rückerstattung auf {IBAN:iban.ch}. Freundliche Grüsse, {PERSON:p.full}"),
    # misc ------------------------------------------------------------------------------------
    ("chat", "Oops, I pasted my token in the last message: {SECRET:sec.github_pat}. Can you delete that message? Thanks, {PERSON:p.first}"),
    ("chat", "Our firewall keeps blocking my home connection, my IPv6 is {IP_ADDRESS:ip6} and the v4 one is {IP_ADDRESS:ip4}."),
    ("chat", "I reset it to {SECRET:sec.pw} but it still says 'invalid credentials'. User is {EMAIL:p.email}."),
    ("chat", "{PERSON:kr_p.first} here 👋 — my colleague {PERSON:cn_p.full} will take over the migration; email: {EMAIL:cn_p.email}"),
    ("chat", "can someone call {PERSON:ng_p.full|lower}? number is {PHONE:phone.ng}, waiting since {time}"),
    # more cards, SSNs, IBANs ------------------------------------------------------------------
    ("chat", "can I pay with this one instead? {CARD:card.mc5} exp {exp}"),
    ("support_email", "Hi, my Visa {CARD:card.visa_dash} was charged {price} for a plan I cancelled on {date}. Please reverse it.\n{PERSON:p.first}"),
    ("billing_note", "Karte {CARD:card.mc5_space} abgelehnt (Code 51). Kunde {PERSON:de_p.full} informiert, neuer Versuch am {date_de}."),
    ("ticket_es", "Me cobraron dos veces en la tarjeta {CARD:card.visa}. Pedido {order}. Gracias, {PERSON:es_p.first}."),
    ("ticket_fr", "Le paiement par carte {CARD:card.mc2_space} a échoué, mais le montant de {price} a été débité."),
    ("ticket_pt", "Paguei com o cartão {CARD:card.discover_dash} e não recebi a confirmação do pedido {order}."),
    ("crm_note", "Payment on file: AMEX {CARD:card.amex_dash} (exp {exp}). Customer asked to switch to invoice billing from next cycle."),
    ("call_log", "IVR: caller keyed card number {CARD:card.any_none} then hung up after {duration}. CLI {PHONE:phone.us}."),
    ("web_form", "cc_number={CARD:card.mc2_none}&cc_exp={exp}&plan=team&coupon=SPRING24"),
    ("fraud_note", "Card testing: {CARD:card.visa_none}, {CARD:card.visa_none#2}, {CARD:card.mc5_none} tried within 40s from {IP_ADDRESS:ip4}; also {badcard} (fails Luhn)."),
    ("support_email", "For the tax form: my social security number is {SSN:ssn.space}. Please don't store it longer than needed.\n— {PERSON:p.first}"),
    ("crm_note", "Identity check failed: SSN given {SSN:ssn.dash} doesn't match records for {PERSON:p.full}; asked for a copy of the card."),
    ("chat", "do u need my ssn? it's {SSN:ssn.none}"),
    ("payroll_form", "Dependent: {PERSON:p.full}, SSN {SSN:ssn.dash}, relationship: child"),
    ("json_payload", "{{\"applicant\": {{\"name\": \"{PERSON:p.full}\", \"ssn\": \"{SSN:ssn.none}\", \"dob\": \"{date}\"}}, \"application_id\": \"{uuid}\"}}"),
    ("ticket_es", "Para el formulario del IRS: número de Seguro Social {SSN:ssn.dash}. Trabajo en Texas desde {date}."),
    ("billing_note", "SEPA mandate {order}: debtor {PERSON:p.full}, IBAN {IBAN:iban.ie}, first collection {date}."),
    ("support_email", "Please use {IBAN:iban.nl_compact} for the refund, not the old account. Thanks!"),
    ("ticket_it", "Il bonifico è stato fatto dal conto {IBAN:iban.it_compact} il {date}, causale fattura {invoice}."),
    ("ticket_nl", "Hoi, ik ben {PERSON:nl_p.first|lower}, mijn nummer is {PHONE:phone.nl} — bel me even terug aub"),
    ("crm_note", "Reached {PERSON:p.first} at the office line {PHONE:phone.us} x{ext}; mobile goes to voicemail. Follow-up on {date}."),
    ("billing_note", "Remit payment to {company}, {ADDRESS:addr.pobox}. Quote invoice {invoice} on the transfer."),
    ("ticket_tr", "Şifrem {SECRET:sec.pw}, yine de giriş yapamıyorum. E-posta: {EMAIL:tr_p.email}"),
]

# Texts WITHOUT personal data (traps only): (family, template)
CLEAN_TEMPLATES = [
    ("release_note", "Release {ver4} is live; {ver4b} will follow next week."),
    ("release_note", "We upgraded the cluster from {ver4} to {ver4b} on {date}; no downtime expected."),
    ("release_note", "Firmware 2.0.14.3 fixed the Wi-Fi drop; firmware 2.0.13.9 is deprecated. Kestrel Dock units update overnight."),
    ("release_note", "Min supported: iOS 16.4.1, Android 12; backend 4.12.0.233. Build {sha7}."),
    ("release_note", "A versão {ver4} do aplicativo corrigiu o erro de login. Obrigado pela paciência!"),
    ("order_update", "Your order {order} has shipped! Tracking: {tracking}. Estimated delivery {date}."),
    ("order_update", "Ihre Bestellung {order} wurde versandt. Sendungsnummer: {tracking}. Voraussichtliche Lieferung am {date_de}."),
    ("order_update", "Your parcel number is {tracking}; customs ref {badcard}."),
    ("order_update", "Is the Amsterdam warehouse still closed? My package is stuck in Rotterdam since Monday."),
    ("billing_note", "Invoice {invoice} for {price} is due on {date}. Thank you for your business."),
    ("billing_note", "Reference number {badcard} doesn't match any payment on our side — please check the remittance advice."),
    ("billing_note", "The Pro plan costs {price}/month or {price#2}/year; VAT is added at checkout."),
    ("billing_note", "Fatura numarası {invoice}, tutar {price}. İyi çalışmalar."),
    ("billing_note", "Goedemorgen, de factuur {invoice} klopt niet: het bedrag is {price} in plaats van {price#2}. Alvast bedankt!"),
    ("env_config", "DATABASE_URL=${{DATABASE_URL}}\nMAX_RETRIES=3\nLOG_LEVEL=debug\nAPI_KEY=<your-api-key-here>\nFEATURE_FLAGS=checkout_v2,dark_mode"),
    ("env_config", "Required env vars: DATABASE_URL, REDIS_URL, SENTRY_DSN, LOG_LEVEL, MAX_RETRIES. See README."),
    ("env_config", "password: ********\napi_key: REPLACE_ME\ntoken: <redacted>\nLOG_LEVEL=info"),
    ("env_config", "STRIPE_SECRET_KEY=sk_live_xxxxxxxxxxxxxxxxxxxx  # placeholder, set in vault\nGITHUB_TOKEN=${{{{ secrets.GITHUB_TOKEN }}}}\nTIMEOUT_SECONDS=30"),
    ("yaml_config", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: billing-api\nspec:\n  replicas: 3\n  template:\n    spec:\n      containers:\n        - name: api\n          image: registry.kestreldrive.com/billing-api:{ver3}\n          env:\n            - name: LOG_LEVEL\n              value: info\n            - name: DB_PASSWORD\n              valueFrom:\n                secretKeyRef:\n                  name: billing-db\n                  key: password"),
    ("code_snippet", "def retry(fn, max_retries=MAX_RETRIES):\n    # TODO(ops): make backoff configurable\n    # FIXME: swallow only transient errors\n    for attempt in range(max_retries):\n        try:\n            return fn()\n        except TransientError:\n            time.sleep(2 ** attempt)"),
    ("code_snippet", "SELECT order_id, total FROM orders WHERE created_at > '2024-01-01' AND status = 'PAID' LIMIT 100;"),
    ("code_snippet", "# NOTE: checksum is CRC32 for chunks and SHA256 for the whole file\ndigest = hashlib.sha256(data).hexdigest()  # TODO: Adler-32 for legacy clients"),
    ("code_snippet", "commit {sha}\nMerge: {sha7} {sha7#2}\nDate:   {rfc_date}\n\n    fix: handle empty cart in checkout (#4821)"),
    ("stack_trace", "java.lang.NullPointerException: Cannot invoke \"String.length()\" because \"token\" is null\n\tat com.kestrel.billing.InvoiceService.render(InvoiceService.java:118)\n\tat com.kestrel.billing.InvoiceController.get(InvoiceController.java:57)\n\t... 42 more"),
    ("stack_trace", "Error code 0x80070005 at {iso_ts}; build 20240311.4; see KB 4051234. Deploy {sha} failed for request {uuid}; rolling back to {ver3}."),
    ("server_log", "{iso_ts} INFO  scheduler: job nightly-export finished in 00:04:12 (rows=48213, retries=0)"),
    ("server_log", "{iso_ts} ERROR payments: provider timeout after 30000ms (attempt 3/5, request_id={uuid})"),
    ("json_payload", "{{\"status\": \"error\", \"code\": 429, \"message\": \"rate limit exceeded\", \"retry_after\": 30, \"request_id\": \"{uuid}\"}}"),
    ("payroll_form", "The form rejected SSN {badssn} as invalid — is that expected for test records?"),
    ("payroll_form", "Test data only: 666-12-3456, 900-55-1234 and 123-00-4567 must be rejected by the validator."),
    ("payroll_form", "Employee ID {empid}, cost centre 4410, payroll run {date}. No changes this month."),
    ("chat", "this is ridiculous, third time the checkout fails today"),
    ("chat", "lol the app just logged me out again 🙃 on {ver3}, android 14"),
    ("chat", "Sorry, I can't share my password here — what's the secure way to reset it?"),
    ("chat", "My phone number changed — how do I update it in the app?"),
    ("chat", "Does Kestrel Drive integrate with Salesforce, Zendesk or HubSpot?"),
    ("chat", "Ordered via Amazon, paid with PayPal, shipped by DHL Express. Still nothing after 9 days."),
    ("support_email", "Please fill in the Tel., Fax and Mob. fields in the form — they're optional, but the courier likes having one."),
    ("support_email", "Hi team,\n\nthe dashboard shows 1,204 calls yesterday, avg handle time 00:04:12, abandon rate 3.2%. Can we get the CSV?\n\nThanks!"),
    ("support_email", "Replacement part SKU KD-2200-BLK-04, serial SN 7F3K-22A9-QQ81, batch 2024/11/07. Please confirm stock."),
    ("support_email", "Hello, is there a discount for nonprofits? We're a small charity in {city} with 12 users."),
    ("agent_reply", "Maintenance window: {date} {time}–{time#2} UTC. Expect brief interruptions to sync; the Kestrel Dock keeps a local copy."),
    ("agent_reply", "{company} opened new offices in {city} and {city#2} this quarter — support hours are unchanged."),
    ("agent_reply", "Thanks to the Berlin and Lisbon teams for the release! Kubernetes and PostgreSQL upgrades are done."),
    ("ticket_de", "Guten Tag,\n\nvielen Dank für Ihre Nachricht. Die Rechnung zur Bestellung {order} ist als PDF angehängt. Die Lieferung erfolgt voraussichtlich am {date_de}.\n\nMit freundlichen Grüßen\nIhr Kundenservice-Team"),
    ("ticket_de", "Sehr geehrte Damen und Herren, hiermit widerrufe ich den Vertrag vom {date_de}. Bitte bestätigen Sie den Eingang. Vielen Dank."),
    ("ticket_de", "Rechnung, Lieferung und Bestellung sind jetzt im Kundenkonto unter „Meine Daten“ sichtbar. Gültig von 01.04.2024 bis 31.03.2025 (Vertragslaufzeit 12 Monate)."),
    ("ticket_es", "Buenos días, ¿me pueden confirmar si el pedido {order} incluye la factura? Muchas gracias."),
    ("ticket_es", "Hola equipo, ¿alguien sabe por qué el contenedor de PostgreSQL reinicia cada 5 minutos? Gracias."),
    ("ticket_fr", "Bonjour, la livraison prévue le {date_fr} a été reportée. Merci de votre compréhension."),
    ("ticket_fr", "Madame, Monsieur, veuillez trouver ci-joint la facture {invoice}. Bien cordialement, le service client."),
    ("ticket_it", "Grazie mille per la risposta rapida! Il problema con l'aggiornamento alla versione {ver3} è risolto."),
    ("ticket_it", "Buonasera, vorrei sapere quando arriva la fattura del mese di marzo. Grazie mille."),
    ("ticket_pt", "Bom dia! Gostaria de saber o prazo de entrega do pedido {order}. Obrigado."),
    ("ticket_nl", "Goedemorgen, wanneer wordt de bestelling {order} geleverd? Met vriendelijke groet, de administratie"),
    ("ticket_tr", "Merhaba, siparişim ne zaman kargoya verilecek? Teşekkürler."),
    ("sms", "Service message: the Kestrel app {ver3} is available. Update from the store. Reply STOP to opt out."),
]

# --------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------

SLOT = re.compile(r"\{\{|\}\}|\{(?:([A-Z_]+):)?([a-z0-9_.#]+)(?:\|(lower|upper))?\}|[{}]")
PERSONA = re.compile(r"^(?:([a-z]{2})_)?([pqr])(f?)$")
ENTITY_FAMILIES = {"phone": "PHONE", "card": "CARD", "iban": "IBAN", "ip4": "IP_ADDRESS", "ip6": "IP_ADDRESS",
                   "addr": "ADDRESS", "sec": "SECRET", "ssn": "SSN", "role": "EMAIL"}
PERSON_FIELDS = {"first": "PERSON", "last": "PERSON", "full": "PERSON", "fullmi": "PERSON", "email": "EMAIL"}


class Doc:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.ents: list[tuple[str, int, int, str]] = []

    def text(self, s: str) -> None:
        self.parts.append(s)
        self.pos += len(s)

    def entity(self, typ: str, value: str) -> None:
        start = self.pos
        self.text(value)
        self.ents.append((typ, start, self.pos, value))


def resolve(gen: Gen, key: str, ctx: dict) -> tuple[str | None, str]:
    """Return (entity type or None, value) for a slot key, caching per text."""
    base = key.split("#")[0]
    family, _, field = base.partition(".")
    m = PERSONA.match(family)
    if m:
        if field not in PERSON_FIELDS:
            raise KeyError(key)
        pid = family
        if pid not in ctx["personas"]:
            culture = m.group(1)
            if culture == "au":  # Australians get any name
                culture = None
            ctx["personas"][pid] = gen.persona(culture, ctx["used_names"], female=bool(m.group(3)))
        persona = ctx["personas"][pid]
        if "#" in key and field == "email":  # a second address for the same person
            if key not in ctx["values"]:
                while True:
                    second = gen.email_for("en", persona["first"], persona["last"])
                    if second.lower() != persona["email"].lower():
                        break
                ctx["values"][key] = second
            return "EMAIL", ctx["values"][key]
        return PERSON_FIELDS[field], persona[field]
    if key in ctx["values"]:
        return ENTITY_FAMILIES.get(family), ctx["values"][key]
    if family == "phone":
        value = gen.phone(field)
    elif family == "card":
        value = gen.card(field)
    elif family == "iban":
        value = gen.iban(field)
    elif family == "ip4":
        value = gen.ip4()
    elif family == "ip6":
        value = gen.ip6()
    elif family == "addr":
        value = gen.address(field)
    elif family == "sec":
        value = gen.secret(field)
    elif family == "ssn":
        value = gen.ssn(field)
    elif family == "role":
        value = next(e for e in ROLE_EMAILS if e.startswith({"support": "support@", "billing": "billing@",
                                                              "noreply": "no-reply@"}[field]))
    else:
        assert not field, key
        value = gen.filler(family, ctx["values"])
        ctx["values"][family if "#" not in key else key] = value
        return None, value
    ctx["values"][key] = value
    return ENTITY_FAMILIES[family], value


def render(gen: Gen, template: str) -> Doc:
    doc = Doc()
    ctx = {"personas": {}, "values": {}, "used_names": set()}
    pos = 0
    for m in SLOT.finditer(template):
        doc.text(template[pos:m.start()])
        pos = m.end()
        tok = m.group(0)
        if tok == "{{":
            doc.text("{")
            continue
        if tok == "}}":
            doc.text("}")
            continue
        if tok in "{}":
            raise ValueError(f"stray brace in template: {template!r}")
        declared, key, mod = m.group(1), m.group(2), m.group(3)
        typ, value = resolve(gen, key, ctx)
        if mod == "lower":
            value = value.lower()
        elif mod == "upper":
            value = value.upper()
        if declared:
            if declared != typ:
                raise ValueError(f"slot {key} is {typ}, template says {declared}: {template!r}")
            doc.entity(typ, value)
        else:
            if typ is not None:
                raise ValueError(f"entity slot {key} used without a type: {template!r}")
            doc.text(value)
    doc.text(template[pos:])
    return doc


# --------------------------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------------------------

EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def check(doc: Doc, text: str, clean: bool) -> None:
    last_end = -1
    for typ, s, e, value in sorted(doc.ents, key=lambda x: x[1]):
        assert typ in ENTITY_TYPES, typ
        assert text[s:e] == value, (text, s, e, value)
        assert value and value == value.strip(), repr(value)
        assert s >= last_end, f"overlapping spans in {text!r}"
        last_end = e
        if typ == "CARD":
            assert luhn_ok(re.sub(r"[ -]", "", value)), value
        elif typ == "IBAN":
            assert iban_ok(value), value
        elif typ == "SSN":
            d = re.sub(r"[ -]", "", value)
            assert len(d) == 9 and ssn_ok(int(d[:3]), int(d[3:5]), int(d[5:])), value
        elif typ == "EMAIL":
            assert EMAIL_RE.fullmatch(value), value
    if clean:
        assert not doc.ents, text
    # nothing that looks like an e-mail address may sit outside a gold span
    covered = [(s, e) for _, s, e, _ in doc.ents]
    secrets = [(s, e) for t, s, e, _ in doc.ents if t == "SECRET"]
    for m in EMAIL_RE.finditer(text):
        inside = any(s <= m.start() and m.end() <= e for s, e in covered)
        userinfo = any(s < m.end() and m.start() < e for s, e in secrets)  # scheme://user:SECRET@host
        assert inside or userinfo, (m.group(0), text)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def build() -> list[dict]:
    rng = random.Random(SEED)
    gen = Gen(rng)
    # every template is used exactly once, in a shuffled order
    plan = [(k, t, False) for k, t in PII_TEMPLATES] + [(k, t, True) for k, t in CLEAN_TEMPLATES]
    rng.shuffle(plan)
    rows = []
    seen = set()
    for kind, template, clean in plan:
        for _ in range(20):  # re-draw values if a text came out identical to an earlier one
            doc = render(gen, template)
            text = "".join(doc.parts)
            if text not in seen:
                break
        seen.add(text)
        check(doc, text, clean)
        if not clean:
            assert doc.ents, template
        rows.append({"text": text,
                     "entities": [{"type": t, "start": s, "end": e} for t, s, e, _ in doc.ents],
                     "kind": kind})
    for i, row in enumerate(rows, 1):
        rows[i - 1] = {"id": f"e{i:04d}", **row}
    return rows


def main() -> None:
    rows = build()
    with OUT.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    counts: dict[str, int] = {t: 0 for t in ENTITY_TYPES}
    for row in rows:
        for ent in row["entities"]:
            counts[ent["type"]] += 1
    clean = sum(1 for row in rows if not row["entities"])
    print(f"wrote {OUT} — {len(rows)} texts, {sum(counts.values())} spans, {clean} without PII")
    print("  " + ", ".join(f"{t} {n}" for t, n in counts.items()), file=sys.stdout)


if __name__ == "__main__":
    main()
