"""Trainable latent-attention poolers: last-layer (``latent``) and multi-layer (``mltp``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.pooling.base import (
    Pooler,
    gather_tokens,
    last_token_index,
    masked_mean,
    register_pooler,
)


class GEGLU(nn.Module):
    """Gated GELU (Shazeer, "GLU Variants Improve Transformer", 2020)."""

    def forward(self, x: Tensor) -> Tensor:
        value, gate = x.chunk(2, dim=-1)
        return value * F.gelu(gate)


class LatentCrossAttention(nn.Module):
    """Trainable latents cross-attend over a context (pre-norm), then a GEGLU feed-forward
    block; the result is averaged over latents (the Perceiver-style block of Tang & Yang 2024).

    Context positions where ``key_mask`` is false are never attended to. Rows with no valid
    position attend uniformly (finite, no NaN) and the output is zeroed for them.
    """

    def __init__(self, dim: int, num_latents: int, num_heads: int, ff_mult: int) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention heads ({num_heads}) must divide the width ({dim})")
        self.num_heads = num_heads
        self.latents = nn.Parameter(torch.randn(num_latents, dim) * dim**-0.5)
        self.norm_latents = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim, bias=False)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, dim * ff_mult * 2), GEGLU(), nn.Linear(dim * ff_mult, dim))

    def forward(self, context: Tensor, key_mask: Tensor) -> Tensor:
        batch, _length, dim = context.shape
        heads = self.num_heads
        latents = self.latents.to(context.dtype).unsqueeze(0).expand(batch, -1, -1)
        q = self.to_q(self.norm_latents(latents))
        k, v = self.to_kv(self.norm_context(context)).chunk(2, dim=-1)
        q, k, v = (t.reshape(batch, -1, heads, dim // heads).transpose(1, 2) for t in (q, k, v))
        valid = key_mask.bool()
        has_any = valid.any(dim=1)
        allowed = valid | ~has_any.unsqueeze(1)  # empty rows: attend everywhere, zeroed below
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None, None, :])
        x = latents + self.to_out(attended.transpose(1, 2).reshape(batch, -1, dim))
        x = x + self.ff(self.norm_ff(x))
        pooled = x.mean(dim=1)
        return torch.where(has_any.unsqueeze(1), pooled, torch.zeros_like(pooled))


def _heads(dim: int, wanted: int) -> int:
    """The largest head count <= ``wanted`` that divides ``dim``."""
    return next(h for h in range(max(1, min(wanted, dim)), 0, -1) if dim % h == 0)


@register_pooler
class LatentAttentionPooler(Pooler):
    """Last-layer trainable pooling: trainable latent queries cross-attend over the last
    layer's token states, followed by a feed-forward block and a mean over latents (the
    "last-layer trainable pooling" baseline of Tang & Yang, "Pooling And Attention: What Are
    Effective Designs For LLM-Based Embedding Models?", arXiv:2409.02727, 2024; cf. the latent
    attention layer of NV-Embed, Lee et al. 2024). Unlike the reference code, padding tokens
    are masked out of the attention.

    Args:
        num_latents: Number of trainable latent queries.
        attn_heads: Cross-attention heads (default: the backbone's head count).
        ff_mult: Width multiplier of the feed-forward block.
    """

    mode = "latent"
    config_keys = ("num_latents", "attn_heads", "ff_mult")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        num_latents: int = 16,
        attn_heads: int | None = None,
        ff_mult: int = 2,
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        if num_latents < 1 or ff_mult < 1:
            raise ValueError(f"pooler {self.mode!r}: num_latents and ff_mult must be positive")
        self.num_latents, self.ff_mult = int(num_latents), int(ff_mult)
        self.attn_heads = _heads(hidden_size, attn_heads or num_heads)
        self.block = LatentCrossAttention(hidden_size, self.num_latents, self.attn_heads, self.ff_mult)

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        return self.block(states, attention_mask)


@register_pooler
class MultiLayerTrainablePooler(Pooler):
    """Multi-layer trainable pooling (MLTP; Tang & Yang, "Pooling And Attention: What Are
    Effective Designs For LLM-Based Embedding Models?", arXiv:2409.02727, 2024).

    Each selected layer gives one vector (its last real token, ``layer_vector="eos"``, or its
    masked token mean, ``"mean"``); a learned layer embedding is added; trainable latents
    cross-attend over these layer vectors; a feed-forward block follows and the latents are
    averaged. The reference head is sized for a 7B model (4096-wide, 768 latents, 32 heads of
    2048: 1.28B parameters); here every width is the backbone's hidden size and heads default
    to the backbone's, so the head stays a small fraction of the backbone.

    Args:
        layer_vector: ``"eos"`` (last real token) or ``"mean"`` (masked mean) per layer.
        num_latents, attn_heads, ff_mult: As in :class:`LatentAttentionPooler`.
    """

    mode = "mltp"
    multi_layer = True
    config_keys = ("layer_vector", "num_latents", "attn_heads", "ff_mult")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        layer_vector: str = "eos",
        num_latents: int = 16,
        attn_heads: int | None = None,
        ff_mult: int = 2,
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        if layer_vector not in ("eos", "mean"):
            raise ValueError(f"pooler 'mltp': layer_vector must be 'eos' or 'mean', got {layer_vector!r}")
        if num_latents < 1 or ff_mult < 1:
            raise ValueError("pooler 'mltp': num_latents and ff_mult must be positive")
        self.layer_vector = layer_vector
        self.num_latents, self.ff_mult = int(num_latents), int(ff_mult)
        self.attn_heads = _heads(hidden_size, attn_heads or num_heads)
        self.layer_embedding = nn.Embedding(len(self.selected_layers), hidden_size)
        self.block = LatentCrossAttention(hidden_size, self.num_latents, self.attn_heads, self.ff_mult)

    def pool_layers(self, states: list[Tensor], attention_mask: Tensor) -> Tensor:
        if self.layer_vector == "eos":
            index = last_token_index(attention_mask)
            vectors = torch.stack([gather_tokens(s, index) for s in states], dim=1)
        else:
            vectors = torch.stack([masked_mean(s, attention_mask) for s in states], dim=1)
        vectors = vectors + self.layer_embedding.weight.to(vectors.dtype).unsqueeze(0)
        has_tokens = attention_mask.bool().any(dim=1, keepdim=True)
        return self.block(vectors, has_tokens.expand(-1, vectors.shape[1]))
