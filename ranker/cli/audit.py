"""``ranker audit``: how many mined negatives are judged relevant in fuller qrels, how many
promoted positives are, and (``--judge``) a judge's estimate of the hidden-positive rate."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

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
        description="Count the mined negatives that the full qrels judge relevant, and the "
        "promoted positives (`ranker mine --promote-above`) they judge relevant. Several "
        "negatives files are shown side by side (a retriever name found in more "
        "than one file is prefixed with the file's name). Without deep judgments, --judge "
        "estimates the hidden-positive rate per rank bucket from a judge's scores on a "
        "seeded sample (a negative counts when the judge scores it above the query's best "
        "positive by more than --judge-margin), with a Wilson confidence interval; with "
        "--qrels too, each bucket's real rate is shown beside the estimate.",
    )
    p.add_argument("negatives", nargs="+", help="negatives JSONL written by `ranker mine`")
    p.add_argument("--qrels", help="full qrels (TREC or BEIR TSV); required without --judge")
    p.add_argument("--plot", help="write a bar chart (PNG, SVG or PDF)")
    p.add_argument("--json", dest="json_out", help="write the table(s) as JSON")
    p.add_argument(
        "--buckets",
        type=_edges,
        default=[1, 11, 31, 101, 1001],
        help="rank bucket edges (default: 1,11,31,101,1001)",
    )
    p.add_argument("--min-relevance", type=int, default=1, help="lowest grade counted as relevant (1)")
    p.add_argument(
        "--judge",
        metavar="MODEL",
        help="estimate hidden positives with this model (any cross-encoder or bi-encoder ranker loads)",
    )
    p.add_argument("--dataset", help="the dataset mined (document texts for --judge)")
    p.add_argument("--sample", type=int, default=100, help="negatives judged per rank bucket (100)")
    p.add_argument("--seed", type=int, default=42, help="seed of the sample (42)")
    p.add_argument(
        "--judge-margin",
        type=float,
        default=0.0,
        help="a negative is a hidden positive when the judge scores it above the best positive "
        "by more than this (0.0)",
    )
    p.add_argument("--batch-size", type=int, default=64, help="pairs the judge scores at a time (64)")
    p.add_argument(
        "--pool",
        metavar="FILE",
        help="the judging pool (pool.SPLIT.tsv from `ranker pool`): also report f, the share of "
        "the mined true negatives that were judged, and the selection-AUC ceiling 0.5 + f/2",
    )
    p.set_defaults(func=run)


def _json_safe(rows: list[dict]) -> list[dict]:
    """NaN (no true negative) written as null."""
    from ranker.evaluation.report import nan_as_null

    return [nan_as_null(r) for r in rows]


def run(args: argparse.Namespace) -> int:
    """Print the audit table(s); optionally plot the qrels audit and save everything as JSON."""
    from retrievers.audit import read_qrels_file
    from retrievers.io.atomic import atomic_write
    from retrievers.mining.negatives import read_negatives

    if args.min_relevance < 1:
        raise InputError("--min-relevance must be at least 1")
    if args.qrels is None and args.judge is None:
        raise InputError("give --qrels (full judgments), --judge MODEL, or both")
    if (args.judge is None) != (args.dataset is None):
        raise InputError("--judge and --dataset go together (the judge reads the documents' texts)")
    if args.plot and args.qrels is None:
        raise InputError("--plot draws the qrels audit; it needs --qrels")
    files = {path: read_negatives(path) for path in args.negatives}
    qrels = read_qrels_file(args.qrels) if args.qrels else None
    report: dict[str, Any] = {}
    if qrels is not None:
        report.update(_qrels_audit(args, files, qrels))
    if args.judge is not None:
        report["estimates"] = _judge_estimates(args, files, qrels)
    if args.json_out:
        with atomic_write(args.json_out) as out:
            json.dump(report, out, indent=2)
    return 0


def _qrels_audit(args: argparse.Namespace, files: dict, qrels: dict) -> dict[str, Any]:
    from dataclasses import replace

    from retrievers.audit import audit, audit_promoted, format_table, plot_audit

    results = [audit(records, qrels, args.buckets, args.min_relevance) for records in files.values()]
    seen: dict[str, int] = {}
    for rows, _ in results:
        for name in {r.retriever for r in rows}:
            seen[name] = seen.get(name, 0) + 1
    rows = [
        replace(r, retriever=f"{Path(path).stem}:{r.retriever}") if seen[r.retriever] > 1 else r
        for path, (file_rows, _) in zip(files, results, strict=True)
        for r in file_rows
    ]
    print(format_table(rows))
    coverage = []
    if args.pool:
        from retrievers.audit import pool_coverage
        from retrievers.judging_pool import read_pool

        pool = read_pool(args.pool)
        for path, records in files.items():
            row = {
                "negatives_file": str(path),
                **pool_coverage(records, qrels, pool, args.min_relevance),
            }
            coverage.append(row)
            print(
                f"{path}: f = {row['f']:.3f} of {row['true_negatives']} mined true negatives judged; "
                f"selection-AUC ceiling {row['auc_ceiling']:.3f}"
            )
    for path, (_, info) in zip(files, results, strict=True):
        print(
            f"{path}: queries audited: {info['queries_audited']}; not in qrels: "
            f"{info['queries_not_in_qrels']}"
        )
    promoted = {path: audit_promoted(records, qrels, args.min_relevance) for path, records in files.items()}
    for path, judges in promoted.items():
        for p in judges:
            print(
                f"{path}: promoted by {p.judge}: {p.promoted}; judged relevant: {p.relevant} "
                f"({p.precision:.2%}); judged non-relevant: {p.non_relevant}; unjudged: {p.unjudged}"
            )
    if args.plot:
        plot_audit(rows, args.plot)
    return {
        "files": {str(p): info for p, (_, info) in zip(files, results, strict=True)},
        "rows": [{**vars(r), "rate": r.rate} for r in rows],
        "promoted": {
            str(path): [{**vars(p), "precision": p.precision} for p in judges]
            for path, judges in promoted.items()
            if judges
        },
        **({"pool_coverage": _json_safe(coverage)} if coverage else {}),
    }


def _judge_estimates(args: argparse.Namespace, files: dict, qrels: dict | None) -> dict[str, Any]:
    from ranker.models.judge import load_judge
    from retrievers.io.dataset import load_dataset
    from retrievers.judge_audit import estimate_hidden_positives, format_estimates

    wanted = {
        d for records in files.values() for rec in records for d in (*rec.positives, *rec.negative_ids())
    }
    texts = {doc.id: doc.contents for doc in load_dataset(args.dataset).docs() if doc.id in wanted}
    missing = sorted(wanted - texts.keys())
    if missing:
        raise InputError(f"document {missing[0]!r} of the negatives is not in {args.dataset}")
    judge = load_judge(args.judge, batch_size=args.batch_size)
    out: dict[str, Any] = {}
    for path, records in files.items():
        rows = estimate_hidden_positives(
            records,
            judge,
            texts.__getitem__,
            per_bucket=args.sample,
            seed=args.seed,
            margin=args.judge_margin,
            edges=args.buckets,
            qrels=qrels,
            min_relevance=args.min_relevance,
        )
        print(f"{path}: hidden positives estimated by {judge.name} (seed {args.seed}):")
        print(format_estimates(rows))
        covered = [r.covered for r in rows if r.covered is not None]
        if covered:
            print(f"real rate inside the interval in {sum(covered)} of {len(covered)} buckets")
        out[str(path)] = [
            {**vars(r), "estimate": r.estimate, "true_rate": r.true_rate, "covered": r.covered} for r in rows
        ]
    return out
