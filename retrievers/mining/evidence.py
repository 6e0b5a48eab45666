"""Retriever evidence recorded with mined negatives: where each retriever ranked a document.

CET's feature selection model (``ranker``'s ``selection: features``) models the chance that a
document was *judged* from how the retrieval systems saw it. That needs the same evidence for
positives and negatives alike, or the model tells the two classes apart by a constant. So,
for every query, mining records per retriever (the ones that mined the candidates and any
``evidence`` retrievers, e.g. the run that built the judging pool):

* on each negative, ``"evidence": {retriever: [rank, score]}`` for every retriever that
  returned it within ``depth``;
* on the query, ``"positive_evidence": {docid: {retriever: [rank, score]}}`` for its
  positives (an empty object where no retriever returned it), and
  ``"evidence_lists": {retriever: {"depth", "n", "mean", "std", "min"}}``, the statistics of
  each retriever's list, so scores can be standardised per query and a document a retriever
  did not return gets the same "not retrieved" value whichever class it is in.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Evidence:
    """One query's retriever lists, indexed by document.

    Attributes:
        found: retriever -> document id -> ``(rank, score)`` (rank 1-based).
        lists: retriever -> list statistics (``depth`` asked, ``n`` returned, ``mean``,
            ``std`` and ``min`` of the scores).
    """

    found: Mapping[str, Mapping[str, tuple[int, float]]]
    lists: Mapping[str, Mapping[str, float]]

    @classmethod
    def of(cls, hits: Mapping[str, Sequence[tuple[str, float]]], depth: int) -> Evidence:
        """The evidence of ``{retriever: ranked (docid, score) hits}`` searched to ``depth``."""
        found: dict[str, dict[str, tuple[int, float]]] = {}
        lists: dict[str, dict[str, float]] = {}
        for name, ranked in hits.items():
            found[name] = {}
            for rank, (docid, score) in enumerate(ranked, start=1):
                found[name].setdefault(docid, (rank, float(score)))
            scores = [float(s) for _, s in ranked]
            mean = sum(scores) / len(scores) if scores else 0.0
            var = sum((s - mean) ** 2 for s in scores) / len(scores) if scores else 0.0
            lists[name] = {
                "depth": depth,
                "n": len(scores),
                "mean": mean,
                "std": math.sqrt(var),
                "min": min(scores) if scores else 0.0,
            }
        return cls(found, lists)

    def doc(self, docid: str) -> dict[str, list[float]]:
        """``{retriever: [rank, score]}`` of every retriever that returned ``docid``."""
        hits = {name: docs.get(docid) for name, docs in self.found.items()}
        return {name: [hit[0], hit[1]] for name, hit in hits.items() if hit is not None}

    def of_doc(self, docid: str) -> dict[str, Any]:
        """The keys added to a negative's record."""
        return {"evidence": self.doc(docid)}

    def of_query(self, positives: Sequence[str]) -> dict[str, Any]:
        """The keys added to a query's record."""
        return {
            "positive_evidence": {p: self.doc(p) for p in positives},
            "evidence_lists": {name: dict(stats) for name, stats in self.lists.items()},
        }
