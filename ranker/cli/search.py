"""``ranker search``: search a split's queries against an index and write a TREC run."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "search",
        help="search a split's queries and write a TREC run",
        description="Search the queries of DATASET's --split against --index (BM25 or dense: "
        "the folder says which) and write a TREC run to --out (atomically: no "
        "partial file is ever left behind).",
    )
    parser.add_argument("dataset", help="folder, irds:<id>, or a name under $RANKER_DATA or data/")
    parser.add_argument("--split", default="test", help="which queries to search (default: test)")
    parser.add_argument("--index", required=True, help="index folder built by `ranker index`")
    parser.add_argument("--k", type=int, default=1000, help="hits per query (default: 1000)")
    parser.add_argument("--out", required=True, help="output TREC run file")
    parser.add_argument("--k1", type=float, default=0.9, help="BM25 k1 (default: 0.9)")
    parser.add_argument("--b", type=float, default=0.4, help="BM25 b (default: 0.4)")
    parser.add_argument("--threads", type=int, default=None, help="search threads (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="query encoding batch size for dense indexes (default: 64)"
    )
    gpu = parser.add_mutually_exclusive_group()
    gpu.add_argument(
        "--gpu",
        dest="gpu",
        action="store_true",
        default=None,
        help="dense: search on the GPU (default: when FAISS sees one)",
    )
    gpu.add_argument("--cpu", dest="gpu", action="store_false", help="dense: search on the CPU")
    parser.add_argument("--tag", default=None, help="run tag (default: the retriever's name)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.cli.retrieval import open_searcher
    from retrievers.io.dataset import load_dataset
    from retrievers.io.trec import write_run

    dataset = load_dataset(args.dataset)
    queries = dataset.queries(args.split)
    name, searcher = open_searcher(
        args.index, k1=args.k1, b=args.b, threads=args.threads, gpu=args.gpu, batch_size=args.batch_size
    )
    with searcher:
        hits = searcher.search_batch(queries, k=args.k)
        write_run(args.out, ((qid, dict(h)) for qid, h in hits), tag=args.tag or name)
    logger.info("wrote %d queries to %s", len(queries), args.out)
    return 0
