"""SimANS sampling (``--sampling simans``): the formula, the sampler's frequencies, the
positive score it uses, determinism and its fallback."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import chisquare
from test_mining import DOCS, POSITIVES, QUERIES, FakeSearcher

from retrievers.errors import InputError
from retrievers.mining import MiningConfig, mine, read_negatives
from retrievers.mining.sampler import query_rng, sample, simans_log_weights, weighted_sample


def test_log_weights_match_a_hand_computed_case():
    # s- = 3, 2, 1; s+ = 2.5; a = 2; b = -0.5: s- - s+ - b = 1, 0, -1
    got = simans_log_weights(np.array([3.0, 2.0, 1.0]), 2.5, a=2.0, b=-0.5)
    np.testing.assert_allclose(got, [-2.0, 0.0, -2.0])
    probs = np.exp(got) / np.exp(got).sum()
    np.testing.assert_allclose(probs, [np.exp(-2) / (1 + 2 * np.exp(-2)), 1 / (1 + 2 * np.exp(-2)), probs[0]])
    # one positive score per negative (each negative's own retriever)
    np.testing.assert_allclose(
        simans_log_weights(np.array([1.0, 1.0]), np.array([1.0, 0.0]), 1.0, 0.0), [0, -1]
    )


def test_single_draw_frequencies_follow_the_formula():
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.2])
    logw = simans_log_weights(scores, 0.75, a=20.0, b=-0.1)  # peak at 0.65
    expected = np.exp(logw) / np.exp(logw).sum()
    rng = np.random.default_rng(0)
    draws = 20000
    counts = np.bincount([weighted_sample(logw, 1, rng)[0] for _ in range(draws)], minlength=len(scores))
    assert chisquare(counts, expected * draws).pvalue > 0.001
    # the uniform sampler would fail the same test: it can tell the formula from no formula
    assert chisquare(np.full(len(scores), draws / len(scores)), expected * draws).pvalue < 1e-6


def test_without_replacement_inclusion_probabilities():
    """Two of three, drawn one after the other proportionally to the weights left:
    P(i in sample) = p_i + sum_{j != i} p_j p_i / (1 - p_j)."""
    p = np.array([0.6, 0.3, 0.1])
    logw = np.log(p)
    expected = [p[i] + sum(p[j] * p[i] / (1 - p[j]) for j in range(3) if j != i) for i in range(3)]
    rng = np.random.default_rng(1)
    draws = 20000
    counts = np.zeros(3)
    for _ in range(draws):
        picked = weighted_sample(logw, 2, rng)
        assert len(set(picked.tolist())) == 2 and list(picked) == sorted(picked)
        counts[picked] += 1
    se = np.sqrt(np.array(expected) * (1 - np.array(expected)) / draws)
    assert np.all(np.abs(counts / draws - expected) < 4 * se)


def test_far_from_the_peak_weights_do_not_underflow():
    logw = simans_log_weights(np.array([100.0, 90.0, 80.0]), 0.0, a=1.0, b=0.0)  # exp() underflows to 0
    picked = weighted_sample(logw, 1, np.random.default_rng(0))
    assert picked.tolist() == [2]  # the closest to the positive, by a factor exp(1700)


def test_sample_needs_one_weight_per_candidate():
    from retrievers.mining.candidates import Candidate

    cands = [Candidate(f"d{i}", i + 1, 1.0, "bm25") for i in range(3)]
    with pytest.raises(ValueError, match="log-weight"):
        sample(cands, 1, "simans", np.random.default_rng(0))


def _mine(tmp_path, name, searchers=None, positives=POSITIVES, **kw):
    out = tmp_path / name
    config = MiningConfig(depth=30, num_negatives=4, sampling="simans", **kw)
    stats = mine(QUERIES, positives, searchers or {"bm25": FakeSearcher()}, out, config, progress=False)
    return out, stats


def test_mined_sample_is_the_formula_on_the_retrievers_scores(tmp_path):
    """Each query's negatives are exactly the seeded draw with the formula's weights: the
    FakeSearcher scores rank r with 101 - r; the positive is at rank 2 (score 99)."""
    a, b = 0.05, -6.0  # peak at score 93 (rank 8)
    out, stats = _mine(tmp_path, "neg.jsonl", simans_a=a, simans_b=b, seed=5)
    assert stats["simans_uniform_fallback"] == 0
    for rec in read_negatives(out):
        cand_ranks = [r for r in range(1, 31) if r != 2]
        scores = np.array([101.0 - r for r in cand_ranks])
        logw = -a * (scores - 99.0 - b) ** 2
        picked = weighted_sample(logw, 4, query_rng(5, rec.qid))
        assert [n.rank for n in rec.negatives] == [cand_ranks[i] for i in picked]
    # SimANS's sample sits around the peak, not at the top like `top`
    ranks = [n.rank for rec in read_negatives(out) for n in rec.negatives]
    assert 5 <= np.mean(ranks) <= 11


def test_positive_score_is_the_mean_over_positives(tmp_path):
    positives = {q: [DOCS[(int(q[1:]) * 3 + 1) % 30], DOCS[(int(q[1:]) * 3 + 5) % 30]] for q in QUERIES}
    a, b = 0.05, 0.0  # positives at ranks 2 and 6 (scores 99 and 95): mean 97
    out, _ = _mine(tmp_path, "neg.jsonl", positives=positives, simans_a=a, simans_b=b, seed=2)
    for rec in read_negatives(out):
        cand_ranks = [r for r in range(1, 31) if r not in (2, 6)]
        logw = -a * (np.array([101.0 - r for r in cand_ranks]) - 97.0) ** 2
        picked = weighted_sample(logw, 4, query_rng(2, rec.qid))
        assert [n.rank for n in rec.negatives] == [cand_ranks[i] for i in picked]


def test_deterministic_for_a_seed_and_different_across_seeds(tmp_path):
    one, _ = _mine(tmp_path, "a.jsonl", seed=7, simans_a=0.01)
    two, _ = _mine(tmp_path, "b.jsonl", seed=7, simans_a=0.01)
    other, _ = _mine(tmp_path, "c.jsonl", seed=8, simans_a=0.01)
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes() != other.read_bytes()


def test_unknown_positive_score_falls_back_to_uniform_and_is_counted(tmp_path):
    # positives outside the retrieved depth: their BM25-like score is unknown
    far = {q: [DOCS[(int(q[1:]) * 3 + 29) % 30]] for q in QUERIES}

    def run(name: str, sampling: str):
        out = tmp_path / name
        config = MiningConfig(depth=20, num_negatives=4, sampling=sampling, seed=1)
        return out, mine(QUERIES, far, {"bm25": FakeSearcher()}, out, config, progress=False)

    out, stats = run("neg.jsonl", "simans")
    assert stats["simans_uniform_fallback"] == len(QUERIES)
    assert json.loads((tmp_path / "neg.stats.json").read_text())["simans_uniform_fallback"] == len(QUERIES)
    assert all(rec.extra["simans_fallback"] == "random" for rec in read_negatives(out))
    uniform, _ = run("uniform.jsonl", "random")
    assert [r.negatives for r in read_negatives(out)] == [r.negatives for r in read_negatives(uniform)]


@pytest.mark.parametrize("a", [0.0, -1.0])
def test_a_must_be_positive(a):
    with pytest.raises(InputError, match="simans_a must be positive"):
        MiningConfig(sampling="simans", simans_a=a)
