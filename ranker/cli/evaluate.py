"""``ranker evaluate``: score TREC runs against a dataset's qrels with ranx.

Follows ``trec_eval -c``: queries in a run but not in the qrels are ignored, judged queries
missing from a run score 0 (the report says how many of each), ties in score are broken by
document id descending. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ranker.evaluation.metrics import RunEvaluation

logger = logging.getLogger(__name__)

DEFAULT_METRICS = ["ndcg@10", "mrr@10", "recall@100", "map"]
RUN_HELP = (
    "TREC run files (gzip allowed); LABEL=GLOB stands for the runs the pattern matches (e.g. one per seed), "
    "scored as one system whose per-query scores are their mean"
)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``evaluate`` and ``compare``: dataset or qrels, split, metrics."""
    parser.add_argument(
        "dataset",
        nargs="?",
        metavar="DATASET",
        help="BEIR or MS MARCO folder, irds:<id>, or a dataset name (omit it with --qrels)",
    )
    parser.add_argument(
        "--qrels",
        metavar="FILE",
        help="a bare qrels file instead of DATASET: TREC (qid iter docid rel) or BEIR TSV "
        "(query-id corpus-id score, header optional); gzip allowed",
    )
    parser.add_argument("--split", default=None, help="split of DATASET whose qrels to use (default: test)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=DEFAULT_METRICS,
        metavar="METRIC",
        help="ranx metric names, e.g. ndcg@10 recall@100 mrr@10 map map@100 "
        f"precision@10 (default: {' '.join(DEFAULT_METRICS)})",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``evaluate`` subcommand."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score TREC runs (ranx metrics, trec_eval conventions)",
        description="Score TREC runs against a dataset's qrels. Queries in a run but not in "
        "the qrels are ignored; judged queries missing from a run score 0.",
    )
    add_run_arguments(parser)
    parser.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    parser.add_argument(
        "--format",
        default="table",
        choices=["table", "md", "latex", "json"],
        help="output format (default: table); json prints {run: {metric: value}}",
    )
    parser.add_argument(
        "--per-query", metavar="CSV", help="also write per-query scores to CSV (run,query,<metrics>)"
    )
    parser.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    parser.set_defaults(func=run)


def split_positionals(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """``(dataset, runs)`` from the positional arguments: with ``--qrels`` there is no
    dataset, and the first positional argument (which argparse takes as DATASET) is a run.

    Raises:
        InputError: ``--qrels`` together with a dataset folder or ``irds:`` id, or
            ``--split`` with ``--qrels``.
    """
    from pathlib import Path

    from retrievers.errors import InputError

    runs = list(args.runs or [])
    if args.qrels is None:
        if args.dataset is None:
            raise InputError("give a DATASET (folder, irds:<id> or name) or --qrels FILE")
        return args.dataset, runs
    first = args.dataset
    if first is not None:
        if Path(first).is_dir() or first.startswith("irds:"):
            raise InputError(f"give a DATASET or --qrels, not both (got {first!r} and --qrels)")
        runs.insert(0, first)
    if args.split is not None:
        raise InputError("--split selects a dataset's qrels; a --qrels file has no splits")
    return None, runs


def load_qrels(dataset: str | None, qrels_file: str | None, split: str | None):
    """Judgments of ``dataset``'s ``split`` (default test), or of a bare qrels file."""
    if qrels_file is not None:
        from retrievers.io.adhoc import read_qrels_file

        return read_qrels_file(qrels_file)
    from retrievers.errors import InputError
    from retrievers.io.dataset import load_dataset

    if dataset is None:
        raise InputError("give a DATASET (folder, irds:<id> or name) or --qrels FILE")
    return load_dataset(dataset).qrels(split or "test")


def load_evaluations(
    dataset: str | None,
    split: str | None,
    runs: Sequence[str],
    metrics: Sequence[str],
    qrels_file: str | None = None,
) -> list[RunEvaluation]:
    """Read the qrels (of ``dataset`` or ``qrels_file``) and each run, and score every run on
    every metric."""
    from ranker.evaluation.metrics import average_evaluations, canonical_metric, evaluate_run
    from retrievers.errors import InputError
    from retrievers.io.trec import read_run

    for metric in metrics:
        canonical_metric(metric)
    if len(set(metrics)) != len(metrics):
        raise InputError(f"a metric is listed twice in --metrics: {' '.join(metrics)}")
    if len(set(runs)) != len(runs):
        raise InputError(f"a run is listed twice: {' '.join(runs)}")
    if not runs:
        raise InputError("give at least one RUN file")
    qrels = load_qrels(dataset, qrels_file, split)
    evaluations = []
    for spec in runs:
        label, paths = expand_run(spec)
        members = [evaluate_run(read_run(path), qrels, metrics, name=path) for path in paths]
        evaluations.append(members[0] if label is None else average_evaluations(members, label))
    return evaluations


def expand_run(spec: str) -> tuple[str | None, list[str]]:
    """``RUN`` -> ``(None, [RUN])``; ``LABEL=GLOB`` -> ``(LABEL, the sorted matching files)``.

    A path that exists is always a run file, even with ``=`` in its name.
    """
    import glob
    from pathlib import Path

    from retrievers.errors import InputError

    if "=" not in spec or Path(spec).exists():
        return None, [spec]
    label, pattern = spec.split("=", 1)
    if not label.strip():
        raise InputError(f"run group {spec!r} has an empty label (expected LABEL=GLOB)")
    paths = sorted(glob.glob(pattern))
    if not paths:
        raise InputError(f"run group {label!r}: no run file matches {pattern!r}")
    return label, paths


def emit(text: str, out: str | None) -> None:
    """Print ``text`` or write it atomically to ``out``."""
    if out is None:
        print(text)
        return
    from retrievers.io.atomic import atomic_write

    with atomic_write(out) as handle:
        handle.write(text + "\n")
    logger.info("wrote %s", out)


def run(args: argparse.Namespace) -> int:
    """Score the runs and print (or write) the report."""
    from ranker.evaluation.report import format_scores, write_per_query

    dataset, runs = split_positionals(args)
    evaluations = load_evaluations(dataset, args.split, runs, args.metrics, args.qrels)
    if args.format == "json":  # the other formats print these lines under the table
        for evaluation in evaluations:
            logger.info("%s", evaluation.describe_queries())
    if args.per_query:
        write_per_query(args.per_query, evaluations)
        logger.info("wrote per-query scores to %s", args.per_query)
    emit(format_scores(evaluations, args.format), args.out)
    return 0
