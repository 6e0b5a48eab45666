"""Sampler stage: pick the negatives to keep from a query's filtered candidates, seeded."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from retrievers.errors import InputError
from retrievers.mining.candidates import Candidate

STRATEGIES = ("top", "random")


def query_rng(seed: int, qid: str) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``qid``.

    Every query gets its own stream, so the sample for a query does not depend on which
    queries came before it: resumed and uninterrupted runs give the same file.
    """
    digest = int.from_bytes(hashlib.sha256(qid.encode("utf-8")).digest()[:8], "little")
    return np.random.default_rng([seed, digest])


def sample(
    cands: Sequence[Candidate],
    n: int,
    strategy: str,
    rng: np.random.Generator,
) -> list[Candidate]:
    """Choose up to ``n`` candidates; the result is in rank order.

    Args:
        cands: Filtered candidates, in rank order.
        n: How many to keep.
        strategy: ``top`` (the ``n`` best ranked) or ``random`` (uniform without replacement).
        rng: The query's generator (see :func:`query_rng`).
    """
    if strategy not in STRATEGIES:
        raise InputError(f"unknown sampling strategy {strategy!r}; expected top or random")
    if n >= len(cands):
        return list(cands)
    if strategy == "top":
        return list(cands[:n])
    picked = np.sort(rng.choice(len(cands), size=n, replace=False))
    return [cands[i] for i in picked]
