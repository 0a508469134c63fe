"""The semantic cache's hit and false-hit rates per similarity threshold, on the sample's
support messages and on an independently written set of near-paraphrases and minimal pairs
(``datasets/semantic_cache_eval.jsonl``), with the bundled embedding model; and what a lookup
costs (embedding one request plus the search over the entries).

    .venv/bin/python benchmarks/bench_semantic_cache.py

The sample's labels are partly noisy on purpose (the phase-2 lesson on label errors), so some
of its false hits are pairs of near-identical messages labelled differently; the independent
set has clean labels and pairs built to be close in wording but to need different answers.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's workbench


def show(title: str, measurement) -> None:
    m = measurement
    print(f"{title}: {m.items} items ({m.dataset}, {m.split})")
    print(f"   {'threshold':>9}  {'hit rate':>8}  {'false-hit rate':>14}  {'false / hits':>12}")
    for i, t in enumerate(m.thresholds):
        print(f"   {t:>9g}  {m.hit_rate[i]:>8.1%}  {m.false_hit_rate[i]:>14.1%}  "
              f"{m.false_share_of_hits[i]:>12.1%}")
    if m.examples:
        e = m.examples[0]
        print(f"   closest pair needing different answers ({e['similarity']:.3f}): "
              f"{e['request']!r} ({e['expected']}) <- {e['served_from']!r} "
              f"({e['its_expected']})")


def main() -> None:
    import numpy as np

    import workbench
    from workbench import sample
    from workbench.data import import_data
    from workbench.llm.embeddings import embed
    from workbench.serve import measure_semantic_cache

    print(f"machine: {os.cpu_count()} CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    project = workbench.init_project(tempfile.mkdtemp() + "/bench-semantic", sample=True)
    sample.prepare_sample_data(project)
    import_data(project, ROOT / "datasets" / "semantic_cache_eval.jsonl", name="independent",
                input="text", expected="label")
    show("1. the sample's support messages",
         measure_semantic_cache(project, sample.SAMPLE_DATASET, record=False))
    show("2. the independent set", measure_semantic_cache(project, "independent",
                                                          record=False))

    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)  # as a serving process does (workbench.serve.running)
    threadpool_limits(1)
    texts = [f"Where is my parcel number {i}? It has not arrived." for i in range(200)]
    embed(texts[:2])
    entries = np.random.default_rng(0).standard_normal((20_000, 384)).astype(np.float32)
    entries /= np.linalg.norm(entries, axis=1, keepdims=True)
    started = time.perf_counter()
    for text in texts:
        vector = embed(text)
    embedding = (time.perf_counter() - started) / len(texts)
    started = time.perf_counter()
    for _ in range(200):
        int((entries @ vector).argmax())
    search = (time.perf_counter() - started) / 200
    print(f"3. a lookup, one thread each: embedding one request {embedding * 1000:.1f} ms, searching 20,000 "
          f"entries {search * 1000:.2f} ms")


if __name__ == "__main__":
    main()
