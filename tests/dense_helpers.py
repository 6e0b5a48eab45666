"""Tiny deterministic encoders and datasets shared by the dense, mining and CLI tests."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class HashEncoder:
    """Bag of hashed words -> a fixed random vector per word, summed (deterministic)."""

    def __init__(self, dim: int = 16):
        self.dim = dim
        self.calls = 0

    @property
    def precision(self):
        """What an encoder from ``ranker.cli.retrieval.load_encoder`` reports it computes in:
        float32 here (numpy), imported lazily so retriever-only tests never load ranker."""
        from ranker.precision import FLOAT32

        return FLOAT32

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                out[i] += self._word(word)
        return out


def write_beir(
    root: Path, docs: dict[str, str], queries: dict[str, str], qrels: dict[str, dict[str, dict[str, int]]]
) -> Path:
    """Write a BEIR-layout dataset; ``qrels`` maps split -> qid -> docid -> relevance."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "corpus.jsonl").open("w") as out:
        for docid, text in docs.items():
            out.write(json.dumps({"_id": docid, "title": "", "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for qid, text in queries.items():
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    for split, judged in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"]
        lines += [f"{q}\t{d}\t{r}" for q, docs_ in judged.items() for d, r in docs_.items()]
        (root / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return root
