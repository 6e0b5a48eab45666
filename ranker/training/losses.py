"""Ranking losses with one contract, and optional per-negative weights (for CET).

Every loss takes a :class:`Scores` (a logit matrix, the column of each row's positive, the
columns of its hard negatives) and optional ``weights`` of shape ``[batch, n_hard]``, and
returns a scalar. With ``weights=None`` (or all ones) each is the ordinary loss.

How a weight enters (``w_ij`` for query ``i``'s hard negative ``j``, ``s`` the logits):

* :class:`PairwiseCE` -- the CET paper's loss (Cai et al., CIKM 2022, arXiv 2209.05072): a
  two-way softmax cross-entropy per (positive, negative) pair, weighted, averaged over pairs:
  ``sum_ij w_ij * log(1 + exp(s_ij - s_i+)) / (B * n)``. With one negative this is exactly
  the authors' ``dot(weight, loss) / batch``.
* :class:`ListwiseCE` -- softmax cross-entropy over the positive and its n hard negatives;
  a weight multiplies the negative's term in the partition sum (an inverse-propensity count):
  ``-s_i+ + log(exp(s_i+) + sum_j w_ij exp(s_ij))``, i.e. CE on logits ``s_ij + log w_ij``.
* :class:`InfoNCE` -- the same as ListwiseCE over every column (the other queries' positives
  and hard negatives as in-batch negatives, Karpukhin et al. 2020; sentence-transformers'
  MultipleNegativesRankingLoss); in-batch columns keep weight 1.

Weights of 1 leave a loss unchanged; a weight above 1 makes that negative count more.

:class:`DebiasedInfoNCE` is InfoNCE with the negative term corrected for false negatives by a
class prior ``tau+`` (Chuang et al., "Debiased Contrastive Learning", NeurIPS 2020). Columns
whose logit is ``-inf`` (masked out by a guide model) are no negatives of that row.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Scores:
    """Logits of a batch.

    Attributes:
        logits: ``[B, C]`` scores of each query against C candidate documents.
        target: ``[B]`` column of each query's positive.
        hard: ``[B, n]`` columns of each query's own hard negatives.
    """

    logits: torch.Tensor
    target: torch.Tensor
    hard: torch.Tensor

    @classmethod
    def from_groups(cls, pos: torch.Tensor, neg: torch.Tensor) -> Scores:
        """Positive scores ``[B]`` and negative scores ``[B, n]`` -> column 0 is the positive."""
        logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
        batch, n = neg.shape
        target = torch.zeros(batch, dtype=torch.long, device=logits.device)
        hard = torch.arange(1, n + 1, device=logits.device).expand(batch, n)
        return cls(logits, target, hard)

    def positive(self) -> torch.Tensor:
        """``[B]`` positive scores."""
        return self.logits.gather(1, self.target.unsqueeze(1)).squeeze(1)

    def negatives(self) -> torch.Tensor:
        """``[B, n]`` hard-negative scores."""
        return self.logits.gather(1, self.hard)


class RankingLoss:
    """Base: ``loss(scores, weights=None) -> scalar``."""

    name = "base"

    def __call__(self, scores: Scores, weights: torch.Tensor | None = None) -> torch.Tensor:
        if weights is not None and weights.shape != scores.hard.shape:
            raise ValueError(
                f"weights have shape {tuple(weights.shape)}; expected "
                f"{tuple(scores.hard.shape)} (one per hard negative)"
            )
        return self.compute(scores, weights)

    def compute(self, scores: Scores, weights: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class PairwiseCE(RankingLoss):
    """Softmax CE per (positive, negative) pair, weighted and averaged over pairs (CET paper)."""

    name = "pairwise"

    def compute(self, scores: Scores, weights: torch.Tensor | None) -> torch.Tensor:
        logits = scores.logits.float()
        per_pair = F.softplus(logits.gather(1, scores.hard) - logits.gather(1, scores.target[:, None]))
        if weights is not None:
            per_pair = per_pair * weights.to(per_pair.dtype)
        return per_pair.mean()


class ListwiseCE(RankingLoss):
    """Softmax CE over the positive and its hard negatives (LCE); weights scale partition terms."""

    name = "listwise"

    def compute(self, scores: Scores, weights: torch.Tensor | None) -> torch.Tensor:
        logits = scores.logits.float()
        columns = torch.cat([scores.target[:, None], scores.hard], dim=1)
        sub = logits.gather(1, columns)
        if weights is not None:
            sub = torch.cat([sub[:, :1], sub[:, 1:] + torch.log(weights.to(sub.dtype))], dim=1)
        return F.cross_entropy(sub, torch.zeros(len(sub), dtype=torch.long, device=sub.device))


class InfoNCE(RankingLoss):
    """Softmax CE over all columns (in-batch + hard negatives); weights on hard columns only."""

    name = "infonce"

    def compute(self, scores: Scores, weights: torch.Tensor | None) -> torch.Tensor:
        logits = scores.logits.float()
        if weights is not None:
            offset = torch.zeros_like(logits).scatter(1, scores.hard, torch.log(weights.to(logits.dtype)))
            logits = logits + offset
        return F.cross_entropy(logits, scores.target)


class DebiasedInfoNCE(RankingLoss):
    """InfoNCE with Chuang et al.'s debiased negative term (NeurIPS 2020, eq. 7 and the
    authors' code, github.com/chingyaoc/DCL).

    With ``s`` the logits (``scale * cos``, so the paper's temperature is ``t = 1 / scale``),
    ``N`` a row's negatives (every column but the positive that is not masked to ``-inf``)::

        Ng   = max((sum_n w_n exp(s_n) - N * tau_plus * exp(s_p)) / (1 - tau_plus),
                   N * exp(-1 / t))                      # the clamp: exp of cos = -1
        loss = mean_rows -log(exp(s_p) / (exp(s_p) + Ng))

    ``tau_plus = 0`` is plain InfoNCE whenever the clamp does not bind. Computed in float64
    with each row shifted by its largest logit, so ``exp`` cannot overflow and the subtraction
    in the estimate loses no precision.

    Args:
        tau_plus: class prior: the chance that a negative is in fact a positive (0 <= tau+ < 1).
        scale: the logit scale ``1 / t`` (the bound of the clamp is ``exp(-scale)``).
    """

    name = "infonce"

    def __init__(self, tau_plus: float, scale: float):
        if not 0 <= tau_plus < 1:
            raise ValueError(f"tau_plus={tau_plus}: expected 0 <= tau_plus < 1")
        self.tau_plus, self.scale = tau_plus, scale

    def compute(self, scores: Scores, weights: torch.Tensor | None) -> torch.Tensor:
        logits = scores.logits.double()
        is_positive = torch.zeros_like(logits, dtype=torch.bool).scatter(1, scores.target[:, None], True)
        is_negative = ~is_positive & torch.isfinite(logits)
        shift = logits.detach().max(dim=1, keepdim=True).values
        exp = torch.exp(logits - shift)
        if weights is not None:
            exp = exp.scatter(1, scores.hard, exp.gather(1, scores.hard) * weights.to(exp.dtype))
        pos = exp.gather(1, scores.target[:, None]).squeeze(1)
        count = is_negative.sum(dim=1).to(exp.dtype)
        neg_sum = torch.where(is_negative, exp, torch.zeros_like(exp)).sum(dim=1)
        estimate = (neg_sum - count * self.tau_plus * pos) / (1 - self.tau_plus)
        floor = count * torch.exp(-self.scale - shift.squeeze(1))
        negative_term = torch.maximum(estimate, floor)
        log_pos = logits.gather(1, scores.target[:, None]).squeeze(1) - shift.squeeze(1)
        return (torch.log(pos + negative_term) - log_pos).mean().float()


LOSSES: dict[str, type[RankingLoss]] = {c.name: c for c in (PairwiseCE, ListwiseCE, InfoNCE)}


def make_loss(name: str) -> RankingLoss:
    """A loss by name: ``pairwise``, ``listwise`` or ``infonce``."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
