"""PII detection: precision, recall and redaction leak rate per type on the two labelled sets
(the tuning sample and the independently written evaluation set), and scan throughput.

    .venv/bin/python benchmarks/bench_pii.py [rows]

Throughput is measured on ``rows`` (default 10,000) synthetic support messages made by the
sample's own generator with a different seed (so nearly all rows are distinct: repeated texts
are analysed once, which would flatter the figure), plus one row in five without any PII.
The one-off analyzer build (loading spaCy) is timed separately.
"""

from __future__ import annotations

import importlib.util
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PLAIN = ["The app keeps crashing when I open the settings page",
         "How do I change the language of the invoices",
         "thanks, works now", "Can I upgrade to the annual plan and keep my discount",
         "My order arrived broken, what should I do", "the export button does nothing",
         "Is there a dark mode", "Please close this ticket, it is solved"]


def synthetic_rows(n: int, seed: int = 7) -> list[str]:
    spec = importlib.util.spec_from_file_location(
        "make_pii_sample", ROOT / "datasets" / "tools" / "make_pii_sample.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        if i % 5 == 4:
            rows.append(f"{rng.choice(PLAIN)} (asked {rng.randint(2, 90)} days ago)?")
        else:
            rows.append(gen.fill(rng.choice(gen.TEMPLATES), rng)["text"])
    return rows


def main(n: int = 10_000) -> None:
    from workbench import pii

    t = time.perf_counter()
    pii.analyzer()
    print(f"analyzer build (spaCy {pii.SPACY_MODEL} + Presidio): {time.perf_counter() - t:.1f} s")

    for path, label in ((pii.SAMPLE_PATH, "tuning sample (the detector was developed on it)"),
                        (pii.EVAL_PATH, "independent set (written without the detector)")):
        t = time.perf_counter()
        report = pii.evaluate(path)
        print(f"\n{path.name}, {label}: {report.attrs['texts']} texts, "
              f"{time.perf_counter() - t:.1f} s")
        print(report.round(3).to_string())
        print(f"leak rate {report.at['ALL', 'leak_rate']:.3f}; false positives in "
              f"{report.attrs['pii_free_texts']} PII-free texts: "
              f"{report.attrs['pii_free_false_positives']}")

    for path in (pii.SAMPLE_PATH, pii.EVAL_PATH):
        report = pii.evaluate(path, ner=False)
        print(f"\nwithout spaCy NER (ner=False), {path.name}: PERSON recall "
              f"{report.at['PERSON', 'recall']:.3f}, structured recall "
              f"{report.at['STRUCTURED', 'recall']:.3f}, leak rate "
              f"{report.at['ALL', 'leak_rate']:.3f}")

    rows = synthetic_rows(n)
    print(f"\nscan of {n:,} synthetic rows ({len(set(rows)):,} distinct):")
    for ner in (True, False):
        t, cpu = time.perf_counter(), time.process_time()
        found = pii.scan(rows, ner=ner)
        dt, cpu = time.perf_counter() - t, time.process_time() - cpu
        # CPU time is shown too: on a shared machine wall time also counts others' work.
        print(f"  ner={ner!s:5}: {dt:5.1f} s wall ({cpu:.1f} s CPU) = {n / dt:6,.0f} rows/s, "
              f"{len(found):,} entities "
              f"({', '.join(f'{k} {v}' for k, v in found['type'].value_counts().items())})")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
