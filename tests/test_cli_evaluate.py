"""``ranker evaluate`` and ``ranker compare`` end to end (tiny dataset and SciFact)."""

from __future__ import annotations

import csv
import json
import math

import pytest
from evaluation_runs import pseudo_run

import ranker.cli
from retrievers.io.trec import write_run


@pytest.fixture()
def runs(tmp_path):
    """Two runs over the tiny dataset: q3 missing from the first, an unjudged query in it."""
    first = tmp_path / "a.trec"
    first.write_text(
        "q1 Q0 d1 1 2.0 a\nq1 Q0 d2 2 1.0 a\nq2 Q0 d2 1 3.0 a\nq2 Q0 d3 2 1.0 a\nqX Q0 d1 1 1.0 a\n"
    )
    second = tmp_path / "b.trec"
    second.write_text("q1 Q0 d1 1 2.0 b\nq2 Q0 d3 1 3.0 b\nq3 Q0 d4 1 1.0 b\n")
    return first, second


def test_evaluate_json_is_run_to_metric_to_value(cli, tiny_beir, runs):
    rc, out, err = cli(
        "evaluate", tiny_beir, "--split", "test", *runs, "--metrics", "ndcg@10", "mrr@10", "--format", "json"
    )
    assert rc == 0, err
    result = json.loads(out)
    assert list(result) == [str(runs[0]), str(runs[1])]
    assert result[str(runs[0])]["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 0) / 3)
    assert result[str(runs[0])]["mrr@10"] == pytest.approx(0.5)
    assert result[str(runs[1])] == {"ndcg@10": pytest.approx(1.0), "mrr@10": pytest.approx(1.0)}
    assert "1 judged queries missing" in err and "1 run queries without judgments" in err


def test_evaluate_table_and_per_query_csv(cli, tiny_beir, runs, tmp_path):
    per_query = tmp_path / "out" / "per_query.csv"
    rc, out, err = cli(
        "evaluate",
        tiny_beir,
        "--split",
        "test",
        *runs,
        "--metrics",
        "mrr@10",
        "recall@100",
        "--per-query",
        per_query,
    )
    assert rc == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["run", "mrr@10", "recall@100"]
    assert any(line.startswith(str(runs[0])) and "0.5000" in line for line in rows)
    assert "missing from the run (scored 0)" in out
    with per_query.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 6
    first = {row["query"]: float(row["mrr@10"]) for row in table if row["run"] == str(runs[0])}
    assert first == {"q1": 1.0, "q2": 0.5, "q3": 0.0}


@pytest.mark.parametrize("fmt, marker", [("md", "| run |"), ("latex", r"\begin{tabular}")])
def test_evaluate_md_and_latex(cli, tiny_beir, runs, fmt, marker):
    rc, out, _ = cli("evaluate", tiny_beir, *runs, "--metrics", "ndcg@10", "--format", fmt)
    assert rc == 0 and marker in out


def test_duplicate_run_line_exits_2_naming_the_line_and_writes_nothing(cli, tiny_beir, runs, tmp_path):
    bad = tmp_path / "dup.trec"
    bad.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\nq1 Q0 d1 3 0.5 x\n")
    per_query = tmp_path / "pq.csv"
    rc, out, err = cli("evaluate", tiny_beir, runs[0], bad, "--per-query", per_query)
    assert rc == 2 and out == ""
    assert f"{bad}:3" in err and "duplicate" in err
    assert not per_query.exists() and list(tmp_path.glob(".*tmp")) == []


def test_missing_run_file_and_bad_metric_exit_2(cli, tiny_beir, runs, tmp_path):
    rc, _, err = cli("evaluate", tiny_beir, tmp_path / "nope.trec")
    assert rc == 2 and "nope.trec" in err and "not found" in err
    rc, _, err = cli("evaluate", tiny_beir, runs[0], "--metrics", "bleu@4")
    assert rc == 2 and "bleu@4" in err
    rc, _, err = cli("evaluate", tiny_beir, "--split", "dev", runs[0])
    assert rc == 2 and "dev" in err


def test_compare_json_out_file_and_plot(cli, tiny_beir, runs, tmp_path):
    report, plot = tmp_path / "report.json", tmp_path / "plot.png"
    rc, out, err = cli(
        "compare",
        tiny_beir,
        "--baseline",
        runs[0],
        runs[1],
        "--metrics",
        "ndcg@10",
        "--test",
        "fisher",
        "--seed",
        "3",
        "--format",
        "json",
        "--out",
        report,
        "--plot",
        plot,
    )
    assert rc == 0, err
    assert out == ""
    result = json.loads(report.read_text())
    assert result["baseline"] == str(runs[0]) and result["test"] == "fisher"
    [comparison] = result["comparisons"]
    assert comparison["run"] == str(runs[1]) and comparison["against"] == str(runs[0])
    # Three queries: the exact randomization test has 8 sign assignments.
    assert comparison["p_value"] * 8 == pytest.approx(round(comparison["p_value"] * 8))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_needs_a_baseline_or_all_pairs(cli, tiny_beir, runs):
    rc, _, err = cli("compare", tiny_beir, *runs)
    assert rc == 2 and "--baseline" in err
    rc, out, _ = cli("compare", tiny_beir, *runs, "--all-pairs", "--format", "latex")
    assert rc == 0 and r"\begin{tabular}" in out


@pytest.mark.integration
def test_compare_on_scifact_marks_the_better_run(cli, scifact_dir, tmp_path):
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(scifact_dir)
    qrels = dataset.qrels("test")
    docids = [doc.id for doc in dataset.docs()]
    paths = []
    for seed, hit_rate in enumerate((0.4, 0.45, 0.9)):
        path = tmp_path / f"run{seed}.trec"
        write_run(path, pseudo_run(qrels, docids, seed=seed, hit_rate=hit_rate), tag=path.stem)
        paths.append(path)
    argv = [
        "compare",
        scifact_dir,
        "--split",
        "test",
        "--baseline",
        *paths,
        "--metrics",
        "ndcg@10",
        "recall@100",
        "--test",
        "fisher",
        "--seed",
        "1",
    ]
    rc, out, err = cli(*argv, "--format", "json")
    assert rc == 0, err
    result = json.loads(out)
    assert result["runs"][str(paths[2])]["better_than"]["ndcg@10"] == [str(paths[0])]
    assert result["runs"][str(paths[1])]["better_than"]["ndcg@10"] == []
    rc, again, _ = cli(*argv, "--format", "json")
    assert again == out  # same seed, identical report
    rc, md, _ = cli(*argv, "--format", "md")
    assert "ᵃ" in md.splitlines()[4] and "300 queries" in md


def test_help_lists_evaluate_and_compare(capsys):
    with pytest.raises(SystemExit):
        ranker.cli.main(["--help"])
    out = capsys.readouterr().out
    assert "evaluate" in out and "compare" in out
