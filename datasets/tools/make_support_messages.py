"""Generate datasets/support_messages.csv: the sample project's customer-support messages.

Written for this project (CC0). Deterministic: the same seed gives the same file. The messages are
built from hand-written openings, requests and details per intent, so they read like real tickets
while staying varied. A little realistic mess is planted on purpose and documented in the
datasheet: personal details in some messages, exact and near duplicates, two empty messages, and
about 3% wrong labels — the things phase 2 teaches you to find.

    python datasets/tools/make_support_messages.py
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "support_messages.csv"
SEED = 7
PER_INTENT = 80

OPENINGS = ["", "Hi,", "Hello,", "Hi there,", "Good morning,", "Hey,", "Dear support,",
            "Hello team,", "Quick question:", "Sorry to bother you,"]
CLOSINGS = ["", "Thanks.", "Thank you!", "Thanks in advance.", "Please help.", "Cheers.",
            "Appreciate it.", "Regards.", "Any help is welcome."]

REQUESTS = {
    "billing": [
        "I was charged twice for my {plan} subscription this month.",
        "Can I get a refund for order {order}? I cancelled it the same day.",
        "My invoice for {month} shows the wrong amount.",
        "Why did my card get charged {amount} when my plan costs less?",
        "I want to switch from monthly to yearly billing.",
        "The discount code {code} was not applied to my payment.",
        "Please send me a VAT invoice for my last payment.",
        "I cancelled my plan but I was still billed on the {day}.",
        "How do I update the credit card you charge each month?",
        "There is a charge of {amount} I don't recognise on my statement.",
        "When will the refund for order {order} reach my account?",
        "Can you explain the extra fee on my {month} bill?",
    ],
    "technical": [
        "The app crashes every time I open the {feature} screen.",
        "I get error {error} when I try to sync my data.",
        "The website is stuck on a loading spinner since this morning.",
        "Uploads fail with a timeout for files larger than {size}.",
        "Notifications stopped working after the latest update.",
        "The export to CSV produces an empty file.",
        "Your API returns 500 errors for the {feature} endpoint.",
        "Search does not find items I created yesterday.",
        "The dark mode makes the buttons unreadable on Android.",
        "After updating to version {version} the app won't start.",
        "The page freezes when I click save on the {feature} form.",
        "Two-factor codes from the app are always rejected as invalid.",
    ],
    "account": [
        "I forgot my password and the reset email never arrives.",
        "How do I change the email address on my account?",
        "Please delete my account and all my data.",
        "I'm locked out after too many login attempts.",
        "Can I merge my two accounts into one?",
        "I need to add a colleague as an admin to our team account.",
        "How do I turn on two-factor authentication?",
        "My username shows someone else's name.",
        "I want to change the phone number linked to my profile.",
        "Someone logged into my account from another country.",
        "How can I download all the data you hold about me?",
        "The verification link in your email has expired.",
    ],
    "shipping": [
        "My package {order} hasn't arrived and it's been {days} days.",
        "The tracking number {tracking} shows no updates.",
        "Can I change the delivery address for order {order}?",
        "The parcel arrived damaged, the box was crushed.",
        "Do you ship to {country}?",
        "I received the wrong item in my order {order}.",
        "How long does express delivery take to {country}?",
        "The courier says the address is incomplete.",
        "My order was marked delivered but I never got it.",
        "Can I pick up order {order} at a store instead?",
        "Half of my order is missing from the box.",
        "Is it possible to delay delivery until next week?",
    ],
    "other": [
        "Do you have a student discount?",
        "Are you hiring for remote positions?",
        "I just wanted to say your team was really helpful last week.",
        "Can I suggest a feature? A calendar view would be great.",
        "What are your opening hours during the holidays?",
        "Is there a way to give feedback on the new design?",
        "Do you have an affiliate or partner program?",
        "Where can I find your sustainability report?",
        "Can I visit your office in person?",
        "Is your product available in Spanish?",
        "Who should I contact about a press interview?",
        "Do you donate to any charities?",
    ],
}

# A second sentence most real tickets carry: what was tried, why it matters, when it began.
CONTEXT = {
    "billing": ["I checked my bank app and both payments are there.",
                "This happened right after I upgraded my plan.",
                "Our finance team needs this sorted before the end of the month.",
                "I've been a customer for three years and this never happened before.",
                "The amount is more than I agreed to when I signed up.",
                "I already asked in the chat last week but got no answer."],
    "technical": ["I already tried reinstalling and clearing the cache.",
                  "It works on my laptop but not on my phone.",
                  "Several people on my team see the same thing.",
                  "It started after I changed my network settings.",
                  "I attached a screenshot of the error to my previous message.",
                  "We rely on this every morning for our stand-up."],
    "account": ["I no longer have access to my old work email.",
                "I tried the reset link twice from two different browsers.",
                "My manager asked me to set this up today.",
                "I'm worried someone else might be using my login.",
                "I'd rather not create a new account and lose my history.",
                "The help page didn't explain how to do this."],
    "shipping": ["The order confirmation said it would arrive on Monday.",
                 "I'm travelling next week so timing matters.",
                 "It was meant to be a birthday present.",
                 "The courier's website just says 'in transit'.",
                 "My neighbours didn't receive anything either.",
                 "I paid extra for the faster option."],
    "other": ["I couldn't find this on your website.",
              "A friend recommended you to me.",
              "No rush at all, just curious.",
              "I'm writing on behalf of a small non-profit.",
              "I saw your post about it last month.",
              "Happy to answer any questions you have."],
}

DETAILS = {
    "plan": ["Pro", "Team", "Basic", "Premium", "Family"],
    "order": ["#48213", "#50977", "A-10293", "#77120", "B-55012", "#31008"],
    "month": ["January", "March", "June", "September", "November"],
    "amount": ["$49.99", "€120", "$12.00", "£35", "$299"],
    "code": ["SPRING20", "WELCOME10", "BLACKFRIDAY", "LOYAL15"],
    "day": ["1st", "3rd", "15th", "28th"],
    "feature": ["reports", "calendar", "settings", "dashboard", "invoices", "team"],
    "error": ["E1042", "0x80070005", "SYNC_FAILED", "403", "ERR_TIMEOUT"],
    "size": ["50 MB", "100 MB", "1 GB"],
    "version": ["4.2.0", "5.0.1", "3.9.7"],
    "days": ["5", "8", "12", "three", "ten"],
    "tracking": ["1Z999AA10123456784", "JD014600003SE", "LX123456789DE"],
    "country": ["Canada", "Brazil", "Japan", "Norway", "South Africa", "India"],
}

# Personal details a real inbox contains (all fictional). Phase 2 finds and redacts them.
PII_TAILS = [
    "You can reach me at {email}.",
    "My phone number is {phone}.",
    "My name is {name}, account holder.",
    "Ship it to {address} please.",
    "The card ending in the charge was {card}.",
    "Refund to IBAN {iban} please.",
    "I'm {name}, you can call me on {phone}.",
    "Contact: {name} <{email}>",
]
PII = {
    "email": ["maria.lopez@example.com", "j.smith84@example.org", "akira.t@example.net",
              "fatima.r@example.com", "ben.o@example.co.uk"],
    "phone": ["+1 415 555 0132", "(212) 555-0187", "+44 20 7946 0958", "+49 30 901820",
              "555-0199"],
    "name": ["Maria Lopez", "John Smith", "Akira Tanaka", "Fatima Rahman", "Ben Okafor",
             "Chloé Martin", "Priya Natarajan"],
    "address": ["221B Baker Street, London NW1 6XE", "1600 Amphitheatre Parkway, Mountain View",
                "742 Evergreen Terrace, Springfield", "12 Rue de Rivoli, 75001 Paris"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB29 NWBK 6016 1331 9268 19"],
}


def fill(template: str, rng: random.Random, pool: dict[str, list[str]]) -> str:
    out = template
    for key, values in pool.items():
        while "{" + key + "}" in out:
            out = out.replace("{" + key + "}", rng.choice(values), 1)
    return out


def main() -> None:
    rng = random.Random(SEED)
    rows: list[dict[str, str]] = []
    intents = list(REQUESTS)
    for intent in intents:
        for _ in range(PER_INTENT):
            opening = rng.choice(OPENINGS)
            request = fill(rng.choice(REQUESTS[intent]), rng, DETAILS)
            if opening.endswith(",") and not request.startswith("I "):
                request = request[0].lower() + request[1:]  # "Hi, can I ..." reads naturally
            parts = [opening, request]
            if rng.random() < 0.7:
                parts.append(rng.choice(CONTEXT[intent]))
            if rng.random() < 0.18:
                parts.append(fill(rng.choice(PII_TAILS), rng, PII))
            parts.append(rng.choice(CLOSINGS))
            text = " ".join(p for p in parts if p)
            if rng.random() < 0.1:
                text = text.lower()
            rows.append({"text": text, "intent": intent, "channel": rng.choice(
                ["email", "chat", "web form"])})
    rng.shuffle(rows)
    # Planted mess, documented in the datasheet.
    for i in rng.sample(range(len(rows)), 12):  # ~3% wrong labels
        rows[i]["intent"] = rng.choice([x for x in intents if x != rows[i]["intent"]])
    for i in rng.sample(range(len(rows)), 6):  # exact duplicates (sent twice)
        rows.append(dict(rows[i]))
    for i in rng.sample(range(len(rows)), 6):  # near duplicates (re-sent with small edits)
        near = dict(rows[i])
        near["text"] = near["text"].replace(".", "!", 1) + " Still waiting."
        rows.append(near)
    rows.append({"text": "", "intent": "other", "channel": "web form"})
    rows.append({"text": "   ", "intent": "other", "channel": "chat"})
    rng.shuffle(rows)
    with OUT.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["ticket_id", "text", "intent", "channel"])
        writer.writeheader()
        for n, row in enumerate(rows, 1):
            writer.writerow({"ticket_id": f"T{n:04d}", **row})
    print(f"wrote {len(rows)} rows to {OUT}")


if __name__ == "__main__":
    main()
