"""ranx's metric definitions in plain numpy, for the common metrics.

``ranker evaluate`` on a handful of queries used to spend seconds importing ranx (which
pulls numba, scipy, pandas and matplotlib) and compiling its numba kernels. These functions
compute the same numbers as ``ranx.evaluate`` (relevance level 1, ranx's cut-off rules; checked
against ranx and trec_eval in the tests) from one query's ranked document ids, so the
command starts in a fraction of a second; anything not listed in :data:`NUMPY_METRICS` still
goes through ranx.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

# ranx metric names (each with an optional @k, except r-precision) computed here.
NUMPY_METRICS = ("ndcg", "ndcg_burges", "map", "mrr", "recall", "precision", "hit_rate", "hits", "f1")


def supported(metric: str) -> bool:
    """Whether a canonical metric name (``ndcg@10``, ``map``, ``r-precision``) is computed here."""
    base, _, k = metric.partition("@")
    return base in NUMPY_METRICS or (base == "r-precision" and not k)


def _split(metric: str) -> tuple[str, int]:
    base, _, k = metric.partition("@")
    return base, int(k) if k else 0


def _dcg(gains: np.ndarray, burges: bool) -> float:
    values = (2.0**gains - 1.0) if burges else gains
    return float(np.sum(values / np.log2(np.arange(2, len(gains) + 2))))


def score_query(
    ranking: Sequence[str], judgments: Mapping[str, int], metrics: Sequence[str]
) -> dict[str, float]:
    """Each metric of one query, as ranx computes it.

    Args:
        ranking: Document ids, best first (already in trec_eval order).
        judgments: The query's qrels, document id -> grade (>= 1 is relevant).
        metrics: Canonical names for which :func:`supported` is true.
    """
    relevant = {d: g for d, g in judgments.items() if g >= 1}
    n, num_rel = len(ranking), len(relevant)
    if num_rel == 0:
        return dict.fromkeys(metrics, 0.0)
    gains = np.array([relevant.get(d, 0) for d in ranking], dtype=np.float64)
    hit = gains > 0
    cumulative = np.cumsum(hit)
    ideal = np.array(sorted(judgments.values(), reverse=True), dtype=np.float64)
    ideal[ideal < 1] = 0.0
    out: dict[str, float] = {}
    for metric in metrics:
        base, k = _split(metric)
        cut = n if k == 0 or k > n else k  # ranx's fix_k
        hits = float(cumulative[cut - 1]) if cut else 0.0
        if base == "hits":
            value = hits
        elif base == "hit_rate":
            value = 1.0 if hits else 0.0
        elif base in ("precision", "f1"):
            denominator = k or n
            precision = hits / denominator if denominator else 0.0
            recall = hits / num_rel
            if base == "precision":
                value = precision
            else:
                value = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        elif base == "recall":
            value = hits / num_rel if (k or n) else 0.0
        elif base == "r-precision":
            value = (float(cumulative[min(num_rel, n) - 1]) if n else 0.0) / num_rel
        elif base == "mrr":
            first = np.flatnonzero(hit[:cut])
            value = 1.0 / (first[0] + 1) if len(first) else 0.0
        elif base == "map":
            ranks = np.flatnonzero(hit[:cut])
            value = float(np.sum(cumulative[ranks] / (ranks + 1))) / num_rel
        elif base in ("ndcg", "ndcg_burges"):
            burges = base == "ndcg_burges"
            ideal_cut = len(ideal) if k == 0 or k > len(ideal) else k
            idcg = _dcg(ideal[:ideal_cut], burges) or 1.0
            value = _dcg(gains[:cut], burges) / idcg
        else:
            raise ValueError(f"metric {metric!r} is not computed here")
        out[metric] = value
    return out
