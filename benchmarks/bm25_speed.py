"""BM25 batch search: ranker's BM25Searcher vs Pyserini's LuceneSearcher.batch_search.

Both run in one process, on the same Lucene index, the same queries, k and thread count,
alternating, after one warm-up round each; the script prints queries/s, the ratio, and
checks that both return the same ranked lists.

    python benchmarks/bm25_speed.py --dataset ../shared/data/scifact --split test --k 1000
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default=str(Path(__file__).resolve().parents[2] / "shared/data/scifact"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--index", default=None, help="existing index (default: build a temporary one)")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from retrievers.bm25 import BM25Searcher, build_bm25_index
    from retrievers.io.dataset import load_dataset
    from retrievers.java import start_jvm

    start_jvm()
    from pyserini.search.lucene import LuceneSearcher

    dataset = load_dataset(args.dataset)
    queries = dataset.queries(args.split)
    tmp = tempfile.TemporaryDirectory()
    index = args.index or build_bm25_index(dataset, Path(tmp.name) / "index")

    ours = BM25Searcher(index, k1=0.9, b=0.4, threads=args.threads)
    peer = LuceneSearcher(str(index))
    peer.set_bm25(0.9, 0.4)
    qids, texts = list(queries), list(queries.values())

    def run_ours() -> dict[str, list[str]]:
        return {qid: [d for d, _ in hits] for qid, hits in ours.search_batch(queries, args.k, progress=False)}

    def run_peer() -> dict[str, list[str]]:
        results = peer.batch_search(texts, qids, k=args.k, threads=args.threads)
        return {qid: [h.docid for h in results[qid]] for qid in qids}

    timings: dict[str, list[float]] = {"ranker": [], "pyserini": []}
    outputs = {}
    for round_ in range(args.repeats + 1):  # round 0 is the warm-up
        for name, fn in (("pyserini", run_peer), ("ranker", run_ours)):
            start = time.perf_counter()
            outputs[name] = fn()
            if round_:
                timings[name].append(time.perf_counter() - start)

    same = sum(outputs["ranker"][q] == outputs["pyserini"][q] for q in qids)
    ours_t, peer_t = statistics.median(timings["ranker"]), statistics.median(timings["pyserini"])
    print(
        f"dataset={dataset.name} split={args.split} queries={len(qids)} k={args.k} "
        f"threads={args.threads} repeats={args.repeats} (median)"
    )
    print(f"pyserini LuceneSearcher.batch_search: {peer_t:.3f} s  {len(qids) / peer_t:8.1f} q/s")
    print(f"ranker BM25Searcher.search_batch:     {ours_t:.3f} s  {len(qids) / ours_t:8.1f} q/s")
    print(f"speed-up: {peer_t / ours_t:.2f}x   identical rankings: {same}/{len(qids)} queries")


if __name__ == "__main__":
    main()
