"""``ranker train CONFIG.yaml [--set KEY=VALUE ...] [--resume]``."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


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


@contextlib.contextmanager
def main_process_lock(output_dir: str | Path) -> Iterator[None]:
    """Lock ``output_dir`` for this training run (only in torchrun's rank 0: the other ranks
    of the same run share the output). A run that fails in a folder it created, before any
    checkpoint to resume from, removes that folder."""
    from retrievers.io.lock import output_lock

    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    out = Path(output_dir)
    new = not out.exists()
    with output_lock(out):
        try:
            yield
        except BaseException:
            if new and not (out / "checkpoints" / "latest.json").exists():
                shutil.rmtree(out, ignore_errors=True)  # nothing to resume: leave no half a run
            raise


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

    with main_process_lock(config.output_dir):
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
