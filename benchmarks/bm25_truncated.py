"""What cutting documents at an encoder's max_length costs, measured with BM25: Lucene BM25
(Pyserini) over the whole documents and over each document cut to its first N tokens of a
tokenizer, the same test queries, nDCG@10 / recall@100 from ranx. A dense model trained and
indexed at N tokens never sees the rest of a document; BM25 on the cut corpus shows how much
of the relevance signal the rest carries.

    PYTHONPATH=. python benchmarks/bm25_truncated.py --corpus ../shared/data/scifact \
        --tokenizer WORK/smollm2 --tokens 64 128 [--split test]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

from retrievers.io.dataset import Dataset, Document, load_dataset
from retrievers.io.trec import QrelsDict

logger = logging.getLogger(__name__)


class TruncatedDataset(Dataset):
    """``base`` with every document cut to its first ``tokens`` tokens of ``tokenizer``."""

    def __init__(self, base: Dataset, tokenizer: Any, tokens: int) -> None:
        self.base, self.tokenizer, self.tokens = base, tokenizer, tokens
        self.name, self.layout = f"{base.name}-first{tokens}", base.layout

    def docs(self) -> Iterator[Document]:
        for doc in self.base.docs():
            ids = self.tokenizer(doc.contents, add_special_tokens=False)["input_ids"][: self.tokens]
            yield Document(id=doc.id, text=self.tokenizer.decode(ids))

    def splits(self) -> list[str]:
        return self.base.splits()

    def queries(self, split: str) -> dict[str, str]:
        return self.base.queries(split)

    def qrels(self, split: str) -> QrelsDict:
        return self.base.qrels(split)

    def describe(self) -> dict[str, Any]:
        return {**self.base.describe(), "truncated_to_tokens": self.tokens}


def bm25_scores(dataset: Dataset, split: str) -> dict[str, float]:
    """Index ``dataset`` with Lucene BM25 in a temporary folder; nDCG@10 and recall@100."""
    from ranx import Qrels, Run, evaluate

    from retrievers.bm25 import BM25Searcher, build_bm25_index

    with tempfile.TemporaryDirectory() as tmp:
        index = build_bm25_index(dataset, f"{tmp}/bm25")
        with BM25Searcher(index) as searcher:
            run = {qid: dict(hits) for qid, hits in searcher.search_batch(dataset.queries(split), k=100)}
    qrels = Qrels(dataset.qrels(split))
    return {k: round(float(v), 4) for k, v in evaluate(qrels, Run(run), ["ndcg@10", "recall@100"]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", default="../shared/data/scifact", help="BEIR folder")
    parser.add_argument("--tokenizer", required=True, help="tokenizer folder (e.g. a converted SmolLM2)")
    parser.add_argument("--tokens", type=int, nargs="+", default=[64, 128], help="cut lengths")
    parser.add_argument("--split", default="test")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    base = load_dataset(args.corpus)
    lengths = [len(tokenizer(d.contents, add_special_tokens=False)["input_ids"]) for d in base.docs()]
    result: dict[str, Any] = {
        "doc_tokens": {"median": statistics.median(lengths), "mean": round(statistics.mean(lengths), 1)},
        "full": bm25_scores(base, args.split),
    }
    for n in args.tokens:
        cut = sum(length > n for length in lengths) / len(lengths)
        result[f"first_{n}_tokens"] = {
            **bm25_scores(TruncatedDataset(base, tokenizer, n), args.split),
            "docs_cut": round(cut, 3),
        }
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
