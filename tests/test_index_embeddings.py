"""``ranker index --retriever dense --embeddings DIR``: encode once, index many ways."""

from __future__ import annotations

import json

import pytest

from retrievers.io.trec import read_run


def _search(cli, dataset, index, out):
    rc, _, err = cli("search", dataset, "--index", index, "--out", out, "--k", "4", "--cpu")
    assert rc == 0, err
    return read_run(out)


def _same_run(a, b):
    assert a.keys() == b.keys()
    for qid in a:
        assert sorted(a[qid], key=a[qid].get) == sorted(b[qid], key=b[qid].get), qid
        assert a[qid] == pytest.approx(b[qid], abs=1e-5)


def test_index_from_encode_output_and_from_another_index_matches_scratch(cli, tiny_beir, tiny_bert, tmp_path):
    scratch = tmp_path / "scratch"
    rc, _, err = cli("index", tiny_beir, "--retriever", "dense", "--model", tiny_bert, "--index", scratch)
    assert rc == 0, err
    reference = _search(cli, tiny_beir, scratch, tmp_path / "scratch.trec")

    emb = tmp_path / "emb"
    assert cli("encode", tiny_beir, "--model", tiny_bert, "--out", emb, "--no-progress")[0] == 0
    from_encode = tmp_path / "from-encode"
    rc, _, err = cli("index", "--retriever", "dense", "--embeddings", emb, "--index", from_encode)
    assert rc == 0, err
    meta = json.loads((from_encode / "ranker-index.json").read_text())
    assert meta["model"] == str(tiny_bert) and meta["pooling"] == "mean"
    assert meta["embeddings_from"] == str(emb.resolve())
    _same_run(_search(cli, tiny_beir, from_encode, tmp_path / "a.trec"), reference)

    # another dense index's stored vectors, with the dataset named (checked) and --model given
    from_index = tmp_path / "from-index"
    argv = ["index", tiny_beir, "--retriever", "dense", "--embeddings", scratch, "--model", tiny_bert]
    rc, _, err = cli(*argv, "--index", from_index)
    assert rc == 0, err
    assert read_run(_write(cli, tiny_beir, from_index, tmp_path)) == reference  # flat from flat: exact
    hnsw = tmp_path / "hnsw"
    rc, _, err = cli("index", "--retriever", "dense", "--embeddings", emb, "--faiss", "hnsw", "--index", hnsw)
    assert rc == 0, err
    _same_run(_search(cli, tiny_beir, hnsw, tmp_path / "h.trec"), reference)
    assert not list(tmp_path.glob(".*from-embeddings"))  # no temporary folder left behind


def _write(cli, dataset, index, tmp_path):
    out = tmp_path / f"{index.name}.trec"
    _search(cli, dataset, index, out)
    return out


def test_mismatched_model_pooling_or_corpus_is_refused(cli, tiny_beir, tiny_bert, tmp_path):
    emb = tmp_path / "emb"
    assert cli("encode", tiny_beir, "--model", tiny_bert, "--out", emb, "--no-progress")[0] == 0
    other = tmp_path / "other"
    (other / "qrels").mkdir(parents=True)
    (other / "corpus.jsonl").write_text('{"_id": "x", "text": "cats"}\n')
    (other / "queries.jsonl").write_text('{"_id": "q", "text": "cats"}\n')
    (other / "qrels" / "test.tsv").write_text("q\tx\t1\n")
    base = ["index", "--retriever", "dense", "--embeddings", emb, "--index", tmp_path / "idx"]
    cases = [
        (["--model", "sentence-transformers/all-MiniLM-L6-v2"], ["all-MiniLM-L6-v2", str(tiny_bert)]),
        (["--pooling", "max"], ["'max'", "'mean'"]),
        ([str(other)], ["another corpus"]),
    ]
    for extra, words in cases:
        rc, out, err = cli(*base, *extra)
        assert rc == 2 and out == "", err
        assert len(err.strip().splitlines()) == 1 and all(w in err for w in words), err
        assert not (tmp_path / "idx").exists()
    rc, _, err = cli("index", "--retriever", "dense", "--embeddings", tiny_beir, "--index", tmp_path / "idx")
    assert rc == 2 and "not an encoding" in err
    rc, _, err = cli("index", "--embeddings", emb, "--index", tmp_path / "idx")
    assert rc == 2 and "--retriever dense" in err


def test_small_ivfpq_corpus_is_said_once_without_faiss_warnings(capfd, caplog):
    import numpy as np

    from retrievers.faiss_index import FaissConfig, build_index

    vectors = np.random.default_rng(0).standard_normal((300, 32)).astype(np.float32)
    index = build_index(FaissConfig(kind="ivfpq"), 32, [vectors], vectors)
    assert index.ntotal == 300
    assert "WARNING clustering" not in capfd.readouterr().err  # FAISS's own, once per sub-quantizer
    assert sum("small for IVF-PQ" in m for m in caplog.messages) == 1
