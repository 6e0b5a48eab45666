"""``ranker audit``: how many mined negatives are judged relevant in fuller qrels."""

from __future__ import annotations

import argparse
import json

from retrievers.errors import InputError


def _edges(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ranks, got {text!r}") from None


def register(subparsers) -> None:
    """Add the ``audit`` subcommand."""
    p = subparsers.add_parser(
        "audit", help="false negatives among mined negatives, by rank bucket and retriever",
        description="Count the mined negatives that the full qrels judge relevant.")
    p.add_argument("negatives", help="negatives JSONL written by `ranker mine`")
    p.add_argument("--qrels", required=True, help="full qrels (TREC or BEIR TSV)")
    p.add_argument("--plot", help="write a bar chart (PNG, SVG or PDF)")
    p.add_argument("--json", dest="json_out", help="write the table as JSON")
    p.add_argument("--buckets", type=_edges, default=[1, 11, 31, 101, 1001],
                   help="rank bucket edges (default: 1,11,31,101,1001)")
    p.add_argument("--min-relevance", type=int, default=1,
                   help="lowest grade counted as relevant (1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the audit table; optionally plot it and save it as JSON."""
    from retrievers.audit import audit, format_table, plot_audit, read_qrels_file
    from retrievers.io.atomic import atomic_write
    from retrievers.mining.negatives import iter_negatives

    if args.min_relevance < 1:
        raise InputError("--min-relevance must be at least 1")
    rows, info = audit(iter_negatives(args.negatives), read_qrels_file(args.qrels),
                       args.buckets, args.min_relevance)
    print(format_table(rows))
    print(f"queries audited: {info['queries_audited']}; not in qrels: "
          f"{info['queries_not_in_qrels']}")
    if args.plot:
        plot_audit(rows, args.plot)
    if args.json_out:
        with atomic_write(args.json_out) as out:
            json.dump({**info, "rows": [{**vars(r), "rate": r.rate} for r in rows]}, out,
                      indent=2)
    return 0
