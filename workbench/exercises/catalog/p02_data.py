"""Phase 2 exercises: the PII the default scan misses, and labels that are wrong.

Both use small sets shipped in ``datasets/exercises/`` (see the datasheet): the answers are
there too, for the check, so students are asked not to open them.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from workbench.exercises.catalog._common import plural
from workbench.exercises.model import Exercise, Verdict

if TYPE_CHECKING:
    from workbench.project import Project

PII_DATASET = "pii_hunt"
# Text in the PII-hunt set that is not personal: redacting it is over-redaction.
NOT_PII = ("03.01.2025", "48213", "INV-20931", "4.2.0", "2024-118")


def exercise_file(name: str):
    from workbench.bundled import datasets_dir

    return datasets_dir() / "exercises" / name


def pii_answers() -> dict[str, list[dict]]:
    lines = exercise_file("pii_hunt_answers.jsonl").read_text(encoding="utf-8").splitlines()
    return {row["id"]: row["pii"] for row in map(json.loads, filter(None, lines))}


def check_pii_hunt(project: Project) -> Verdict:
    from workbench.data.versioning import datasets, get_version, load

    if PII_DATASET not in datasets(project):
        return Verdict(False, f"Import datasets/exercises/pii_hunt.csv as dataset "
                              f"'{PII_DATASET}' (id column 'id', input column 'text') first.")
    latest = get_version(project, PII_DATASET)
    df = load(project, PII_DATASET, latest.version)
    if "input" not in df.columns or "id" not in df.columns:
        return Verdict(False, f"Dataset '{PII_DATASET}' has no 'id' and 'input' columns; import "
                              "it with id='id' and input='text'.")
    texts = {str(i): str(t) for i, t in zip(df["id"], df["input"], strict=True)}
    answers = pii_answers()
    if set(answers) - set(texts):
        return Verdict(False, f"Version {latest.version} of '{PII_DATASET}' lost rows; every "
                              "message must stay, only the personal details go.")
    left: dict[str, int] = {}
    for row_id, found in answers.items():
        for entity in found:
            if entity["value"] in texts[row_id]:
                left[entity["type"]] = left.get(entity["type"], 0) + 1
    if left:
        kinds = ", ".join(t.replace("_", " ").lower() for t in sorted(left))
        return Verdict(False, f"Version {latest.version} still holds "
                              f"{plural(sum(left.values()), 'personal detail')} of these kinds: "
                              f"{kinds}. The default scan does not know every format; look at "
                              "what it left and write your own pattern.")
    lost = [n for n in NOT_PII if not any(n in t for t in texts.values())]
    if lost:
        return Verdict(False, f"All personal details are gone, but so "
                              f"{'is' if len(lost) == 1 else 'are'} "
                              f"{plural(len(lost), 'detail')} that identify no one (order "
                              "numbers, dates that are not birthdays, versions). Redact "
                              "people, not everything that looks like a number.")
    return Verdict(True, f"Version {latest.version} of '{PII_DATASET}' holds none of the "
                         f"{sum(map(len, answers.values()))} personal details and keeps "
                         "everything else.")


def label_errors() -> dict[str, dict[str, str]]:
    return json.loads(exercise_file("support_label_errors.json").read_text(encoding="utf-8"))


def original_labels() -> dict[str, str]:
    import csv

    from workbench.bundled import datasets_dir

    with open(datasets_dir() / "support_messages.csv", encoding="utf-8", newline="") as f:
        return {row["ticket_id"]: row["intent"] for row in csv.DictReader(f)}


def check_label_errors(project: Project) -> Verdict:
    from workbench.bundled import SAMPLE_DATASET
    from workbench.data.versioning import datasets, get_version, load

    if SAMPLE_DATASET not in datasets(project):
        return Verdict(False, f"There is no dataset '{SAMPLE_DATASET}': import the sample "
                              "support messages first (the notebook's first step).")
    latest = get_version(project, SAMPLE_DATASET)
    df = load(project, SAMPLE_DATASET, latest.version)
    labels = {str(i): str(e) for i, e in zip(df["id"], df["expected"], strict=True)}
    wrong = {k: v for k, v in label_errors().items() if k in labels}
    if not wrong:
        return Verdict(False, f"Dataset '{SAMPLE_DATASET}' holds none of the sample's tickets.")
    fixed = sum(labels[k] == v["correct"] for k, v in wrong.items())
    originals = original_labels()
    collateral = sum(1 for k, label in labels.items()
                     if k not in wrong and k in originals and label != originals[k])
    needed = -(-2 * len(wrong) // 3)  # two thirds, rounded up
    if collateral > len(wrong):
        return Verdict(False, f"{plural(collateral, 'label')} that were right have changed too. "
                              "Relabel the suspects one by one, reading each message.")
    if fixed < needed:
        return Verdict(False, f"{fixed} of the {len(wrong)} wrong labels hidden in the data are "
                              f"fixed in version {latest.version}; {needed} are needed. Which "
                              "items does a model trained on the rest keep disagreeing with?")
    return Verdict(True, f"{fixed} of {len(wrong)} wrong labels fixed, "
                         f"{plural(collateral, 'other label')} changed.")


EXERCISES = (
    Exercise("02.1", 2, "Find the PII the default scan misses",
             f"Import `datasets/exercises/pii_hunt.csv` as dataset `{PII_DATASET}` (id `id`, "
             "input `text`) and run the PII redaction. The default scan misses some personal "
             "details in these twelve messages. Find them, redact them with your own patterns "
             "and save a new version — without redacting what identifies no one.",
             check_pii_hunt, minutes=20),
    Exercise("02.2", 2, "Fix the wrong labels",
             "A dozen support messages in the sample carry the wrong intent. Find the suspects "
             "(label issues, reading the messages), fix at least two thirds of them and save "
             "the result as a new version of the dataset, changing as few right labels as you "
             "can.", check_label_errors, minutes=20),
)
