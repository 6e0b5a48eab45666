"""``ranker cet-auc``: do CET's weights separate hidden positives from true negatives?"""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cet-auc",
        help="ROC AUC of CET weights: hidden positives vs true negatives",
        description="Read the weights.jsonl a CET run of `ranker train` dumped and the full qrels "
        "of its training queries; report how well the selection model's weights "
        "(lower for hidden positives) and the relevance model's (higher) separate "
        "hidden positives from true negatives, as ROC AUC (0.5: no separation).",
    )
    parser.add_argument("weights", help="weights.jsonl from `ranker train` (selection != none)")
    parser.add_argument("--qrels", required=True, help="full qrels (TREC or BEIR TSV)")
    parser.add_argument("--min-relevance", type=int, default=1, help="lowest grade counted as relevant (1)")
    parser.add_argument("--out", help="also write the result as JSON here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.training.weight_auc import last_weights, weight_auc, write_json
    from retrievers.audit import read_qrels_file

    result = weight_auc(last_weights(args.weights), read_qrels_file(args.qrels), args.min_relevance)
    if args.out:
        write_json(args.out, result)
    print(json.dumps(result, indent=1))
    return 0
