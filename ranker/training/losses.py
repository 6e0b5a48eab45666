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


LOSSES: dict[str, type[RankingLoss]] = {c.name: c for c in (PairwiseCE, ListwiseCE, InfoNCE)}


def make_loss(name: str) -> RankingLoss:
    """A loss by name: ``pairwise``, ``listwise`` or ``infonce``."""
    try:
        return LOSSES[name]()
    except KeyError:
        raise ValueError(f"unknown loss {name!r}; expected one of {sorted(LOSSES)}") from None
