"""The balanced assignment of configurations to supernets, and rank correlation.

Balanced Mixture of SuperNets (Javan, Toews & Pedersoli, "Balanced Mixture of
SuperNets for Learning the CNN Pooling Architecture", arXiv:2306.11982, 2023; code:
mehravehj/Balanced-Mixture-of-SuperNets, ``utils/NAS_trainer.py``): a matrix ``W`` of
(configuration x supernet) scores, an exponential moving average of each pair's validation
reward. The assignment ``p(m | a) = softmax(T * W[a])`` is then balanced: rows are divided by
the supernets' marginal and renormalized, repeatedly, until the marginal is close to uniform
(KL below a threshold), so that no supernet takes every configuration.
"""

from __future__ import annotations

import math

import torch


def kl_to_uniform(marginal: torch.Tensor) -> float:
    """``KL(marginal || uniform)`` of a probability vector."""
    k = marginal.numel()
    return float((marginal * (marginal * k).clamp(min=1e-30).log()).sum().abs())


def balanced_assignment(
    weights: torch.Tensor, temperature: float, threshold: float = 1e-3, max_iter: int = 1000
) -> torch.Tensor:
    """Balanced ``p(supernet | configuration)``: (A, K) rows summing to 1 whose column means
    are (within ``threshold`` in KL) uniform."""
    prob = torch.softmax(weights.double() * temperature, dim=1)
    for _ in range(max_iter):
        marginal = prob.mean(0)
        if kl_to_uniform(marginal) <= threshold:
            break
        prob = prob / marginal
        prob = prob / prob.sum(1, keepdim=True)
    return prob.float()


def ema(old: float, new: float, decay: float) -> float:
    """Exponential moving average, the paper's update of ``W[a, m]``."""
    return decay * old + (1 - decay) * new


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two score lists (scipy), NaN when undefined."""
    from scipy.stats import kendalltau

    if len(a) < 2:
        return math.nan
    return float(kendalltau(a, b).statistic)
