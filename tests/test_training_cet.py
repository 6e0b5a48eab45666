"""CET weights (Cai et al., CIKM 2022) on a hand-checked example, clipping, normalization."""

from __future__ import annotations

import math

import pytest
import torch

from ranker.training.cet import WeightStats, cet_weights


def test_weights_match_the_papers_formula_by_hand():
    scores = torch.tensor([[10.0, 0.0, -10.0], [20.0, 5.0, -30.0]])
    w = cet_weights(scores, temperature=10.0)
    # 1 / (1 - sigmoid(s / 10)) = 1 + exp(s / 10)
    expected = [
        [1 + math.e, 2.0, 1 + 1 / math.e],
        [1 + math.e**2, 1 + math.exp(0.5), 1 + math.exp(-3)],
    ]
    assert torch.allclose(w, torch.tensor(expected), rtol=1e-6)
    direct = 1.0 / (1.0 - torch.sigmoid(scores / 10.0))
    assert torch.allclose(w, direct, rtol=1e-5)


def test_temperature_flattens_weights():
    scores = torch.tensor([[4.0, -4.0]])
    hot, cold = cet_weights(scores, temperature=1.0), cet_weights(scores, temperature=100.0)
    assert (hot[0, 0] - hot[0, 1]) > (cold[0, 0] - cold[0, 1]) > 0


def test_clipping_caps_and_leaves_the_rest():
    scores = torch.tensor([[30.0, 0.0, -5.0]])
    w = cet_weights(scores, temperature=10.0, max_weight=5.0)
    assert w[0, 0].item() == 5.0  # 1 + e^3 = 21.1 -> 5
    assert w[0, 1].item() == pytest.approx(2.0)
    assert w[0, 2].item() == pytest.approx(1 + math.exp(-0.5))
    stats = WeightStats.of(w, max_weight=5.0)
    assert stats.clipped == pytest.approx(1 / 3) and stats.max == 5.0


def test_huge_scores_stay_finite_and_no_gradient_flows():
    scores = torch.tensor([[1e6, -1e6]], requires_grad=True)
    w = cet_weights(scores, temperature=1.0)
    assert torch.isfinite(w).all() and not w.requires_grad


def test_normalization_after_clipping_gives_mean_one():
    scores = torch.tensor([[30.0, 0.0], [-5.0, 10.0]])
    w = cet_weights(scores, temperature=10.0, max_weight=5.0, normalize=True)
    raw = torch.tensor([[5.0, 2.0], [1 + math.exp(-0.5), 1 + math.e]])
    assert w.mean().item() == pytest.approx(1.0)
    assert torch.allclose(w, raw / raw.mean())


def test_clip_below_one_is_rejected():
    with pytest.raises(ValueError, match="max_weight"):
        cet_weights(torch.zeros(1, 1), max_weight=0.5)


def test_query_normalization_gives_each_row_mean_one_and_keeps_its_order():
    scores = torch.tensor([[0.0, 2.0, 4.0], [10.0, 10.0, 10.0]])
    w = cet_weights(scores, temperature=1.0, normalize="query")
    assert torch.allclose(w.mean(dim=1), torch.ones(2))
    assert torch.equal(w[1], torch.ones(3))  # a constant row becomes exactly 1
    assert (w[0].argsort() == torch.tensor([0, 1, 2])).all()
    assert torch.equal(cet_weights(scores, normalize=True), cet_weights(scores, normalize="batch"))
    with pytest.raises(ValueError, match="expected one of"):
        cet_weights(scores, normalize="row")  # type: ignore[arg-type]


def test_auto_normalization_follows_the_loss():
    from ranker.training.config import build_config

    base = {"dataset": "d", "negatives": "n", "output_dir": "o", "model": "m", "selection": "features"}
    assert build_config({**base, "loss": "infonce", "model_type": "bi"}).weight_normalization() == "query"
    assert build_config({**base, "loss": "listwise"}).weight_normalization() == "query"
    assert build_config({**base, "loss": "pairwise"}).weight_normalization() == "none"
    assert build_config({**base, "normalize_weights": True}).weight_normalization() == "batch"
    assert build_config({**base, "normalize_weights": "none"}).weight_normalization() == "none"
