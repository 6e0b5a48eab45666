"""model_kind: one answer to "what kind of saved model is this folder?" for every command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ranker.cli import main
from ranker.models.kind import CONFIG_NAME, model_kind
from retrievers.errors import InputError


def _folder(root: Path, name: str, files: dict[str, object]) -> Path:
    folder = root / name
    folder.mkdir()
    for file, content in files.items():
        (folder / file).write_text(content if isinstance(content, str) else json.dumps(content))
    return folder


BERT = {"model_type": "bert", "architectures": ["BertModel"]}
CASES = {
    "ranker bi-encoder": (
        {CONFIG_NAME: {"type": "biencoder"}, "modules.json": [], "config.json": BERT},
        "biencoder",
    ),
    "ranker cross-encoder": ({CONFIG_NAME: {"type": "crossencoder"}, "config.json": BERT}, "crossencoder"),
    "sentence-transformers": ({"modules.json": [], "config.json": BERT}, "sentence-transformers"),
    "sequence-classification": (
        {"config.json": {"model_type": "bert", "architectures": ["BertForSequenceClassification"]}},
        "sequence-classification",
    ),
    "transformers": ({"config.json": BERT}, "transformers"),
}


@pytest.mark.parametrize("case", CASES)
def test_kinds_from_files(tmp_path, case):
    files, kind = CASES[case]
    assert model_kind(_folder(tmp_path, "m", files)) == kind


def test_gguf_file_and_hub_id(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert model_kind(tmp_path / "m.gguf") == "gguf"
    assert model_kind("sentence-transformers/all-MiniLM-L6-v2") == "hub"


@pytest.mark.parametrize(
    ("files", "match"),
    [
        ({}, "not a saved model; expected a folder saved by ranker"),
        ({"weights.bin": "x"}, "not a saved model; expected"),
        ({CONFIG_NAME: "{not json"}, "not valid JSON"),
        ({CONFIG_NAME: {"type": "colbert"}}, "type 'colbert': expected one of 'biencoder', 'crossencoder'"),
        ({CONFIG_NAME: [1]}, "expected a JSON object"),
    ],
)
def test_folders_of_no_known_kind_are_one_line_errors(tmp_path, files, match):
    folder = _folder(tmp_path, "m", files)
    with pytest.raises(InputError, match=match) as err:
        model_kind(folder)
    assert str(folder) in str(err.value) and "\n" not in str(err.value)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(InputError, match="model folder not found"):
        model_kind(tmp_path / "nope")


def test_rerank_refuses_a_plain_sentence_transformers_folder_in_one_line(tiny_beir, tmp_path, capsys):
    # a bi-encoder saved by ranker reranks (by its interaction head or inner product); a bare
    # sentence-transformers folder is not a reranker
    folder = _folder(tmp_path, "st", CASES["sentence-transformers"][0])
    (tmp_path / "run.trec").write_text("q1 Q0 d1 1 1.0 x\n")
    argv = ["rerank", str(tiny_beir), "--split", "test", "--run", str(tmp_path / "run.trec")]
    assert main([*argv, "--model", str(folder), "--out", str(tmp_path / "out.trec")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert str(folder) in err and "expected a cross-encoder" in err
    assert not (tmp_path / "out.trec").exists()


def test_training_a_bi_encoder_from_a_cross_encoder_is_refused(tmp_path):
    from ranker.training.build import build_relevance
    from ranker.training.config import build_config

    folder = _folder(tmp_path, "ce", CASES["ranker cross-encoder"][0])
    config = build_config({"model": str(folder), "model_type": "bi"})
    with pytest.raises(InputError, match="is a saved cross-encoder, but model_type is 'bi'"):
        build_relevance(config)


def test_saved_models_describe_themselves(tiny_bert, tmp_path):
    """ranker_config.json answers for ranker, README.md for people and other libraries."""
    from ranker.models import BiEncoder, CrossEncoder

    BiEncoder.from_pretrained(tiny_bert, pooling="mean", query_prefix="query ").save(tmp_path / "bi")
    assert model_kind(tmp_path / "bi") == "biencoder"
    card = (tmp_path / "bi" / "README.md").read_text()
    assert "`mean` pooling" in card and 'SentenceTransformer("THIS_FOLDER")' in card
    assert "query 'query '" in card
    CrossEncoder.from_pretrained(tiny_bert).save(tmp_path / "ce")
    assert model_kind(tmp_path / "ce") == "crossencoder"
    assert "AutoModelForSequenceClassification" in (tmp_path / "ce" / "README.md").read_text()
