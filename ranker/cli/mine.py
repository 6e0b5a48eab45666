"""``ranker mine``: hard negatives for a dataset split from one or more indexes."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from pathlib import Path

from ranker.cli.parser import SEED, whole_number
from retrievers.errors import InputError

logger = logging.getLogger(__name__)


def register(subparsers) -> None:
    """Add the ``mine`` subcommand."""
    p = subparsers.add_parser(
        "mine",
        help="mine hard negatives from BM25 and/or dense indexes",
        description="Retrieve candidates for each query of SPLIT, filter them, sample "
        "negatives (seeded) and write the toolkit's negatives JSONL. Rerun the "
        "same command to resume an interrupted run.",
    )
    p.add_argument("dataset", help="BEIR or MS MARCO folder, irds:<id>, or a name under data/")
    p.add_argument("--split", default="train", help="split whose queries are mined (default: train)")
    p.add_argument(
        "--index",
        action="append",
        required=True,
        metavar="DIR",
        help="index folder from `ranker index` (repeatable: candidates are merged)",
    )
    p.add_argument(
        "--evidence-index",
        action="append",
        default=[],
        metavar="DIR",
        help="index whose ranks and scores are recorded for every negative and positive "
        "without contributing candidates, e.g. the index of the run that built the judging "
        "pool, for CET's feature selection model (repeatable)",
    )
    p.add_argument("--out", required=True, help="negatives JSONL to write")
    p.add_argument("--depth", type=int, default=100, help="candidates per query and index (100)")
    p.add_argument("--min-rank", type=int, default=1, help="best rank a negative may have (1)")
    p.add_argument(
        "--max-rank", type=int, default=None, help="worst rank a negative may have (default: --depth)"
    )
    p.add_argument("--num-negatives", type=int, default=8, help="negatives per query (8)")
    p.add_argument(
        "--sampling",
        choices=["top", "random", "simans"],
        default="top",
        help="keep the top-ranked, a uniform random sample, or a SimANS sample of the "
        "candidates (top). simans (Zhou et al., EMNLP 2022): without replacement, "
        "probability proportional to exp(-a (s(q,d-) - s(q,d+) - b)^2), s the mining "
        "retriever's scores, s(q,d+) the mean over the query's positives",
    )
    p.add_argument(
        "--simans-a", type=float, default=None, metavar="A", help="SimANS a (sharpness; default 1.0)"
    )
    p.add_argument(
        "--simans-b",
        type=float,
        default=None,
        metavar="B",
        help="SimANS b (peak of the sampling probability, relative to the positive's score; default 0.0)",
    )
    p.add_argument("--seed", type=SEED, default=42, help="seed of the random sampler (42)")
    p.add_argument(
        "--max-relative",
        type=float,
        default=None,
        metavar="FRACTION",
        help="TopK-PercPos: drop candidates scoring above FRACTION x the positive's score (e.g. 0.95)",
    )
    p.add_argument(
        "--margin",
        type=float,
        default=None,
        help="TopK-MarginPos: drop candidates scoring above the positive's score minus MARGIN",
    )
    p.add_argument(
        "--cross-encoder",
        default=None,
        metavar="MODEL",
        help="rescore candidates with this cross-encoder (RocketQA denoising)",
    )
    p.add_argument(
        "--ce-threshold", type=float, default=None, help="drop candidates the cross-encoder scores above this"
    )
    p.add_argument(
        "--promote-above",
        type=float,
        default=None,
        metavar="MARGIN",
        help="relabelling (RLHN, Thakur et al. 2025): candidates the --judge scores above the "
        "query's best positive by more than MARGIN become extra positives, marked 'promoted' "
        "with the judge's name and score (judged after the rank window, before other filters)",
    )
    p.add_argument(
        "--judge",
        default=None,
        metavar="MODEL",
        help="the model that judges candidates for --promote-above: any cross-encoder or "
        "bi-encoder ranker loads",
    )
    p.add_argument(
        "--min-relevance", type=int, default=1, help="lowest qrels grade that counts as a positive (1)"
    )
    p.add_argument(
        "--exclude-relevant",
        metavar="QRELS",
        default=None,
        help="never take a document these qrels judge relevant (grade >= --min-relevance) as a "
        "negative, e.g. the SPLIT-hidden qrels `ranker pool` writes: the clean-negatives oracle "
        "(the pool's positives, no hidden positive among the negatives)",
    )
    p.add_argument("--chunk-size", type=int, default=256, help="queries retrieved at a time")
    p.add_argument(
        "--export",
        action="append",
        default=[],
        choices=["sentence-transformers", "flagembedding", "tevatron"],
        help="also write OUT_STEM.<format>.jsonl in this trainer's layout (repeatable)",
    )
    p.add_argument("--k1", type=float, default=0.9, help="BM25 k1 for BM25 indexes (0.9)")
    p.add_argument("--b", type=float, default=0.4, help="BM25 b for BM25 indexes (0.4)")
    p.add_argument("--batch-size", type=whole_number(1), default=64, help="encoding batch size (64)")
    from ranker.cli.retrieval import MODEL_LIMIT, add_dtype_arg, add_max_length_arg
    from ranker.cli.search import QUERY_DTYPE_NOTE

    add_max_length_arg(p, "dense queries", "the index's --max-length, else " + MODEL_LIMIT)
    add_dtype_arg(p, None, QUERY_DTYPE_NOTE)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Mine, write the negatives (and exports), and print the statistics."""
    from ranker.cli.retrieval import open_searchers
    from retrievers.io.dataset import load_dataset
    from retrievers.mining import MiningConfig

    if (args.promote_above is None) != (args.judge is None):
        raise InputError("--promote-above and --judge go together")
    if args.sampling != "simans" and (args.simans_a is not None or args.simans_b is not None):
        raise InputError("--simans-a and --simans-b need --sampling simans")
    config = MiningConfig(
        depth=args.depth,
        min_rank=args.min_rank,
        max_rank=args.max_rank,
        num_negatives=args.num_negatives,
        sampling=args.sampling,
        seed=args.seed,
        max_relative=args.max_relative,
        margin=args.margin,
        ce_threshold=args.ce_threshold,
        min_relevance=args.min_relevance,
        chunk_size=args.chunk_size,
        promote_margin=args.promote_above,
        simans_a=1.0 if args.simans_a is None else args.simans_a,
        simans_b=0.0 if args.simans_b is None else args.simans_b,
    )
    if (args.cross_encoder is None) != (args.ce_threshold is None):
        raise InputError("--cross-encoder and --ce-threshold go together")
    out = Path(args.out)
    dataset = load_dataset(args.dataset)
    source = {
        "dataset": dataset.describe(),
        "split": args.split,
        "indexes": [str(Path(i).resolve()) for i in args.index],
        "evidence_indexes": [str(Path(i).resolve()) for i in args.evidence_index],
        "cross_encoder": args.cross_encoder,
        "judge": args.judge,
        **({"exclude_relevant": str(Path(args.exclude_relevant).resolve())} if args.exclude_relevant else {}),
    }
    if out.exists():
        return _finish_exports(args, config, dataset, out, source)
    queries = dataset.queries(args.split)
    qrels = dataset.qrels(args.split)
    opened = open_searchers(
        args.index + args.evidence_index,
        k1=args.k1,
        b=args.b,
        batch_size=args.batch_size,
        max_length=args.max_length,
        dtype=args.dtype,
    )
    labels = list(opened)
    searchers = {name: opened[name] for name in labels[: len(args.index)]}
    evidence = {name: opened[name] for name in labels[len(args.index) :]}
    with contextlib.ExitStack() as stack:
        for searcher in opened.values():
            stack.enter_context(searcher)
        return _mine(args, config, dataset, queries, qrels, searchers, out, source, evidence)


def _export_path(out: Path, fmt: str) -> Path:
    return out.with_name(f"{out.stem}.{fmt}.jsonl")


def _finish_exports(args, config, dataset, out: Path, source: dict) -> int:
    """``out`` exists: if the same command wrote it and an export is missing (a run killed
    while exporting), write the missing exports; otherwise refuse to overwrite it."""
    from retrievers.mining import export_negatives
    from retrievers.mining.negatives import iter_negatives
    from retrievers.mining.pipeline import same_source

    missing = [fmt for fmt in args.export if not _export_path(out, fmt).exists()]
    if not missing or not same_source(out, config, source):
        raise FileExistsError(f"{out}: output exists; remove it or choose another name")
    logger.info("%s was mined by this same command; writing the missing exports", out)
    docs = {doc.id: doc for doc in dataset.docs()}
    for fmt in missing:
        target = _export_path(out, fmt)
        rows = export_negatives(iter_negatives(out), fmt, docs, target)
        print(f"exported {rows} rows ({fmt}) -> {target}")
    return 0


def _mine(args, config, dataset, queries, qrels, searchers, out, source, evidence) -> int:
    from retrievers.mining import export_negatives, mine, positives_from_qrels
    from retrievers.mining.negatives import iter_negatives

    need_texts = bool(args.export) or args.cross_encoder is not None or args.judge is not None
    docs = {doc.id: doc for doc in dataset.docs()} if need_texts else None
    if all(hasattr(s, "__contains__") for s in searchers.values()):
        first = next(iter(searchers.values()))
        known = first.__contains__
    else:
        ids = set(docs) if docs is not None else {doc.id for doc in dataset.docs()}
        known = ids.__contains__
    positives = positives_from_qrels(
        queries, qrels, args.min_relevance, known, f"{dataset.name} ({args.split} qrels)"
    )
    exclude = None
    if args.exclude_relevant:
        from retrievers.io.adhoc import read_qrels_file

        judged = read_qrels_file(args.exclude_relevant)
        exclude = {
            qid: [d for d, rel in docs.items() if rel >= args.min_relevance] for qid, docs in judged.items()
        }
    scorer = None
    if args.cross_encoder is not None:
        from ranker.models.judge import load_cross_encoder

        model = load_cross_encoder(args.cross_encoder)

        def scorer(qs, ds):
            return model.score(qs, ds, batch_size=args.batch_size)

    judge = None
    if args.judge is not None:
        from ranker.models.judge import load_judge

        judge = load_judge(args.judge, batch_size=args.batch_size)
    stats = mine(
        queries,
        positives,
        searchers,
        out,
        config,
        scorer=scorer,
        doc_text=(lambda d: docs[d].contents) if docs is not None else None,
        source=source,
        evidence=evidence,
        judge=judge,
        exclude=exclude,
    )
    for fmt in args.export:
        target = _export_path(out, fmt)
        rows = export_negatives(iter_negatives(out), fmt, docs or {}, target)  # docs: read for exports
        print(f"exported {rows} rows ({fmt}) -> {target}")
    print(json.dumps({k: v for k, v in stats.items() if k != "config"}, indent=2))
    return 0
