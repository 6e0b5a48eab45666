"""``ranker search``: search a split's queries against an index and write a TREC run."""

from __future__ import annotations

import argparse
import logging

logger = logging.getLogger(__name__)

QUERY_DTYPE_NOTE = (
    " of dense queries (default: the one the index records, so queries are encoded as its "
    "documents were; float32 for indexes that record none)"
)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ranker.cli.retrieval import MODEL_LIMIT, add_dtype_arg, add_max_length_arg

    parser = subparsers.add_parser(
        "search",
        help="search a split's queries (or a queries file) and write a TREC run",
        description="Search the queries of DATASET's --split, or of a bare --queries file, "
        "against --index (BM25 or dense: the folder says which) and write a TREC run to --out "
        "(atomically: no partial file is ever left behind).",
    )
    parser.add_argument("dataset", nargs="?", help="folder, irds:<id>, or a name under $RANKER_DATA or data/")
    parser.add_argument(
        "--queries",
        metavar="FILE",
        help="a bare queries file instead of DATASET: qid<TAB>text (.tsv) or JSON lines with "
        "_id/id and text (.jsonl); gzip allowed",
    )
    parser.add_argument("--split", default=None, help="which queries of DATASET to search (default: test)")
    parser.add_argument("--index", required=True, help="index folder built by `ranker index`")
    parser.add_argument("--k", type=int, default=1000, help="hits per query (default: 1000)")
    parser.add_argument("--out", required=True, help="output TREC run file")
    parser.add_argument("--k1", type=float, default=0.9, help="BM25 k1 (default: 0.9)")
    parser.add_argument("--b", type=float, default=0.4, help="BM25 b (default: 0.4)")
    parser.add_argument("--threads", type=int, default=None, help="search threads (default: all)")
    parser.add_argument(
        "--batch-size", type=int, default=64, help="query encoding batch size for dense indexes (default: 64)"
    )
    add_max_length_arg(parser, "dense queries", "the index's --max-length, else " + MODEL_LIMIT)
    add_dtype_arg(parser, None, QUERY_DTYPE_NOTE)
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


def load_queries(dataset: str | None, queries_file: str | None, split: str | None) -> dict[str, str]:
    """The queries of ``dataset``'s ``split`` (default test), or of a bare queries file."""
    from retrievers.errors import InputError

    if queries_file is not None:
        if dataset is not None:
            raise InputError(f"give a DATASET or --queries, not both (got {dataset!r} and --queries)")
        if split is not None:
            raise InputError("--split selects a dataset's queries; a --queries file has no splits")
        from retrievers.io.adhoc import read_queries_file

        return read_queries_file(queries_file)
    if dataset is None:
        raise InputError("give a DATASET (folder, irds:<id> or name) or --queries FILE")
    from retrievers.io.dataset import load_dataset

    return load_dataset(dataset).queries(split or "test")


def run(args: argparse.Namespace) -> int:
    from ranker.cli.retrieval import open_searcher
    from retrievers.io.trec import write_run

    queries = load_queries(args.dataset, args.queries, args.split)
    name, searcher = open_searcher(
        args.index,
        k1=args.k1,
        b=args.b,
        threads=args.threads,
        gpu=args.gpu,
        batch_size=args.batch_size,
        max_length=args.max_length,
        dtype=args.dtype,
    )
    with searcher:
        hits = searcher.search_batch(queries, k=args.k)
        write_run(args.out, ((qid, dict(h)) for qid, h in hits), tag=args.tag or name)
    logger.info("wrote %d queries to %s", len(queries), args.out)
    return 0
