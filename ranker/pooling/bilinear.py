"""Low-rank (factorized) bilinear pooling of token features, MFB-style, as a pooler."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.pooling.base import Pooler, masked_mean, register_pooler

#: Inside the square root of the signed power normalization, so its gradient stays finite at 0.
POWER_EPS = 1e-8


def signed_sqrt(x: Tensor, eps: float = POWER_EPS) -> Tensor:
    """``sign(x) * sqrt(|x|)`` with a finite gradient everywhere (0 stays 0)."""
    return torch.sign(x) * (torch.sqrt(x.abs() + eps) - eps**0.5)


@register_pooler
class BilinearPooler(Pooler):
    """Factorized bilinear (second-order) pooling of token features, MFB-style (Yu, Yu, Fan &
    Tao, "Multi-modal Factorized Bilinear Pooling with Co-Attention Learning for Visual
    Question Answering", ICCV 2017; cf. Kim et al.'s MLB, ICLR 2017, and bilinear CNN pooling,
    Lin et al., ICCV 2015).

    Each real token ``x_t`` gives ``z_t = SumPool_k((U x_t) * (V x_t))``: two projections to
    ``out_dim * factors``, their elementwise product, and a sum over each group of
    ``factors`` consecutive units (a rank-``factors`` bilinear form per output unit). The
    ``z_t`` are averaged over real tokens (the sum pooling over locations of bilinear
    pooling, divided by the length so that long and short texts compare), then the signed
    square root and L2 normalization of MFB follow. Computed in float32; all-padding rows give
    zeros.

    Args:
        out_dim: Width of the pooled vector (default: the backbone's hidden size).
        factors: ``k``, the rank of each output unit's bilinear form (MFB: 5).
    """

    mode = "bilinear"
    config_keys = ("out_dim", "factors")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        out_dim: int | None = None,
        factors: int = 4,
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        out_dim = hidden_size if out_dim is None else int(out_dim)
        if out_dim < 1 or factors < 1:
            raise ValueError(f"pooler 'bilinear': out_dim and factors must be >= 1, got {out_dim}, {factors}")
        self.out_dim, self.factors = out_dim, int(factors)
        self.proj_u = nn.Linear(hidden_size, out_dim * self.factors)
        self.proj_v = nn.Linear(hidden_size, out_dim * self.factors)

    @property
    def output_dim(self) -> int:
        return self.out_dim

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        batch, length, _ = states.shape
        product = self.proj_u(states) * self.proj_v(states)  # (B, T, o * k)
        z = product.float().reshape(batch, length, self.out_dim, self.factors).sum(-1)
        pooled = masked_mean(z, attention_mask)
        return F.normalize(signed_sqrt(pooled), dim=-1).to(states.dtype)
