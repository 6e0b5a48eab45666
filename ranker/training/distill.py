"""Distillation losses: the student's scores of a query's positive and hard negatives against a
teacher's scores of the same pairs (written by ``ranker score``).

* :func:`margin_mse` -- MarginMSE (Hofstaetter et al., arXiv 2010.02666; sentence-transformers
  ``MarginMSELoss``): the mean over (positive, negative) pairs of
  ``((s_p - s_n) - (t_p - t_n))^2``.
* :func:`listwise_kl` -- listwise KL divergence (sentence-transformers ``DistillKLDivLoss``,
  Tevatron ``train_distil``): over each query's group ``[positive, negatives]``,
  ``KL(softmax(t / T_t) || softmax(s / T_s))``, averaged over queries and multiplied by
  ``T_s^2`` (Hinton et al.'s gradient scale; with ``T_s = T_t = T`` this is ST's loss).

Student scores are the logits the trainer's loss sees (a bi-encoder's ``scale * cos``, a
cross-encoder's raw score); teacher scores are divided by the teacher temperature ``T_t`` for
either loss, which puts a teacher on the student's scale (a cosine teacher against a
bi-encoder of scale 20: ``T_t = 0.05``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ranker.training.losses import Scores

DISTILL_LOSSES = ("margin_mse", "kl")


def margin_mse(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between student and teacher margins.

    Args:
        student: ``[B, 1 + n]`` scores, column 0 the positive.
        teacher: ``[B, 1 + n]`` the teacher's scores of the same pairs.
    """
    student_margin = student[:, :1] - student[:, 1:]
    teacher_margin = (teacher[:, :1] - teacher[:, 1:]).to(student_margin.dtype)
    return F.mse_loss(student_margin, teacher_margin)


def listwise_kl(
    student: torch.Tensor,
    teacher: torch.Tensor,
    teacher_temperature: float = 1.0,
    student_temperature: float = 1.0,
) -> torch.Tensor:
    """``T_s^2 * mean_q KL(softmax(teacher / T_t) || softmax(student / T_s))`` over each row's
    ``[positive, negatives]`` (``[B, 1 + n]`` both)."""
    log_student = F.log_softmax(student / student_temperature, dim=1)
    log_teacher = F.log_softmax(teacher.to(log_student.dtype) / teacher_temperature, dim=1)
    kl = F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True)
    return kl * student_temperature**2


@dataclass(frozen=True)
class Distillation:
    """A distillation term, alone or added to the ranking loss with a weight.

    Attributes:
        loss: ``"margin_mse"`` or ``"kl"``.
        weight: its multiplier in ``ranking + weight * distillation``.
        alone: drop the ranking loss (train on the teacher's scores only).
        teacher_temperature: ``T_t``: teacher scores are divided by it (both losses).
        student_temperature: ``T_s`` of ``kl``.
    """

    loss: str
    weight: float = 1.0
    alone: bool = False
    teacher_temperature: float = 1.0
    student_temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in DISTILL_LOSSES:
            raise ValueError(f"unknown distillation loss {self.loss!r}; expected one of {DISTILL_LOSSES}")

    def __call__(self, scores: Scores, teacher: torch.Tensor) -> torch.Tensor:
        """The distillation term of a batch: the student's ``[positive, hard negatives]``
        columns of ``scores`` against ``teacher`` (``[B, 1 + n]``)."""
        student = torch.cat([scores.positive()[:, None], scores.negatives()], dim=1).float()
        teacher = teacher.to(student.device)
        if self.loss == "margin_mse":
            return margin_mse(student, teacher / self.teacher_temperature)
        return listwise_kl(student, teacher, self.teacher_temperature, self.student_temperature)

    def combine(self, ranking: torch.Tensor, distill: torch.Tensor) -> torch.Tensor:
        """The total loss: ``weight * distill`` alone, or added to ``ranking``."""
        term = self.weight * distill
        return term if self.alone else ranking + term
