"""Tiny stand-in models with the ranker.models interfaces, for fast training tests.

Words are hashed into a small vocabulary; a bag of embeddings with dropout feeds a linear
head (cross) or is pooled into an embedding (bi). They train in milliseconds on CPU.
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

VOCAB = 257


def _ids(texts: list[str], length: int = 12) -> dict[str, torch.Tensor]:
    rows = [[zlib.crc32(w.encode()) % (VOCAB - 1) + 1 for w in t.lower().split()][:length] for t in texts]
    width = max(1, max(len(r) for r in rows))
    ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])
    return {"input_ids": ids, "attention_mask": (ids > 0).long()}


class _Bag(nn.Module):
    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, dim)
        self.drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = features["attention_mask"].unsqueeze(-1).float()
        pooled = (self.emb(features["input_ids"]) * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.tanh(self.proj(self.drop(pooled)))


class TinyCross(nn.Module):
    """Cross-encoder stand-in: tokenize(queries, docs) -> features; forward -> [B] scores."""

    def __init__(self, dim: int = 16, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.bag = _Bag(dim, dropout)
        self.head = nn.Linear(dim, 1)

    def tokenize(self, queries, docs):
        q, d = _ids(list(queries)), _ids(list(docs))
        return {
            "q_ids": q["input_ids"],
            "q_mask": q["attention_mask"],
            "d_ids": d["input_ids"],
            "d_mask": d["attention_mask"],
        }

    def forward(self, features):
        q = self.bag({"input_ids": features["q_ids"], "attention_mask": features["q_mask"]})
        d = self.bag({"input_ids": features["d_ids"], "attention_mask": features["d_mask"]})
        return self.head(q * d).squeeze(-1).float() * 4

    @torch.no_grad()
    def score(self, queries, docs, batch_size=32):
        was = self.training
        self.eval()
        out = self(self.tokenize(list(queries), list(docs))).numpy()
        self.train(was)
        return out

    def save(self, directory):
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(self.state_dict(), str(directory / "model.safetensors"))
        (directory / "tiny.json").write_text(json.dumps({"dim": self.dim}))

    @classmethod
    def load(cls, directory):
        directory = Path(directory)
        model = cls(json.loads((directory / "tiny.json").read_text())["dim"])
        model.load_state_dict(load_file(str(directory / "model.safetensors")))
        return model


class TinyBi(nn.Module):
    """Bi-encoder stand-in with one shared tower and normalized embeddings."""

    def __init__(self, dim: int = 16, dropout: float = 0.1):
        super().__init__()
        self.dim = dim
        self.bag = _Bag(dim, dropout)

    def tokenize_queries(self, texts):
        return _ids(list(texts))

    def tokenize_docs(self, texts):
        return _ids(list(texts))

    def embed_queries(self, features):
        return nn.functional.normalize(self.bag(features), dim=-1)

    def embed_docs(self, features):
        return nn.functional.normalize(self.bag(features), dim=-1)

    @torch.no_grad()
    def encode_queries(self, texts, batch_size=64, show_progress=False):
        return self.embed_queries(self.tokenize_queries(texts)).numpy()

    @torch.no_grad()
    def encode_corpus(self, texts, batch_size=64, show_progress=False):
        return self.embed_docs(self.tokenize_docs(texts)).numpy()

    save = TinyCross.save


def write_toy_data(root: Path, n_queries: int = 24, n_docs: int = 60, seed: int = 0) -> tuple[Path, Path]:
    """A BEIR-layout toy corpus and a negatives file; returns (dataset dir, negatives path).

    Query i is about topic word ``t{i}``; its positive doc repeats that word; negatives are
    docs about other topics. Every query's negatives come from two fake retrievers.
    """
    import random

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    (root / "qrels").mkdir(exist_ok=True)
    filler = [f"w{k}" for k in range(40)]
    with (root / "corpus.jsonl").open("w") as out:
        for d in range(n_docs):
            words = [f"t{d % n_queries}"] * 3 + rng.sample(filler, 5)
            out.write(json.dumps({"_id": f"d{d}", "title": "", "text": " ".join(words)}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for q in range(n_queries):
            out.write(json.dumps({"_id": f"q{q}", "text": f"about t{q} {rng.choice(filler)}"}) + "\n")
    with (root / "qrels" / "train.tsv").open("w") as out:
        out.write("query-id\tcorpus-id\tscore\n")
        for q in range(n_queries):
            out.write(f"q{q}\td{q}\t1\n")
    negatives = root / "negatives.jsonl"
    with negatives.open("w") as out:
        for q in range(n_queries):
            pool = [d for d in range(n_docs) if d % n_queries != q]
            negs = [
                {
                    "docid": f"d{d}",
                    "rank": r + 1,
                    "score": 10.0 - r,
                    "retriever": "bm25" if r % 2 else "dense",
                }
                for r, d in enumerate(rng.sample(pool, 6))
            ]
            out.write(
                json.dumps(
                    {
                        "qid": f"q{q}",
                        "query": f"about t{q}",
                        "positives": [f"d{q}"],
                        "negatives": negs,
                    }
                )
                + "\n"
            )
    return root, negatives
