"""PoNet multi-granularity pooling (Tan et al., ICLR 2022), as a pooler."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.pooling.base import Pooler, masked_mean, register_pooler


def real_positions(mask: Tensor) -> Tensor:
    """Position of each token among the real tokens of its row (0, 1, ...; padding: -1).

    Counting real tokens, not columns, makes everything position-based independent of the
    padding side and amount.
    """
    keep = mask.bool()
    return torch.where(keep, keep.long().cumsum(1) - 1, torch.full_like(mask, -1, dtype=torch.long))


def segment_ids(mask: Tensor, segments: int) -> Tensor:
    """Segment of each real token: ``floor(r * S / n)`` for real position ``r`` of ``n``
    (``S`` contiguous, near-equal segments of the real tokens); padding gets ``S``."""
    pos = real_positions(mask)
    n = mask.bool().sum(1, keepdim=True).clamp(min=1)
    ids = torch.div(pos * segments, n, rounding_mode="floor")
    return torch.where(pos >= 0, ids, torch.full_like(ids, segments))


def segment_max(values: Tensor, ids: Tensor, segments: int) -> Tensor:
    """Each token gets the max of ``values`` over its segment (B, T, D); padding rows are 0."""
    batch, _length, dim = values.shape
    index = ids.unsqueeze(-1).expand(-1, -1, dim)
    pooled = values.new_zeros(batch, segments + 1, dim)
    pooled = pooled.scatter_reduce(1, index, values, reduce="amax", include_self=False)
    return pooled.gather(1, index)


def window_max(values: Tensor, mask: Tensor, window: int) -> Tensor:
    """Max of ``values`` over a centred window of ``window`` tokens (stride 1), padding excluded."""
    floor = torch.finfo(values.dtype).min
    keep = mask.bool().unsqueeze(-1)
    filled = torch.where(keep, values, torch.full((), floor, dtype=values.dtype, device=values.device))
    pooled = F.max_pool1d(filled.transpose(1, 2), window, stride=1, padding=window // 2).transpose(1, 2)
    return torch.where(keep, pooled, torch.zeros((), dtype=values.dtype, device=values.device))


@register_pooler
class PoNetPooler(Pooler):
    """PoNet pooling (Tan, Chen, Wang, Zhang, Lu & Zhang, "PoNet: Pooling Network for Efficient
    Token Mixing in Long Sequences", ICLR 2022; code: lxchtan/PoNet ``modeling_ponet.py``).

    One PoNet token-mixing block over the chosen layer's token states ``x``, then a masked
    mean over tokens:

    * global aggregation: per head, the masked mean of ``Q = W_q x`` is one query that attends
      over ``K = W_k x`` (``V = K``, as in the reference), giving one global vector ``g``;
    * segment max-pooling: ``W_s x`` max-pooled within each of ``segments`` contiguous
      segments of the real tokens (the reference's fixed-count LRA segmentation; the BERT
      version's [SEP]-delimited sentences do not exist in a ranker's single text);
    * local max-pooling: ``W_l x`` max-pooled over a sliding window of ``window`` tokens;
    * pooling fusion (the reference's): ``(g + segment_t) * O_t + local_t`` with
      ``O = W_o x``, followed by the BERT self-output (dense, residual, LayerNorm).

    Every operation is linear in sequence length. Padding never enters a mean, a softmax, a
    segment or a window; all-padding rows give zeros.

    Args:
        segments: Number of segments per text.
        window: Local window size (odd).
        attn_heads: Heads of the global aggregation (default: the backbone's, or the largest
            divisor of the width below it).
    """

    mode = "ponet"
    config_keys = ("segments", "window", "attn_heads")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        segments: int = 4,
        window: int = 3,
        attn_heads: int | None = None,
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        if segments < 1:
            raise ValueError(f"pooler 'ponet': segments must be >= 1, got {segments}")
        if window < 1 or window % 2 == 0:
            raise ValueError(f"pooler 'ponet': window must be odd and >= 1, got {window}")
        wanted = attn_heads or num_heads
        self.segments, self.window = int(segments), int(window)
        self.attn_heads = next(
            h for h in range(max(1, min(wanted, hidden_size)), 0, -1) if hidden_size % h == 0
        )
        dim = hidden_size
        self.dense_q = nn.Linear(dim, dim)
        self.dense_k = nn.Linear(dim, dim)
        self.dense_o = nn.Linear(dim, dim)
        self.dense_segment = nn.Linear(dim, dim)
        self.dense_local = nn.Linear(dim, dim)
        self.output = nn.Linear(dim, dim)
        self.norm = nn.LayerNorm(dim)

    def _heads(self, x: Tensor) -> Tensor:
        batch, length, dim = x.shape
        return x.reshape(batch, length, self.attn_heads, dim // self.attn_heads).transpose(1, 2)

    def mix(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        """PoNet's token mixing: (B, T, H) states -> (B, T, H) mixed states (padding: zeros)."""
        batch, length, dim = states.shape
        valid = attention_mask.bool()
        has_any = valid.any(1)
        q, k, o = (self._heads(layer(states)) for layer in (self.dense_q, self.dense_k, self.dense_o))
        keep = valid[:, None, :, None]
        zero = torch.zeros((), dtype=states.dtype, device=states.device)
        count = valid.sum(1).clamp(min=1).to(states.dtype)[:, None, None]
        query = torch.where(keep, q, zero).sum(2) / count  # (B, heads, d)
        scores = torch.einsum("bnd,bntd->bnt", query, k) / math.sqrt(k.shape[-1])
        allowed = (valid | ~has_any.unsqueeze(1))[:, None, :]  # empty rows: uniform, zeroed below
        scores = scores.masked_fill(~allowed, float("-inf"))
        g = torch.einsum("bnt,bntd->bnd", scores.softmax(-1), k)  # V = K
        segment = segment_max(
            self.dense_segment(states), segment_ids(attention_mask, self.segments), self.segments
        )
        local = window_max(self.dense_local(states), attention_mask, self.window)
        mixed = (g.unsqueeze(2) + self._heads(segment)) * o + self._heads(local)
        mixed = mixed.transpose(1, 2).reshape(batch, length, dim)
        mixed = torch.where(valid.unsqueeze(-1), mixed, zero)
        return self.norm(self.output(mixed) + states)

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        return masked_mean(self.mix(states, attention_mask), attention_mask)
