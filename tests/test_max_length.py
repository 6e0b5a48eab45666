"""Token budgets follow the model's own limit (a BERT with 128 positions), and --max-length."""

from __future__ import annotations

import json

import pytest
from dense_helpers import write_beir
from tiny_encoders import WORDS, tiny_tokenizer

import ranker.cli
from ranker.encoders.backbone import Backbone
from ranker.models import BiEncoder, CrossEncoder
from retrievers.io.trec import read_run


@pytest.fixture()
def long_docs(tmp_path):
    """A corpus whose first document is 400 words (far over 128 positions)."""
    long_text = " ".join(WORDS[i % len(WORDS)] for i in range(400))
    docs = {"d1": long_text, "d2": "cats purr", "d3": "fish swim in water"}
    return write_beir(tmp_path / "long", docs, {"q1": "cats purr"}, {"test": {"q1": {"d2": 1}}})


def test_max_positions_of_bert_and_roberta(tiny_bert):
    from transformers import RobertaConfig, RobertaModel

    bert = Backbone.from_pretrained(tiny_bert)
    assert bert.max_positions == 128
    assert bert.fit_max_length(None) == 128 and bert.fit_max_length(64) == 64
    assert bert.fit_max_length(1000) == 128
    tokenizer = tiny_tokenizer(False)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=66,  # positions start after the padding index (1): 64 usable
    )
    assert Backbone(RobertaModel(config), tokenizer).max_positions == 64
    tokenizer.model_max_length = 50  # the tokenizer's own limit counts when it is a real one
    assert Backbone(RobertaModel(config), tokenizer).max_positions == 50


def test_models_take_the_model_limit_and_encode_long_texts(tiny_bert, long_docs, caplog):
    bi = BiEncoder.from_pretrained(tiny_bert)
    assert bi.query_encoder.max_length == 128 and bi.doc_encoder.max_length == 128
    text = " ".join(["cats"] * 400)
    assert bi.encode_corpus([text]).shape == (1, 32)  # was an IndexError (512 > 128 positions)
    bi.doc_encoder.max_length = 4000
    assert bi.doc_encoder.max_length == 128 and "exceeds the model's 128 positions" in caplog.text
    cross = CrossEncoder.from_pretrained(tiny_bert)
    assert cross.max_length == 128
    assert cross.score(["cats purr"], [text]).shape == (1,)


def test_dense_index_search_encode_with_128_positions(tiny_bert, long_docs, tmp_path, capsys):
    idx = tmp_path / "idx"
    argv = ["index", long_docs, "--retriever", "dense", "--model", tiny_bert, "--index", idx]
    assert ranker.cli.main([str(a) for a in argv]) == 0
    run = tmp_path / "run.trec"
    assert ranker.cli.main(["search", str(long_docs), "--index", str(idx), "--out", str(run), "--cpu"]) == 0
    assert set(read_run(run)["q1"]) == {"d1", "d2", "d3"}

    short = tmp_path / "short"
    assert ranker.cli.main([str(a) for a in argv[:-1]] + [str(short), "--max-length", "16"]) == 0
    meta = json.loads((short / "ranker-index.json").read_text())
    assert meta["encoder_options"]["max_length"] == 16
    argv = ["search", str(long_docs), "--index", str(short), "--out", str(run), "--max-length", "8"]
    assert ranker.cli.main(argv) == 0

    emb = tmp_path / "emb"
    assert ranker.cli.main(["encode", str(long_docs), "--model", str(tiny_bert), "--out", str(emb)]) == 0
    assert json.loads((emb / "encode_config.json").read_text())["max_length"] == 128
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        ranker.cli.main(
            ["encode", str(long_docs), "--model", str(tiny_bert), "--out", "x", "--max-length", "1"]
        )
    assert exit_info.value.code == 2 and "--max-length: must be at least 2" in capsys.readouterr().err
