"""Inputs of the SciFact training experiments: BM25 runs (Lucene via Pyserini/Anserini) and a
negatives file mined from BM25 and zero-shot MiniLM for the train queries.

Writes into experiments/work/scifact/ (ignored by git):
  bm25.test.trec   BM25 top-100 for the test queries (the run the cross-encoders rerank)
  negatives.jsonl  per train query: judged positives and up to 30+30 negatives from BM25
                   and dense (docid, rank, score, retriever), positives removed

Usage: python experiments/scifact_training/prepare.py bm25 DATA_DIR
       python experiments/scifact_training/prepare.py negatives DATA_DIR MINILM_DIR [WORK]
(The toolkit's own `ranker index/search/mine` replace this once merged; this script only
stands in for them so the training runs have inputs.)
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from retrievers.io.dataset import load_dataset
from retrievers.io.trec import read_run, write_run

OUT = Path(__file__).resolve().parents[1] / "work" / "scifact"
DEPTH = 30


def bm25_runs(dataset, splits: dict[str, int]) -> dict[str, dict]:
    with tempfile.TemporaryDirectory() as tmp:
        docs_dir, index = Path(tmp) / "docs", Path(tmp) / "index"
        docs_dir.mkdir()
        with (docs_dir / "docs.jsonl").open("w") as out:
            for doc in dataset.docs():
                out.write(json.dumps({"id": doc.id, "contents": doc.contents}) + "\n")
        from retrievers.java import java_class

        java_class("io.anserini.index.IndexCollection").main(
            [
                "-collection",
                "JsonCollection",
                "-input",
                str(docs_dir),
                "-index",
                str(index),
                "-generator",
                "DefaultLuceneDocumentGenerator",
                "-threads",
                "1",
                "-storePositions",
                "-storeDocvectors",
                "-storeRaw",
            ]
        )
        from pyserini.search.lucene import LuceneSearcher

        searcher = LuceneSearcher(str(index))
        searcher.set_bm25(0.9, 0.4)
        runs = {}
        for split, k in splits.items():
            queries = dataset.queries(split)
            qids = list(queries)
            hits = searcher.batch_search([queries[q] for q in qids], qids, k=k, threads=1)
            runs[split] = {q: {h.docid: float(h.score) for h in hits[q]} for q in qids}
        return runs


def dense_run(dataset, model_dir: str, split: str, k: int) -> dict:
    import torch

    from ranker.models import load_biencoder

    model = load_biencoder(model_dir).to("cuda" if torch.cuda.is_available() else "cpu")
    docs = list(dataset.docs())
    d = model.encode_corpus([x.contents for x in docs], batch_size=64, show_progress=True)
    queries = dataset.queries(split)
    qids = list(queries)
    q = model.encode_queries([queries[i] for i in qids], batch_size=64)
    run = {}
    for i, qid in enumerate(qids):
        scores = d @ q[i]
        top = np.argsort(-scores)[:k]
        run[qid] = {docs[j].id: float(scores[j]) for j in top}
    return run


def mine(dataset, bm25_train: dict, dense: dict, path: Path) -> None:
    """Negatives: BM25 and dense top-DEPTH for each judged train query, positives removed,
    merged by rank (ties: bm25 first), each document once."""
    qrels, queries = dataset.qrels("train"), dataset.queries("train")
    with path.open("w") as out:
        for qid in qrels:
            positives = [d for d, rel in qrels[qid].items() if rel > 0]
            seen, negatives = set(positives), []
            ranked = [
                (rank, name, docid, score)
                for name, run in (("bm25", bm25_train), ("dense", dense))
                for rank, (docid, score) in enumerate(
                    sorted(run.get(qid, {}).items(), key=lambda x: (-x[1], x[0]))[:DEPTH], 1
                )
            ]
            for rank, name, docid, score in sorted(ranked):
                if docid not in seen:
                    seen.add(docid)
                    negatives.append(
                        {"docid": docid, "rank": rank, "score": round(score, 4), "retriever": name}
                    )
            out.write(
                json.dumps(
                    {
                        "qid": qid,
                        "query": queries[qid],
                        "positives": positives,
                        "negatives": negatives,
                    }
                )
                + "\n"
            )


def main(step: str, data_dir: str, model_dir: str = "", work: str = str(OUT)) -> None:
    """``bm25`` (needs Java): bm25.test.trec, bm25.train.trec; ``negatives`` (a GPU helps):
    the dense run of the train queries, merged with bm25.train.trec into negatives.jsonl."""
    out_dir = Path(work)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(data_dir)
    if step == "bm25":
        runs = bm25_runs(dataset, {"test": 100, "train": DEPTH + 5})
        write_run(out_dir / "bm25.test.trec", runs["test"], tag="bm25")
        write_run(out_dir / "bm25.train.trec", runs["train"], tag="bm25")
    else:
        dense = dense_run(dataset, model_dir, "train", DEPTH + 5)
        mine(dataset, read_run(out_dir / "bm25.train.trec"), dense, out_dir / "negatives.jsonl")


if __name__ == "__main__":
    main(*sys.argv[1:5])
