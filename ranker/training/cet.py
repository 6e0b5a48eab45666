"""CET weights: the Coupled Estimation Technique (Cai, Guo, Fan, Ai, Zhang, Cheng, "Hard
Negatives or False Negatives: Correcting Pooling Bias in Training Neural Ranking Models",
CIKM 2022, arXiv 2209.05072).

An observed label needs a document to be *selected* for judging and *relevant*. A relevance
model R (the ranker kept) and a selection model S are trained together on the same batches;
each weights its loss on a negative ``d-`` by the other model's belief, computed without
gradient (as the authors' code does, in eval mode):

    w_R(q, d-) = 1 / (1 - sigmoid(S(q, d-) / T))      (weights R's loss)
    w_S(q, d-) = 1 / (1 - sigmoid(R(q, d-) / T))      (weights S's loss)

``1 / (1 - sigmoid(x)) = 1 + exp(x)``, which is how it is computed here (stable; the exponent
is capped at 80 so the float32 result stays finite). Weights are >= 1: a negative that S
thinks would have been selected for judging (so its missing label is informative) counts
more; one S thinks was never looked at counts about once. The reference code lets weights
grow without bound; ``max_weight`` clips them and ``normalize`` rescales each batch's weights
to mean 1 (clipping first, then normalization).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MAX_EXPONENT = 80.0


def cet_weights(
    scores: torch.Tensor,
    temperature: float = 10.0,
    max_weight: float = 0.0,
    normalize: bool = False,
) -> torch.Tensor:
    """Per-negative weights ``1 / (1 - sigmoid(score / T))`` from the *other* model's scores.

    Args:
        scores: ``[B, n]`` logits of the hard negatives (any float dtype; no grad is kept).
        temperature: T (the paper uses 10).
        max_weight: clip weights to at most this (0: no clipping); must be >= 1 if set.
        normalize: divide by the batch mean after clipping, so the weights average 1.

    Returns:
        ``[B, n]`` float32 weights, detached.
    """
    if max_weight and max_weight < 1:
        raise ValueError(f"max_weight={max_weight}: weights are >= 1, so a clip below 1 is meaningless")
    x = (scores.detach().float() / temperature).clamp(max=MAX_EXPONENT)
    weights = 1.0 + torch.exp(x)
    if max_weight:
        weights = weights.clamp(max=max_weight)
    if normalize:
        weights = weights / weights.mean()
    return weights


@dataclass
class WeightStats:
    """Summary of one batch of weights (logged to metrics.csv)."""

    mean: float
    std: float
    min: float
    max: float
    clipped: float  # fraction of weights at the clip value

    @classmethod
    def of(cls, weights: torch.Tensor, max_weight: float = 0.0) -> WeightStats:
        w = weights.detach().float().flatten()
        clipped = float((w >= max_weight).float().mean()) if max_weight else 0.0
        std = float(w.std()) if w.numel() > 1 else 0.0
        return cls(
            float(w.mean()),
            std if math.isfinite(std) else 0.0,
            float(w.min()),
            float(w.max()),
            clipped,
        )
