"""Rerank a run's top documents with a cross-encoder (Nogueira & Cho, 2019)."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tqdm.auto import tqdm

from retrievers.io.trec import RunDict, ranked

logger = logging.getLogger(__name__)


def rerank(
    model,
    queries: Mapping[str, str],
    texts: Mapping[str, str],
    run: RunDict,
    depth: int = 100,
    batch_size: int = 64,
    progress: bool = True,
) -> RunDict:
    """Scores of ``model`` for each query's top ``depth`` documents of ``run``.

    Args:
        model: a cross-encoder with ``score(queries, docs, batch_size) -> np.ndarray``.
        queries: query id -> text (queries missing here are skipped, with a warning).
        texts: document id -> text; must cover the reranked documents.
        run: query id -> document id -> score (the ranking to rerank).
        depth: documents reranked per query; the rest are dropped.

    Returns:
        A run holding only the reranked documents, scored by the model.
    """
    out: RunDict = {}
    skipped = [qid for qid in run if qid not in queries]
    if skipped:
        logger.warning(
            "%d run queries have no text in the dataset split (e.g. %r); skipped",
            len(skipped),
            skipped[0],
        )
    for qid in tqdm(
        [q for q in run if q in queries], desc="rerank", unit="query", disable=not progress
    ):
        docids = [docid for docid, _ in ranked(run[qid])][:depth]
        scores = model.score(
            [queries[qid]] * len(docids), [texts[d] for d in docids], batch_size=batch_size
        )
        out[qid] = {d: float(s) for d, s in zip(docids, scores, strict=True)}
    return out
