"""Periodic evaluation during training: rerank a run (cross-encoder) or retrieve with the
current embeddings (bi-encoder), then score with ranx."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import torch

from ranker.rerank import rerank
from retrievers.io.trec import QrelsDict, RunDict

logger = logging.getLogger(__name__)


def ranx_score(qrels: QrelsDict, run: RunDict, metrics: list[str]) -> dict[str, float]:
    """Mean scores of ``run`` under ``metrics`` (ranx) over all judged queries (a query
    missing from the run counts 0)."""
    from ranx import Qrels, Run, evaluate

    scores = evaluate(
        Qrels({q: dict(d) for q, d in qrels.items()}),
        Run({q: dict(d) for q, d in run.items()}),
        metrics,
        make_comparable=True,
        save_results_in_run=False,
    )
    return {m: float(scores[m]) for m in metrics} if isinstance(scores, dict) else {metrics[0]: float(scores)}


def dense_search(
    model, queries: Mapping[str, str], texts: Mapping[str, str], k: int = 100, batch_size: int = 64
) -> RunDict:
    """Exact inner-product search over the whole corpus (FAISS flat index when installed,
    else a chunked torch top-k); never holds a query x corpus matrix."""
    qids, docids = list(queries), list(texts)
    q = model.encode_queries([queries[i] for i in qids], batch_size=batch_size).astype(np.float32)
    d = model.encode_corpus([texts[i] for i in docids], batch_size=batch_size, show_progress=True).astype(
        np.float32
    )
    k = min(k, len(docids))
    try:
        import faiss

        index = faiss.IndexFlatIP(d.shape[1])
        index.add(d)
        scores, idx = index.search(q, k)
    except ImportError:
        best_s = torch.full((len(qids), 0), 0.0)
        best_i = torch.zeros((len(qids), 0), dtype=torch.long)
        qt = torch.from_numpy(q)
        for start in range(0, len(docids), 8192):
            chunk = qt @ torch.from_numpy(d[start : start + 8192]).T
            s = torch.cat([best_s, chunk], dim=1)
            i = torch.cat([best_i, torch.arange(start, start + chunk.shape[1]).expand(len(qids), -1)], 1)
            top = s.topk(min(k, s.shape[1]), dim=1)
            best_s, best_i = top.values, i.gather(1, top.indices)
        scores, idx = best_s.numpy(), best_i.numpy()
    return {
        qid: {docids[j]: float(s) for s, j in zip(scores[r], idx[r], strict=True) if j >= 0}
        for r, qid in enumerate(qids)
    }


def evaluate_model(
    model,
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
    return ranx_score(qrels, produced, metrics), produced
