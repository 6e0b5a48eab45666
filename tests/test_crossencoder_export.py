"""Saved cross-encoders are standard sequence-classification models: transformers'
``AutoModelForSequenceClassification`` and ``sentence_transformers.CrossEncoder`` load them
with their trained head and give the scores ``ranker rerank`` gives."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
from safetensors import safe_open
from tiny_encoders import assert_same_outputs

from ranker.cli import rerank as rerank_cli
from ranker.models import CrossEncoder
from retrievers.io.dataset import load_dataset
from retrievers.io.trec import read_run, write_run

RUN = {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d3": 1.0, "d4": 0.5, "d2": 0.2}}


@pytest.fixture(params=["tiny", pytest.param("minilm", marks=pytest.mark.integration)])
def backbone(request, tiny_bert):
    return tiny_bert if request.param == "tiny" else request.getfixturevalue("minilm_path")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)  # the fresh head's initialisation, whatever ran before


def _trained_look(model: CrossEncoder) -> CrossEncoder:
    """Move every weight off its initial value, head included, as training would."""
    torch.manual_seed(3)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model


def _rerank_scores(dataset, model_dir, tmp_path) -> dict[tuple[str, str], float]:
    parser = argparse.ArgumentParser()
    rerank_cli.register(parser.add_subparsers(required=True))
    write_run(tmp_path / "in.trec", RUN)
    run_in, run_out = str(tmp_path / "in.trec"), str(tmp_path / "out.trec")
    argv = ["rerank", str(dataset), "--split", "test", "--run", run_in, "--model", str(model_dir)]
    args = parser.parse_args([*argv, "--out", run_out, "--device", "cpu"])
    assert args.func(args) == 0
    return {(q, d): s for q, docs in read_run(tmp_path / "out.trec").items() for d, s in docs.items()}


def test_saved_reranker_loads_in_transformers_and_sentence_transformers(backbone, tiny_beir, tmp_path):
    from sentence_transformers import CrossEncoder as STCrossEncoder
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = _trained_look(CrossEncoder.from_pretrained(backbone, max_length=32))
    assert model.standard
    model.save(tmp_path / "ce")
    config = json.loads((tmp_path / "ce" / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert len(config["id2label"]) == 1
    with safe_open(str(tmp_path / "ce" / "model.safetensors"), "pt") as weights:
        assert {"classifier.weight", "bert.pooler.dense.weight"} <= set(weights.keys())
    assert not (tmp_path / "ce" / "head.safetensors").exists()
    card = (tmp_path / "ce" / "README.md").read_text()
    assert "BertForSequenceClassification" in card and "sentence_transformers import CrossEncoder" in card

    ranker_scores = _rerank_scores(tiny_beir, tmp_path / "ce", tmp_path)
    pairs = sorted(ranker_scores)
    dataset = load_dataset(str(tiny_beir))
    queries, docs = dataset.queries("test"), {doc.id: doc.contents for doc in dataset.docs()}
    expected = np.array([ranker_scores[p] for p in pairs])
    texts = [(queries[q], docs[d]) for q, d in pairs]
    # the trained head, not a random one: scores spread, as the perturbed model gives
    assert np.ptp(expected) > 1e-3

    hf = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ce")).eval()
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "ce"))
    features = tok(
        [a for a, _ in texts], [b for _, b in texts], padding=True, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        hf_scores = hf(**features).logits.squeeze(-1).numpy()
    np.testing.assert_allclose(hf_scores, expected, atol=1e-5)

    st = STCrossEncoder(str(tmp_path / "ce"), device="cpu")
    np.testing.assert_allclose(st.predict(texts), expected, atol=1e-5)

    again = CrossEncoder.load(tmp_path / "ce")
    np.testing.assert_allclose(again.score(*zip(*texts, strict=True)), expected, atol=1e-5)


def test_folders_saved_with_a_ranker_head_still_load(tiny_bert, tmp_path):
    """An explicit pooling keeps the pooler + linear head; folders written before the standard
    head (no ``head`` key in ranker_config.json) load as such."""
    model = _trained_look(CrossEncoder.from_pretrained(tiny_bert, pooling="cls", max_length=32))
    assert not model.standard
    model.save(tmp_path / "ce")
    config_path = tmp_path / "ce" / "ranker_config.json"
    config = json.loads(config_path.read_text())
    assert config["head"] == "pooler-linear" and (tmp_path / "ce" / "head.safetensors").is_file()
    assert "random" in (tmp_path / "ce" / "README.md").read_text()  # says other loaders won't do
    del config["head"]
    config_path.write_text(json.dumps(config))
    pairs = (["cats purr", "fish"], ["cats purr and sleep", "birds sing"])
    assert_same_outputs(CrossEncoder.load(tmp_path / "ce").score(*pairs), model.score(*pairs))


def test_a_sequence_classification_checkpoint_keeps_its_head(tiny_bert, tmp_path):
    """Starting from a saved standard reranker (or any one-logit HF cross-encoder) loads its
    trained head rather than a fresh one."""
    model = _trained_look(CrossEncoder.from_pretrained(tiny_bert, max_length=32))
    model.save(tmp_path / "ce")
    (tmp_path / "ce" / "ranker_config.json").unlink()  # a plain transformers folder
    again = CrossEncoder.from_pretrained(tmp_path / "ce", max_length=32)
    pairs = (["cats purr", "fish"], ["cats purr and sleep", "birds sing"])
    np.testing.assert_allclose(again.score(*pairs), model.score(*pairs), atol=1e-6)
