"""Deterministic pseudo-runs built from qrels plus random documents (for evaluation tests)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def pseudo_run(
    qrels: Mapping[str, Mapping[str, int]],
    docids: Sequence[str],
    seed: int,
    hit_rate: float = 0.6,
    depth: int = 100,
    decimals: int = 1,
) -> dict:
    """A run that retrieves ``depth`` random documents per judged query plus each relevant
    document with probability ``hit_rate``; scores rounded to ``decimals`` so ties are common.
    """
    rng = np.random.default_rng(seed)
    pool = np.asarray(sorted(docids), dtype=object)
    run = {}
    for qid in sorted(qrels):
        picked = rng.choice(len(pool), size=min(depth, len(pool)), replace=False)
        docs = {str(pool[i]): round(float(rng.random()), decimals) for i in picked}
        for docid in sorted(qrels[qid]):
            if rng.random() < hit_rate:
                docs[docid] = round(float(rng.random()) + 0.3, decimals)
        run[qid] = docs
    return run
