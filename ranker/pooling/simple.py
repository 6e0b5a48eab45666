"""Parameter-free poolers: CLS, mean, max, last token, position-weighted mean."""

from __future__ import annotations

import torch
from torch import Tensor

from ranker.pooling.base import (
    Pooler,
    first_token_index,
    gather_tokens,
    last_token_index,
    masked_mean,
    register_pooler,
)


@register_pooler
class ClsPooler(Pooler):
    """The first real token's state (``[CLS]`` for BERT; Devlin et al., NAACL 2019).

    The first *real* token is used, so left-padded batches pool the right token too.
    """

    mode = "cls"

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        return gather_tokens(states, first_token_index(attention_mask))


@register_pooler
class MeanPooler(Pooler):
    """Mean of the real tokens' states (Reimers & Gurevych, "Sentence-BERT", EMNLP 2019)."""

    mode = "mean"

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        return masked_mean(states, attention_mask)


@register_pooler
class MaxPooler(Pooler):
    """Channel-wise max over real tokens (Conneau et al., "InferSent", EMNLP 2017).

    Rows that are all padding give zeros.
    """

    mode = "max"

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        keep = attention_mask.bool().unsqueeze(-1)
        lowest = torch.tensor(torch.finfo(states.dtype).min, dtype=states.dtype, device=states.device)
        pooled = torch.where(keep, states, lowest).max(dim=1).values
        has_tokens = keep.any(dim=1)
        return torch.where(has_tokens, pooled, torch.zeros_like(pooled))


@register_pooler
class LastTokenPooler(Pooler):
    """The last real token's state (EOS pooling of decoder embedders, e.g. Wang et al.,
    "Improving Text Embeddings with Large Language Models", ACL 2024).

    The index is found from the mask, so it is right for left and right padding alike.
    """

    mode = "last"

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        return gather_tokens(states, last_token_index(attention_mask))


@register_pooler
class WeightedMeanPooler(Pooler):
    """Position-weighted mean: token ``i`` (1-based, among real tokens) gets weight ``i``
    (Muennighoff, "SGPT: GPT Sentence Embeddings for Semantic Search", arXiv:2202.08904).

    Later tokens of a causal model have seen more of the text, so they weigh more. Positions
    are counted from the first real token, so left padding does not shift the weights.
    """

    mode = "weighted_mean"

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        mask = attention_mask.to(torch.float32)
        positions = mask.cumsum(dim=1) * mask
        weights = positions / positions.sum(dim=1, keepdim=True).clamp(min=1.0)
        keep = attention_mask.bool().unsqueeze(-1)
        zero = torch.zeros((), dtype=states.dtype, device=states.device)
        states = torch.where(keep, states, zero)
        return (states * weights.unsqueeze(-1).to(states.dtype)).sum(dim=1)
