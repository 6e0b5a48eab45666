"""Must-show (issue 24) with the real all-MiniLM-L6-v2 and SciFact: `ranker cache-states`,
then a multi-layer pooler + adapter trained from the cache, gives the embeddings of the live
frozen model, indexes from the cache exactly as live, and loads in sentence-transformers
(integration: real weights and ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scifact_subset import write_subset
from tiny_encoders import assert_same_outputs

from ranker.cli.retrieval import _stored_vectors
from ranker.encoders.states import StatesCache
from ranker.models import BiEncoder, load_biencoder
from retrievers.io.dataset import load_dataset

pytestmark = pytest.mark.integration

MAX_LENGTH = 96


@pytest.fixture(scope="module")
def cached(scifact_dir, minilm_path, tmp_path_factory) -> tuple[Path, Path, Path]:
    """A SciFact subset, negatives (the first unjudged documents) and a float32 cache of all 7
    MiniLM hidden states."""
    from ranker.cli import main

    base = tmp_path_factory.mktemp("states-minilm")
    root = write_subset(scifact_dir, base / "data", queries=8, others=40)
    data = load_dataset(root)
    queries = data.queries("train")
    docs = [d.id for d in data.docs()]
    negatives = base / "negatives.jsonl"
    with negatives.open("w") as out:
        for qid, judged in sorted(data.qrels("train").items()):
            negs = [d for d in docs if d not in judged][:4]
            rows = [{"docid": d, "rank": r, "score": -r, "retriever": "list"} for r, d in enumerate(negs, 1)]
            record = {"qid": qid, "query": queries[qid], "positives": sorted(judged), "negatives": rows}
            out.write(json.dumps(record) + "\n")
    states = base / "states"
    argv = ["-q", "cache-states", str(root), "--model", str(minilm_path), "--layers", "all"]
    assert main([*argv, "--max-length", str(MAX_LENGTH), "--out", str(states)]) == 0
    return root, negatives, states


def test_cache_holds_every_hidden_state_of_every_text(cached):
    root, _, states = cached
    cache = StatesCache(states)
    assert cache.layers == list(range(7))  # embedding output + 6 layers
    assert cache.max_length == MAX_LENGTH
    data = load_dataset(root)
    texts = [d.contents for d in data.docs()]
    assert len(cache.locate(texts[:5])) == 5


def test_pooler_trained_from_the_cache_equals_the_live_frozen_model(cached, minilm_path, tmp_path, cli):
    from sentence_transformers import SentenceTransformer

    root, negatives, states = cached
    out = tmp_path / "run"
    sets = {
        "dataset": root,
        "negatives": negatives,
        "output_dir": out,
        "model": minilm_path,
        "model_type": "bi",
        "pooling": "layerwise",
        "adapter": True,
        "backbone": f"{{freeze: all, states: {states}}}",
        "loss": "infonce",
        "batch_size": 4,
        "n_negatives": 1,
        "max_steps": 6,
        "lr": 1e-3,
        "max_length": MAX_LENGTH,
        "warmup_steps": 0,
        "seed": 5,
        "device": "cpu",
        "dump_weights": False,
    }
    rc, _, err = cli("-q", "train", *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")])
    assert rc == 0, err
    saved = out / "model"
    model = BiEncoder.load(saved)  # live: the full MiniLM runs, nothing read from the cache
    docs = [d.contents for d in load_dataset(root).docs()]
    live = model.encode_corpus(docs)
    st = SentenceTransformer(str(saved), trust_remote_code=True, device="cpu")
    assert_same_outputs(st.encode(docs, normalize_embeddings=False), live)
    rc, _, err = cli(
        "-q",
        "index",
        root,
        "--retriever",
        "dense",
        "--model",
        saved,
        "--states",
        states,
        "--index",
        tmp_path / "from-cache",
    )
    assert rc == 0, err
    _, ids, from_cache = _stored_vectors(tmp_path / "from-cache")
    assert ids == [d.id for d in load_dataset(root).docs()]
    np.testing.assert_allclose(np.asarray(from_cache), live, rtol=1e-4, atol=1e-5)
    untrained = load_biencoder(str(minilm_path), pooling="layerwise", max_length=MAX_LENGTH)
    assert not np.allclose(untrained.encode_corpus(docs[:4]), live[:4], atol=1e-3)  # it trained
