"""``ranker audit``: how many mined negatives are judged relevant in fuller qrels."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from retrievers.errors import InputError


def _edges(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ranks, got {text!r}") from None


def register(subparsers) -> None:
    """Add the ``audit`` subcommand."""
    p = subparsers.add_parser(
        "audit",
        help="false negatives among mined negatives, by rank bucket and retriever",
        description="Count the mined negatives that the full qrels judge relevant. Several "
        "negatives files are shown side by side (a retriever name found in more "
        "than one file is prefixed with the file's name).",
    )
    p.add_argument("negatives", nargs="+", help="negatives JSONL written by `ranker mine`")
    p.add_argument("--qrels", required=True, help="full qrels (TREC or BEIR TSV)")
    p.add_argument("--plot", help="write a bar chart (PNG, SVG or PDF)")
    p.add_argument("--json", dest="json_out", help="write the table as JSON")
    p.add_argument(
        "--buckets",
        type=_edges,
        default=[1, 11, 31, 101, 1001],
        help="rank bucket edges (default: 1,11,31,101,1001)",
    )
    p.add_argument("--min-relevance", type=int, default=1, help="lowest grade counted as relevant (1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the audit table; optionally plot it and save it as JSON."""
    from dataclasses import replace

    from retrievers.audit import audit, format_table, plot_audit, read_qrels_file
    from retrievers.io.atomic import atomic_write
    from retrievers.mining.negatives import iter_negatives

    if args.min_relevance < 1:
        raise InputError("--min-relevance must be at least 1")
    qrels = read_qrels_file(args.qrels)
    results = [
        audit(iter_negatives(path), qrels, args.buckets, args.min_relevance) for path in args.negatives
    ]
    seen: dict[str, int] = {}
    for rows, _ in results:
        for name in {r.retriever for r in rows}:
            seen[name] = seen.get(name, 0) + 1
    rows = [
        replace(r, retriever=f"{Path(path).stem}:{r.retriever}") if seen[r.retriever] > 1 else r
        for path, (file_rows, _) in zip(args.negatives, results, strict=True)
        for r in file_rows
    ]
    print(format_table(rows))
    for path, (_, info) in zip(args.negatives, results, strict=True):
        print(
            f"{path}: queries audited: {info['queries_audited']}; not in qrels: "
            f"{info['queries_not_in_qrels']}"
        )
    if args.plot:
        plot_audit(rows, args.plot)
    if args.json_out:
        with atomic_write(args.json_out) as out:
            json.dump(
                {
                    "files": {str(p): info for p, (_, info) in zip(args.negatives, results, strict=True)},
                    "rows": [{**vars(r), "rate": r.rate} for r in rows],
                },
                out,
                indent=2,
            )
    return 0
