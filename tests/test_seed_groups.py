"""Seed groups (``LABEL=GLOB``) in ``evaluate``/``compare``, the gap share, ``run --set``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from evaluation_runs import pseudo_run

from ranker.evaluation.gap import gap_shares
from ranker.evaluation.metrics import average_evaluations, evaluate_run
from retrievers.io.trec import write_run


@pytest.fixture()
def seeded(tiny_beir, tmp_path):
    """Three 'seeds' of a weak and of a strong system over the tiny dataset."""
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(tiny_beir)
    qrels = dataset.qrels("test")
    docids = [doc.id for doc in dataset.docs()]
    for name, rate in (("weak", 0.3), ("mid", 0.6), ("strong", 0.95)):
        for seed in (1, 2, 3):
            run = pseudo_run(qrels, docids, seed=seed * 10 + int(rate * 10), hit_rate=rate, depth=3)
            write_run(tmp_path / f"{name}.s{seed}.trec", run, tag=name)
    return qrels, tmp_path


def test_a_group_is_scored_as_the_mean_of_its_runs(cli, tiny_beir, seeded):
    qrels, folder = seeded
    rc, out, err = cli(
        "evaluate", tiny_beir, f"weak={folder}/weak.s*.trec", "--metrics", "ndcg@10", "--format", "json"
    )
    assert rc == 0, err
    from retrievers.io.trec import read_run

    each = [
        evaluate_run(read_run(folder / f"weak.s{s}.trec"), qrels, ["ndcg@10"]).means["ndcg@10"]
        for s in (1, 2, 3)
    ]
    assert json.loads(out) == {"weak": {"ndcg@10": pytest.approx(np.mean(each))}}
    assert "weak (mean of 3 runs)" in err


def test_a_group_matching_nothing_is_a_clear_error(cli, tiny_beir, tmp_path):
    rc, _, err = cli("evaluate", tiny_beir, f"x={tmp_path}/none*.trec")
    assert rc == 2 and "no run file matches" in err and len(err.strip().splitlines()) == 1


def test_average_evaluations_keeps_queries_and_members():
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    a = evaluate_run({"q1": {"d1": 1.0}, "q2": {"d9": 1.0}}, qrels, ["ndcg@10"], name="a")
    b = evaluate_run({"q1": {"d9": 1.0}, "q2": {"d2": 1.0}}, qrels, ["ndcg@10"], name="b")
    mean = average_evaluations([a, b], "ab")
    assert mean.scores["ndcg@10"].tolist() == [0.5, 0.5] and mean.members == ("a", "b")


def test_gap_share_is_the_fraction_of_the_gap_closed():
    qrels = {f"q{i}": {"d1": 1} for i in range(20)}
    low = evaluate_run({q: {"d9": 1.0} for q in qrels}, qrels, ["ndcg@10"], name="low")
    high = evaluate_run({q: {"d1": 1.0} for q in qrels}, qrels, ["ndcg@10"], name="high")
    half = evaluate_run(
        {q: ({"d1": 1.0} if i % 2 else {"d9": 1.0}) for i, q in enumerate(qrels)},
        qrels,
        ["ndcg@10"],
        name="half",
    )
    [share] = gap_shares([low, half, high], 0, 2, ["ndcg@10"], n_resamples=500)
    assert share.run == "half" and share.share == pytest.approx(0.5) and share.gap == pytest.approx(1.0)
    assert share.ci_low < 0.5 < share.ci_high
    [none] = gap_shares([high, half, low], 0, 2, ["ndcg@10"], n_resamples=50)  # no gap: undefined
    assert np.isnan(none.share)


def test_compare_reports_the_gap_between_groups(cli, tiny_beir, seeded):
    _, folder = seeded
    rc, out, err = cli(
        "compare",
        tiny_beir,
        "--baseline",
        f"weak={folder}/weak.s*.trec",
        f"mid={folder}/mid.s*.trec",
        f"strong={folder}/strong.s*.trec",
        "--metrics",
        "ndcg@10",
        "--gap",
        "weak",
        "strong",
        "--resamples",
        "200",
    )
    assert rc == 0, err
    assert "share recovered" in out and "| ndcg@10 | mid |" in out
    rc, _, err = cli(
        "compare",
        tiny_beir,
        "--baseline",
        f"weak={folder}/weak.s*.trec",
        f"mid={folder}/mid.s*.trec",
        "--gap",
        "weak",
        "nope",
    )
    assert rc == 2 and "--gap 'nope'" in err


def test_run_set_overrides_a_variable_and_refuses_unknown_ones(cli, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nvars: {k: 5}\nprofiles: {small: {}}\nsteps:\n"
        "  - name: one\n    run: [pool, --help]\n    outputs: []\n"
    )
    rc, _, err = cli("run", spec, "--work", tmp_path / "w", "--set", "nope=1", "--list")
    assert rc == 2 and "--set nope" in err and "known: k" in err
    rc, _, err = cli("run", spec, "--work", tmp_path / "w", "--set", "k", "--list")
    assert rc == 2 and "expected KEY=VALUE" in err


def test_run_set_changes_the_commands(cli, tmp_path, capsys):
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "name: s\nvars: {k: 5}\nprofiles: {small: {}}\nsteps:\n"
        "  - name: one\n    run: [search, x, --k, '${profile.k}']\n    outputs: []\n"
    )
    rc, out, _ = cli("run", spec, "--work", tmp_path / "w", "--list")
    assert rc == 0 and "--k 5" in out
    rc, out, _ = cli("run", spec, "--work", tmp_path / "w", "--set", "k=7", "--list")
    assert rc == 0 and "--k 7" in out


def test_a_reference_run_is_the_gaps_end_but_stays_out_of_the_tested_family(cli, tiny_beir, seeded):
    """Issue 26: remedies tested against (b) with Holm over the remedies only, and their share
    of the b -> f gap, f (the oracle) a --reference run."""
    _, folder = seeded
    base = ["compare", tiny_beir, "--baseline", f"weak={folder}/weak.s*.trec", f"mid={folder}/mid.s*.trec"]
    opts = ["--metrics", "ndcg@10", "--resamples", "200", "--format", "json"]
    rc, out, err = cli(*base, f"strong={folder}/strong.s*.trec", "--gap", "weak", "strong", *opts)
    assert rc == 0, err
    tested = json.loads(out)
    rc, out, err = cli(
        *base, "--reference", f"strong={folder}/strong.s*.trec", "--gap", "weak", "strong", *opts
    )
    assert rc == 0, err
    referenced = json.loads(out)
    assert referenced["gap"] == [g for g in tested["gap"] if g["run"] == "mid"]  # the same share and CI
    names = json.dumps({k: v for k, v in referenced.items() if k != "gap"}).count('"strong"')
    assert names == 0  # not tested, not listed as a run (only the gap's "high" names it)
    rc, _, err = cli(*base, "--reference", f"strong={folder}/strong.s*.trec")
    assert rc == 2 and "only used by --gap" in err


def test_several_gaps_give_one_table_each_and_a_plot(cli, tiny_beir, seeded, tmp_path):
    _, folder = seeded
    base = ["compare", tiny_beir, "--baseline", f"weak={folder}/weak.s*.trec", f"mid={folder}/mid.s*.trec"]
    base += ["--reference", f"strong={folder}/strong.s*.trec", "--metrics", "ndcg@10", "--resamples", "200"]
    plot = tmp_path / "gaps.png"
    gaps = ["--gap", "weak", "strong", "--gap", "mid", "strong"]
    rc, out, err = cli(*base, *gaps, "--gap-plot", plot)
    assert rc == 0, err
    assert out.count("share recovered") == 2
    first, second = out.split("gap (strong - weak)")[1], out.split("gap (strong - mid)")[1]
    assert "| ndcg@10 | mid |" in first.split("Share of the")[0]  # weak -> strong: mid's share
    assert "| ndcg@10 | weak |" in second.split("Share of the")[0]  # mid -> strong: weak's share
    assert "Share of the weak -> strong gap" in out and "Share of the mid -> strong gap" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 1000
    rc, out, err = cli(*base, *gaps, "--format", "json")
    assert rc == 0, err
    rows = {(g["low"], g["high"], g["run"]) for g in json.loads(out)["gap"]}
    assert rows == {("weak", "strong", "mid"), ("mid", "strong", "weak")}


def test_a_gap_plot_skips_an_undefined_gap_and_bad_gaps_still_fail(cli, tiny_beir, seeded, tmp_path):
    _, folder = seeded
    base = [
        "compare",
        tiny_beir,
        "--baseline",
        f"weak={folder}/weak.s*.trec",
        f"strong={folder}/strong.s*.trec",
    ]
    base += ["--metrics", "ndcg@10", "--resamples", "50"]
    plot = tmp_path / "none.png"
    rc, out, err = cli(*base, f"mid={folder}/mid.s*.trec", "--gap", "strong", "weak", "--gap-plot", plot)
    assert rc == 0, err
    assert "n/a (no gap)" in out and plot.stat().st_size > 0
    rc, _, err = cli(*base, "--gap", "weak", "strong", "--gap", "weak", "nope", "--gap-plot", plot)
    assert rc == 2 and "--gap 'nope'" in err
    rc, _, err = cli(*base, "--gap-plot", tmp_path / "x.png")
    assert rc == 2 and "--gap-plot" in err and not (tmp_path / "x.png").exists()
    rc, _, err = cli(*base, "--gap", "weak", "strong", "--gap-plot", tmp_path / "x.txt")
    assert rc == 2 and "x.txt" in err
