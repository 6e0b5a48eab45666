"""``ranker pooling-search CONFIG.yaml [--train-best]``: balanced mixture of supernets."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pooling-search",
        help="rank pooling configurations with a balanced mixture of supernets",
        description="Train K supernets sharing a backbone over a space of pooling "
        "configurations (balanced assignment), rank every configuration on a dev split, write "
        "search.json / search.md / search.png and best.yaml (a `ranker train` config). See "
        "docs/pooling.md.",
    )
    parser.add_argument("config", help="search YAML (train:, space:, search:)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a key of the train: or search: section (repeatable), e.g. "
        "--set train.model=/path/to/model --set search.steps=96",
    )
    parser.add_argument("--train-best", action="store_true", help="then train best.yaml with `ranker train`")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ranker.cli.train import main_process_lock
    from ranker.search.run import pooling_search, ranking_table, read_search_config
    from ranker.training.config import parse_overrides

    overrides = parse_overrides(args.set)
    train, _, _ = read_search_config(args.config, overrides)
    with main_process_lock(train.output_dir):
        results = pooling_search(args.config, overrides)
        sys.stdout.write(ranking_table(results))
        if args.train_best:
            from ranker.training.config import load_config
            from ranker.training.pipeline import train_from_config

            train_from_config(load_config(Path(train.output_dir) / "best.yaml"))
    return 0
