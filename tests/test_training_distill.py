"""The false-negative remedies' formulas on hand-computed cases: MarginMSE, listwise KL,
GISTEmbed guide masking and Chuang et al.'s debiased InfoNCE."""

from __future__ import annotations

import math

import pytest
import torch

from ranker.training.distill import Distillation, listwise_kl, margin_mse
from ranker.training.guide import guide_mask, masked
from ranker.training.losses import DebiasedInfoNCE, InfoNCE, ListwiseCE, Scores

e = math.exp


def toy_scores(requires_grad: bool = False) -> Scores:
    """Two queries, bi-encoder layout: [pos0, pos1, neg00, neg01, neg10, neg11]."""
    logits = torch.tensor(
        [[2.0, 0.5, 1.0, -1.0, 0.3, 0.1], [0.2, 1.5, 0.4, 0.0, 1.2, -0.5]],
        requires_grad=requires_grad,
    )
    return Scores(logits, torch.tensor([0, 1]), torch.tensor([[2, 3], [4, 5]]))


# -- MarginMSE and KL ----------------------------------------------------------------------------
def test_margin_mse_by_hand():
    student = torch.tensor([[2.0, 1.0, -1.0], [1.5, 1.2, -0.5]])
    teacher = torch.tensor([[5.0, 3.0, 1.0], [0.0, 1.0, -2.0]])
    # student margins 1, 3, 0.3, 2; teacher margins 2, 4, -1, 2
    expected = ((1 - 2) ** 2 + (3 - 4) ** 2 + (0.3 + 1) ** 2 + 0.0) / 4
    assert margin_mse(student, teacher).item() == pytest.approx(expected, rel=1e-6)


def test_margin_mse_ignores_a_shift_of_either_side():
    student = torch.tensor([[2.0, 1.0, -1.0]])
    teacher = torch.tensor([[5.0, 3.0, 1.0]])
    assert margin_mse(student + 7, teacher - 3).item() == pytest.approx(margin_mse(student, teacher).item())


def softmax(xs: list[float]) -> list[float]:
    z = sum(e(x) for x in xs)
    return [e(x) / z for x in xs]


def test_listwise_kl_by_hand_with_two_temperatures():
    s, t = [2.0, 1.0, -1.0], [4.0, 3.0, 0.0]
    ts, tt = 2.0, 0.5
    p_t = softmax([x / tt for x in t])
    p_s = softmax([x / ts for x in s])
    expected = ts**2 * sum(a * math.log(a / b) for a, b in zip(p_t, p_s, strict=True))
    got = listwise_kl(torch.tensor([s]), torch.tensor([t]), teacher_temperature=tt, student_temperature=ts)
    assert got.item() == pytest.approx(expected, rel=1e-5)
    # zero when the student's distribution is the teacher's
    assert listwise_kl(torch.tensor([t]), torch.tensor([t])).item() == pytest.approx(0.0, abs=1e-7)


def test_distillation_uses_positive_and_own_hard_negatives_only():
    scores = toy_scores()
    teacher = torch.tensor([[5.0, 3.0, 1.0], [0.0, 1.0, -2.0]])
    student = torch.tensor([[2.0, 1.0, -1.0], [1.5, 1.2, -0.5]])  # pos + hard columns of toy_scores
    term = Distillation("margin_mse")
    assert term(scores, teacher).item() == pytest.approx(margin_mse(student, teacher).item())
    scaled = Distillation("margin_mse", teacher_temperature=0.5)(scores, teacher)
    assert scaled.item() == pytest.approx(margin_mse(student, teacher * 2).item())
    ranking = torch.tensor(0.7)
    assert Distillation("kl", weight=0.5).combine(ranking, torch.tensor(2.0)).item() == pytest.approx(1.7)
    assert Distillation("kl", weight=0.5, alone=True).combine(ranking, torch.tensor(2.0)).item() == 1.0


def test_distillation_pulls_the_student_margin_towards_the_teacher():
    scores = toy_scores(requires_grad=True)
    teacher = torch.tensor([[0.0, 5.0, 5.0], [0.0, 5.0, 5.0]])  # the teacher prefers the negatives
    Distillation("margin_mse")(scores, teacher).backward()
    grad = scores.logits.grad
    assert grad[0, 0] > 0 and grad[1, 1] > 0  # gradient descent lowers the positives
    assert (grad.gather(1, scores.hard) < 0).all()


def test_unknown_distillation_loss():
    with pytest.raises(ValueError, match="unknown distillation loss"):
        Distillation("mse")


# -- guide masking -------------------------------------------------------------------------------
GUIDE = torch.tensor([[0.8, 0.9, 0.8, 0.5, 0.75, float("nan")], [0.1, 0.6, 0.7, 0.55, 0.2, 0.6]])


def test_guide_mask_absolute_by_hand():
    mask = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.1, strategy="absolute")
    # row 0: threshold 0.7 -> 0.9, 0.8 (a tie with the positive) and 0.75 masked; NaN never
    # row 1: threshold 0.5 -> 0.7, 0.55, 0.6 masked
    assert mask.tolist() == [
        [False, True, True, False, True, False],
        [False, False, True, True, False, True],
    ]


def test_guide_mask_relative_by_hand():
    mask = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.1, strategy="relative")
    # thresholds 0.8 * 0.9 = 0.72 and 0.6 * 0.9 = 0.54
    assert mask.tolist() == [
        [False, True, True, False, True, False],
        [False, False, True, True, False, True],
    ]
    strict = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.0, strategy="relative")
    assert strict.tolist()[1] == [False, False, True, False, False, True]  # 0.6 ties the positive


def test_masked_infonce_drops_the_masked_columns_from_the_softmax():
    mask = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.1, strategy="absolute")
    value = InfoNCE()(masked(toy_scores(), mask)).item()
    q0 = -2.0 + math.log(e(2.0) + e(-1.0) + e(0.1))
    q1 = -1.5 + math.log(e(0.2) + e(1.5) + e(1.2))
    assert value == pytest.approx((q0 + q1) / 2, rel=1e-6)
    # listwise: only the hard columns count; row 0 keeps neg01, row 1 keeps neg10
    listwise = ListwiseCE()(masked(toy_scores(), mask)).item()
    expected = (-2.0 + math.log(e(2.0) + e(-1.0)) - 1.5 + math.log(e(1.5) + e(1.2))) / 2
    assert listwise == pytest.approx(expected, rel=1e-6)


def test_masked_scores_have_no_gradient_through_masked_columns():
    scores = toy_scores(requires_grad=True)
    mask = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.1, strategy="absolute")
    InfoNCE()(masked(scores, mask)).backward()
    assert (scores.logits.grad[mask] == 0).all()


def test_unknown_guide_strategy():
    with pytest.raises(ValueError, match="unknown guide strategy"):
        guide_mask(GUIDE, torch.tensor([0, 1]), 0.0, "ratio")


# -- debiased InfoNCE ----------------------------------------------------------------------------
def dcl_direct(rows: list[list[float]], targets: list[int], tau: float, scale: float) -> float:
    """Chuang et al.'s estimator written out: pos = e^{s+}, Ng = max((sum e^{s-} - N tau+ pos) /
    (1 - tau+), N e^{-1/t}) with t = 1 / scale, loss = -log(pos / (pos + Ng))."""
    total = 0.0
    for row, target in zip(rows, targets, strict=True):
        pos = e(row[target])
        negs = [e(s) for j, s in enumerate(row) if j != target and s != -math.inf]
        n = len(negs)
        ng = max((sum(negs) - n * tau * pos) / (1 - tau), n * e(-scale))
        total += -math.log(pos / (pos + ng))
    return total / len(rows)


def test_debiased_infonce_matches_the_formula():
    rows = toy_scores().logits.tolist()
    got = DebiasedInfoNCE(tau_plus=0.1, scale=20.0)(toy_scores()).item()
    assert got == pytest.approx(dcl_direct(rows, [0, 1], 0.1, 20.0), rel=1e-6)
    # a hand check of row 0: sum of e^{s-} over 5 negatives, less 5 * 0.1 * e^2, over 0.9
    ng0 = (e(0.5) + e(1.0) + e(-1.0) + e(0.3) + e(0.1) - 0.5 * e(2.0)) / 0.9
    ng1 = (e(0.2) + e(0.4) + e(0.0) + e(1.2) + e(-0.5) - 0.5 * e(1.5)) / 0.9
    by_hand = (math.log(1 + ng0 / e(2.0)) + math.log(1 + ng1 / e(1.5))) / 2
    assert got == pytest.approx(by_hand, rel=1e-6)
    # it is below InfoNCE: part of the negatives' mass is taken for hidden positives
    assert got < InfoNCE()(toy_scores()).item()


def test_debiased_infonce_clamp_binds():
    # row 0's positive dominates: the estimate goes negative, the floor N e^{-scale} holds
    scores = Scores(torch.tensor([[5.0, -2.0, -2.5]]), torch.tensor([0]), torch.tensor([[1, 2]]))
    estimate = (e(-2.0) + e(-2.5) - 2 * 0.5 * e(5.0)) / 0.5
    assert estimate < 0
    got = DebiasedInfoNCE(tau_plus=0.5, scale=3.0)(scores).item()
    assert got == pytest.approx(-math.log(e(5.0) / (e(5.0) + 2 * e(-3.0))), rel=1e-6)
    assert got == pytest.approx(dcl_direct([[5.0, -2.0, -2.5]], [0], 0.5, 3.0), rel=1e-6)


def test_debiased_infonce_with_tau_zero_is_infonce_and_counts_only_unmasked_negatives():
    assert DebiasedInfoNCE(0.0, 20.0)(toy_scores()).item() == pytest.approx(InfoNCE()(toy_scores()).item())
    mask = guide_mask(GUIDE, torch.tensor([0, 1]), margin=0.1, strategy="absolute")
    scores = masked(toy_scores(), mask)
    got = DebiasedInfoNCE(0.2, 20.0)(scores).item()
    assert got == pytest.approx(dcl_direct(scores.logits.tolist(), [0, 1], 0.2, 20.0), rel=1e-6)


def test_debiased_infonce_large_logits_stay_finite():
    scores = Scores(torch.tensor([[200.0, 199.0, 150.0]]), torch.tensor([0]), torch.tensor([[1, 2]]))
    value = DebiasedInfoNCE(0.1, 200.0)(scores)
    assert torch.isfinite(value)
    expected = math.log1p((e(-1.0) + e(-50.0) - 2 * 0.1) / 0.9) if (e(-1.0) + e(-50.0) - 0.2) > 0 else None
    assert expected is not None and value.item() == pytest.approx(expected, rel=1e-5)


def test_debiased_infonce_weights_scale_negative_terms():
    w = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    got = DebiasedInfoNCE(0.1, 20.0)(toy_scores(), w).item()
    ng0 = (e(0.5) + e(1.0) + 2 * e(-1.0) + e(0.3) + e(0.1) - 0.5 * e(2.0)) / 0.9
    ng1 = (e(0.2) + e(0.4) + e(0.0) + 3 * e(1.2) + e(-0.5) - 0.5 * e(1.5)) / 0.9
    assert got == pytest.approx((math.log(1 + ng0 / e(2.0)) + math.log(1 + ng1 / e(1.5))) / 2, rel=1e-6)


def test_debiased_rejects_a_prior_of_one():
    with pytest.raises(ValueError, match="tau_plus"):
        DebiasedInfoNCE(1.0, 20.0)
