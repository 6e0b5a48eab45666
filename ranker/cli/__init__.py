"""The ``ranker`` command line: one entry point, one small module per subcommand.

Each module in :data:`COMMANDS` defines ``register(subparsers)``, which adds its parser and
sets ``func`` to a function taking the parsed arguments and returning an exit status. Heavy
imports happen inside those functions, so ``ranker --help`` is instant.
"""

from __future__ import annotations

import argparse
import errno
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
    "cache-states",
    "convert-gguf",
    "train",
    "train-summary",
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


# The output arguments of each command: every one is locked (retrievers.io.lock) before the
# command starts, so a second writer of the same output is refused at once. `train` and
# `pooling-search` lock the output_dir of their config, `run` its work folder.
OUTPUT_ARGS = {
    "index": ("index",),
    "search": ("out",),
    "evaluate": ("out",),
    "compare": ("out",),
    "encode": ("out",),
    "cache-states": ("out",),
    "convert-gguf": ("out",),
    "rerank": ("out",),
    "fuse": ("out",),
    "mine": ("out",),
    "pool": ("out",),
    "audit": ("json_out",),
    "cet-auc": ("out",),
    "pooling-table": ("out", "json"),
    "train-summary": ("out",),
}
# Commands whose torchrun processes all write one output folder (a shard each): only rank 0
# takes the lock, so the other ranks are not refused.
SHARDED = {"encode", "cache-states"}


def outputs_of(args: argparse.Namespace) -> list[str]:
    """The output paths given to the parsed command (those :data:`OUTPUT_ARGS` names)."""
    if args.command in SHARDED and os.environ.get("RANK", "0") != "0":
        return []
    return [value for name in OUTPUT_ARGS.get(args.command, ()) if (value := getattr(args, name, None))]


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
    if quiet:  # read when tqdm / huggingface_hub are imported (and by retrievers.progress)
        os.environ["TQDM_DISABLE"] = "1"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
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


def os_error_line(err: OSError, outputs: Sequence[str]) -> str | None:
    """``PATH: cause`` for an error of the file system (a full or read-only disk, a folder
    removed or made unwritable while a command ran); ``None`` for other errors (bugs)."""
    from retrievers.io.atomic import STORAGE_ERRORS

    if err.errno not in STORAGE_ERRORS | {errno.ENOENT, errno.EACCES, errno.EPERM, errno.ENOTDIR}:
        return None
    where = err.filename or (", ".join(map(str, outputs)) if outputs else None)
    if where is None:
        return None
    return f"{where}: {err.strerror}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for bad input, as argparse does)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.verbose, args.quiet)
    from retrievers.io.lock import output_locks

    outputs = outputs_of(args)
    try:
        with output_locks(outputs):
            return int(args.func(args) or 0)
    except InputError as err:
        print(f"ranker {args.command}: error: {err}", file=sys.stderr)
        return 2
    except FileExistsError as err:
        print(f"ranker {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # the file system failed under the command: full, read-only, removed
        message = os_error_line(err, outputs)
        if message is None:
            raise
        logger.debug("the failure in full", exc_info=True)
        print(f"ranker {args.command}: error: {message}", file=sys.stderr)
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
