"""Significance tests, corrections, effect sizes and bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from ranker.evaluation.compare import compare_runs
from ranker.evaluation.metrics import RunEvaluation
from ranker.evaluation.resampling import bootstrap_means, fisher_pvalues, percentile_interval
from ranker.evaluation.significance import correct, effect_sizes, paired_pvalues
from retrievers.errors import InputError


def scores(n_queries=300, n_runs=4, seed=0):
    """Per-query scores in [0, 1] for runs of increasing quality."""
    rng = np.random.default_rng(seed)
    base = rng.random(n_queries)
    return [np.clip(base + 0.04 * r + rng.normal(0, 0.2, n_queries), 0, 1) for r in range(n_runs)]


def evaluations(runs, metric="ndcg@10"):
    queries = tuple(f"q{i:03d}" for i in range(len(runs[0])))
    return [
        RunEvaluation(name=f"run{r}", queries=queries, scores={metric: s, "map": s**2})
        for r, s in enumerate(runs)
    ]


def test_fisher_is_repeatable_and_seeded():
    a, b = scores(n_runs=2)
    diffs = np.stack([b - a, a - b, b - b], axis=1)
    first = fisher_pvalues(diffs, 5000, seed=7)
    assert np.array_equal(first, fisher_pvalues(diffs, 5000, seed=7))
    assert not np.array_equal(first, fisher_pvalues(diffs, 5000, seed=8))
    assert first[0] == first[1]  # a sign flip of all differences changes nothing
    assert first[2] == 1.0  # identical systems
    # One column alone gets the same p-value as inside a batch (common random numbers).
    assert fisher_pvalues(diffs[:, :1], 5000, seed=7)[0] == first[0]


def test_fisher_matches_scipy_permutation_test():
    def mean_diff(x, y, axis):
        return np.mean(x - y, axis=axis)

    rng = np.random.default_rng(3)
    for shift in (0.0, 0.03, 0.06):
        a = rng.random(200)
        b = np.clip(a + shift + rng.normal(0, 0.25, 200), 0, 1)
        ours = fisher_pvalues(b - a, 20_000, seed=1)[0]
        ref = stats.permutation_test(
            (b, a), mean_diff, permutation_type="samples", n_resamples=20_000, vectorized=True, rng=5
        ).pvalue
        assert ours == pytest.approx(ref, abs=0.012)


def test_fisher_exact_for_few_queries_equals_scipy_exact():
    rng = np.random.default_rng(4)
    a, b = rng.random(10), rng.random(10)
    ours = fisher_pvalues(b - a, 10_000, seed=0)[0]
    ref = stats.permutation_test(
        (b, a),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        n_resamples=10_000,
        vectorized=True,
    ).pvalue
    assert ours == pytest.approx(ref, abs=1e-12)


def test_named_tests_match_scipy():
    a, b = scores(n_runs=2)
    assert paired_pvalues("student", a, b)[0] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert paired_pvalues("wilcoxon", a, b)[0] == pytest.approx(stats.wilcoxon(b - a).pvalue)
    assert paired_pvalues(stats.ttest_rel, a, b)[0] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    # A callable returning a plain (statistic, pvalue) tuple works too.
    assert paired_pvalues(lambda x, y: (0.0, 0.123), a, b)[0] == 0.123
    for test in ("student", "wilcoxon", "fisher", "bootstrap"):
        assert paired_pvalues(test, a, a.copy())[0] == 1.0
    with pytest.raises(InputError):
        paired_pvalues("anova", a, b)


def test_bootstrap_test_is_repeatable_and_detects_a_clear_difference():
    a, b = scores(n_runs=2)
    first = paired_pvalues("bootstrap", a, b + 0.1, seed=3)
    assert np.array_equal(first, paired_pvalues("bootstrap", a, b + 0.1, seed=3))
    assert first[0] < 0.001
    noise = np.random.default_rng(9).normal(0, 0.1, len(a))
    assert paired_pvalues("bootstrap", a, a + noise - noise.mean(), seed=3)[0] > 0.5


def test_bootstrap_interval_matches_scipy():
    a, b = scores(n_runs=2)
    low, high = percentile_interval(bootstrap_means((b - a)[:, None], 20_000, seed=0))
    ref = stats.bootstrap(
        ((b - a),), np.mean, n_resamples=20_000, method="percentile", rng=1
    ).confidence_interval
    width = ref.high - ref.low
    assert low[0] == pytest.approx(ref.low, abs=0.05 * width)
    assert high[0] == pytest.approx(ref.high, abs=0.05 * width)


def test_corrections_match_statsmodels_and_hand_computation():
    from statsmodels.stats.multitest import multipletests

    pvalues = np.array([0.01, 0.04, 0.03, 0.2])
    for method in ("holm", "bonferroni"):
        reject, corrected = correct(pvalues, method, 0.05)
        ref_reject, ref_corrected, _, _ = multipletests(pvalues, alpha=0.05, method=method)
        np.testing.assert_allclose(corrected, ref_corrected)
        assert reject.tolist() == ref_reject.tolist()
    # By hand: Holm multiplies the i-th smallest by (m - i) and keeps the sequence monotone.
    np.testing.assert_allclose(correct(pvalues, "holm", 0.05)[1], [0.04, 0.09, 0.09, 0.2])
    np.testing.assert_allclose(correct(pvalues, "bonferroni", 0.05)[1], [0.04, 0.16, 0.12, 0.8])
    reject, corrected = correct(pvalues, "none", 0.05)
    assert reject.tolist() == [True, True, True, False] and corrected.tolist() == pvalues.tolist()
    with pytest.raises(InputError):
        correct(pvalues, "fdr", 0.05)


def test_effect_size_is_paired_cohens_d():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    b = a + np.array([0.1, 0.2, 0.1, 0.2])
    diffs = b - a
    assert effect_sizes(a, b)[0] == pytest.approx(diffs.mean() / diffs.std(ddof=1))
    assert effect_sizes(a, a)[0] == 0.0


def test_compare_runs_same_seed_same_pvalues_and_holm_family_per_metric():
    evs = evaluations(scores())
    kwargs = dict(test="fisher", correction="holm", seed=11, n_resamples=4000)
    first = compare_runs(evs, **kwargs)
    second = compare_runs(evs, **kwargs)
    assert [p.p_value for p in first.pairs] == [p.p_value for p in second.pairs]
    assert [p.ci_low for p in first.pairs] == [p.ci_low for p in second.pairs]
    assert len(first.pairs) == 2 * 3  # two metrics x three runs against the baseline
    for metric in first.metrics:
        family = [p for p in first.pairs if p.metric == metric]
        assert all(p.a == 0 for p in family)
        _, holm = correct([p.p_value for p in family], "holm", 0.05)
        np.testing.assert_allclose([p.p_corrected for p in family], holm)
    # The same pair gets the same raw p-value when other runs are added or removed.
    pair_alone = compare_runs(evs[:2], **kwargs).pairs[0]
    assert pair_alone.p_value == first.pairs[0].p_value


def test_compare_runs_effects_markers_and_all_pairs():
    evs = evaluations(scores())
    result = compare_runs(evs, test="student", correction="bonferroni", all_pairs=True)
    assert len([p for p in result.pairs if p.metric == "ndcg@10"]) == 6
    best = result.better_than("ndcg@10", 3)
    assert 0 in best  # the best run beats the weakest
    assert result.better_than("ndcg@10", 0) == []
    pair = next(p for p in result.pairs if p.metric == "ndcg@10" and (p.a, p.b) == (0, 3))
    assert pair.delta == pytest.approx(evs[3].means["ndcg@10"] - evs[0].means["ndcg@10"])
    assert pair.ci_low < pair.delta < pair.ci_high
    matrix = result.pvalue_matrix("ndcg@10")
    assert matrix[0, 3] == matrix[3, 0] == pair.p_corrected and np.isnan(matrix[1, 1])
    low, high = result.ci["ndcg@10"][3]
    assert low < result.means["ndcg@10"][3] < high


def test_tukey_matches_scipy_and_skips_correction():
    runs = scores()
    result = compare_runs(evaluations(runs), ["ndcg@10"], test="tukey", correction="holm", all_pairs=True)
    reference = stats.tukey_hsd(*runs).pvalue
    for pair in result.pairs:
        assert pair.p_value == pytest.approx(reference[pair.a, pair.b])
        assert pair.p_corrected == pair.p_value
    assert result.correction == "none" and result.notes


def test_compare_rejects_bad_input():
    evs = evaluations(scores())
    with pytest.raises(InputError):
        compare_runs(evs[:1])
    with pytest.raises(InputError):
        compare_runs(evs, test="anova")
    with pytest.raises(InputError):
        compare_runs(evs, alpha=1.5)
    other = RunEvaluation(name="x", queries=("a",), scores={"ndcg@10": np.zeros(1)})
    with pytest.raises(InputError, match="other queries"):
        compare_runs([evs[0], other])
