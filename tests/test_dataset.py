"""Loaders for the BEIR and MS MARCO layouts, ir_datasets, and name resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from retrievers.errors import DatasetUnavailableError, InputError
from retrievers.io.dataset import BeirDataset, IrdsDataset, MsMarcoDataset, load_dataset


def test_beir_folder_streams_docs_and_filters_queries_by_split(tiny_beir):
    ds = load_dataset(tiny_beir)
    assert isinstance(ds, BeirDataset)
    docs = list(ds.docs())
    assert [d.id for d in docs] == ["d1", "d2", "d3", "d4"]
    assert docs[0].contents == "Cats cats purr and sleep"
    assert docs[2].contents == "fish swim in water"  # no title: no leading space
    assert ds.splits() == ["test", "train"]
    assert ds.queries("train") == {"q1": "cats purr"}
    assert set(ds.queries("test")) == {"q1", "q2", "q3"}
    assert ds.qrels("test")["q3"] == {"d4": 2}


def test_docs_is_a_generator_not_a_list(tiny_beir):
    docs = load_dataset(tiny_beir).docs()
    assert next(docs).id == "d1"  # streams: nothing forces the whole corpus into memory


def test_msmarco_folder(tmp_path):
    root = tmp_path / "mm"
    root.mkdir()
    (root / "collection.tsv").write_text("p1\tfirst passage\np2\tTitle\tsecond passage\n")
    (root / "queries.dev.tsv").write_text("7\twhat is first\n8\tsecond?\n")
    (root / "qrels.dev.tsv").write_text("7 0 p1 1\n8\t0\tp2\t1\n")
    ds = load_dataset(root)
    assert isinstance(ds, MsMarcoDataset)
    assert [(d.id, d.contents) for d in ds.docs()] == [
        ("p1", "first passage"),
        ("p2", "Title second passage"),
    ]
    assert ds.splits() == ["dev"]
    assert ds.queries("dev") == {"7": "what is first", "8": "second?"}
    assert ds.qrels("dev") == {"7": {"p1": 1}, "8": {"p2": 1}}


def test_bare_name_looked_up_under_ranker_data(tiny_beir, monkeypatch):
    monkeypatch.setenv("RANKER_DATA", str(tiny_beir.parent))
    assert load_dataset("tiny").name == "tiny"


def test_unknown_name_says_where_it_looked(monkeypatch, tmp_path):
    monkeypatch.setenv("RANKER_DATA", str(tmp_path))
    with pytest.raises(DatasetUnavailableError, match="RANKER_DATA"):
        load_dataset("no-such-dataset")


def test_unknown_split_lists_available(tiny_beir):
    with pytest.raises(InputError, match="available: test, train"):
        load_dataset(tiny_beir).queries("dev")


def _register(name: str, dataset) -> None:
    import ir_datasets

    if name not in ir_datasets.registry:
        ir_datasets.registry.register(name, dataset)


def test_irds_dataset_from_local_files(tmp_path):
    import ir_datasets

    (tmp_path / "docs.tsv").write_text("d1\tapples are red\nd2\tbananas are yellow\n")
    (tmp_path / "queries.tsv").write_text("q1\tred fruit\n")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\n")
    local = ir_datasets.create_dataset(
        docs_tsv=str(tmp_path / "docs.tsv"),
        queries_tsv=str(tmp_path / "queries.tsv"),
        qrels_trec=str(tmp_path / "qrels.txt"),
    )
    _register("ranker-test/local", local)
    ds = load_dataset("irds:ranker-test/local")
    assert isinstance(ds, IrdsDataset)
    assert [d.id for d in ds.docs()] == ["d1", "d2"]
    assert ds.splits() == ["default"]
    assert ds.queries("default") == {"q1": "red fruit"}
    assert ds.qrels("default") == {"q1": {"d1": 1}}


def _irds_local(tmp_path, name, queries="q1\tred fruit\n", qrels="q1 0 d1 1\n", subsets=()):
    """Register ``name`` (docs, queries, qrels) and each of ``subsets`` as ``name/SUBSET``."""
    import ir_datasets

    (tmp_path / "docs.tsv").write_text("d1\tapples are red\nd2\tbananas are yellow\n")
    (tmp_path / "queries.tsv").write_text(queries)
    (tmp_path / "qrels.txt").write_text(qrels)
    files = {"queries_tsv": str(tmp_path / "queries.tsv"), "qrels_trec": str(tmp_path / "qrels.txt")}
    _register(name, ir_datasets.create_dataset(docs_tsv=str(tmp_path / "docs.tsv"), **files))
    for subset in subsets:
        _register(f"{name}/{subset}", ir_datasets.create_dataset(**files))
    return load_dataset(f"irds:{name}")


def test_irds_unknown_split_is_an_error_as_in_folders(tmp_path):
    ds = _irds_local(tmp_path, "ranker-test/split")
    for call in (ds.queries, ds.qrels):
        with pytest.raises(InputError, match=r"has no split 'test'; splits with .*: default$"):
            call("test")


def test_irds_splits_are_the_subsets_with_judgments(tmp_path):
    import ir_datasets

    ds = _irds_local(tmp_path, "ranker-test/subsets", subsets=("dev", "test"))
    (tmp_path / "eval.tsv").write_text("q9\tunjudged\n")
    _register("ranker-test/subsets/eval", ir_datasets.create_dataset(queries_tsv=str(tmp_path / "eval.tsv")))
    assert ds.splits() == ["default", "dev", "test"]
    assert ds.queries("eval") == {"q9": "unjudged"}  # queries without judgments: searchable
    with pytest.raises(InputError, match="no qrels in split 'eval'; splits with qrels: default, dev, test"):
        ds.qrels("eval")


def test_irds_duplicate_query_id_names_the_record(tmp_path):
    ds = _irds_local(tmp_path, "ranker-test/dupq", queries="q1\tred fruit\nq2\tx\nq1\tagain\n")
    with pytest.raises(
        InputError, match=r"^irds:ranker-test/dupq \(default queries\):3: duplicate query id 'q1'"
    ):
        ds.queries("default")


def test_irds_duplicate_judgment_and_bad_ids_are_refused(tmp_path):
    ds = _irds_local(tmp_path, "ranker-test/dupj", qrels="q1 0 d1 1\nq1 0 d1 0\n")
    with pytest.raises(InputError, match=r"\(default qrels\):2: duplicate judgment for query 'q1'"):
        ds.qrels("default")


def test_irds_offline_download_says_what_to_do(tmp_path, monkeypatch):
    import ir_datasets

    (tmp_path / "docs.tsv").write_text("d1\tx\n")
    local = ir_datasets.create_dataset(docs_tsv=str(tmp_path / "docs.tsv"))
    _register("ranker-test/offline", local)

    def offline(*args, **kwargs):  # what ir_datasets raises when a download cannot connect
        raise ConnectionError("Failed to establish a new connection")

    ds = load_dataset("irds:ranker-test/offline")
    monkeypatch.setattr(ds._base, "docs_iter", offline)
    with pytest.raises(DatasetUnavailableError, match="RANKER_DATA"):
        list(ds.docs())


def test_unknown_irds_id():
    with pytest.raises(InputError, match="unknown ir_datasets id"):
        load_dataset("irds:no/such/dataset")


@pytest.mark.integration
def test_shared_scifact_in_both_layouts_agree(scifact_dir, scifact_msmarco_dir):
    beir, msm = load_dataset(scifact_dir), load_dataset(scifact_msmarco_dir)
    for split in ("train", "test"):
        assert beir.queries(split) == msm.queries(split)
        assert beir.qrels(split) == msm.qrels(split)
    assert sum(1 for _ in beir.docs()) == sum(1 for _ in msm.docs()) == 5183
    first = next(beir.docs())
    assert first.contents == next(msm.docs()).contents


def _write(path: Path, data: bytes | str) -> Path:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("file", "content", "line", "message"),
    [
        ("corpus.jsonl", '{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', 2, "malformed JSON"),
        (
            "corpus.jsonl",
            '{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n',
            2,
            "duplicate document id",
        ),
        ("corpus.jsonl", '{"_id": "d1"}\n', 1, "missing field 'text'"),
        (
            "corpus.jsonl",
            b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "\xff\xfe"}\n',
            2,
            "invalid UTF-8",
        ),
        ("queries.jsonl", '{"_id": "q1", "text": "   "}\n', 1, "empty"),
        ("qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq9\td2\t1\n", 3, "query 'q9'"),
        ("qrels/test.tsv", "q1\td1\n", 1, "expected query-id, corpus-id, score"),
        ("qrels/test.tsv", "q1\td1\tyes\n", 1, "not an integer"),
    ],
)
def test_bad_input_names_file_and_line(tiny_beir, file, content, line, message):
    path = _write(tiny_beir / file, content)
    ds = load_dataset(tiny_beir)
    with pytest.raises(InputError) as info:
        list(ds.docs())
        ds.qrels("test")
    assert info.value.path == str(path)
    assert info.value.line == line
    assert message in str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_missing_file_is_named(tiny_beir):
    (tiny_beir / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"queries\.jsonl: file not found"):
        load_dataset(tiny_beir).qrels("test")


def test_msmarco_bad_lines(tmp_path):
    root = tmp_path / "mm"
    root.mkdir()
    _write(root / "collection.tsv", "p1\tok\np2\n")
    _write(root / "queries.dev.tsv", "1\tq\n2\t\n")
    _write(root / "qrels.dev.tsv", "1 0 p1\n")
    ds = load_dataset(root)
    with pytest.raises(InputError, match=r"collection\.tsv:2: found 1 field"):
        list(ds.docs())
    with pytest.raises(InputError, match=r"queries\.dev\.tsv:2: query '2' is empty"):
        ds.queries("dev")
    _write(root / "queries.dev.tsv", "1\tq\n")
    with pytest.raises(InputError, match=r"qrels\.dev\.tsv:1: found 3 field"):
        MsMarcoDataset(root).qrels("dev")


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(InputError, match=r"expected corpus\.jsonl"):
        load_dataset(tmp_path)


def test_json_line_not_object(tiny_beir):
    _write(tiny_beir / "corpus.jsonl", json.dumps(["d1", "text"]) + "\n")
    with pytest.raises(InputError, match=r"corpus\.jsonl:1: expected a JSON object"):
        list(load_dataset(tiny_beir).docs())
