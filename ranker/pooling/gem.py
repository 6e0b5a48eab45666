"""Generalized-mean poolers with learnable exponents: GeM and group-wise GeM (GGeM)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ranker.pooling.base import Pooler, masked_mean, register_pooler

SIGNED_MODES = ("clamp", "symmetric")


@register_pooler
class GeMPooler(Pooler):
    """Generalized mean ``(mean_t x_t^p)^(1/p)`` over real tokens with a learnable ``p``
    (Radenović, Tolias & Chum, "Fine-tuning CNN Image Retrieval with No Human Annotation",
    TPAMI 2018). ``p = 1`` is mean pooling, ``p -> inf`` approaches max pooling.

    One exponent is shared by each group of ``groups`` contiguous channels (GeM: one group).

    Signed activations: GeM was made for non-negative CNN features, but transformer states
    are signed, and a fractional power of a negative number is undefined. ``signed`` chooses
    how to handle them:

    * ``"clamp"`` (default, as in the paper): values are clamped at ``eps`` before the power,
      so negative activations all count as ``eps``; the output is non-negative.
    * ``"symmetric"``: ``sign(x) * |x|^p`` is averaged and mapped back with
      ``sign(m) * |m|^(1/p)``, which keeps negative evidence (``p = 1`` is exactly mean).

    The computation runs in float32 whatever the input dtype (powers overflow in fp16), and
    ``p`` is clamped to ``>= 1`` in the forward pass.

    Args:
        p_init: Initial exponent.
        eps: Clamp floor for values (``"clamp"``) or magnitudes (``"symmetric"``).
        groups: Number of channel groups, each with its own exponent; must divide hidden_size.
        signed: ``"clamp"`` or ``"symmetric"``.
    """

    mode = "gem"
    config_keys = ("p_init", "eps", "groups", "signed")

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        p_init: float = 3.0,
        eps: float = 1e-6,
        groups: int | None = 1,
        signed: str = "clamp",
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers)
        groups = self._default_groups() if groups is None else int(groups)
        if groups < 1 or hidden_size % groups:
            raise ValueError(f"pooler {self.mode!r}: groups={groups} must divide hidden_size={hidden_size}")
        if signed not in SIGNED_MODES:
            raise ValueError(f"pooler {self.mode!r}: signed must be one of {SIGNED_MODES}, got {signed!r}")
        if p_init < 1 or eps <= 0:
            raise ValueError(f"pooler {self.mode!r}: need p_init >= 1 and eps > 0")
        self.p_init, self.eps, self.groups, self.signed = float(p_init), float(eps), groups, signed
        self.p = nn.Parameter(torch.full((groups,), self.p_init))

    def _default_groups(self) -> int:
        return 1

    def pool(self, states: Tensor, attention_mask: Tensor) -> Tensor:
        p = self.p.float().clamp(min=1.0).repeat_interleave(self.hidden_size // self.groups)
        x = states.float()
        if self.signed == "clamp":
            powered = x.clamp(min=self.eps).pow(p)
            mean = masked_mean(powered, attention_mask).clamp(min=torch.finfo(torch.float32).tiny)
            pooled = mean.pow(1.0 / p)
        else:
            powered = torch.sign(x) * x.abs().clamp(min=self.eps).pow(p)
            mean = masked_mean(powered, attention_mask)
            pooled = torch.sign(mean) * mean.abs().clamp(min=self.eps).pow(1.0 / p)
        return pooled.to(states.dtype)


@register_pooler
class GGeMPooler(GeMPooler):
    """Group generalized mean: one learnable exponent per channel group, the groups being the
    backbone's attention heads by default (Ko, Gu & Kim, "Group Generalized Mean Pooling for
    Vision Transformer", arXiv:2212.04114, 2022). See :class:`GeMPooler` for signed values.
    """

    mode = "ggem"

    def __init__(
        self,
        hidden_size: int,
        num_layers: int,
        num_heads: int = 1,
        layers: list[int] | None = None,
        p_init: float = 3.0,
        eps: float = 1e-6,
        groups: int | None = None,
        signed: str = "clamp",
    ) -> None:
        super().__init__(hidden_size, num_layers, num_heads, layers, p_init, eps, groups, signed)

    def _default_groups(self) -> int:
        return self.num_heads
