"""Layer-wise attention pooling (Oh et al., COLING 2022)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ranker.pooling.base import (
    Pooler,
    first_token_index,
    gather_tokens,
    masked_mean,
    register_pooler,
)


def _projection(dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, dim, bias=False), nn.RReLU())


@register_pooler
class LayerwiseAttentionPooler(Pooler):
    """Layer-wise attention pooling (Oh, Kim, Kim & Choi, "Don't Judge a Language Model by
    Its Last Layer: Contrastive Learning with Layer-Wise Attention Pooling", COLING 2022).

    For each selected layer ``l`` the CLS (first real token) vector is a query; the masked
    token means of all selected layers are keys and values. Projections are bias-free linear
    maps followed by RReLU; scores are divided by the number of layers before the softmax
    over layers. The per-query results are averaged over layers, concatenated with the last
    selected layer's CLS vector, and projected back to ``hidden_size`` with tanh.

    By default all hidden states feed it, the embedding output included, as in the paper.
    RReLU is random in training mode and deterministic (mean slope) in eval mode.
    """

    mode = "layerwise"
    multi_layer = True
    default_first_layer = 0

    def __init__(
        self, hidden_size: int, num_layers: int, num_heads: int = 1, layers: list[int] | None = None
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        self.query = _projection(hidden_size)
        self.key = _projection(hidden_size)
        self.value = _projection(hidden_size)
        self.dense = nn.Linear(2 * hidden_size, hidden_size)

    def pool_layers(self, states: list[Tensor], attention_mask: Tensor) -> Tensor:
        first = first_token_index(attention_mask)
        cls = torch.stack([gather_tokens(s, first) for s in states], dim=1)  # (B, L, H)
        means = torch.stack([masked_mean(s, attention_mask) for s in states], dim=1)  # (B, L, H)
        q, k, v = self.query(cls), self.key(means), self.value(means)
        scores = torch.softmax(q @ k.transpose(1, 2) / len(states), dim=-1)  # (B, Lq, Lk)
        attended = (scores @ v).mean(dim=1)
        return torch.tanh(self.dense(torch.cat([cls[:, -1], attended], dim=-1)))
