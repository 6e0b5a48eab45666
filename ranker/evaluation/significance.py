"""Paired significance tests on per-query scores, many comparisons at a time.

A test is named (``student``, ``wilcoxon``, ``fisher``, ``bootstrap``, ``tukey``) or is any
function shaped like :func:`scipy.stats.ttest_rel`: ``test(a, b)`` returning an object with a
``pvalue`` attribute or a ``(statistic, pvalue)`` tuple (the convention PyTerrier uses).

References:
    Student's paired t-test and Wilcoxon's signed-rank test (Wilcoxon, 1945) come from SciPy.
    Fisher's randomization test and the paired bootstrap test: :mod:`.resampling`.
    Tukey's HSD (Tukey, 1949) comes from SciPy; as ranx does, it treats the runs as
    independent groups over the queries, and its p-values are already adjusted for all
    pairs of runs. See Carterette, "Multiple testing in statistical analysis of systems-based
    information retrieval experiments", TOIS 2012.
"""

from __future__ import annotations

import gc
import logging
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ranker.evaluation.resampling import bootstrap_pvalues, fisher_pvalues
from retrievers.errors import InputError

logger = logging.getLogger(__name__)

TESTS = ("student", "fisher", "wilcoxon", "tukey", "bootstrap")
PairedTest = Callable[[np.ndarray, np.ndarray], Any]


def pvalue_of(result: Any) -> float:
    """The p-value from a scipy-style test result (``.pvalue`` or ``(statistic, pvalue)``)."""
    value = getattr(result, "pvalue", None)
    if value is None:
        value = result[1]
    return float(value)


def _clean(pvalues: np.ndarray, diffs: np.ndarray) -> np.ndarray:
    """Identical systems (all differences zero) get p = 1 instead of SciPy's NaN."""
    pvalues = np.asarray(pvalues, dtype=np.float64).copy()
    identical = np.all(diffs == 0, axis=0)
    pvalues[identical | np.isnan(pvalues)] = 1.0
    return np.clip(pvalues, 0.0, 1.0)


def student_pvalues(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired two-sided t-test per column of ``(n_queries, n_comparisons)`` arrays."""
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(a, b, axis=0)
    return _clean(np.atleast_1d(result.pvalue), b - a)


def wilcoxon_pvalues(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Wilcoxon signed-rank test (two-sided, zero differences dropped) per column."""
    from scipy import stats

    diffs = b - a
    pvalues = np.ones(diffs.shape[1])
    for column in range(diffs.shape[1]):
        if np.any(diffs[:, column] != 0):
            pvalues[column] = stats.wilcoxon(diffs[:, column]).pvalue
    return _clean(pvalues, diffs)


def callable_pvalues(test: PairedTest, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Apply a user-supplied ``test(a, b)`` (shaped like ``ttest_rel``) column by column."""
    identical = np.all(a == b, axis=0)
    pvalues = np.array(
        [1.0 if identical[c] else pvalue_of(test(a[:, c], b[:, c])) for c in range(a.shape[1])]
    )
    return _clean(pvalues, b - a)


def tukey_pvalues(scores: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Tukey's HSD over all runs for one metric; p-values of the requested pairs.

    Args:
        scores: One per-query score vector per run.
        pairs: ``(i, j)`` indices into ``scores``.
    """
    from scipy import stats

    if len(scores) < 2:
        return np.ones(len(pairs))
    stacked = np.stack(scores)
    if np.all(stacked == stacked[0]):
        return np.ones(len(pairs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        matrix = stats.tukey_hsd(*scores).pvalue
    pvalues = np.array([matrix[i, j] for i, j in pairs])
    return np.where(np.isnan(pvalues), 1.0, np.clip(pvalues, 0.0, 1.0))


def paired_pvalues(
    test: str | PairedTest,
    a: np.ndarray,
    b: np.ndarray,
    *,
    seed: int = 42,
    n_resamples: int = 10_000,
    boot_diffs: np.ndarray | None = None,
) -> np.ndarray:
    """Two-sided p-values of paired tests, one per column of ``a`` and ``b``.

    Args:
        test: A name from :data:`TESTS` other than ``tukey``, or a callable like ``ttest_rel``.
        a: Per-query scores of the first system of each comparison, ``(n_queries, n)``.
        b: The same for the second system.
        seed: Seeds the randomization and bootstrap tests.
        n_resamples: Permutations (Fisher) or resamples (bootstrap).
        boot_diffs: Bootstrap means of ``b - a`` if already computed (bootstrap test only).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], b[:, None]
    if callable(test):
        return callable_pvalues(test, a, b)
    if test == "student":
        return student_pvalues(a, b)
    if test == "wilcoxon":
        return wilcoxon_pvalues(a, b)
    if test == "fisher":
        return _clean(fisher_pvalues(b - a, n_resamples, seed), b - a)
    if test == "bootstrap":
        if boot_diffs is None:
            from ranker.evaluation.resampling import bootstrap_means

            boot_diffs = bootstrap_means(b - a, n_resamples, seed)
        return _clean(bootstrap_pvalues(b - a, boot_diffs), b - a)
    raise InputError(
        f"unknown test {test!r}; expected one of {', '.join(TESTS)} "
        "or a function shaped like scipy.stats.ttest_rel"
    )


def effect_sizes(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Paired Cohen's d (d_z): mean of ``b - a`` over its standard deviation, per column.

    Zero when both are zero; NaN when the differences are constant but not zero.
    Reference: Cohen, "Statistical Power Analysis for the Behavioral Sciences", 1988.
    """
    diffs = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    diffs = diffs[:, None] if diffs.ndim == 1 else diffs
    mean = diffs.mean(axis=0)
    std = diffs.std(axis=0, ddof=1) if diffs.shape[0] > 1 else np.zeros(diffs.shape[1])
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(std > 0, mean / np.where(std > 0, std, 1.0), np.nan)
    d[(std == 0) & (mean == 0)] = 0.0
    return d


def correct(
    pvalues: Sequence[float] | np.ndarray, method: str, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Adjust p-values for multiple testing.

    Args:
        pvalues: Raw p-values of one family of tests.
        method: ``holm`` (Holm, 1979), ``bonferroni`` (both through statsmodels) or ``none``.
        alpha: Family-wise error rate.

    Returns:
        ``(reject, corrected)``: whether each null hypothesis is rejected, adjusted p-values.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    if method not in ("holm", "bonferroni", "none"):
        raise InputError(f"unknown correction {method!r}; expected holm, bonferroni or none")
    if len(p) == 0 or method == "none":
        return p <= alpha, p.copy()
    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm runs a full gc.collect() on every call (0.2 s with a few runs in
    # memory); freezing the existing heap makes that collection cheap.
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        reject, corrected, _, _ = multipletests(p, alpha=alpha, method=method)
    finally:
        if freeze:
            gc.unfreeze()
    return np.asarray(reject, dtype=bool), np.asarray(corrected, dtype=np.float64)
