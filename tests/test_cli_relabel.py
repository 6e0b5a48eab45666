"""`ranker mine --promote-above/--judge`, `--sampling simans` and `ranker audit --judge` from
the CLI, with a tiny random BERT as the judge and a hashing encoder as the dense retriever."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dense_helpers import write_beir
from test_cli_dense import hash_encoder  # noqa: F401 (fixture)
from tiny_encoders import WORDS

from ranker.cli import main
from ranker.models.judge import load_judge
from retrievers.mining import read_negatives


@pytest.fixture()
def corpus(tmp_path):
    """40 documents of random words the tiny tokenizer knows; 8 train queries (random words too)
    with one positive each; full qrels with a second relevant document for each query."""
    rng = np.random.default_rng(0)
    words = WORDS[10:]
    docs = {f"d{i}": " ".join(rng.choice(words, 8)) for i in range(40)}
    queries = {f"q{i}": " ".join(rng.choice(words, 4)) for i in range(8)}  # unrelated: judges disagree
    train = {q: {f"d{q[1:]}": 1} for q in queries}
    full = {q: {f"d{q[1:]}": 1, f"d{int(q[1:]) + 10}": 1} for q in queries}
    root = write_beir(tmp_path / "data", docs, queries, {"train": train, "full": full})
    return root, docs


@pytest.fixture()
def dense_index(corpus, tmp_path, hash_encoder):  # noqa: F811
    root, _ = corpus
    idx = tmp_path / "idx"
    args = ["index", str(root), "--retriever", "dense", "--model", "hash", "--pooling", "mean"]
    assert main([*args, "--faiss", "flat", "--index", str(idx)]) == 0
    return idx


def mine(root, idx, out, *extra) -> int:
    base = ["mine", str(root), "--index", str(idx), "--depth", "15", "--num-negatives", "3"]
    return main([*base, "--out", str(out), *extra])


def test_promotion_records_the_judges_own_scores(corpus, dense_index, tiny_bert, tmp_path):
    root, docs = corpus
    out = tmp_path / "promoted.jsonl"
    assert mine(root, dense_index, out, "--promote-above", "0", "--judge", str(tiny_bert)) == 0
    judge = load_judge(tiny_bert)
    queries = {json.loads(line)["_id"]: json.loads(line)["text"] for line in (root / "queries.jsonl").open()}
    records = read_negatives(out)
    total = 0
    for rec in records:
        known = [p for p in rec.positives if p not in rec.promoted]
        ids = known + list(rec.promoted) + rec.negative_ids()
        scores = dict(
            zip(ids, judge.score([queries[rec.qid]] * len(ids), [docs[d] for d in ids]), strict=True)
        )
        best = max(scores[p] for p in known)
        for docid, info in rec.promoted.items():
            assert info["judge"] == str(tiny_bert)
            assert info["judge_score"] == pytest.approx(scores[docid], abs=1e-5) and scores[docid] > best
            assert info["positive_judge_score"] == pytest.approx(best, abs=1e-5)
        assert all(scores[d] <= best + 1e-6 for d in rec.negative_ids())
        total += len(rec.promoted)
    stats = json.loads((tmp_path / "promoted.stats.json").read_text())
    assert total > 0 and stats["promoted"] == total and stats["judge"] == str(tiny_bert)


def test_simans_from_the_cli_is_seeded(corpus, dense_index, tmp_path):
    root, _ = corpus
    runs = []
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / f"{name}.jsonl"
        args = ["--sampling", "simans", "--simans-a", "2", "--simans-b", "-0.5", "--seed", seed]
        assert mine(root, dense_index, out, *args) == 0
        runs.append(out.read_bytes())
    assert runs[0] == runs[1] and runs[0] != runs[2]
    config = json.loads((tmp_path / "a.stats.json").read_text())["config"]
    assert (config["sampling"], config["simans_a"], config["simans_b"]) == ("simans", 2.0, -0.5)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--promote-above", "0.5"], "--promote-above and --judge go together"),
        (["--judge", "x"], "--promote-above and --judge go together"),
        (["--simans-a", "1"], "--simans-a and --simans-b need --sampling simans"),
        (["--sampling", "simans", "--simans-a", "0"], "simans_a must be positive"),
        (["--promote-above", "0", "--judge", "/no/such/model"], "model folder not found"),
    ],
)
def test_bad_mining_flags_exit_2_with_one_line(corpus, dense_index, tmp_path, capsys, extra, message):
    root, _ = corpus
    out = tmp_path / "neg.jsonl"
    assert mine(root, dense_index, out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".neg*"))


def test_audit_with_a_judge_and_full_qrels(corpus, dense_index, tiny_bert, tmp_path, capsys):
    root, _ = corpus
    neg = tmp_path / "neg.jsonl"
    assert (
        mine(
            root, dense_index, neg, "--sampling", "random", "--promote-above", "0", "--judge", str(tiny_bert)
        )
        == 0
    )
    capsys.readouterr()
    report = tmp_path / "audit.json"
    args = ["audit", str(neg), "--judge", str(tiny_bert), "--dataset", str(root), "--sample", "5"]
    qrels = str(root / "qrels" / "full.tsv")
    assert main([*args, "--qrels", qrels, "--buckets", "1,6", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "hidden positives estimated by" in out and "true rate" in out and "promoted by" in out
    data = json.loads(report.read_text())
    rows = data["estimates"][str(neg)]
    assert [r["bucket"] for r in rows] == ["1-5", ">=6"] and all(r["sampled"] <= 5 for r in rows)
    assert all(r["low"] <= r["estimate"] <= r["high"] for r in rows)
    assert data["promoted"][str(neg)][0]["judge"] == str(tiny_bert)
    # the same seed judges the same sample; no qrels: estimates alone
    assert main([*args, "--buckets", "1,6", "--json", str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())["estimates"][str(neg)]
    assert [(r["sampled"], r["flagged"]) for r in again] == [(r["sampled"], r["flagged"]) for r in rows]
    assert again[0]["true_rate"] is None


@pytest.mark.parametrize(
    "extra, message",
    [
        ([], "give --qrels"),
        (["--judge", "m"], "--judge and --dataset go together"),
        (["--judge", "m", "--dataset", "d", "--plot", "p.png"], "--plot draws the qrels audit"),
    ],
)
def test_bad_audit_flags_exit_2(tmp_path, capsys, extra, message):
    neg = tmp_path / "neg.jsonl"
    neg.write_text("")
    assert main(["audit", str(neg), *extra]) == 2
    assert message in capsys.readouterr().err
