"""Guide masking (GISTEmbed: Solatorio, "GISTEmbed: Guided In-sample Selection of Training
Negatives for Text Embedding Fine-tuning", arXiv 2402.16829; sentence-transformers
``GISTEmbedLoss``).

A guide model scores the batch's candidates for each query, once per batch and without
gradient. A candidate (an in-batch or hard negative) that the guide scores at least as high
as the query's positive, less a margin, is likely a false negative and leaves the softmax
(its logit becomes ``-inf``)::

    absolute:  masked  <=>  g(q, d) >= g(q, d+) - margin
    relative:  masked  <=>  g(q, d) >= g(q, d+) * (1 - margin)

The positive itself is never masked. (sentence-transformers masks with a strict ``>``; here
``>=`` also drops exact duplicates of the positive when the margin is 0.) Guide scores may
also come from a ``ranker score`` file: pairs it did not score (the other queries' documents)
are then never masked.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from ranker.training.data import Batch
from ranker.training.losses import Scores
from ranker.training.scorers import to_device
from ranker.training.teacher import TeacherScores


def guide_mask(guide: torch.Tensor, target: torch.Tensor, margin: float, strategy: str) -> torch.Tensor:
    """``[B, C]`` True where a candidate is masked.

    Args:
        guide: ``[B, C]`` guide scores aligned with the student's logits (NaN: unknown, never
            masked).
        target: ``[B]`` column of each row's positive (never masked).
        margin: the margin (>= 0).
        strategy: ``"absolute"`` or ``"relative"``.
    """
    positive = guide.gather(1, target[:, None])
    if strategy == "absolute":
        threshold = positive - margin
    elif strategy == "relative":
        threshold = positive * (1 - margin)
    else:
        raise ValueError(f"unknown guide strategy {strategy!r}; expected 'absolute' or 'relative'")
    mask = guide >= threshold  # NaN compares False
    return mask.scatter(1, target[:, None], False)


def masked(scores: Scores, mask: torch.Tensor) -> Scores:
    """``scores`` with the masked logits at ``-inf`` (the positive's column is never masked)."""
    return Scores(
        scores.logits.masked_fill(mask.to(scores.logits.device), -math.inf), scores.target, scores.hard
    )


class Guide:
    """Guide scores of a batch, laid out like the student's logits.

    Args:
        model: a guide bi-encoder or cross-encoder (kept in eval mode), or None with ``scores``.
        side: ``"bi"`` or ``"cross"`` (the guide model's).
        scores: guide scores read from a ``ranker score`` file instead of a model.
        device: where the guide model runs.
        shared: the student's layout: True for a bi-encoder's (every query against the batch's
            positives then its negatives, row-major), False for a cross-encoder's (each query
            against its own positive and negatives).
    """

    model: Any  # a BiEncoder or CrossEncoder; typed Any as nn.Module hides their methods

    def __init__(
        self,
        model: torch.nn.Module | None,
        side: str,
        scores: TeacherScores | None,
        device: torch.device,
        shared: bool,
    ):
        if (model is None) == (scores is None):
            raise ValueError("a guide needs a model or scores, not both")
        self.model = model.to(device).eval() if model is not None else None
        self.side, self.file, self.device, self.shared = side, scores, device, shared

    def _columns(self, batch: Batch) -> list[list[tuple[str, str]]]:
        """Each row's candidate (docid, text) pairs, in the student's column order."""
        if self.shared:
            ids = list(batch.pos_ids) + [d for negs in batch.neg_ids for d in negs]
            texts = list(batch.pos_texts) + [t for negs in batch.neg_texts for t in negs]
            return [list(zip(ids, texts, strict=True))] * len(batch)
        return [
            list(zip([p, *ni], [pt, *nt], strict=True))
            for p, pt, ni, nt in zip(
                batch.pos_ids, batch.pos_texts, batch.neg_ids, batch.neg_texts, strict=True
            )
        ]

    @torch.no_grad()
    def scores(self, batch: Batch) -> torch.Tensor:
        """``[B, C]`` guide scores of the batch (float32, on the guide's device)."""
        rows = self._columns(batch)
        if self.file is not None:
            table = [[self.file.get(q, d) for d, _ in row] for q, row in zip(batch.qids, rows, strict=True)]
            return torch.tensor(table, dtype=torch.float32, device=self.device)
        if self.side == "cross":
            queries = [q for q, row in zip(batch.queries, rows, strict=True) for _ in row]
            docs = [t for row in rows for _, t in row]
            logits = self.model(to_device(self.model.tokenize(queries, docs), self.device))
            return logits.float().reshape(len(batch), -1)
        q = self.model.embed_queries(to_device(self.model.tokenize_queries(batch.queries), self.device))
        if self.shared:
            d = self.model.embed_docs(
                to_device(self.model.tokenize_docs([t for _, t in rows[0]]), self.device)
            )
            return self.model.similarity(q, d).float()
        texts = [t for row in rows for _, t in row]
        d = self.model.embed_docs(to_device(self.model.tokenize_docs(texts), self.device))
        width = len(rows[0])  # each row's own block of the full similarity matrix
        blocks = torch.arange(len(batch), device=q.device)[:, None] * width + torch.arange(
            width, device=q.device
        )
        return self.model.similarity(q, d).float().gather(1, blocks)
