"""``ranker audit``: how many mined negatives are judged relevant in fuller qrels."""

from __future__ import annotations

import argparse
import json
import math
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
    p.add_argument(
        "--pool",
        metavar="FILE",
        help="the judging pool (pool.SPLIT.tsv from `ranker pool`): also report f, the share of "
        "the mined true negatives that were judged, and the selection-AUC ceiling 0.5 + f/2",
    )
    p.set_defaults(func=run)


def _json_safe(rows: list[dict]) -> list[dict]:
    """NaN (no true negative) written as null."""
    return [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()} for r in rows]


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
    coverage = []
    if args.pool:
        from retrievers.audit import pool_coverage
        from retrievers.judging_pool import read_pool

        pool = read_pool(args.pool)
        for path in args.negatives:
            row = {
                "negatives_file": str(path),
                **pool_coverage(iter_negatives(path), qrels, pool, args.min_relevance),
            }
            coverage.append(row)
            print(
                f"{path}: f = {row['f']:.3f} of {row['true_negatives']} mined true negatives judged; "
                f"selection-AUC ceiling {row['auc_ceiling']:.3f}"
            )
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
                    **({"pool_coverage": _json_safe(coverage)} if coverage else {}),
                },
                out,
                indent=2,
            )
    return 0
