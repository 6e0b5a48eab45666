"""Vectorized resampling over queries: Fisher's randomization test and the paired bootstrap.

Both work on many comparisons at once: a matrix with one row per query and one column per
comparison (per-query score differences) is multiplied by a block of random sign flips or
bootstrap weights, so 10,000 resamples of dozens of comparisons are a few matrix products.

Repeatability: the random numbers depend only on ``seed``, the number of queries and the
number of resamples -- not on how many comparisons are made, nor on threads -- and every
comparison sees the same resamples (common random numbers). The same seed therefore gives
the same p-value for a pair whichever other runs are compared beside it.

References:
    Fisher, "The Design of Experiments", 1935; Smucker, Allan & Carterette, "A comparison of
    statistical significance tests for information retrieval evaluation", CIKM 2007.
    Efron & Tibshirani, "An Introduction to the Bootstrap", 1993; Sakai, "Evaluating
    evaluation metrics based on the bootstrap", SIGIR 2006.
    Phipson & Smyth, "Permutation p-values should never be zero", 2010 (the +1 correction).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

CHUNK = 1000  # resamples per block; fixed so the random stream never depends on the data
_FISHER_STREAM, _BOOTSTRAP_STREAM = 1, 2


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), stream])


def sign_flips(n_queries: int, n_permutations: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of random +-1 sign vectors (``block x n_queries``, float64)."""
    rng = _rng(seed, _FISHER_STREAM)
    for start in range(0, n_permutations, CHUNK):
        size = min(CHUNK, n_permutations - start)
        bits = rng.integers(0, 2, size=(size, n_queries), dtype=np.int8)
        yield 1.0 - 2.0 * bits


def all_sign_flips(n_queries: int) -> np.ndarray:
    """Every one of the ``2**n_queries`` sign vectors (for an exact test on few queries)."""
    codes = np.arange(2**n_queries, dtype=np.int64)[:, None]
    bits = (codes >> np.arange(n_queries, dtype=np.int64)[None, :]) & 1
    return 1.0 - 2.0 * bits


def fisher_pvalues(diffs: np.ndarray, n_permutations: int = 10_000, seed: int = 42) -> np.ndarray:
    """Two-sided paired randomization test of a zero mean difference, per column.

    Under the null hypothesis the two systems are exchangeable on each query, so each
    per-query difference keeps or flips its sign with probability 1/2. The p-value is the
    share of sign assignments whose mean difference is at least as extreme as the observed
    one: ``(count + 1) / (n_permutations + 1)`` for random assignments, exact (all
    ``2**n`` assignments) when that is no more than ``n_permutations``.

    Args:
        diffs: Per-query differences, shape ``(n_queries,)`` or ``(n_queries, n_comparisons)``.
        n_permutations: Random sign assignments to draw.
        seed: Fixes the assignments; the same seed gives the same p-values.

    Returns:
        Two-sided p-values, one per column (shape ``(1,)`` for a 1-D input).
    """
    diffs = np.asarray(diffs, dtype=np.float64)
    diffs = diffs[:, None] if diffs.ndim == 1 else diffs
    n_queries = diffs.shape[0]
    observed = np.abs(diffs.mean(axis=0))
    # Rounding differs between mean() and a matrix product: allow a relative slack.
    slack = 1e-9 * (np.abs(diffs).mean(axis=0) + 1e-300)
    threshold = observed - slack
    if n_queries <= 20 and 2**n_queries <= n_permutations:
        null = np.abs(all_sign_flips(n_queries) @ diffs) / n_queries
        pvalues = (null >= threshold).mean(axis=0)
    else:
        count = np.zeros(diffs.shape[1], dtype=np.int64)
        for signs in sign_flips(n_queries, n_permutations, seed):
            null = np.abs(signs @ diffs) / n_queries
            count += (null >= threshold).sum(axis=0)
        pvalues = (count + 1) / (n_permutations + 1)
    return pvalues


def bootstrap_weights(n_queries: int, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of bootstrap weights: how often each query is drawn (``block x n_queries``)."""
    rng = _rng(seed, _BOOTSTRAP_STREAM)
    for start in range(0, n_resamples, CHUNK):
        size = min(CHUNK, n_resamples - start)
        drawn = rng.integers(0, n_queries, size=(size, n_queries))
        drawn += np.arange(size)[:, None] * n_queries  # one bin range per resample
        counts = np.bincount(drawn.ravel(), minlength=size * n_queries)
        yield counts.reshape(size, n_queries).astype(np.float64)


def bootstrap_means(scores: np.ndarray, n_resamples: int = 10_000, seed: int = 42) -> np.ndarray:
    """Means of each column over bootstrap resamples of the queries (rows).

    Paired: every column is resampled with the same queries, so differences of columns are
    paired bootstrap differences.

    Returns:
        Array of shape ``(n_resamples, n_columns)``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    n_queries = scores.shape[0]
    blocks = [weights @ scores / n_queries for weights in bootstrap_weights(n_queries, n_resamples, seed)]
    return np.concatenate(blocks, axis=0)


def percentile_interval(samples: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile confidence interval of each column of bootstrap ``samples``."""
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=0)
    return low, high


def bootstrap_pvalues(diffs: np.ndarray, boot_diffs: np.ndarray) -> np.ndarray:
    """Two-sided paired bootstrap test of a zero mean difference, per column.

    The bootstrap distribution of the mean difference is shifted to mean zero (the null
    hypothesis); the p-value is the share of shifted resamples at least as far from zero as
    the observed mean, with the +1 correction.

    Args:
        diffs: Per-query differences, ``(n_queries, n_comparisons)``.
        boot_diffs: Bootstrap means of those differences, ``(n_resamples, n_comparisons)``.
    """
    observed = np.asarray(diffs, dtype=np.float64).mean(axis=0)
    slack = 1e-9 * (np.abs(diffs).mean(axis=0) + 1e-300)
    extreme = np.abs(boot_diffs - observed) >= np.abs(observed) - slack
    return (extreme.sum(axis=0) + 1) / (boot_diffs.shape[0] + 1)
