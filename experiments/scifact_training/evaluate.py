"""Score the SciFact test runs with ranx and compare each with its baseline (paired t-test
on per-query nDCG@10, scipy.stats.ttest_rel).

Usage: python experiments/scifact_training/evaluate.py DATA RUNS_DIR BM25_RUN
"""

from __future__ import annotations

import sys
from pathlib import Path

from ranx import Qrels, Run, evaluate
from scipy.stats import ttest_rel

from retrievers.io.dataset import load_dataset
from retrievers.io.trec import read_run

BASELINES = {
    "bi": "zeroshot-bi",
    "bi-cet-text": "zeroshot-bi",
    "bi-cet-features": "zeroshot-bi",
    "cross": "bm25",
    "cross-cet-text": "bm25",
    "cross-cet-features": "bm25",
}
PAIRS = [
    ("bi-cet-text", "bi"),
    ("bi-cet-features", "bi"),
    ("cross-cet-text", "cross"),
    ("cross-cet-features", "cross"),
]


def per_query(qrels: Qrels, run: dict, metric: str) -> dict[str, float]:
    r = Run({q: dict(d) for q, d in run.items()})
    evaluate(qrels, r, [metric], make_comparable=True)
    return dict(r.scores[metric])


def main(data: str, runs_dir: str, bm25: str) -> None:
    qrels_dict = load_dataset(data).qrels("test")
    qrels = Qrels(qrels_dict)
    runs = {p.stem: read_run(p) for p in sorted(Path(runs_dir).glob("*.trec"))}
    runs["bm25"] = read_run(bm25)
    scores, per = {}, {}
    for name, run in runs.items():
        r = Run({q: dict(d) for q, d in run.items()})
        scores[name] = evaluate(qrels, r, ["ndcg@10", "recall@100", "mrr@10"], make_comparable=True)
        per[name] = per_query(qrels, run, "ndcg@10")
    qids = sorted(qrels_dict)
    print("| run | nDCG@10 | R@100 | MRR@10 | baseline | delta | p (paired t) |")
    print("|---|---|---|---|---|---|---|")
    for name in ["bm25", "zeroshot-bi", *BASELINES]:
        if name not in scores:
            continue
        s = scores[name]
        row = f"| {name} | {s['ndcg@10']:.4f} | {s['recall@100']:.4f} | {s['mrr@10']:.4f} |"
        base = BASELINES.get(name)
        if base in per:
            a = [per[name].get(q, 0.0) for q in qids]
            b = [per[base].get(q, 0.0) for q in qids]
            p = ttest_rel(a, b).pvalue
            row += f" {base} | {scores[name]['ndcg@10'] - scores[base]['ndcg@10']:+.4f} | {p:.2g} |"
        else:
            row += " | | |"
        print(row)
    train_qrels = load_dataset(data).qrels("train")
    train_docs = {d for q in train_qrels for d in train_qrels[q]}
    fresh = [q for q in qids if not any(d in train_docs for d in qrels_dict[q])]
    print(
        f"\nTest queries whose relevant documents are never a train positive: {len(fresh)} "
        f"of {len(qids)}; nDCG@10 on them:"
    )
    for name in ["bm25", "zeroshot-bi", *BASELINES]:
        if name in per:
            line = f"  {name}: {sum(per[name].get(q, 0.0) for q in fresh) / len(fresh):.4f}"
            base = BASELINES.get(name)
            if base in per:
                a = [per[name].get(q, 0.0) for q in fresh]
                b = [per[base].get(q, 0.0) for q in fresh]
                line += f" (vs {base}: p = {ttest_rel(a, b).pvalue:.2g})"
            print(line)
    print()
    for cet, plain in PAIRS:
        if cet in per and plain in per:
            a = [per[cet].get(q, 0.0) for q in qids]
            b = [per[plain].get(q, 0.0) for q in qids]
            print(
                f"{cet} vs {plain}: {scores[cet]['ndcg@10'] - scores[plain]['ndcg@10']:+.4f} "
                f"nDCG@10, p = {ttest_rel(a, b).pvalue:.2g}"
            )


if __name__ == "__main__":
    main(*sys.argv[1:4])
