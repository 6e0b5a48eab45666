"""Periodic evaluation during training: rerank a run (cross-encoder) or retrieve with the
current embeddings (bi-encoder), then score it exactly as ``ranker evaluate`` does
(:func:`ranker.evaluation.metrics.evaluate_run`: trec_eval's conventions and tie-breaking)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ranker.evaluation.metrics import evaluate_run
from ranker.rerank import rerank
from retrievers.dense import exact_search
from retrievers.io.trec import QrelsDict, RunDict

logger = logging.getLogger(__name__)


def mean_scores(qrels: QrelsDict, run: RunDict, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each metric over all judged queries (a judged query missing from the run
    scores 0), under trec_eval's conventions: the one scoring path of training and
    ``ranker evaluate``."""
    return dict(evaluate_run(run, qrels, metrics, name="evaluation").means)


class _Batched:
    """A bi-encoder as the ``retrievers`` encoder protocol, with the evaluation batch size."""

    def __init__(self, model: Any, batch_size: int) -> None:
        self.model, self.batch_size = model, batch_size

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode_queries(texts, batch_size=self.batch_size))

    def encode_corpus(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self.model.encode_corpus(texts, batch_size=self.batch_size, show_progress=True))

    encode = encode_corpus


def dense_search(
    model: Any, queries: Mapping[str, str], texts: Mapping[str, str], k: int = 100, batch_size: int = 64
) -> RunDict:
    """Exact inner-product search of a bi-encoder over ``texts``
    (:func:`retrievers.dense.exact_search`, a FAISS flat index)."""
    hits = exact_search(_Batched(model, batch_size), queries, texts, k=k)
    return {qid: dict(ranked) for qid, ranked in hits.items()}


def evaluate_model(
    model: Any,
    model_type: str,
    queries: Mapping[str, str],
    qrels: QrelsDict,
    texts: Mapping[str, str],
    metrics: list[str],
    run: RunDict | None = None,
    depth: int = 100,
    batch_size: int = 64,
) -> tuple[dict[str, float], RunDict]:
    """Score ``model`` on judged ``queries``; returns (metric -> value, the run produced)."""
    queries = {q: t for q, t in queries.items() if q in qrels}
    was_training = model.training
    model.eval()
    try:
        if model_type == "cross" or getattr(model, "interaction", None) is not None:
            if run is None:
                raise ValueError(f"{model_type}-encoder evaluation needs a run to rerank (eval_run)")
            produced = rerank(
                model,
                queries,
                texts,
                {q: run[q] for q in queries if q in run},
                depth=depth,
                batch_size=batch_size,
                progress=False,
            )
        else:
            produced = dense_search(model, queries, texts, k=max(depth, 100), batch_size=batch_size)
    finally:
        model.train(was_training)
    return mean_scores(qrels, produced, metrics), produced
