"""Pyramid pooling over tokens (after the pyramid pooling of P2AT), as a pooler."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ranker.pooling.base import Pooler, masked_mean, register_pooler
from ranker.pooling.ponet import real_positions


def adaptive_bins(states: Tensor, mask: Tensor, bins: int) -> Tensor:
    """Masked adaptive average pooling of the real tokens into ``bins`` bins (B, bins, H).

    Bin ``i`` of a row with ``n`` real tokens averages real positions
    ``[floor(i n / bins), ceil((i + 1) n / bins))``, the bins of
    :func:`torch.nn.functional.adaptive_avg_pool1d` over the real tokens alone (never empty
    when ``n >= 1``; neighbouring bins overlap when ``bins`` does not divide ``n``). Rows with
    no real token give zeros. Cost: O(bins * T * H).
    """
    pos = real_positions(mask)  # (B, T), -1 for padding
    n = mask.bool().sum(1, keepdim=True)  # (B, 1)
    i = torch.arange(bins, device=states.device).view(1, bins, 1)
    start = torch.div(i * n.unsqueeze(1), bins, rounding_mode="floor")
    end = -torch.div(-(i + 1) * n.unsqueeze(1), bins, rounding_mode="floor")  # ceil
    p = pos.unsqueeze(1)
    member = (p >= start) & (p < end) & (p >= 0)  # (B, bins, T)
    weights = member.to(states.dtype)
    count = weights.sum(-1, keepdim=True).clamp(min=1)
    keep = mask.bool().unsqueeze(-1)
    clean = torch.where(keep, states, torch.zeros((), dtype=states.dtype, device=states.device))
    return (weights @ clean) / count


@register_pooler
class PyramidPooler(Pooler):
    """Pyramid pooling over tokens, after the pyramid pooling of P2AT ("P2AT: Pyramid Pooling
    Axial Transformer for Real-time Semantic Segmentation", arXiv:2310.15025, Expert Systems
    with Applications 2024; code: mohamedac29/P2AT ``models/common_blocks.py``) and PSPNet's
    pyramid of bins (Zhao et al., CVPR 2017). P2AT's own ``P2Module`` cascades stride-1
    average pools (kernels 3, 5, 7) over a 2-D feature map; over a 1-D token sequence that
    becomes down-sampling into bins, which is what a fixed-size text vector needs.

    The real tokens are average-pooled adaptively into 1, 2, 4, ..., ``2**(levels-1)`` bins
    (padding masked; see :func:`adaptive_bins`), so finer scales keep where in the text
    something was said. Each scale has its own projection of its concatenated bins
    (``Linear(bins * H, H)`` + GELU, the per-scale 1x1 conv + activation of P2AT/PSPNet); the
    scales are concatenated and fused by a linear layer, added to the masked mean (the
    1-bin level) as a residual, as P2AT adds pooled context back onto its features.

    Args:
        levels: Number of scales (bins 1, 2, ..., ``2**(levels-1)``).
    """

    mode = "pyramid"
    config_keys = ("levels",)

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        levels: int = 3,
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        if not 1 <= levels <= 8:
            raise ValueError(f"pooler 'pyramid': levels must be in 1..8, got {levels}")
        self.levels = int(levels)
        self.bins = [2**i for i in range(self.levels)]
        self.scales = nn.ModuleList(nn.Linear(b * hidden_size, hidden_size) for b in self.bins)
        self.fuse = nn.Linear(self.levels * hidden_size, hidden_size)

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        batch = states.shape[0]
        per_scale = [
            F.gelu(proj(adaptive_bins(states, attention_mask, b).reshape(batch, -1)))
            for b, proj in zip(self.bins, self.scales, strict=True)
        ]
        fused = self.fuse(torch.cat(per_scale, dim=-1))
        out = masked_mean(states, attention_mask) + fused
        has_any = attention_mask.bool().any(1, keepdim=True)
        return torch.where(has_any, out, torch.zeros_like(out))
