"""Compare evaluated runs: paired tests, multiple-testing correction, effect sizes, CIs.

For each metric, the family of tests is every comparison made on that metric (each run
against the baseline, or every pair of runs with ``all_pairs``); the correction (Holm by
default) is applied within that family, as PyTerrier does per measure. Tukey's HSD p-values
are already family-wise adjusted over all pairs of runs, so no further correction is applied
to them.

Confidence intervals are 95% paired-bootstrap percentile intervals over queries (seeded),
for each run's mean and for each difference of means.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ranker.evaluation.metrics import RunEvaluation
from ranker.evaluation.resampling import bootstrap_means, percentile_interval
from ranker.evaluation.significance import (
    TESTS,
    PairedTest,
    correct,
    effect_sizes,
    paired_pvalues,
    tukey_pvalues,
)
from retrievers.errors import InputError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PairResult:
    """One test: run ``b`` against run ``a`` on one metric (``delta`` = mean b - mean a)."""

    metric: str
    a: int
    b: int
    delta: float
    ci_low: float
    ci_high: float
    effect_size: float
    p_value: float
    p_corrected: float
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """Everything a report or plot needs about a comparison of runs."""

    runs: tuple[str, ...]
    metrics: tuple[str, ...]
    means: dict[str, np.ndarray]  # metric -> mean per run
    ci: dict[str, np.ndarray]  # metric -> (n_runs, 2) bootstrap interval of each mean
    pairs: tuple[PairResult, ...]
    test: str
    correction: str
    alpha: float
    seed: int
    n_resamples: int
    baseline: int | None
    n_queries: int
    query_notes: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def better_than(self, metric: str, run: int) -> list[int]:
        """Runs that ``run`` beats significantly on ``metric`` (after correction)."""
        beaten = []
        for pair in self.pairs:
            if pair.metric != metric or not pair.significant:
                continue
            if pair.b == run and pair.delta > 0:
                beaten.append(pair.a)
            elif pair.a == run and pair.delta < 0:
                beaten.append(pair.b)
        return sorted(beaten)

    def pvalue_matrix(self, metric: str, corrected: bool = True) -> np.ndarray:
        """Symmetric run x run matrix of p-values for ``metric`` (NaN where not tested)."""
        n = len(self.runs)
        matrix = np.full((n, n), np.nan)
        for pair in self.pairs:
            if pair.metric == metric:
                value = pair.p_corrected if corrected else pair.p_value
                matrix[pair.a, pair.b] = matrix[pair.b, pair.a] = value
        return matrix


def _pairs(n_runs: int, baseline: int | None, all_pairs: bool) -> list[tuple[int, int]]:
    if all_pairs or baseline is None:
        return [(i, j) for i in range(n_runs) for j in range(i + 1, n_runs)]
    return [(baseline, j) for j in range(n_runs) if j != baseline]


def compare_runs(
    evaluations: Sequence[RunEvaluation],
    metrics: Sequence[str] | None = None,
    *,
    baseline: int | None = 0,
    all_pairs: bool = False,
    test: str | PairedTest = "student",
    correction: str = "holm",
    alpha: float = 0.05,
    seed: int = 42,
    n_resamples: int = 10_000,
) -> Comparison:
    """Test the differences between runs evaluated on the same queries.

    Args:
        evaluations: Per-query scores of each run (from :func:`evaluate_run`, same qrels).
        metrics: Metrics to compare; default all metrics of the first evaluation.
        baseline: Index of the baseline run (``None``: no baseline; all pairs are compared).
        all_pairs: Compare every pair of runs, not only each run with the baseline (which
            then only marks a run as the baseline in reports and plots).
        test: ``student``, ``fisher``, ``wilcoxon``, ``tukey``, ``bootstrap`` or a function
            shaped like :func:`scipy.stats.ttest_rel`.
        correction: ``holm``, ``bonferroni`` or ``none``, applied per metric.
        alpha: Significance level (family-wise with a correction).
        seed: Fixes permutations and bootstrap resamples: same seed, same p-values and CIs.
        n_resamples: Permutations (Fisher) and bootstrap resamples (CIs, bootstrap test).

    Returns:
        A :class:`Comparison`.
    """
    if len(evaluations) < 2:
        raise InputError("comparing needs at least two runs")
    if not (0.0 < alpha < 1.0):
        raise InputError(f"alpha must be between 0 and 1; got {alpha}")
    if isinstance(test, str) and test not in TESTS:
        raise InputError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")
    if baseline is not None and not 0 <= baseline < len(evaluations):
        raise InputError(f"baseline index {baseline} is out of range")
    queries = evaluations[0].queries
    for evaluation in evaluations[1:]:
        if evaluation.queries != queries:
            raise InputError(
                f"{evaluation.name}: evaluated on other queries than "
                f"{evaluations[0].name}; use the same qrels for every run"
            )
    metrics = tuple(metrics or evaluations[0].scores)
    notes = []
    if test == "tukey" and correction != "none":
        notes.append(
            "Tukey HSD p-values are already adjusted for all pairs of runs; "
            f"the {correction} correction was not applied on top"
        )
        correction = "none"
    pairs = _pairs(len(evaluations), baseline, all_pairs)
    n_runs, n_pairs = len(evaluations), len(pairs)
    # queries x (metric, run) matrix; bootstrap means of every column share the resamples.
    scores = np.stack([ev.scores[m] for m in metrics for ev in evaluations], axis=1)
    boot = bootstrap_means(scores, n_resamples, seed).reshape(-1, len(metrics), n_runs)
    scores = scores.reshape(len(queries), len(metrics), n_runs)
    low, high = percentile_interval(boot)
    ci = {m: np.stack([low[k], high[k]], axis=1) for k, m in enumerate(metrics)}
    means = {m: scores[:, k, :].mean(axis=0) for k, m in enumerate(metrics)}
    first = np.array([i for i, _ in pairs])
    second = np.array([j for _, j in pairs])
    a = scores[:, :, first].reshape(len(queries), -1)  # columns: (metric, pair)
    b = scores[:, :, second].reshape(len(queries), -1)
    boot_diffs = (boot[:, :, second] - boot[:, :, first]).reshape(boot.shape[0], -1)
    if test == "tukey":
        pvalues = np.concatenate(
            [tukey_pvalues([scores[:, k, r] for r in range(n_runs)], pairs) for k in range(len(metrics))]
        )
    else:
        pvalues = paired_pvalues(test, a, b, seed=seed, n_resamples=n_resamples, boot_diffs=boot_diffs)
    d_low, d_high = percentile_interval(boot_diffs)
    effects = effect_sizes(a, b)
    deltas = b.mean(axis=0) - a.mean(axis=0)
    results = []
    for k, metric in enumerate(metrics):
        family = slice(k * n_pairs, (k + 1) * n_pairs)
        reject, corrected = correct(pvalues[family], correction, alpha)
        for offset, (i, j) in enumerate(pairs):
            c = k * n_pairs + offset
            results.append(
                PairResult(
                    metric=metric,
                    a=i,
                    b=j,
                    delta=float(deltas[c]),
                    ci_low=float(d_low[c]),
                    ci_high=float(d_high[c]),
                    effect_size=float(effects[c]),
                    p_value=float(pvalues[c]),
                    p_corrected=float(corrected[offset]),
                    significant=bool(reject[offset]),
                )
            )
    name = test if isinstance(test, str) else getattr(test, "__name__", "custom")
    return Comparison(
        runs=tuple(ev.name for ev in evaluations),
        metrics=metrics,
        means=means,
        ci=ci,
        pairs=tuple(results),
        test=name,
        correction=correction,
        alpha=alpha,
        seed=seed,
        n_resamples=n_resamples,
        baseline=baseline,
        n_queries=len(queries),
        query_notes=tuple(ev.describe_queries() for ev in evaluations),
        notes=tuple(notes),
    )
