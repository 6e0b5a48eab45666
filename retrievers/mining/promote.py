"""Relabelling stage: candidates a judge scores above the query's positive become positives.

RLHN (Thakur et al., 2025, "Fixing Data That Hurts Performance: Cascading LLMs to Relabel
Hard Negatives for Robust Information Retrieval"; castorini/rlhn) relabels the hard
negatives a judge finds relevant as extra positives instead of dropping them. Here the judge
is any pair scorer (a cross-encoder or a bi-encoder, wired by ``ranker mine --judge``): a
candidate is promoted when ``judge(q, d) > max_p judge(q, p) + margin`` over the query's
known positives ``p`` (the best positive: a promoted document must outscore every judged
positive by the margin).

Promoted documents leave the candidates, join the query's ``positives`` and are recorded in
the line's ``promoted`` object (see :mod:`retrievers.mining.negatives`)::

    "promoted": {docid: {"judge": str, "judge_score": float, "positive_judge_score": float,
                         "margin": float, "rank": int, "score": float, "retriever": str}}
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from retrievers.mining.candidates import Candidate
from retrievers.mining.filters import PairScorer, QueryContext


@dataclass(frozen=True)
class Judge:
    """A named pair scorer: ``score(queries, docs) -> np.ndarray``, higher = more relevant.

    ``retrievers`` never loads models: the caller (``ranker``'s CLI) builds the judge.
    """

    name: str
    score: PairScorer


def judge_scores(judge: Judge, query: str, texts: list[str]) -> np.ndarray:
    """The judge's scores of ``query`` against each of ``texts`` (checked for shape)."""
    if not texts:
        return np.zeros(0)
    scores = np.asarray(judge.score([query] * len(texts), texts), dtype=float)
    if scores.shape != (len(texts),):
        raise ValueError(f"judge {judge.name!r} returned shape {scores.shape}; expected ({len(texts)},)")
    return scores


def positive_reference(scores: np.ndarray) -> float:
    """The positive score a candidate must beat: the best known positive's."""
    return float(np.max(scores))


@dataclass(frozen=True)
class Promote:
    """Split a query's candidates into those kept as negatives and those promoted.

    Attributes:
        judge: The named scorer.
        doc_text: Document id -> text.
        margin: How far above the best positive's judge score a candidate must score.
    """

    judge: Judge
    doc_text: Callable[[str], str]
    margin: float
    name: str = "promoted"

    def __call__(
        self, ctx: QueryContext, cands: list[Candidate]
    ) -> tuple[list[Candidate], dict[str, dict[str, Any]]]:
        """``(kept candidates, {docid: promotion record})``, both in rank order."""
        if not cands or not ctx.positives:
            return list(cands), {}
        positives = sorted(ctx.positives)
        texts = [self.doc_text(d) for d in positives] + [self.doc_text(c.docid) for c in cands]
        scores = judge_scores(self.judge, ctx.query, texts)
        reference = positive_reference(scores[: len(positives)])
        kept: list[Candidate] = []
        promoted: dict[str, dict[str, Any]] = {}
        for cand, score in zip(cands, scores[len(positives) :], strict=True):
            if score > reference + self.margin:
                promoted[cand.docid] = {
                    "judge": self.judge.name,
                    "judge_score": float(score),
                    "positive_judge_score": reference,
                    "margin": self.margin,
                    "rank": cand.rank,
                    "score": cand.score,
                    "retriever": cand.retriever,
                }
            else:
                kept.append(cand)
        return kept, promoted
