"""The CLI glue: dense index + search, mine, fuse, pool and audit end to end on tiny data."""

from __future__ import annotations

import json

import pytest
from dense_helpers import HashEncoder

from ranker.cli import main
from retrievers.io.trec import read_run


@pytest.fixture()
def hash_encoder(monkeypatch):
    import ranker.cli.retrieval as retrieval

    loaded = []

    def fake(model, pooling, batch_size=64, attention=None, max_length=None, dtype=None):
        loaded.append((model, pooling))
        return HashEncoder()

    monkeypatch.setattr(retrieval, "load_encoder", fake)
    return loaded


def test_dense_index_search_mine_pool_audit(tiny_beir, tmp_path, hash_encoder, capsys):
    idx = tmp_path / "dense"
    assert (
        main(
            [
                "index",
                str(tiny_beir),
                "--retriever",
                "dense",
                "--model",
                "hash-model",
                "--pooling",
                "mean",
                "--faiss",
                "flat",
                "--index",
                str(idx),
            ]
        )
        == 0
    )
    meta = json.loads((idx / "ranker-index.json").read_text())
    assert (meta["model"], meta["pooling"], meta["faiss"]["kind"]) == ("hash-model", "mean", "flat")
    run = tmp_path / "dense.trec"
    assert (
        main(
            [
                "search",
                str(tiny_beir),
                "--split",
                "test",
                "--index",
                str(idx),
                "--k",
                "3",
                "--out",
                str(run),
                "--cpu",
            ]
        )
        == 0
    )
    assert hash_encoder[-1] == ("hash-model", "mean")  # the searcher loads the recorded model
    hits = read_run(run)
    assert set(hits) == {"q1", "q2", "q3"} and all(len(d) == 3 for d in hits.values())
    assert max(hits["q1"], key=hits["q1"].get) == "d1"  # "cats purr" -> "Cats cats purr..."

    neg = tmp_path / "neg.jsonl"
    assert (
        main(
            [
                "mine",
                str(tiny_beir),
                "--split",
                "train",
                "--index",
                str(idx),
                "--depth",
                "4",
                "--num-negatives",
                "2",
                "--out",
                str(neg),
                "--export",
                "tevatron",
            ]
        )
        == 0
    )
    rec = json.loads(neg.read_text())
    assert rec["qid"] == "q1" and rec["positives"] == ["d1"] and len(rec["negatives"]) == 2
    assert all(n["retriever"] == "dense" and n["docid"] != "d1" for n in rec["negatives"])
    tev = json.loads((tmp_path / "neg.tevatron.jsonl").read_text())
    assert tev["positive_passages"][0]["text"] == "cats purr and sleep"
    assert (tmp_path / "neg.stats.json").exists()
    assert main(["mine", str(tiny_beir), "--index", str(idx), "--out", str(neg)]) == 2

    pooled = tmp_path / "pooled"
    assert (
        main(
            [
                "pool",
                str(tiny_beir),
                "--split",
                "test",
                "--pool-run",
                str(run),
                "--depth",
                "1",
                "--out",
                str(pooled),
            ]
        )
        == 0
    )
    assert (pooled / "qrels" / "test-hidden.tsv").exists()

    capsys.readouterr()
    plot = tmp_path / "audit.png"
    assert (
        main(
            [
                "audit",
                str(neg),
                "--qrels",
                str(tiny_beir / "qrels" / "test.tsv"),
                "--plot",
                str(plot),
                "--json",
                str(tmp_path / "audit.json"),
            ]
        )
        == 0
    )
    assert "dense" in capsys.readouterr().out and plot.exists()
    (tmp_path / "neg2.jsonl").write_bytes(neg.read_bytes())
    assert (
        main(
            [
                "audit",
                str(neg),
                str(tmp_path / "neg2.jsonl"),
                "--qrels",
                str(tiny_beir / "qrels" / "test.tsv"),
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "neg:dense" in table and "neg2:dense" in table

    fused = tmp_path / "fused.trec"
    assert main(["fuse", str(run), str(run), "--method", "rrf", "--param", "k=60", "--out", str(fused)]) == 0
    assert list(read_run(fused)["q1"]) == list(hits["q1"])


def test_cli_bad_input_exits_2(tiny_beir, tmp_path, hash_encoder, capsys):
    assert (
        main(["search", str(tiny_beir), "--index", str(tmp_path / "nope"), "--out", str(tmp_path / "r.trec")])
        == 2
    )
    assert "index folder not found" in capsys.readouterr().err
    assert main(["index", str(tiny_beir), "--retriever", "dense", "--index", str(tmp_path / "i")]) == 2
    (tmp_path / "bad.trec").write_text("q1 Q0 d1 1\n")
    assert (
        main(
            [
                "fuse",
                str(tmp_path / "bad.trec"),
                str(tmp_path / "bad.trec"),
                "--out",
                str(tmp_path / "f.trec"),
            ]
        )
        == 2
    )
    assert not (tmp_path / "f.trec").exists()
    assert main(["audit", str(tmp_path / "missing.jsonl"), "--qrels", "x"]) == 2
