"""``ranker rerank DATASET --split SPLIT --run RUN.trec --model DIR --depth 100 --out RUN.trec``.

``DIR`` is a saved cross-encoder, or a saved bi-encoder (scored by its bilinear interaction
head when it has one, else by the inner product of its embeddings)."""

from __future__ import annotations

import argparse

from ranker.cli.parser import whole_number


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rerank",
        help="rerank a run's top documents with a cross-encoder or a bi-encoder",
        description="Score the top --depth documents of each query of --run with a cross-encoder "
        "saved by `ranker train` (or a bi-encoder: its interaction head or inner product) and "
        "write them, best first, to --out (atomically).",
    )
    parser.add_argument("dataset", help="dataset spec (folder, irds:<id>, or name)")
    parser.add_argument("--split", required=True, help="split whose queries the run answers (required)")
    parser.add_argument("--run", required=True, help="TREC run to rerank")
    parser.add_argument(
        "--model", required=True, help="saved cross-encoder or bi-encoder (interaction head) folder"
    )
    parser.add_argument("--depth", type=int, default=100, help="documents reranked per query")
    parser.add_argument("--batch-size", type=whole_number(1), default=64, help="pairs scored per batch")
    parser.add_argument(
        "--keep-rest",
        action="store_true",
        help="keep the documents below --depth after the reranked ones, in their "
        "original order (default: drop them)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--out", required=True, help="output TREC run (written atomically)")
    parser.add_argument("--tag", default="rerank", help="run tag in the output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.models import CrossEncoder
    from ranker.models.kind import require_kind
    from ranker.rerank import load_reranker, rerank
    from ranker.training.distributed import pick_device
    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset
    from retrievers.io.trec import read_run, write_run

    if args.depth < 1:
        raise InputError(f"--depth {args.depth}: expected >= 1")
    kind = require_kind(
        args.model,
        ("crossencoder", "biencoder", "sequence-classification"),
        "a cross-encoder (saved by `ranker train` with model_type cross, or a transformers "
        "*ForSequenceClassification folder with one label) or a bi-encoder saved by ranker",
    )
    dataset = load_dataset(args.dataset)
    queries = dataset.queries(args.split)
    run_in = read_run(args.run)
    wanted = {d for docs in run_in.values() for d in docs}
    texts = {doc.id: doc.contents for doc in dataset.docs() if doc.id in wanted}
    missing = wanted - texts.keys()
    if missing:
        raise InputError(
            f"{len(missing)} document(s) of the run are not in the dataset, e.g. {sorted(missing)[0]!r}",
            args.run,
        )
    try:
        if kind == "sequence-classification":
            model = CrossEncoder.from_pretrained(args.model)
        else:
            model = load_reranker(args.model, kind)
    except ValueError as err:
        raise InputError(f"cannot load this reranker: {err}", args.model) from None
    model = model.to(pick_device(args.device))
    reranked = rerank(
        model, queries, texts, run_in, depth=args.depth, batch_size=args.batch_size, keep_rest=args.keep_rest
    )
    write_run(args.out, reranked, tag=args.tag)
    return 0
