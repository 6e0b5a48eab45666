"""rerank(): the top of a run rescored by a cross-encoder, the rest kept or dropped."""

from __future__ import annotations

import numpy as np

from ranker.rerank import rerank
from retrievers.io.trec import ranked


class LengthScorer:
    """Scores a document by its text length (a stand-in cross-encoder)."""

    def score(self, queries, docs, batch_size=64):
        return np.array([float(len(d)) for d in docs])


def test_rerank_top_depth_and_keep_rest_in_order():
    run = {"q": {"a": 5.0, "b": 4.0, "c": 3.0, "d": 2.0, "e": 1.0}}
    texts = {"a": "x", "b": "xxx", "c": "xx", "d": "xxxxxxxx", "e": "xxxxxxxxx"}
    top = rerank(LengthScorer(), {"q": "query"}, texts, run, depth=3, progress=False)
    assert [d for d, _ in ranked(top["q"])] == ["b", "c", "a"]  # d, e dropped
    full = rerank(LengthScorer(), {"q": "query"}, texts, run, depth=3, progress=False, keep_rest=True)
    # d and e are longer than anything reranked, but stay below the reranked top, in run order
    assert [d for d, _ in ranked(full["q"])] == ["b", "c", "a", "d", "e"]


def test_queries_without_text_are_skipped():
    run = {"q": {"a": 1.0}, "unknown": {"a": 1.0}}
    out = rerank(LengthScorer(), {"q": "query"}, {"a": "x"}, run, depth=10, progress=False)
    assert set(out) == {"q"}
