"""``ranker index``: build a retrieval index of a dataset's corpus."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ranker.cli.retrieval import add_dense_index_args

    parser = subparsers.add_parser(
        "index",
        help="build a BM25 (Lucene) or dense (FAISS) index of a corpus",
        description="Build an index of DATASET's corpus in --index DIR. The folder records what "
        "built it (ranker-index.json), so `ranker search` needs only the folder. "
        "Dense encoding is resumable: rerun the same command after an interruption.",
    )
    parser.add_argument(
        "dataset",
        nargs="?",
        help="folder (BEIR or MS MARCO layout), irds:<id>, or a name under $RANKER_DATA or data/ "
        "(optional with --embeddings)",
    )
    parser.add_argument("--index", required=True, help="output folder (must not exist or be empty)")
    parser.add_argument("--retriever", choices=["bm25", "dense"], default="bm25", help="index type")
    parser.add_argument("--threads", type=int, default=None, help="indexing threads (default: all)")
    add_dense_index_args(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset

    if args.embeddings is not None:
        if args.retriever != "dense":
            raise InputError("--embeddings builds a dense index; add --retriever dense")
        from ranker.cli.retrieval import build_dense_from_embeddings

        dataset = load_dataset(args.dataset) if args.dataset is not None else None
        build_dense_from_embeddings(args, dataset, Path(args.index))
        return 0
    if args.dataset is None:
        raise InputError("give the DATASET to index (or --retriever dense --embeddings DIR)")
    dataset = load_dataset(args.dataset)
    if args.retriever == "dense":
        from ranker.cli.retrieval import build_dense

        build_dense(args, dataset, Path(args.index))
        return 0
    from retrievers.bm25 import build_bm25_index

    build_bm25_index(dataset, args.index, threads=args.threads)
    return 0
