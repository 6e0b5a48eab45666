"""Report formats (markers, LaTeX, JSON) and plots."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ranker.evaluation.compare import compare_runs
from ranker.evaluation.metrics import RunEvaluation
from ranker.evaluation.plots import plot_comparison
from ranker.evaluation.report import format_comparison, format_scores, letter
from retrievers.errors import InputError


@pytest.fixture(scope="module")
def comparison():
    """Run c is clearly better than a and b; a and b are indistinguishable."""
    rng = np.random.default_rng(0)
    base = rng.random(200)
    runs = [base, np.clip(base + rng.normal(0, 0.01, 200), 0, 1), np.clip(base + 0.2, 0, 1)]
    queries = tuple(f"q{i}" for i in range(200))
    evs = [
        RunEvaluation(name=f"runs/{n}_x.trec", queries=queries, scores={"ndcg@10": s, "map": s / 2})
        for n, s in zip("abc", runs, strict=True)
    ]
    return compare_runs(evs, test="student", correction="holm", all_pairs=True, seed=1, n_resamples=2000)


def test_markers_follow_ranx_letters(comparison):
    md = format_comparison(comparison, "md").splitlines()
    assert md[0].startswith("|  | run | ndcg@10 | map |")
    row_a, row_b, row_c = md[2], md[3], md[4]
    assert row_c.startswith("| c |") and row_c.count("ᵃᵇ") == 2  # beats a and b on both
    assert "ᵃ" not in row_a and "ᵇ" not in row_a and "ᵃ" not in row_b
    assert comparison.better_than("ndcg@10", 2) == [0, 1]


def test_latex_escapes_and_uses_math_superscripts(comparison):
    latex = format_comparison(comparison, "latex")
    assert r"\begin{tabular}" in latex and r"$^{ab}$" in latex
    assert r"runs/c\_x.trec" in latex and r"95\% CI" in latex
    assert "_x" not in latex.replace(r"\_x", "")


def test_json_has_raw_and_corrected_pvalues_and_cis(comparison):
    data = json.loads(format_comparison(comparison, "json"))
    assert data["correction"] == "holm" and data["baseline"] == "runs/a_x.trec"
    assert len(data["comparisons"]) == 2 * 3
    for item in data["comparisons"]:
        assert item["p_corrected"] >= item["p_value"]
        assert item["ci95"][0] <= item["delta"] <= item["ci95"][1]
    assert data["runs"]["runs/c_x.trec"]["better_than"]["ndcg@10"] == ["runs/a_x.trec", "runs/b_x.trec"]


def test_letters_go_past_z():
    assert [letter(i) for i in (0, 1, 24, 25)] == ["a", "b", "z", "a1"]


def test_format_scores_md():
    ev = RunEvaluation(
        name="r", queries=("q1", "q2"), scores={"ndcg@10": np.array([1.0, 0.5])}, missing=("q2",)
    )
    out = format_scores([ev], "md")
    assert "| r | 0.7500 |" in out and "- r: 2 judged queries evaluated; 1 judged" in out
    assert json.loads(format_scores([ev], "json")) == {"r": {"ndcg@10": 0.75}}


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"), (".svg", b"<?xml")])
def test_plot_writes_a_figure(comparison, tmp_path, suffix, magic):
    path = plot_comparison(comparison, tmp_path / f"plot{suffix}")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [f"plot{suffix}"]


def test_plot_rejects_unknown_format(comparison, tmp_path):
    with pytest.raises(InputError, match="must end in"):
        plot_comparison(comparison, tmp_path / "plot.bmp")
    assert not any(tmp_path.iterdir())
