"""Sampler stage: pick the negatives to keep from a query's filtered candidates, seeded.

Strategies: ``top`` (the best ranked), ``random`` (uniform without replacement) and
``simans`` (SimANS, Zhou et al., EMNLP 2022, "SimANS: Simple Ambiguous Negatives Sampling
for Dense Text Retrieval"): without replacement, each draw picks a remaining candidate with
probability proportional to ``exp(-a (s(q,d-) - s(q,d+) - b)^2)``, which favours negatives
scored near the positive (``b`` shifts the peak) over the very top (likely false negatives)
and the easy tail.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from retrievers.errors import InputError
from retrievers.mining.candidates import Candidate

STRATEGIES = ("top", "random", "simans")


def query_rng(seed: int, qid: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``qid``.

    Every query gets its own stream, so the sample for a query does not depend on which
    queries came before it: resumed and uninterrupted runs give the same file.
    """
    digest = int.from_bytes(hashlib.sha256(qid.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def simans_log_weights(
    negative_scores: np.ndarray, positive_score: float | np.ndarray, a: float, b: float
) -> np.ndarray:
    """SimANS log-weights ``-a (s(q,d-) - s(q,d+) - b)^2`` (unnormalised log-probabilities).

    ``positive_score`` is one number or one per negative (the positive's score in the
    retriever that scored that negative).
    """
    diff = np.asarray(negative_scores, dtype=float) - np.asarray(positive_score, dtype=float) - b
    return -a * diff * diff


def weighted_sample(log_weights: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of ``n`` items drawn without replacement, each draw proportional to
    ``exp(log_weights)`` among the items left (successive sampling), in ascending order.

    Uses the Gumbel-top-k trick (Kool et al., ICML 2019, "Stochastic Beams and Where to Find
    Them"): the ``n`` largest ``log_weights + Gumbel noise`` are such a sample. Working in log
    space, weights that would underflow ``exp`` (far from SimANS's peak) stay comparable.
    """
    logw = np.asarray(log_weights, dtype=float)
    if n >= len(logw):
        return np.arange(len(logw))
    keys = logw + rng.gumbel(size=len(logw))
    return np.sort(np.argsort(-keys, kind="stable")[:n])


def sample(
    cands: Sequence[Candidate],
    n: int,
    strategy: str,
    rng: np.random.Generator,
    log_weights: np.ndarray | None = None,
) -> list[Candidate]:
    """Choose up to ``n`` candidates; the result is in rank order.

    Args:
        cands: Filtered candidates, in rank order.
        n: How many to keep.
        strategy: ``top`` (the ``n`` best ranked), ``random`` (uniform without replacement)
            or ``simans`` (proportional to ``exp(log_weights)``, without replacement).
        rng: The query's generator (see :func:`query_rng`).
        log_weights: One per candidate, for ``simans`` (see :func:`simans_log_weights`).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown sampling strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if n >= len(cands):
        return list(cands)
    if strategy == "top":
        return list(cands[:n])
    if strategy == "simans":
        if log_weights is None or len(log_weights) != len(cands):
            raise ValueError("simans sampling needs one log-weight per candidate")
        return [cands[i] for i in weighted_sample(log_weights, n, rng)]
    picked = np.sort(rng.choice(len(cands), size=n, replace=False))
    return [cands[i] for i in picked]
