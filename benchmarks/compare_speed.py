"""Speed of ``compare_runs`` (Fisher, 10,000 permutations) beside ranx's ``compare``.

10 runs x 300 queries on SciFact-sized synthetic data: every run against a baseline, and
all 45 pairs (what ranx's ``compare`` always does). Both are warmed up first (ranx compiles
with numba on first use). Ours includes the ranx metric computation, the test, Holm's
correction, effect sizes and paired-bootstrap 95% CIs (10,000 resamples); ranx's includes its
metric computation and its Fisher test. Run:

    PYTHONPATH=. python benchmarks/compare_speed.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic(n_runs: int, n_queries: int, depth: int, seed: int = 0):
    """Binary qrels (1-3 relevant per query) and runs of increasing quality."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(20_000)]
    qrels = {
        f"q{q}": {docs[i]: 1 for i in rng.choice(len(docs), rng.integers(1, 4), False)}
        for q in range(n_queries)
    }
    runs = []
    for r in range(n_runs):
        run = {}
        for qid, rel in qrels.items():
            scores = {docs[i]: float(rng.random()) for i in rng.choice(len(docs), depth, False)}
            for docid in rel:
                if rng.random() < 0.4 + 0.03 * r:
                    scores[docid] = float(rng.random() + 0.2 * r / n_runs)
            run[qid] = scores
        runs.append(run)
    return qrels, runs


def ours(qrels, runs, metrics, permutations, all_pairs):
    from ranker.evaluation import compare_runs, evaluate_run

    evaluations = [evaluate_run(run, qrels, metrics, name=f"run{r}") for r, run in enumerate(runs)]
    return compare_runs(
        evaluations,
        metrics,
        baseline=0,
        all_pairs=all_pairs,
        test="fisher",
        correction="holm",
        seed=42,
        n_resamples=permutations,
    )


def theirs(qrels, runs, metrics, permutations):
    from ranx import Qrels, Run, compare

    ranx_runs = [Run(run, name=f"run{r}") for r, run in enumerate(runs)]
    return compare(
        Qrels(qrels),
        ranx_runs,
        metrics,
        stat_test="fisher",
        n_permutations=permutations,
        max_p=0.05,
        random_seed=42,
    )


def best_of(repeats: int, function, *args) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--depth", type=int, default=100, help="documents per query")
    parser.add_argument("--permutations", type=int, default=10_000)
    parser.add_argument("--metrics", nargs="+", default=["ndcg@10"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    qrels, runs = synthetic(args.runs, args.queries, args.depth)
    # Warm-up: numba compilation (ranx) and first imports, on the real input.
    ours(qrels, runs, args.metrics, 100, False)
    theirs(qrels, runs[:2], args.metrics, 100)
    baseline = best_of(args.repeats, ours, qrels, runs, args.metrics, args.permutations, False)
    pairs = best_of(args.repeats, ours, qrels, runs, args.metrics, args.permutations, True)
    ranx_time = best_of(1, theirs, qrels, runs, args.metrics, args.permutations)
    n = args.runs
    print(
        f"{n} runs x {args.queries} queries, metrics {' '.join(args.metrics)}, Fisher with "
        f"{args.permutations} permutations (best of {args.repeats} after warm-up)"
    )
    print(f"ours, {n - 1} runs vs baseline (+Holm, effect sizes, bootstrap CIs): {baseline:.3f} s")
    print(f"ours, all {n * (n - 1) // 2} pairs:                                  {pairs:.3f} s")
    print(f"ranx compare, all {n * (n - 1) // 2} pairs:                          {ranx_time:.3f} s")
    print(f"ratio ranx / ours (all pairs): {ranx_time / pairs:.1f}x; (baseline): {ranx_time / baseline:.1f}x")


if __name__ == "__main__":
    main()
