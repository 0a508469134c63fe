"""Failure patterns: how well the clustering groups failures as people would, and how fast.

Prints, for the tuning set (``datasets/failure_clusters_tune.jsonl``, on which
``workbench.clusters.DISTANCE`` was chosen) and the independently written evaluation set
(``datasets/failure_clusters_eval.jsonl``): the adjusted Rand index and V-measure against the
hand-given themes at several distances, the number of groups against the number of themes; then
the time to embed and group N failures (the sets' texts repeated with variations).

    .venv/bin/python benchmarks/bench_clusters.py [--n 2000]
"""

from __future__ import annotations

import argparse
import json
import random
import time

from sklearn.metrics import adjusted_rand_score, v_measure_score

from workbench.clusters import DISTANCE, cluster_vectors, keywords
from workbench.llm import embed
from workbench.sample import datasets_dir


def load(name: str) -> list[dict]:
    path = datasets_dir() / f"failure_clusters_{name}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="failures for the speed test")
    args = parser.parse_args()
    print(f"DISTANCE = {DISTANCE} (average linkage, cosine)")
    for name in ("tune", "eval"):
        rows = load(name)
        texts, gold = [r["text"] for r in rows], [r["theme"] for r in rows]
        vectors = embed(texts)
        print(f"\n{name}: {len(rows)} failures, {len(set(gold))} themes")
        for distance in (0.55, 0.6, DISTANCE, 0.7, 0.75):
            labels = cluster_vectors(vectors, distance)
            mark = "  <- chosen" if distance == DISTANCE else ""
            print(f"  distance {distance:.2f}: ARI {adjusted_rand_score(gold, labels):.2f}, "
                  f"V-measure {v_measure_score(gold, labels):.2f}, "
                  f"{len(set(labels))} groups{mark}")
        labels = cluster_vectors(vectors, DISTANCE)
        names = keywords(texts, labels)
        for group in sorted(set(labels))[:6]:
            themes = {gold[i] for i, g in enumerate(labels) if g == group}
            print(f"    group {group + 1}: {', '.join(names[group][:3])}  (themes: "
                  f"{', '.join(sorted(themes))})")
    rng = random.Random(0)
    base = [r["text"] for r in load("tune") + load("eval")]
    openers = ["", "Hi, ", "Hello, ", "Urgent: ", "Quick question: "]
    many = [f"{rng.choice(openers)}{rng.choice(base)} (ref {rng.randint(1000, 9999)})"
            for _ in range(args.n)]
    started = time.perf_counter()
    vectors = embed(many)
    embedded = time.perf_counter() - started
    started = time.perf_counter()
    labels = cluster_vectors(vectors)
    grouped = time.perf_counter() - started
    print(f"\n{args.n} failures: embedding {embedded:.1f} s, grouping {grouped:.1f} s, "
          f"{len(set(labels))} groups")


if __name__ == "__main__":
    main()
