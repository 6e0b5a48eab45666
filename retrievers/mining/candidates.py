"""Candidate stage: batched retrieval from one or more indexes, one chunk of queries at a time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np


class Searcher(Protocol):
    """What mining needs from a retriever (``BM25Searcher`` and ``DenseSearcher`` fit)."""

    def search_batch(
        self, queries: Mapping[str, str], k: int
    ) -> Iterator[tuple[str, list[tuple[str, float]]]]: ...


@dataclass(frozen=True)
class Candidate:
    """A retrieved document for a query: its rank (1-based) and score in its retriever."""

    docid: str
    rank: int
    score: float
    retriever: str


def merge_hits(hits: Mapping[str, Sequence[tuple[str, float]]]) -> list[Candidate]:
    """Union of several retrievers' ranked hits for one query.

    A document found by several retrievers is kept once, from the retriever that ranked it
    highest (ties: the retriever listed first). The result is ordered by rank, then by
    retriever order, then by document id.
    """
    order = {name: i for i, name in enumerate(hits)}
    best: dict[str, Candidate] = {}
    for name, ranked in hits.items():
        for rank, (docid, score) in enumerate(ranked, start=1):
            seen = best.get(docid)
            if seen is None or rank < seen.rank:
                best[docid] = Candidate(docid, rank, float(score), name)
    return sorted(best.values(), key=lambda c: (c.rank, order[c.retriever], c.docid))


Hits = list[tuple[str, float]]


def iter_candidates(
    searchers: Mapping[str, Searcher], queries: Mapping[str, str], depth: int, chunk_size: int = 256
) -> Iterator[tuple[str, dict[str, Hits]]]:
    """Yield ``(qid, {retriever: hits})`` per query, in input order.

    Queries go to every searcher ``chunk_size`` at a time, so memory holds at most
    ``chunk_size x depth`` hits per retriever, never a query x corpus matrix.
    """
    items = list(queries.items())
    for start in range(0, len(items), chunk_size):
        chunk = dict(items[start : start + chunk_size])
        per_retriever = {
            name: dict(searcher.search_batch(chunk, depth)) for name, searcher in searchers.items()
        }
        for qid in chunk:
            yield qid, {name: results.get(qid, []) for name, results in per_retriever.items()}


def positive_score(
    searcher: Searcher,
    query: str,
    positives: Sequence[str],
    hits: Sequence[tuple[str, float]],
    reduce: str = "min",
) -> float | None:
    """The score of the query's positives for one retriever: the hardest (lowest-scoring)
    positive's (``reduce="min"``) or the mean over the positives (``reduce="mean"``).

    Uses the searcher's exact ``score_pairs`` when it has one (dense indexes); otherwise the
    positives' scores among the retrieved ``hits``; ``None`` if no positive score is known
    (or, from ``hits``, a positive was not retrieved: its score is below every hit, unknown).
    """
    if reduce not in ("min", "mean"):
        raise ValueError(f"reduce must be min or mean, got {reduce!r}")
    pool = np.min if reduce == "min" else np.mean
    score_pairs = getattr(searcher, "score_pairs", None)
    if score_pairs is not None:
        known = (
            [p for p in positives if p in searcher] if hasattr(searcher, "__contains__") else list(positives)
        )
        if known:
            return float(pool(score_pairs([query] * len(known), known)))
        return None
    found = dict(hits)
    scores = [found[p] for p in positives if p in found]
    if not scores:
        return None
    if len(scores) < len(positives):  # an unretrieved positive scores below every hit
        return None
    return float(pool(scores))
