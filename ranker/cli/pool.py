"""``ranker pool``: simulate a shallow judging pool over a deeply judged collection."""

from __future__ import annotations

import argparse
import json

from ranker.cli.parser import SEED


def register(subparsers) -> None:
    """Add the ``pool`` subcommand."""
    p = subparsers.add_parser(
        "pool",
        help="keep only the judgments a depth-D pool would find (pooling-bias simulator)",
        description="Write a copy of DATASET whose SPLIT qrels keep only the judgments inside a "
        "depth-D pool of the given runs (the union of each run's top D); the rest go to "
        "SPLIT-hidden, and the pool itself (each query's judged documents) to pool.SPLIT.tsv "
        "(pool.train.tsv with --train-fraction), for `ranker audit --pool` and "
        "`ranker cet-auc --pool`.",
    )
    p.add_argument("dataset", help="BEIR or MS MARCO folder, irds:<id>, or a name under data/")
    p.add_argument("--split", default="test", help="split to pool (default: test)")
    p.add_argument(
        "--pool-run",
        action="append",
        required=True,
        metavar="RUN",
        help="TREC run contributing to the pool (repeatable: e.g. BM25 and a dense run, as "
        "MS MARCO's and TREC's pools come from several systems)",
    )
    p.add_argument("--depth", type=int, required=True, help="pool depth per run")
    p.add_argument("--out", required=True, help="new dataset folder")
    p.add_argument(
        "--train-fraction",
        type=float,
        default=None,
        help="this fraction of the split's queries becomes a pooled train split; the rest "
        "a held-out split with full judgments (the collection's other splits are kept)",
    )
    p.add_argument(
        "--held-out-split",
        default="test",
        metavar="NAME",
        help="name of the held-out split with --train-fraction (test; e.g. dev when the "
        "collection already has a test split)",
    )
    p.add_argument("--seed", type=SEED, default=0, help="seed of the query split (0)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the pooled dataset and print its summary."""
    from retrievers.io.dataset import load_dataset
    from retrievers.judging_pool import simulate_pool

    summary = simulate_pool(
        load_dataset(args.dataset),
        args.split,
        args.pool_run,
        args.depth,
        args.out,
        args.train_fraction,
        args.seed,
        args.held_out_split,
    )
    print(json.dumps(summary["splits"], indent=2))
    return 0
