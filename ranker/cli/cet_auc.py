"""``ranker cet-auc``: do CET's weights separate hidden positives from true negatives?"""

from __future__ import annotations

import argparse
import json
import logging

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cet-auc",
        help="ROC AUC of CET weights: hidden positives vs true negatives",
        description="Read the weights.jsonl a CET run of `ranker train` dumped and the full qrels "
        "of its training queries; report how well the selection model's weights "
        "(lower for hidden positives) and the relevance model's (higher) separate "
        "hidden positives from true negatives, as ROC AUC (0.5: no separation).",
    )
    parser.add_argument(
        "weights",
        nargs="+",
        help="weights.jsonl from `ranker train` (selection != none); several (e.g. one per seed) "
        "are pooled, each file's last weights counted on their own",
    )
    parser.add_argument("--qrels", required=True, help="full qrels (TREC or BEIR TSV)")
    parser.add_argument("--min-relevance", type=int, default=1, help="lowest grade counted as relevant (1)")
    parser.add_argument(
        "--pool",
        metavar="FILE",
        help="the judging pool (pool.SPLIT.tsv from `ranker pool`): also report how well the "
        "weights tell judged from unjudged negatives (auc_judged, pooled and per query), f (the "
        "share of the weighted true negatives that were judged) and the ceiling 0.5 + f/2 of "
        "auc_selection",
    )
    parser.add_argument("--out", help="also write the result as JSON here")
    parser.add_argument(
        "--plot",
        metavar="FILE",
        help="draw the weights' ECDFs, hidden positives vs true negatives (.png/.pdf/.svg)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.training.weight_auc import last_weights, plot_weights, split_weights, weight_auc, write_json
    from retrievers.audit import read_qrels_file

    qrels = read_qrels_file(args.qrels)
    # Each file's queries get a key of their own, so several runs' weights stay separate samples.
    weights = {
        (f"{i}:{qid}", docid): values
        for i, path in enumerate(args.weights)
        for (qid, docid), values in last_weights(path).items()
    }
    qrels = {f"{i}:{qid}": docs for i in range(len(args.weights)) for qid, docs in qrels.items()}
    result = {"weight_files": len(args.weights), **weight_auc(weights, qrels, args.min_relevance)}
    if args.pool:
        from ranker.training.weight_auc import selection_diagnostics
        from retrievers.judging_pool import read_pool

        pool = {
            f"{i}:{qid}": docs for i in range(len(args.weights)) for qid, docs in read_pool(args.pool).items()
        }
        result.update(selection_diagnostics(weights, qrels, pool, args.min_relevance))
    if not result["hidden_positives"]:
        logger.warning(
            "no hidden positive was sampled among the %d judged negatives: the AUCs are undefined "
            "(null); mine deeper or use fuller qrels",
            result["negatives"],
        )
    if args.plot:
        plot_weights(split_weights(weights, qrels, args.min_relevance), args.plot)
    from ranker.evaluation.report import nan_as_null

    clean = nan_as_null(result)
    if args.out:
        write_json(args.out, clean)
    print(json.dumps(clean, indent=1, allow_nan=False))
    return 0
