"""A small SciFact subset written as a BEIR folder (integration tests with real weights)."""

from __future__ import annotations

import json
from pathlib import Path

from retrievers.io.dataset import load_dataset


def write_subset(scifact: Path, root: Path, queries: int = 12, others: int = 80) -> Path:
    """The first ``queries`` SciFact train queries (by id), their positives and ``others`` other
    documents, as a BEIR folder at ``root`` with a train split."""
    data = load_dataset(scifact)
    qrels = data.qrels("train")
    texts = data.queries("train")
    chosen = sorted(qrels)[:queries]
    wanted = {d for q in chosen for d in qrels[q]}
    (root / "qrels").mkdir(parents=True)
    with (root / "corpus.jsonl").open("w") as out:
        extra = 0
        for doc in data.docs():
            if doc.id in wanted or extra < others:
                extra += doc.id not in wanted
                out.write(json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for qid in chosen:
            out.write(json.dumps({"_id": qid, "text": texts[qid]}) + "\n")
    lines = [f"{q}\t{d}\t{g}" for q in chosen for d, g in qrels[q].items()]
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")
    return root
