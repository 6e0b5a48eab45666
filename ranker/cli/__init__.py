"""The ``ranker`` command line: one entry point, one small module per subcommand.

Each module in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function taking the parsed arguments and returning an exit status. Heavy
imports happen inside those functions, so ``ranker --help`` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from ranker.cli.examples import epilog
from ranker.cli.parser import SubcommandParser
from retrievers.errors import InputError

logger = logging.getLogger("ranker")

# Subcommand modules, in the order --help lists them.
COMMANDS = [
    "index",
    "search",
    "evaluate",
    "compare",
    "encode",
    "convert-gguf",
    "train",
    "rerank",
    "fuse",
    "mine",
    "score",
    "pool",
    "audit",
    "cet-auc",
    "run",
    "pooling-search",
    "pooling-table",
]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="ranker",
        description="Retrieve, mine hard negatives, train rankers with pooling-bias correction "
        "(CET), and evaluate them.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="only warnings and errors: no progress bars, no INFO lines"
    )
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=SubcommandParser
    )
    for name in COMMANDS:
        importlib.import_module(f"ranker.cli.{name.replace('-', '_')}").register(subparsers)
        subparsers.choices[name].epilog = epilog(name)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Log to stderr; INFO by default. ``quiet``: warnings and errors only, and no progress
    bars (tqdm reads ``TQDM_DISABLE`` when first imported, which the commands do lazily)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
        force=True,
    )
    if verbose < 2:
        for noisy in ("numba", "urllib3", "filelock", "matplotlib", "jnius", "faiss"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except InputError as err:
        print(f"ranker {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"ranker {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ranker {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        from retrievers.java import JavaUnavailableError

        if isinstance(err, JavaUnavailableError):
            print(f"ranker {args.command}: error: {err}", file=sys.stderr)
            return 2
        raise
