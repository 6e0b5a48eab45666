"""``ranker train CONFIG.yaml [--set KEY=VALUE ...] [--resume]``."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a cross-encoder or bi-encoder on mined negatives (optionally CET)",
        description="Train a ranker from a YAML config (see docs/training.md). Under "
        "`torchrun --nproc_per_node N -m ranker train ...` it runs DDP.",
    )
    parser.add_argument("config", nargs="?", help="YAML config file")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. --set lr=1e-5",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the latest checkpoint in output_dir"
    )
    parser.add_argument("--help-config", action="store_true", help="list every config key and exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ranker.training.config import describe_keys, load_config

    if args.help_config:
        print(describe_keys())
        return 0
    if args.config is None and not args.overrides:
        from retrievers.errors import InputError

        raise InputError("give a CONFIG.yaml (or --set KEY=VALUE for every required key)")
    config = load_config(args.config, args.overrides)
    from ranker.training.pipeline import train_from_config

    result = train_from_config(config, resume=args.resume)
    print(
        json.dumps(
            {
                "output_dir": config.output_dir,
                "steps": result.steps,
                "first_loss": result.first_loss,
                "final_loss": result.final_loss,
                "best": result.best,
            }
        )
    )
    return 0
