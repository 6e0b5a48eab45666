"""Rerank a run's top documents with a cross-encoder (Nogueira & Cho, 2019) or a bi-encoder."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from tqdm.auto import tqdm

from retrievers.io.trec import RunDict, ranked
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)


def rerank(
    model,
    queries: Mapping[str, str],
    texts: Mapping[str, str],
    run: RunDict,
    depth: int = 100,
    batch_size: int = 64,
    progress: bool = True,
    keep_rest: bool = False,
) -> RunDict:
    """Scores of ``model`` for each query's top ``depth`` documents of ``run``.

    Args:
        model: a cross-encoder or bi-encoder, ``score(queries, docs, batch_size) -> np.ndarray``.
        queries: query id -> text (queries missing here are skipped, with a warning).
        texts: document id -> text; must cover the reranked documents.
        run: query id -> document id -> score (the ranking to rerank).
        depth: documents reranked per query.
        keep_rest: keep the documents below ``depth`` after the reranked ones, in their
            original order (scores below the lowest reranked score), so recall at depths
            beyond ``depth`` is that of the first-stage run; otherwise they are dropped.

    Returns:
        A run with the reranked documents scored by the model (and the rest, if kept).
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
        [q for q in run if q in queries], desc="rerank", unit="query", disable=bars_disabled(progress)
    ):
        order = [docid for docid, _ in ranked(run[qid])]
        docids = order[:depth]
        scores = model.score([queries[qid]] * len(docids), [texts[d] for d in docids], batch_size=batch_size)
        out[qid] = {d: float(s) for d, s in zip(docids, scores, strict=True)}
        if keep_rest and len(order) > depth:
            floor = min(out[qid].values()) if out[qid] else 0.0
            out[qid].update({d: floor - 1.0 - i for i, d in enumerate(order[depth:])})
    return out


def load_reranker(folder: str | Path, kind: str):
    """The model saved by ranker in ``folder`` (``kind`` from
    :func:`ranker.models.kind.model_kind`): a CrossEncoder, or a BiEncoder (its interaction
    head scores pairs; without one, the embeddings' inner product)."""
    from ranker.models import BiEncoder, CrossEncoder
    from retrievers.errors import InputError

    if kind == "crossencoder":
        return CrossEncoder.load(folder)
    if kind == "biencoder":
        return BiEncoder.load(folder)
    raise InputError(f"{kind}: expected a cross-encoder or a bi-encoder saved by ranker", folder)
