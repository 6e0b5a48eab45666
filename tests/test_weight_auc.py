"""``ranker cet-auc``: AUC of CET weights for hidden positives vs true negatives."""

from __future__ import annotations

import json

import pytest

from ranker.cli import main
from ranker.training.weight_auc import last_weights, weight_auc


def write_weights(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def row(qid, docid, weight, weight_s, step):
    return {"qid": qid, "docid": docid, "weight": weight, "weight_s": weight_s, "step": step}


def test_perfect_inverse_and_chance_separation(tmp_path):
    # hidden positives (d1, d2) get the lowest selection weights and the highest relevance ones
    rows = [
        row("q1", "d1", 1.0, 9.0, 1),
        row("q1", "d2", 1.5, 8.0, 1),
        row("q1", "d3", 3.0, 2.0, 1),
        row("q1", "d4", 4.0, 1.0, 1),
        row("q2", "d9", 0.5, 0.5, 1),
    ]  # q2 has no full judgments: ignored
    weights = last_weights(write_weights(tmp_path / "w.jsonl", rows))
    result = weight_auc(weights, {"q1": {"d1": 1, "d2": 2, "d5": 1}})
    assert result["negatives"] == 4 and result["hidden_positives"] == 2
    assert result["auc_selection"] == 1.0 and result["auc_relevance"] == 1.0
    assert result["mean_weight_hidden"] == 1.25 and result["mean_weight_true_negative"] == 3.5
    # min_relevance 2: only d2 is a positive; ties count half
    tied = {("q1", "d1"): {"weight": 2.0, "weight_s": 1.0}, ("q1", "d2"): {"weight": 2.0, "weight_s": 1.0}}
    assert weight_auc(tied, {"q1": {"d1": 1, "d2": 2}}, min_relevance=2)["auc_selection"] == 0.5


def test_latest_step_wins_and_cli_writes_json(tmp_path, capsys):
    rows = [row("q1", "d1", 9.0, 1.0, 1), row("q1", "d1", 1.0, 9.0, 5), row("q1", "d3", 3.0, 2.0, 2)]
    weights = write_weights(tmp_path / "w.jsonl", rows)
    assert last_weights(weights)[("q1", "d1")]["weight"] == 1.0
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    assert main(["cet-auc", str(weights), "--qrels", str(qrels), "--out", str(tmp_path / "a.json")]) == 0
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["auc_selection"] == 1.0 and saved == json.loads(capsys.readouterr().out)


def test_bad_weights_line_names_file_and_line(tmp_path, capsys):
    weights = write_weights(tmp_path / "w.jsonl", [row("q1", "d1", 1.0, 1.0, 1), {"qid": "q1"}])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q1 0 d1 1\n")
    assert main(["cet-auc", str(weights), "--qrels", str(qrels)]) == 2
    assert f"{weights}:2: expected qid, docid" in capsys.readouterr().err


@pytest.mark.parametrize("empty", [[], [row("q1", "d3", 1.0, 1.0, 1)]])
def test_no_positives_gives_null(tmp_path, empty):
    result = weight_auc(last_weights(write_weights(tmp_path / "w.jsonl", empty)), {"q1": {"d1": 1}})
    assert result["hidden_positives"] == 0
    assert result["auc_selection"] != result["auc_selection"]  # NaN


def test_several_runs_are_pooled_as_separate_samples_and_plotted(tmp_path, capsys):
    # the same (query, document) in two seeds' files counts twice, with each file's weight
    first = write_weights(tmp_path / "s1.jsonl", [row("q1", "d1", 1.0, 9.0, 3), row("q1", "d3", 3.0, 2.0, 3)])
    second = write_weights(
        tmp_path / "s2.jsonl", [row("q1", "d1", 4.0, 1.0, 3), row("q1", "d3", 2.0, 2.0, 3)]
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("q1 0 d1 1\n")
    plot = tmp_path / "w.png"
    argv = ["cet-auc", str(first), str(second), "--qrels", str(qrels), "--plot", str(plot)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["weight_files"] == 2 and result["negatives"] == 4 and result["hidden_positives"] == 2
    # hidden: weights 1.0 and 4.0; true negatives: 3.0 and 2.0 -> 2 of 4 pairs lower
    assert result["auc_selection"] == 0.5
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _perfect_selection_case():
    """Two queries; S knows the pool exactly: judged negatives weigh 5, unjudged 1."""
    pool = {"q1": {"p1", "j1", "j2"}, "q2": {"p2", "j3"}}
    qrels = {"q1": {"p1": 1, "h1": 1}, "q2": {"p2": 1, "h2": 2}}
    weights = {}
    for qid, docs in {"q1": ["j1", "j2", "u1", "h1"], "q2": ["j3", "u2", "u3", "h2"]}.items():
        for docid in docs:
            weights[(qid, docid)] = {"weight": 5.0 if docid in pool[qid] else 1.0, "weight_s": 1.0}
    return weights, qrels, pool


def test_selection_diagnostics_a_perfect_s_reaches_the_ceiling_and_no_more():
    """Issue 26: a perfect S tells judged from unjudged (AUC 1, per query too), yet its
    hidden-positive AUC is only 0.5 + f/2, f the share of true negatives judged."""
    from ranker.training.weight_auc import selection_diagnostics

    weights, qrels, pool = _perfect_selection_case()
    got = selection_diagnostics(weights, qrels, pool)
    assert got["judged_negatives"] == 3 and got["unjudged_negatives"] == 5
    assert got["auc_judged"] == 1.0 and got["auc_judged_per_query"] == 1.0 and got["queries_with_both"] == 2
    assert got["f"] == 0.5 and got["auc_ceiling"] == 0.75  # 3 of 6 true negatives judged
    assert weight_auc(weights, qrels)["auc_selection"] == got["auc_ceiling"]
    # an S that got the pool backwards
    flipped = {k: {**v, "weight": 6.0 - v["weight"]} for k, v in weights.items()}
    assert selection_diagnostics(flipped, qrels, pool)["auc_judged"] == 0.0
    # per query differs from pooled: q1 perfect, q2 inverted, weights on different scales
    mixed = dict(weights)
    mixed.update(
        {
            ("q2", d): {"weight": w, "weight_s": 1.0}
            for d, w in [("j3", 10), ("u2", 20), ("u3", 20), ("h2", 20)]
        }
    )
    m = selection_diagnostics(mixed, qrels, pool)
    assert m["auc_judged_per_query"] == 0.5 and m["auc_judged"] != 0.5


def test_cet_auc_cli_reports_the_pool_diagnostics(tmp_path, capsys):
    weights, qrels, pool = _perfect_selection_case()
    rows = [row(q, d, v["weight"], v["weight_s"], 3) for (q, d), v in weights.items()]
    path = write_weights(tmp_path / "w.jsonl", rows)
    (tmp_path / "qrels.tsv").write_text(
        "".join(f"{q}\t{d}\t{r}\n" for q, docs in qrels.items() for d, r in docs.items())
    )
    (tmp_path / "pool.tsv").write_text(
        "".join(f"{q}\t{d}\n" for q, docs in pool.items() for d in sorted(docs))
    )
    args = ["cet-auc", str(path), str(path), "--qrels", str(tmp_path / "qrels.tsv")]
    assert main([*args, "--pool", str(tmp_path / "pool.tsv"), "--out", str(tmp_path / "a.json")]) == 0
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["weight_files"] == 2 and saved["queries_with_both"] == 4  # each file's queries apart
    assert saved["auc_judged"] == 1.0 and saved["f"] == 0.5
    assert saved["auc_ceiling"] == saved["auc_selection"] == 0.75
    capsys.readouterr()
    (tmp_path / "bad.tsv").write_text("q1 j1\n")
    assert main([*args, "--pool", str(tmp_path / "bad.tsv")]) == 2
    assert "bad.tsv:1: expected 'qid<TAB>docid'" in capsys.readouterr().err
