"""Phase-2 data throughput: import + profile (+ PII scan) of 100,000 support-style rows, the
importer alone on 1,000,000 rows (rows/s and peak memory, in a fresh process), and near-duplicate
detection on 10,000 rows with the bundled embeddings.

    .venv/bin/python benchmarks/bench_data.py [--rows 100000] [--import-rows 1000000]
                                              [--near-rows 10000] [--import-only]

The rows are synthetic and deterministic (seeded templates), written as a CSV and imported into a
temporary project, so every run measures the same work. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

GREETINGS = ["Hi,", "Hello,", "Hey team,", "Dear support,", "Good morning,", "Quick question:",
             ""]
CLOSINGS = ["Thanks!", "Thank you.", "Cheers.", "Any help is welcome.", "Regards, Sam", ""]
INTENTS = {
    "billing": ["I was charged twice for order #{n}.", "Can I switch to yearly billing?",
                "My invoice {n} shows the wrong VAT number.", "Please refund the {n} EUR fee."],
    "shipping": ["My package #{n} has not arrived after {d} days.",
                 "Do you ship to {country}?", "The courier lost parcel {n}.",
                 "How long does express delivery to {country} take?"],
    "account": ["I cannot log in since {d} days.", "Please delete my account and data.",
                "The password reset email never arrives at {email}.",
                "Two-factor codes are rejected on my {device}."],
    "technical": ["The app crashes when I upload a photo on my {device}.",
                  "I get error 0x{n:x} when syncing.", "Dark mode hides the save button.",
                  "Export to CSV stops at {n} rows."],
}
CONTEXT = ["I ordered it on {date}.", "This is the {k} time I write about this.",
           "My customer number is C-{n}.", "It worked fine until the update to {v}.",
           "I already tried restarting {k} times.", "My colleague {name} has the same problem.",
           "We are a team of {k} people on the business plan.", "I need this fixed by {date}.",
           "", "", "", ""]
NAMES = ["Ana", "Omar", "Li Wei", "Priya", "Jonas", "Fatima", "Diego", "Mei", "Kofi", "Sara"]
ORDINALS = ["second", "third", "fourth", "fifth", "2", "3", "4", "5", "6", "7"]
COUNTRIES = ["India", "Brazil", "Kenya", "Japan", "Canada", "Norway", "Chile", "Egypt"]
DEVICES = ["iPhone 15", "Pixel 8", "Galaxy S23", "iPad", "Windows laptop", "MacBook"]


def support_rows(n: int, seed: int = 0):
    """``n`` deterministic support messages with an intent label and a channel."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = list(INTENTS)
    label = rng.integers(0, len(labels), n)
    template = rng.integers(0, 4, n)
    greet = rng.integers(0, len(GREETINGS), n)
    close = rng.integers(0, len(CLOSINGS), n)
    numbers = rng.integers(1000, 99999, n)
    days = rng.integers(2, 30, n)
    country = rng.integers(0, len(COUNTRIES), n)
    device = rng.integers(0, len(DEVICES), n)
    context = rng.integers(0, len(CONTEXT), n)
    pick = rng.integers(0, 10, (n, 3))
    texts = []
    for i in range(n):
        body = INTENTS[labels[label[i]]][template[i]].format(
            n=int(numbers[i]), d=int(days[i]), country=COUNTRIES[country[i]],
            device=DEVICES[device[i]], email=f"user{numbers[i]}@example.com")
        extra = CONTEXT[context[i]].format(
            date=f"{1 + pick[i, 0] * 3} {['March', 'May', 'June'][pick[i, 1] % 3]}",
            k=ORDINALS[pick[i, 1]], n=int(numbers[i]) * 7 % 100000, v=f"4.{pick[i, 2]}",
            name=NAMES[pick[i, 2]])
        parts = (GREETINGS[greet[i]], body, extra, CLOSINGS[close[i]])
        texts.append(" ".join(p for p in parts if p))
    return pd.DataFrame({"ticket": [f"T{i:06d}" for i in range(n)], "text": texts,
                         "intent": [labels[k] for k in label],
                         "channel": rng.choice(["email", "chat", "phone"], n)})


def reference_embed(texts: list[str]):
    """Embeddings as near-duplicate detection computed them before: each distinct text once,
    shortest first, transformers' tokenizer, batches of 64 padded to their longest text,
    float32. The speed "before", and the vectors the neighbours are compared with."""
    import numpy as np
    import torch

    from workbench.llm.embeddings import _load, model_dir
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir())
    _, model, _ = _load()
    distinct = sorted(set(texts), key=len)
    out = []
    with torch.inference_mode():
        for start in range(0, len(distinct), 64):
            enc = tokenizer(distinct[start:start + 64], padding=True, truncation=True,
                            max_length=256, return_tensors="pt")
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    where = {text: i for i, text in enumerate(distinct)}
    return np.concatenate(out)[[where[t] for t in texts]]


def neighbour_recall(reference, vectors, k: int = 5, queries: int = 2000) -> tuple[float, float]:
    """How many of each text's ``k`` nearest neighbours under ``reference`` are found under
    ``vectors``: exactly (the same ids) and allowing ties (a neighbour as similar as the k-th
    under the reference counts; exact duplicates make the order among equals arbitrary)."""
    import numpy as np

    n = min(queries, len(reference))
    ref = reference[:n] @ reference.T
    new = vectors[:n] @ vectors.T
    np.fill_diagonal(ref[:, :n], -np.inf)
    np.fill_diagonal(new[:, :n], -np.inf)
    ref_top = np.argsort(-ref, axis=1)[:, :k]
    new_top = np.argsort(-new, axis=1)[:, :k]
    exact = np.mean([len(set(a) & set(b)) / k for a, b in zip(ref_top, new_top)])
    kth = np.take_along_axis(ref, ref_top[:, -1:], axis=1)
    ties = np.mean(np.take_along_axis(ref, new_top, axis=1) >= kth - 1e-6)
    return float(exact), float(ties)


IMPORT_PROBE = """
import re, sys, time
from pathlib import Path
import pandas, pyarrow, workbench
from workbench.data import import_data

def high_water():  # kB; this process's own (ru_maxrss would count the parent it forked from)
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1))

before = high_water()
project = workbench.init_project(Path(sys.argv[2]))
start = time.perf_counter()
import_data(project, sys.argv[1], name="support", expected="intent", id="ticket",
            metadata=["channel"], progress=False)
seconds = time.perf_counter() - start
print(seconds, before, high_water())
"""


def import_alone(rows: int) -> None:
    """The importer on ``rows`` rows in a fresh interpreter: rows/s and peak resident memory
    (VmHWM, Linux), next to what the interpreter holds before the import starts (pandas, pyarrow
    and the workbench loaded)."""
    import subprocess
    import sys

    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "support.csv"
        support_rows(rows, seed=2).to_csv(csv, index=False)
        size = csv.stat().st_size
        child = subprocess.run([sys.executable, "-c", IMPORT_PROBE, str(csv),
                                str(Path(tmp) / "project")], capture_output=True, text=True)
        if child.returncode != 0:  # say why: captured output is not shown by CalledProcessError
            sys.stderr.write(child.stderr)
            raise SystemExit(f"the import probe failed with exit status {child.returncode}")
        out = child.stdout.split()
    seconds, before, peak = float(out[0]), int(out[1]) / 1024, int(out[2]) / 1024
    print(f"\nimporter alone on {rows:,} rows ({size / 1e6:.0f} MB CSV, fresh process)")
    print(f"  import_data                                              {rate(rows, seconds)}")
    print(f"  peak memory {peak:,.0f} MB (the interpreter with pandas and pyarrow loaded: "
          f"{before:,.0f} MB; the import added {peak - before:,.0f} MB)")


def rate(rows: int, seconds: float) -> str:
    return f"{seconds:7.2f} s  {rows / seconds:>10,.0f} rows/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--near-rows", type=int, default=10_000)
    parser.add_argument("--import-rows", type=int, default=1_000_000)
    parser.add_argument("--import-only", action="store_true",
                        help="only the importer on --import-rows rows")
    args = parser.parse_args()
    if args.import_only:
        import_alone(args.import_rows)
        return

    import torch

    import workbench
    from workbench.data import import_data, load, profile
    from workbench.data.profiling import embed_texts, near_duplicates, similar_pairs

    print(f"cpu cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, "
          f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        frame = support_rows(args.rows)
        csv = Path(tmp) / "support.csv"
        frame.to_csv(csv, index=False)
        print(f"\n{args.rows:,} rows, {csv.stat().st_size / 1e6:.1f} MB CSV")
        project = workbench.init_project(Path(tmp) / "project")

        start = time.perf_counter()
        import_data(project, csv, name="support", expected="intent", id="ticket",
                    metadata=["channel"])
        t_import = time.perf_counter() - start
        df = load(project, "support")

        start = time.perf_counter()
        result = profile(df, near_duplicates=False)  # timed on their own below
        result.figures()
        t_profile = time.perf_counter() - start

        t_pii = None
        try:
            from workbench.pii import scan
        except ImportError:
            scan = None
        if scan is not None:
            start = time.perf_counter()
            scan(df["input"].tolist())
            t_pii = time.perf_counter() - start

        stages = [("import (read, detect encoding, check, ids, write Parquet)", t_import),
                  ("profile + figures (near duplicates timed below)", t_profile)]
        if t_pii is None:
            print("  PII scan: skipped (workbench.pii.scan is not available yet)")
        else:
            stages.append(("PII scan (workbench.pii.scan)", t_pii))
        for label, seconds in stages:
            print(f"  {label:<58} {rate(args.rows, seconds)}")
        total = t_import + t_profile + (t_pii or 0)
        together = " + ".join(label.split(" (")[0] for label, _ in stages)
        print(f"  {together:<58} {rate(args.rows, total)}")
        print(f"  exact duplicate rows found: {result.exact_duplicate_rows:,}")

    if args.import_rows:
        import_alone(args.import_rows)

    # Near duplicates: embedding dominates; the blocked similarity search is timed on its own.
    from workbench.llm.embeddings import compute_dtype, embed

    texts = support_rows(args.near_rows, seed=1)["text"].tolist()
    embed_texts(["warm up the model"])
    start = time.perf_counter()
    before = reference_embed(texts)
    t_before = time.perf_counter() - start
    start = time.perf_counter()
    vectors = embed_texts(texts)
    t_embed = time.perf_counter() - start
    start = time.perf_counter()
    i, _, _ = similar_pairs(vectors, 0.92)
    t_pairs = time.perf_counter() - start
    distinct = len(set(texts))
    start = time.perf_counter()
    pairs = near_duplicates(texts, threshold=0.92)  # embeddings cached: the search + bookkeeping
    t_cached = time.perf_counter() - start
    print(f"\nnear duplicates on {args.near_rows:,} rows ({distinct:,} distinct), cosine >= 0.92")
    print(f"  embed before (batches of 64, float32)   {rate(args.near_rows, t_before)}")
    print(f"  embed now ({compute_dtype()}, by length)     {rate(args.near_rows, t_embed)}   "
          f"(target >= 1,000 rows/s)")
    exact, ties = neighbour_recall(before, vectors)
    print(f"  top-5 neighbours kept vs before: {exact:.4f} same ids, {ties:.4f} allowing ties "
          f"(target >= 0.99)")
    if compute_dtype() != "float32":
        start = time.perf_counter()
        full = embed(texts, dtype="float32")
        t_full = time.perf_counter() - start
        exact, ties = neighbour_recall(before, full)
        print(f"  embed now in float32, by length        {rate(args.near_rows, t_full)}   "
              f"top-5 kept {exact:.4f} same ids, {ties:.4f} allowing ties")
    print(f"  blocked similarity search               {t_pairs:7.2f} s  ({len(i):,} pairs)")
    print(f"  total, first call                       {t_embed + t_cached:7.2f} s")
    print(f"  near_duplicates() again (cached)        {t_cached:7.2f} s  ({len(pairs):,} pairs)")


if __name__ == "__main__":
    main()
