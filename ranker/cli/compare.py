"""``ranker compare``: which differences between runs are significant.

Paired tests per metric against a baseline (or all pairs), multiple-testing correction per
metric, effect sizes and paired-bootstrap 95% CIs; Markdown, LaTeX or JSON report and an
optional plot; with ``--gap`` (repeatable) the share of each gap every run recovers, and
``--gap-plot`` draws those shares. See docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING

from ranker.cli.evaluate import RUN_HELP, add_run_arguments
from ranker.cli.parser import SEED

if TYPE_CHECKING:
    from ranker.evaluation.gap import Gap

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``compare`` subcommand."""
    parser = subparsers.add_parser(
        "compare",
        help="significance tests between runs, with correction, CIs and plots",
        description="Compare TREC runs with paired significance tests, corrected for "
        "multiple testing per metric.",
    )
    add_run_arguments(parser)
    parser.add_argument(
        "--baseline",
        metavar="RUN",
        help="baseline run; every other run is tested against it (required unless --all-pairs)",
    )
    parser.add_argument("runs", nargs="+", metavar="RUN", help=RUN_HELP)
    parser.add_argument(
        "--test",
        default="student",
        choices=["student", "fisher", "wilcoxon", "tukey", "bootstrap"],
        help="paired test (default: %(default)s)",
    )
    parser.add_argument(
        "--correction",
        default="holm",
        choices=["holm", "bonferroni", "none"],
        help="multiple-testing correction, per metric (default: %(default)s)",
    )
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    parser.add_argument(
        "--seed", type=SEED, default=42, help="seed of permutations and bootstrap resamples (default: 42)"
    )
    parser.add_argument(
        "--resamples",
        type=int,
        default=10_000,
        help="Fisher permutations and bootstrap resamples (default: 10000)",
    )
    parser.add_argument("--all-pairs", action="store_true", help="test every pair of runs")
    parser.add_argument(
        "--format", default="md", choices=["table", "md", "latex", "json"], help="report format (default: md)"
    )
    parser.add_argument(
        "--plot", metavar="FILE", help="write bars with 95%% CIs and p-value matrices (.png/.pdf/.svg)"
    )
    parser.add_argument(
        "--gap",
        nargs=2,
        action="append",
        metavar=("LOW", "HIGH"),
        help="also report the share of the LOW -> HIGH gap each other run recovers, with a "
        "bootstrap CI (LOW and HIGH as given among the runs or --reference runs, e.g. "
        "biased and oracle); repeatable, one table per gap "
        "(--gap b-dense f-clean --gap b-dense e-oracle)",
    )
    parser.add_argument(
        "--gap-plot",
        metavar="FILE",
        help="draw each run's share of every --gap with its 95%% CI (.png/.pdf/.svg)",
    )
    parser.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="RUN",
        help="a run evaluated for the --gap table only: not tested, so it stays out of the "
        "family the correction counts (e.g. the oracle that is the gap's high end while "
        "the remedies are tested against the baseline; repeatable)",
    )
    parser.add_argument("--out", metavar="FILE", help="write the report here instead of stdout")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate the runs, test their differences, print the report and draw the plot."""
    from ranker.cli.evaluate import emit, load_evaluations, split_positionals
    from ranker.evaluation.compare import compare_runs
    from ranker.evaluation.report import format_comparison
    from retrievers.errors import InputError

    if args.baseline is None and not args.all_pairs:
        raise InputError("give --baseline RUN, or --all-pairs to test every pair of runs")
    if args.resamples < 1:
        raise InputError(f"--resamples must be positive; got {args.resamples}")
    if args.plot and not args.plot.lower().endswith((".png", ".pdf", ".svg")):
        raise InputError("--plot file must end in .png, .pdf or .svg", args.plot)
    dataset, runs = split_positionals(args)
    if args.reference and not args.gap:
        raise InputError("--reference runs are only used by --gap; give --gap LOW HIGH")
    if args.gap_plot and not args.gap:
        raise InputError("--gap-plot draws the --gap shares; give --gap LOW HIGH")
    if args.gap_plot:
        from ranker.evaluation.plots import figure_format

        figure_format(args.gap_plot)
    paths = ([args.baseline] if args.baseline else []) + runs
    evaluations = load_evaluations(dataset, args.split, paths + args.reference, args.metrics, args.qrels)
    tested = evaluations[: len(paths)]
    comparison = compare_runs(
        tested,
        args.metrics,
        baseline=0 if args.baseline else None,
        all_pairs=args.all_pairs,
        test=args.test,
        correction=args.correction,
        alpha=args.alpha,
        seed=args.seed,
        n_resamples=args.resamples,
    )
    for note in comparison.notes:
        logger.warning("%s", note)
    report = format_comparison(comparison, args.format)
    gaps = _gaps(args, evaluations, paths + args.reference) if args.gap else []
    if gaps:
        report = _with_gaps(report, gaps, args.format)
    emit(report, args.out)
    if args.plot:
        from ranker.evaluation.plots import plot_comparison

        plot_comparison(comparison, args.plot)
    if args.gap_plot:
        from ranker.evaluation.plots import plot_gap_shares

        plot_gap_shares(gaps, args.metrics, args.gap_plot)
    return 0


def _gaps(args: argparse.Namespace, evaluations, paths: list[str]) -> list[Gap]:
    """The shares of every ``--gap LOW HIGH``, in the order given (names checked first)."""
    from ranker.cli.evaluate import expand_run
    from ranker.evaluation.gap import Gap, gap_shares
    from retrievers.errors import InputError

    names = [expand_run(p)[0] or p for p in paths]
    for wanted in (name for pair in args.gap for name in pair):
        if wanted not in names:
            raise InputError(f"--gap {wanted!r} is not one of the runs compared ({', '.join(names)})")
    return [
        Gap(
            low,
            high,
            gap_shares(
                evaluations, names.index(low), names.index(high), args.metrics, args.resamples, args.seed
            ),
        )
        for low, high in args.gap
    ]


def _with_gaps(report: str, gaps: list[Gap], fmt: str) -> str:
    """``report`` with one gap table per gap (or, in JSON, a ``gap`` list whose entries name
    their ``low`` and ``high`` runs)."""
    import dataclasses
    import json

    from ranker.evaluation.gap import format_gap
    from ranker.evaluation.report import nan_as_null

    if fmt == "json":
        data = json.loads(report)
        data["gap"] = [
            {"low": gap.low, "high": gap.high, **nan_as_null(dataclasses.asdict(s))}
            for gap in gaps
            for s in gap.shares
        ]
        return json.dumps(data, indent=2)
    return report + "".join("\n\n" + format_gap(g.shares, g.low, g.high, fmt=fmt) for g in gaps)
