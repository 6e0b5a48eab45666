"""Filter stage: each filter takes one query's candidates and returns those it keeps.

Filters are small stateless objects with a ``name``; the pipeline counts what each drops.
They mirror the knobs of sentence-transformers' ``mine_hard_negatives`` and FlagEmbedding's
miner, with the positive-aware filters of NV-Retriever (Moreira et al., 2024,
"NV-Retriever: Improving text embedding models with effective hard-negative mining") and
the cross-encoder denoising of RocketQA (Qu et al., 2021, "RocketQA: An Optimized Training
Approach to Dense Passage Retrieval for Open-Domain Question Answering").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from retrievers.mining.candidates import Candidate

# score(queries, docs) -> one relevance score per (query, doc) pair, higher = more relevant
PairScorer = Callable[[Sequence[str], Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class QueryContext:
    """What filters may consult about the query being mined.

    Attributes:
        qid: Query id.
        query: Query text.
        positives: Known positive document ids.
        positive_scores: Per retriever, the score of its hardest positive (``None``: unknown).
    """

    qid: str
    query: str
    positives: frozenset[str]
    positive_scores: Mapping[str, float | None]


@dataclass(frozen=True)
class ExcludePositives:
    """Drop the known positives (always applied first)."""

    name: str = "known_positive"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        return [c for c in cands if c.docid not in ctx.positives]


@dataclass(frozen=True)
class ExcludeKnownRelevant:
    """Drop the documents that fuller judgments than the training labels call relevant.

    The clean-negatives oracle of a pooling-bias study: the same pooled positives, and
    negatives with the hidden positives (relevant, but outside the judging pool) taken out, so
    the sampler takes the next candidates instead.

    Attributes:
        relevant: query id -> the document ids to drop for it.
    """

    relevant: Mapping[str, frozenset[str]]
    name: str = "hidden_positive"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        drop = self.relevant.get(ctx.qid, frozenset())
        return [c for c in cands if c.docid not in drop]


@dataclass(frozen=True)
class RankWindow:
    """Keep candidates ranked within ``[min_rank, max_rank]`` (1-based, inclusive)."""

    min_rank: int
    max_rank: int
    name: str = "rank_window"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        return [c for c in cands if self.min_rank <= c.rank <= self.max_rank]


@dataclass(frozen=True)
class PercentOfPositive:
    """NV-Retriever TopK-PercPos: drop candidates scoring above ``fraction`` x positive score.

    Queries whose positive score is unknown for a candidate's retriever keep it.
    """

    fraction: float
    name: str = "perc_pos"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        def keep(c: Candidate) -> bool:
            pos = ctx.positive_scores.get(c.retriever)
            return pos is None or c.score <= self.fraction * pos

        return [c for c in cands if keep(c)]


@dataclass(frozen=True)
class MarginToPositive:
    """NV-Retriever TopK-MarginPos: drop candidates scoring above positive score - ``margin``."""

    margin: float
    name: str = "margin_pos"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        def keep(c: Candidate) -> bool:
            pos = ctx.positive_scores.get(c.retriever)
            return pos is None or c.score <= pos - self.margin

        return [c for c in cands if keep(c)]


@dataclass(frozen=True)
class RescoredCandidate(Candidate):
    """A candidate with a cross-encoder score attached."""

    ce_score: float = 0.0


@dataclass(frozen=True)
class CrossEncoderDenoise:
    """RocketQA denoising: rescore with a cross-encoder, drop those scoring above ``threshold``.

    Candidates a cross-encoder finds this relevant are likely unjudged positives (false
    negatives). Kept candidates carry their ``ce_score``.

    Attributes:
        scorer: ``score(queries, docs) -> np.ndarray`` over paired lists of texts.
        doc_text: Document id -> text.
        threshold: Highest cross-encoder score a negative may have.
    """

    scorer: PairScorer
    doc_text: Callable[[str], str]
    threshold: float
    name: str = "cross_encoder"

    def __call__(self, ctx: QueryContext, cands: list[Candidate]) -> list[Candidate]:
        if not cands:
            return []
        scores = np.asarray(
            self.scorer([ctx.query] * len(cands), [self.doc_text(c.docid) for c in cands]), dtype=float
        )
        if scores.shape != (len(cands),):
            raise ValueError(f"scorer returned shape {scores.shape}; expected ({len(cands)},)")
        return [
            RescoredCandidate(**vars(c), ce_score=float(s))
            for c, s in zip(cands, scores, strict=True)
            if s <= self.threshold
        ]


class Filter(Protocol):
    """A filter: ``filter(ctx, candidates) -> kept candidates``, named for the drop counts."""

    @property
    def name(self) -> str: ...

    def __call__(self, ctx: QueryContext, cands: list[Candidate], /) -> list[Candidate]: ...


def apply_filters(
    filters: Sequence[Filter], ctx: QueryContext, cands: list[Candidate]
) -> tuple[list[Candidate], dict[str, int]]:
    """Run ``filters`` in order; return the survivors and how many each filter dropped."""
    dropped: dict[str, int] = {}
    for flt in filters:
        kept = flt(ctx, cands)
        dropped[flt.name] = len(cands) - len(kept)
        cands = kept
    return cands, dropped


__all__ = [
    "Candidate",
    "CrossEncoderDenoise",
    "ExcludeKnownRelevant",
    "ExcludePositives",
    "MarginToPositive",
    "PairScorer",
    "PercentOfPositive",
    "QueryContext",
    "RankWindow",
    "RescoredCandidate",
    "apply_filters",
]
