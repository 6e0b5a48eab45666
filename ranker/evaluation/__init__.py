"""Evaluation: ranx metrics under trec_eval conventions, significance tests, reports, plots."""

from ranker.evaluation.compare import Comparison, PairResult, compare_runs
from ranker.evaluation.metrics import RunEvaluation, canonical_metric, evaluate_run, trec_eval_order
from ranker.evaluation.report import format_comparison, format_scores, write_per_query
from ranker.evaluation.significance import TESTS, correct, effect_sizes, paired_pvalues

__all__ = [
    "TESTS",
    "Comparison",
    "PairResult",
    "RunEvaluation",
    "canonical_metric",
    "compare_runs",
    "correct",
    "effect_sizes",
    "evaluate_run",
    "format_comparison",
    "format_scores",
    "paired_pvalues",
    "trec_eval_order",
    "write_per_query",
]
