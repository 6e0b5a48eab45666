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
grow without bound; ``max_weight`` clips them and ``normalize`` rescales them to mean 1 over
the batch (``batch``) or over each query's hard negatives (``query``), clipping first.

Why ``query`` for a softmax loss: :class:`~ranker.training.losses.InfoNCE` and
:class:`~ranker.training.losses.ListwiseCE` add ``log w`` to a hard negative's logit, so a
constant weight ``c`` is not a no-op there (every hard negative counts ``c`` times, false ones
included). Divided by their mean within the query, constant weights become exactly 1 and the
loss is exactly the unweighted one; only how S ranks a query's negatives against each other
moves it. In the authors' pairwise form a constant weight only scales the loss, so it needs
no normalization.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

MAX_EXPONENT = 80.0
NORMALIZATIONS = ("none", "batch", "query")
Normalization = Literal["none", "batch", "query"]


def cet_weights(
    scores: torch.Tensor,
    temperature: float = 10.0,
    max_weight: float = 0.0,
    normalize: Normalization | bool = "none",
) -> torch.Tensor:
    """Per-negative weights ``1 / (1 - sigmoid(score / T))`` from the *other* model's scores.

    Args:
        scores: ``[B, n]`` logits of the hard negatives (any float dtype; no grad is kept).
        temperature: T (the paper uses 10).
        max_weight: clip weights to at most this (0: no clipping); must be >= 1 if set.
        normalize: after clipping, divide by the mean over the batch (``batch``, or ``True``)
            or over each row, i.e. each query's hard negatives (``query``), so the weights
            average 1 there; ``none`` (or ``False``) leaves them as they are.

    Returns:
        ``[B, n]`` float32 weights, detached.
    """
    if max_weight and max_weight < 1:
        raise ValueError(f"max_weight={max_weight}: weights are >= 1, so a clip below 1 is meaningless")
    x = (scores.detach().float() / temperature).clamp(max=MAX_EXPONENT)
    weights = 1.0 + torch.exp(x)
    if max_weight:
        weights = weights.clamp(max=max_weight)
    return rescale(weights, normalize)


def rescale(weights: torch.Tensor, normalize: Normalization | bool) -> torch.Tensor:
    """``[B, n]`` weights divided by their mean over the batch (``batch``, or ``True``) or over
    each row (``query``); ``none`` (or ``False``) returns them unchanged."""
    mode = ("batch" if normalize else "none") if isinstance(normalize, bool) else normalize
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r}: expected one of {NORMALIZATIONS}")
    if mode == "none":
        return weights
    # in float64 the sum of n equal float32 weights is exact, so a constant row (or batch)
    # becomes exactly 1 (in float32, (c + c + c) / 3 may round away from c)
    wide = weights.double()
    mean = wide.mean() if mode == "batch" else wide.mean(dim=-1, keepdim=True)
    return (wide / mean).to(weights.dtype)


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
