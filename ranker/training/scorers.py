"""Scorers: turn a model and a :class:`~ranker.training.data.Batch` into :class:`Scores`.

One scorer per kind of model, so losses and CET never look inside a model:

* :class:`CrossScorer` -- a cross-encoder (``tokenize(queries, docs)``, ``forward``);
* :class:`BiScorer` -- a bi-encoder (``tokenize_queries/docs``, ``embed_queries/docs``),
  scored by ``scale * q . d`` or by its bilinear interaction head when it has one;
  with several processes the document embeddings are gathered from every rank *with
  gradients*, so each query sees the whole global batch as in-batch negatives;
* :class:`FeatureScorer` -- CET's feature selection model over retriever features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ranker.training.data import Batch
from ranker.training.losses import Scores


def to_device(features: Any, device: torch.device) -> Any:
    """Move tokenizer output (a BatchEncoding or a dict of tensors) to ``device``."""
    if hasattr(features, "to"):
        return features.to(device)
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in features.items()}


def unwrap(model: nn.Module) -> Any:
    """The model inside a DDP wrapper (DDP only forwards ``forward``; other methods such as
    ``tokenize`` live on the wrapped module)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` from all ranks along dim 0, keeping gradients to every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(tensor.contiguous()), dim=0)


class CrossScorer:
    """Cross-encoder scores: column 0 is each query's positive, then its negatives.

    ``model`` may be wrapped in DDP: pairs are tokenized by the wrapped module and scored
    through the wrapper (so gradients are synchronized)."""

    # nn.Module (maybe inside DDP); typed Any as its methods come through nn.Module.__getattr__
    model: Any

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device
        self.tokenize = unwrap(model).tokenize

    def __call__(self, batch: Batch) -> Scores:
        n = len(batch.neg_ids[0])
        queries = [q for q in batch.queries for _ in range(n + 1)]
        docs = [d for p, negs in zip(batch.pos_texts, batch.neg_texts, strict=True) for d in [p, *negs]]
        logits = self.model(to_device(self.tokenize(queries, docs), self.device))
        logits = logits.reshape(len(batch), n + 1)
        return Scores.from_groups(logits[:, 0], logits[:, 1:])

    def negatives(self, batch: Batch) -> torch.Tensor:
        """``[B, n]`` scores of the hard negatives only (CET's weight pass: no positives)."""
        n = len(batch.neg_ids[0])
        queries = [q for q in batch.queries for _ in range(n)]
        docs = [d for negs in batch.neg_texts for d in negs]
        logits = self.model(to_device(self.tokenize(queries, docs), self.device))
        return logits.reshape(len(batch), n)


class BiScorer:
    """Bi-encoder scores ``scale * q . d`` against every document of the global batch.

    ``model`` is a :class:`BiEncoderModule` (possibly inside DDP). Columns are, rank by rank,
    that rank's positives then its negatives (row-major), so one process on the same global
    batch sees the same matrix as the ranks together.
    """

    # nn.Module (maybe inside DDP); typed Any as its methods come through nn.Module.__getattr__
    model: Any

    def __init__(self, model: nn.Module, device: torch.device, scale: float):
        self.model, self.device, self.scale = model, device, scale

    def __call__(self, batch: Batch) -> Scores:
        inner = unwrap(self.model)
        b, n = len(batch), len(batch.neg_ids[0])
        texts = list(batch.pos_texts) + [t for negs in batch.neg_texts for t in negs]
        q, d = self.model(
            to_device(inner.encoder.tokenize_queries(batch.queries), self.device),
            to_device(inner.encoder.tokenize_docs(texts), self.device),
        )
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        head = getattr(inner.encoder, "interaction", None)
        if head is not None:  # a bilinear interaction head learns its own scale
            logits = head(q.float(), gather_with_grad(d).float()).float()
        else:
            logits = self.scale * q.float() @ gather_with_grad(d).float().T
        offset = rank * b * (n + 1)
        rows = torch.arange(b, device=logits.device)
        hard = offset + b + rows[:, None] * n + torch.arange(n, device=logits.device)[None, :]
        return Scores(logits, offset + rows, hard)

    def negatives(self, batch: Batch) -> torch.Tensor:
        """``[B, n]`` scores of each query against its own hard negatives only (CET's weight
        pass: no positives, no gathering across ranks)."""
        inner = unwrap(self.model)
        b, n = len(batch), len(batch.neg_ids[0])
        texts = [t for negs in batch.neg_texts for t in negs]
        q, d = self.model(
            to_device(inner.encoder.tokenize_queries(batch.queries), self.device),
            to_device(inner.encoder.tokenize_docs(texts), self.device),
        )
        # row by row (not a matmul whose blocking depends on the batch), so a query's scores do
        # not depend on how many queries share its rank
        head = getattr(inner.encoder, "interaction", None)
        if head is not None:
            pairs = q.float().repeat_interleave(n, dim=0)
            return head.pairwise(pairs, d.float()).float().reshape(b, n)
        return self.scale * (q.float()[:, None, :] * d.float().reshape(b, n, -1)).sum(-1)


class PairScorer:
    """Bi-encoder scores ``scale * q . d`` of each query against its own positive and hard
    negatives only (no in-batch documents): CET's text S on a frozen, cached backbone, whose
    scores, like a cross-encoder S's, are one per (query, document) pair."""

    # nn.Module (maybe inside DDP); typed Any as its methods come through nn.Module.__getattr__
    model: Any

    def __init__(self, model: nn.Module, device: torch.device, scale: float):
        self.model, self.device, self.scale = model, device, scale

    def _pairs(self, batch: Batch, docs: list[list[str]]) -> torch.Tensor:
        inner = unwrap(self.model)
        n = len(docs[0])
        q, d = self.model(
            to_device(inner.encoder.tokenize_queries(batch.queries), self.device),
            to_device(inner.encoder.tokenize_docs([t for group in docs for t in group]), self.device),
        )
        return self.scale * (q.float()[:, None, :] * d.float().reshape(len(batch), n, -1)).sum(-1)

    def __call__(self, batch: Batch) -> Scores:
        scores = self._pairs(
            batch, [[p, *negs] for p, negs in zip(batch.pos_texts, batch.neg_texts, strict=True)]
        )
        return Scores.from_groups(scores[:, 0], scores[:, 1:])

    def negatives(self, batch: Batch) -> torch.Tensor:
        """``[B, n]`` scores of the hard negatives only."""
        return self._pairs(batch, [list(negs) for negs in batch.neg_texts])


class FeatureScorer:
    """Scores of :class:`~ranker.training.selection.FeatureSelector` on retriever features."""

    # nn.Module (maybe inside DDP); typed Any as its methods come through nn.Module.__getattr__
    model: Any

    def __init__(self, model: nn.Module, device: torch.device):
        self.model, self.device = model, device

    def __call__(self, batch: Batch) -> Scores:
        pos = self.model(batch.pos_features.to(self.device))
        neg = self.model(batch.neg_features.to(self.device))
        return Scores.from_groups(pos, neg)

    def negatives(self, batch: Batch) -> torch.Tensor:
        """``[B, n]`` scores of the hard negatives only."""
        return self.model(batch.neg_features.to(self.device))


class BiEncoderModule(nn.Module):
    """``forward(query_features, doc_features) -> (q, d)`` over a bi-encoder, so that DDP (which
    only syncs what runs through ``forward``) can wrap it in one call per step."""

    encoder: Any  # a BiEncoder; typed Any as its methods come through nn.Module.__getattr__

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder

    def forward(self, queries: Any, docs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encoder.embed_queries(queries), self.encoder.embed_docs(docs)
