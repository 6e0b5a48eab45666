"""Ad-hoc files from the CLI: ``search --queries``, ``evaluate/compare --qrels`` (gzip too)."""

from __future__ import annotations

import gzip
import json

import pytest
from dense_helpers import HashEncoder

from retrievers.io.adhoc import read_qrels_file, read_queries_file
from retrievers.io.trec import read_run


@pytest.fixture()
def hash_encoder(monkeypatch):
    import ranker.cli.retrieval as retrieval

    monkeypatch.setattr(retrieval, "load_encoder", lambda *a, **k: HashEncoder())


def _gzip(path):
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes()))
    return out


def _error_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def test_queries_file_formats(tmp_path):
    tsv = tmp_path / "q.tsv"
    tsv.write_text("q1\tcats purr\nq2\tfish swim\n")
    jsonl = tmp_path / "q.jsonl"
    jsonl.write_text('{"_id": "q1", "text": "cats purr"}\n{"id": "q2", "text": "fish swim"}\n')
    expected = {"q1": "cats purr", "q2": "fish swim"}
    assert read_queries_file(tsv) == expected
    assert read_queries_file(jsonl) == expected
    assert read_queries_file(_gzip(tsv)) == expected
    assert read_queries_file(_gzip(jsonl)) == expected


def test_qrels_file_trec_and_beir_with_or_without_header(tmp_path):
    expected = {"q1": {"d1": 1, "d2": 0}, "q3": {"d4": 2}}
    trec = tmp_path / "qrels.txt"
    trec.write_text("q1 0 d1 1\nq1 0 d2 0\nq3 Q0 d4 2\n")
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t0\nq3\td4\t2\n")
    bare = tmp_path / "bare.tsv"
    bare.write_text("q1\td1\t1\nq1\td2\t0\nq3\td4\t2\n")
    for path in (trec, beir, bare, _gzip(trec), _gzip(beir)):
        assert read_qrels_file(path) == expected, path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("q1 0 d1 1\nq1 0 d2\n", ":2: found 3 field(s); expected 4"),
        ("query-id\tcorpus-id\tscore\nq1\td1\n", ":2: found 2 field(s)"),
        ("q1 0 d1 1_0\n", ":1: relevance '1_0' is not an integer"),
        ("query-id\tcorpus-id\tscore\n", "holds no judgments"),
    ],
)
def test_bad_qrels_file_is_one_line_naming_file_and_line(cli, tmp_path, content, message):
    qrels = tmp_path / "qrels.txt"
    qrels.write_text(content)
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    rc, out, err = cli("evaluate", "--qrels", qrels, run)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(qrels) in err and message in err


def test_search_queries_file_dense_then_evaluate_and_compare_with_qrels(
    cli, tiny_beir, tmp_path, hash_encoder
):
    idx = tmp_path / "dense"
    rc, _, err = cli("index", tiny_beir, "--retriever", "dense", "--model", "m", "--index", idx)
    assert rc == 0, err
    # the dataset's own queries, through the dataset, give the reference run
    ref = tmp_path / "ref.trec"
    assert cli("search", tiny_beir, "--index", idx, "--out", ref, "--k", "3", "--cpu")[0] == 0
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tcats purr\nq2\tswimming fish\nq3\tsinging birds\n")
    adhoc = tmp_path / "adhoc.trec"
    rc, _, err = cli("search", "--queries", _gzip(queries), "--index", idx, "--out", adhoc, "--k", "3")
    assert rc == 0, err
    assert read_run(adhoc) == read_run(ref)

    qrels = tmp_path / "qrels.txt"  # TREC layout, while the dataset's own are BEIR
    qrels.write_text("q1 0 d1 1\nq2 0 d3 1\nq3 0 d4 2\n")
    gz_run = _gzip(adhoc)
    rc, from_file, err = cli("evaluate", "--qrels", _gzip(qrels), gz_run, "--format", "json")
    assert rc == 0, err
    rc, from_dataset, _ = cli("evaluate", tiny_beir, gz_run, "--format", "json")
    assert rc == 0
    assert json.loads(from_file)[str(gz_run)] == json.loads(from_dataset)[str(gz_run)]
    rc, out, err = cli("compare", "--qrels", qrels, "--baseline", ref, adhoc, "--format", "json")
    assert rc == 0, err
    assert json.loads(out)


def test_search_queries_file_bm25(cli, tiny_beir, tmp_path):
    idx = tmp_path / "bm25"
    rc, _, err = cli("index", tiny_beir, "--index", idx)
    assert rc == 0, err
    ref = tmp_path / "ref.trec"
    assert cli("search", tiny_beir, "--index", idx, "--out", ref)[0] == 0
    queries = tmp_path / "queries.jsonl"
    texts = {"q1": "cats purr", "q2": "swimming fish", "q3": "singing birds"}
    queries.write_text("".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in texts.items()))
    out = tmp_path / "adhoc.trec"
    rc, _, err = cli("search", "--queries", queries, "--index", idx, "--out", out)
    assert rc == 0, err
    assert read_run(out) == read_run(ref)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", "{ds}", "--queries", "{q}", "--index", "{tmp}", "--out", "{tmp}/r"], "not both"),
        (["search", "--index", "{tmp}", "--out", "{tmp}/r"], "give a DATASET"),
        (["search", "--queries", "{q}", "--split", "dev", "--index", "{tmp}", "--out", "{tmp}/r"], "--split"),
        (["evaluate", "{ds}", "{run}", "--qrels", "{qrels}"], "not both"),
        (["evaluate", "irds:beir/scifact", "{run}", "--qrels", "{qrels}"], "not both"),
        (["evaluate", "--qrels", "{qrels}", "--split", "dev", "{run}"], "--split"),
        (["evaluate", "{run}"], "give a DATASET"),
        (["compare", "{ds}", "{run}", "{run}", "--qrels", "{qrels}", "--all-pairs"], "not both"),
    ],
)
def test_dataset_and_file_are_mutually_exclusive(cli, tiny_beir, tmp_path, argv, message):
    q = tmp_path / "q.tsv"
    q.write_text("q1\tcats\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d1 1 1.0 x\n")
    values = {"ds": tiny_beir, "q": q, "qrels": qrels, "run": run, "tmp": tmp_path}
    rc, out, err = cli(*[a.format(**values) for a in argv])
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
