"""One contract for every ranking loss, plus each loss's exact formula on a hand example."""

from __future__ import annotations

import math

import pytest
import torch

from ranker.training.losses import LOSSES, InfoNCE, ListwiseCE, PairwiseCE, Scores, make_loss

ALL = sorted(LOSSES)


def toy_scores(requires_grad: bool = False) -> Scores:
    """Two queries; in-batch layout like a bi-encoder: [pos0, pos1, neg00, neg01, neg10, neg11]."""
    logits = torch.tensor(
        [[2.0, 0.5, 1.0, -1.0, 0.3, 0.1], [0.2, 1.5, 0.4, 0.0, 1.2, -0.5]],
        requires_grad=requires_grad,
    )
    return Scores(logits, torch.tensor([0, 1]), torch.tensor([[2, 3], [4, 5]]))


@pytest.mark.parametrize("name", ALL)
def test_contract_unit_weights_change_nothing(name):
    loss = make_loss(name)
    scores = toy_scores()
    assert torch.allclose(loss(scores, torch.ones(2, 2)), loss(scores))


@pytest.mark.parametrize("name", ALL)
def test_contract_raising_the_positive_lowers_the_loss(name):
    loss = make_loss(name)
    scores = toy_scores(requires_grad=True)
    value = loss(scores)
    value.backward()
    grad = scores.logits.grad
    assert value.ndim == 0 and torch.isfinite(value)
    assert grad[0, 0] < 0 and grad[1, 1] < 0  # positives pushed up
    assert (grad.gather(1, scores.hard) > 0).all()  # hard negatives pushed down


@pytest.mark.parametrize("name", ALL)
def test_contract_heavier_negative_costs_more(name):
    loss = make_loss(name)
    weights = torch.ones(2, 2)
    heavier = weights.clone()
    heavier[0, 1] = 5.0
    assert loss(toy_scores(), heavier) > loss(toy_scores(), weights)


@pytest.mark.parametrize("name", ALL)
def test_contract_rejects_misshaped_weights(name):
    with pytest.raises(ValueError, match="one per hard negative"):
        make_loss(name)(toy_scores(), torch.ones(2, 3))


def test_pairwise_formula():
    w = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    # pairs: (2 vs 1), (2 vs -1), (1.5 vs 1.2), (1.5 vs -0.5)
    terms = [
        math.log1p(math.exp(1.0 - 2.0)),
        2 * math.log1p(math.exp(-1.0 - 2.0)),
        3 * math.log1p(math.exp(1.2 - 1.5)),
        math.log1p(math.exp(-0.5 - 1.5)),
    ]
    assert PairwiseCE()(toy_scores(), w).item() == pytest.approx(sum(terms) / 4, rel=1e-6)


def test_pairwise_one_negative_matches_authors_dot_over_batch():
    pos, neg, w = (
        torch.tensor([1.0, 0.0]),
        torch.tensor([[0.5], [2.0]]),
        torch.tensor([[2.0], [4.0]]),
    )
    ce = torch.nn.functional.cross_entropy(
        torch.stack([pos, neg[:, 0]], 1), torch.zeros(2).long(), reduction="none"
    )
    expected = torch.dot(w[:, 0], ce) / 2
    assert PairwiseCE()(Scores.from_groups(pos, neg), w).item() == pytest.approx(expected.item())


def test_listwise_formula():
    w = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    q0 = -2.0 + math.log(math.exp(2.0) + math.exp(1.0) + 2 * math.exp(-1.0))
    q1 = -1.5 + math.log(math.exp(1.5) + 3 * math.exp(1.2) + math.exp(-0.5))
    assert ListwiseCE()(toy_scores(), w).item() == pytest.approx((q0 + q1) / 2, rel=1e-6)


def test_infonce_formula_counts_in_batch_columns_with_weight_one():
    w = torch.tensor([[1.0, 2.0], [3.0, 1.0]])
    e = math.exp
    q0 = -2.0 + math.log(e(2.0) + e(0.5) + e(1.0) + 2 * e(-1.0) + e(0.3) + e(0.1))
    q1 = -1.5 + math.log(e(0.2) + e(1.5) + e(0.4) + e(0.0) + 3 * e(1.2) + e(-0.5))
    assert InfoNCE()(toy_scores(), w).item() == pytest.approx((q0 + q1) / 2, rel=1e-6)


def test_listwise_ignores_in_batch_columns_infonce_does_not():
    base, changed = toy_scores(), toy_scores()
    changed.logits[0, 1] = 9.0  # query 0 vs query 1's positive: an in-batch negative
    assert ListwiseCE()(changed) == ListwiseCE()(base)
    assert InfoNCE()(changed) > InfoNCE()(base)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss("hinge")


@pytest.mark.parametrize("name", ["listwise", "infonce"])
def test_constant_weights_normalized_per_query_give_exactly_the_unweighted_loss(name):
    """Issue 26, fix (ii): log w on the logits makes a constant weight count every hard negative
    c times; rescaled to mean 1 over each query's negatives, the loss is the unweighted one."""
    from ranker.training.cet import cet_weights

    loss = make_loss(name)
    scores = toy_scores()
    constant = cet_weights(torch.full((2, 2), 3.7), temperature=1.0)  # every weight 1 + e^3.7
    assert not torch.allclose(loss(scores, constant), loss(scores))  # the raw form is no no-op
    normalized = cet_weights(torch.full((2, 2), 3.7), temperature=1.0, normalize="query")
    assert torch.equal(loss(scores, normalized), loss(scores))
    # a different constant per query: still exactly the unweighted loss
    per_query = cet_weights(torch.tensor([[0.3, 0.3], [5.0, 5.0]]), temperature=1.0, normalize="query")
    assert torch.equal(loss(scores, per_query), loss(scores))
    # weights that differ within a query still move it
    varied = cet_weights(torch.tensor([[0.0, 4.0], [1.0, 1.0]]), temperature=1.0, normalize="query")
    assert not torch.allclose(loss(scores, varied), loss(scores))


def test_pairwise_keeps_the_authors_multiplicative_form():
    """In the paper's pairwise loss a constant weight only scales the loss (so ``auto``
    leaves its weights unnormalized)."""
    loss, scores = PairwiseCE(), toy_scores()
    assert torch.allclose(loss(scores, torch.full((2, 2), 2.5)), 2.5 * loss(scores))
