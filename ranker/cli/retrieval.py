"""Shared CLI wiring for retrieval: dense index options, and opening any index for search.

Index folders record which retriever built them (``ranker-index.json``), so ``ranker
search`` and ``ranker mine`` open BM25 and dense indexes the same way: :func:`open_searcher`
dispatches on that record and, for dense indexes, loads the recorded model with
:func:`ranker.models.load_biencoder`.
"""

from __future__ import annotations

import argparse
import logging
from functools import cache
from pathlib import Path
from typing import Any

from retrievers.errors import InputError

logger = logging.getLogger(__name__)


def add_dense_index_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``ranker index --retriever dense``."""
    group = parser.add_argument_group("dense indexes (--retriever dense)")
    group.add_argument(
        "--model", help="encoder: a ranker or sentence-transformers folder, or a transformers model"
    )
    group.add_argument(
        "--pooling", default=None, help="pooling mode (default: the model's own, else mean for encoders)"
    )
    group.add_argument(
        "--attention",
        choices=["causal", "bidirectional"],
        default=None,
        help="decoder attention (default: the model's own; causal for a plain "
        "decoder); recorded in the index",
    )
    group.add_argument(
        "--faiss",
        choices=["flat", "hnsw", "ivfpq"],
        default="flat",
        help="FAISS index: flat (exact), hnsw or ivfpq (default: flat)",
    )
    group.add_argument(
        "--no-normalize",
        dest="normalize",
        action="store_false",
        help="keep raw vectors (dot product) instead of L2-normalizing (cosine)",
    )
    group.add_argument("--batch-size", type=int, default=64, help="encoding batch size")
    group.add_argument("--shard-size", type=int, default=4096, help="documents per resumable encoding shard")
    group.add_argument("--hnsw-m", type=int, default=32, help="HNSW neighbours per node")
    group.add_argument("--ef-search", type=int, default=128, help="HNSW search beam width")
    group.add_argument("--nlist", type=int, default=0, help="IVF lists (0: 4 * sqrt(n))")
    group.add_argument("--pq-m", type=int, default=0, help="PQ sub-quantizers (0: automatic)")
    group.add_argument("--nprobe", type=int, default=16, help="IVF lists probed per query")


class _Batched:
    """Fixes the batch size of a bi-encoder's encode calls."""

    def __init__(self, model: Any, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def encode(self, texts):
        return self.model.encode(texts, batch_size=self.batch_size)

    def encode_queries(self, texts):
        return self.model.encode_queries(texts, batch_size=self.batch_size)

    def encode_corpus(self, texts):
        return self.model.encode_corpus(texts, batch_size=self.batch_size)


@cache
def load_encoder(
    model: str, pooling: str | None, batch_size: int = 64, attention: str | None = None
) -> _Batched:
    """Load (once per process) a bi-encoder through :func:`ranker.models.load_biencoder`."""
    from ranker.models import load_biencoder

    options = {"attention": attention} if attention else {}
    try:
        return _Batched(load_biencoder(model, pooling, **options), batch_size)
    except (OSError, ValueError) as err:
        raise InputError(f"could not load model {model!r}: {err}") from None


def build_dense(args: argparse.Namespace, dataset: Any, index_dir: Path) -> Path:
    """Build a dense index from parsed ``ranker index`` arguments."""
    from retrievers.dense import build_dense_index
    from retrievers.faiss_index import FaissConfig

    if not args.model:
        raise InputError("--retriever dense needs --model")
    config = FaissConfig(
        kind=args.faiss,
        hnsw_m=args.hnsw_m,
        ef_search=args.ef_search,
        nlist=args.nlist,
        pq_m=args.pq_m,
        nprobe=args.nprobe,
    )
    attention = getattr(args, "attention", None)
    encoder = load_encoder(args.model, args.pooling, args.batch_size, attention)
    return build_dense_index(
        dataset,
        index_dir,
        encoder,
        model=args.model,
        pooling=args.pooling,
        encoder_options={"attention": attention} if attention else None,
        faiss_config=config,
        normalize=args.normalize,
        shard_size=args.shard_size,
    )


def open_searcher(
    index_dir: str | Path,
    *,
    k1: float = 0.9,
    b: float = 0.4,
    threads: int | None = None,
    gpu: bool | None = None,
    batch_size: int = 64,
) -> tuple[str, Any]:
    """Open any index folder for search; returns ``(retriever name, searcher)``."""
    from retrievers.index_meta import read_meta

    meta = read_meta(index_dir)
    kind = meta["retriever"]
    if kind == "dense":
        from retrievers.dense import DenseSearcher

        options = meta.get("encoder_options") or {}
        encoder = load_encoder(meta["model"], meta.get("pooling"), batch_size, options.get("attention"))
        return kind, DenseSearcher(index_dir, encoder, gpu=gpu)
    if kind == "bm25":
        from retrievers.bm25 import BM25Searcher

        return kind, BM25Searcher(index_dir, k1=k1, b=b, threads=threads)
    raise InputError(f"unknown retriever {kind!r} in the index metadata", index_dir)


def open_searchers(index_dirs: list[str], **kw: Any) -> dict[str, Any]:
    """Open several indexes, labelled by retriever (``name:folder`` when a name repeats)."""
    opened = [open_searcher(d, **kw) for d in index_dirs]
    names = [name for name, _ in opened]
    labels = [
        name if names.count(name) == 1 else f"{name}:{Path(d).name}"
        for (name, _), d in zip(opened, index_dirs, strict=True)
    ]
    if len(set(labels)) != len(labels):
        raise InputError("the same index is given twice")
    return {label: searcher for label, (_, searcher) in zip(labels, opened, strict=True)}
