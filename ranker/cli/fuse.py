"""``ranker fuse``: combine TREC runs with ranx fusion (RRF by default)."""

from __future__ import annotations

import argparse

from retrievers.errors import InputError


def _param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got {text!r}") from None


def register(subparsers) -> None:
    """Add the ``fuse`` subcommand."""
    p = subparsers.add_parser(
        "fuse",
        help="fuse TREC runs (RRF and other ranx methods)",
        description="Fuse two or more TREC runs over the same queries.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="TREC run files")
    p.add_argument("--out", required=True, help="fused TREC run to write")
    p.add_argument(
        "--method",
        default="rrf",
        help="rrf (default), isr, log_isr, logn_isr, rbc, sum, max, min, med, anz, "
        "mnz, gmnz, bordafuse, condorcet, wsum, wmnz, w_bordafuse, w_condorcet, "
        "mixed",
    )
    p.add_argument(
        "--norm",
        default=None,
        help="score normalization: min-max, max, sum, zmuv, rank, borda (default: "
        "none for rank-based methods, min-max otherwise)",
    )
    p.add_argument(
        "--param",
        action="append",
        type=_param,
        default=[],
        metavar="NAME=VALUE",
        help="method parameter, e.g. k=60 for rrf (repeatable)",
    )
    p.add_argument("--weights", nargs="+", type=float, help="one weight per run (weighted methods)")
    p.add_argument("--depth", type=int, default=1000, help="documents kept per query (1000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Fuse the runs and write the result."""
    from retrievers.fusion import fuse_files

    params: dict = dict(args.param)
    if "k" in params:
        params["k"] = int(params["k"])
    if args.weights:
        params["weights"] = args.weights
    if args.depth < 1:
        raise InputError(f"--depth must be at least 1, got {args.depth}")
    fused = fuse_files(args.runs, args.out, args.method, args.norm, params, args.depth)
    print(f"fused {len(args.runs)} runs ({args.method}) over {len(fused)} queries -> {args.out}")
    return 0
