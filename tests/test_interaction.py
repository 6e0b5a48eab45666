"""Bilinear interaction heads (MLB / MFB) for bi-encoder reranking: the fusion itself, save and
reload, training from a config with the usual losses, and `ranker rerank` over a run."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from tiny_encoders import assert_same_outputs

from ranker.models import BiEncoder
from ranker.models.interaction import BilinearInteraction, make_interaction
from retrievers.errors import InputError
from retrievers.io.trec import read_run, write_run

DIM = 12


def block_reference(head: BilinearInteraction, q: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """block.bootstrap.pytorch's MLB / MFB forward on one aligned pair batch, output width 1
    (its exact signed sqrt; ours keeps a 1e-8 inside the root for a finite gradient at 0)."""
    x0, x1 = F.relu(head.linear0(q)), F.relu(head.linear1(d))
    z = (x0 * x1).view(q.shape[0], head.mm_dim, head.factors).sum(2)
    if head.normalize:
        z = torch.sqrt(F.relu(z)) - torch.sqrt(F.relu(-z))
        z = F.normalize(z, p=2)
    return head.linear_out(z)[:, 0]


@pytest.mark.parametrize(
    ("fusion", "options"), [("mlb", {}), ("mfb", {"factors": 3}), ("mlb", {"normalize": True})]
)
def test_fusion_matches_block_and_all_pairs_match_aligned_pairs(fusion, options):
    torch.manual_seed(0)
    head = make_interaction(fusion, DIM, {"mm_dim": 8, **options})
    q, d = torch.randn(3, DIM), torch.randn(5, DIM)
    with torch.no_grad():
        grid = head(q, d)
        assert grid.shape == (3, 5)
        for i in range(3):
            aligned = head.pairwise(q[i].expand(5, -1), d)
            torch.testing.assert_close(grid[i], aligned, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                aligned, block_reference(head, q[i].expand(5, -1), d), atol=1e-4, rtol=1e-3
            )


def test_gradients_reach_every_head_parameter_and_config_round_trips():
    torch.manual_seed(0)
    head = make_interaction("mfb", DIM, {"mm_dim": 4, "factors": 2, "activ_input": "tanh"})
    head(torch.randn(2, DIM), torch.randn(4, DIM)).logsumexp(-1).sum().backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert BilinearInteraction(**head.get_config()).get_config() == head.get_config()
    with pytest.raises(TypeError, match="takes no option"):
        make_interaction("mlb", DIM, {"rank": 3})
    with pytest.raises(ValueError, match="one factor"):
        make_interaction("mlb", DIM, {"factors": 2})


TEXTS = ["cats purr", "dogs bark at cats", "fish swim in water", "birds sing and fly"]


def test_biencoder_with_a_head_saves_reloads_and_scores_exactly(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    model = BiEncoder.from_pretrained(tiny_bert, pooling="mean")
    torch.manual_seed(1)
    model.interaction = make_interaction("mfb", model.dim, {"mm_dim": 8})
    queries, docs = ["cats", "cats", "fish"], TEXTS[:3]
    before = model.score(queries, docs)
    model.save(tmp_path / "m")
    again = BiEncoder.load(tmp_path / "m")
    assert again.interaction.get_config() == model.interaction.get_config()
    assert_same_outputs(again.score(queries, docs), before)
    with torch.no_grad():
        q = torch.from_numpy(model.encode_queries(["cats", "fish"]))
        d = torch.from_numpy(model.encode_corpus(docs))
        grid = model.interaction(q, d)
    np.testing.assert_allclose(before, [grid[0, 0], grid[0, 1], grid[1, 2]], atol=1e-5)
    # the towers stay a sentence-transformers folder (ST ignores the head)
    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    np.testing.assert_allclose(st.encode(TEXTS), model.encode(TEXTS), atol=1e-6)
    plain = BiEncoder.from_pretrained(tiny_bert, pooling="mean")
    expected = (plain.encode_queries(queries) * plain.encode_corpus(docs)).sum(1)
    np.testing.assert_allclose(plain.score(queries, docs), expected, atol=1e-6)


def write_negatives(path) -> None:
    rows = [
        ("q1", "cats purr", "d1", ["d2", "d3"]),
        ("q2", "swimming fish", "d3", ["d1", "d4"]),
        ("q3", "singing birds", "d4", ["d2", "d1"]),
    ]
    with path.open("w") as out:
        for qid, query, pos, negs in rows:
            negatives = [
                {"docid": d, "rank": r + 1, "score": 5.0 - r, "retriever": "bm25"} for r, d in enumerate(negs)
            ]
            out.write(
                json.dumps({"qid": qid, "query": query, "positives": [pos], "negatives": negatives}) + "\n"
            )


def cli(*argv: str) -> int:
    from ranker.cli import rerank as rerank_cli
    from ranker.cli import train as train_cli

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(required=True)
    train_cli.register(sub)
    rerank_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.mark.parametrize("loss", ["infonce", "listwise"])
def test_train_with_an_interaction_head_then_rerank(tiny_beir, tiny_bert, tmp_path, loss):
    negatives = tmp_path / "neg.jsonl"
    write_negatives(negatives)
    first_stage = tmp_path / "bm25.trec"
    write_run(first_stage, {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d3": 1.0, "d4": 0.5, "d1": 0.1}})
    out = tmp_path / "run"
    config = tmp_path / "c.yaml"
    values = {
        "dataset": str(tiny_beir),
        "negatives": str(negatives),
        "output_dir": str(out),
        "model": str(tiny_bert),
        "model_type": "bi",
        "interaction": "mfb",
        "interaction_options": {"mm_dim": 8, "factors": 2},
        "loss": loss,
        "batch_size": 2,
        "n_negatives": 1,
        "max_steps": 2,
        "warmup_steps": 0,
        "log_every": 1,
        "lr": 1e-2,
        "max_length": 16,
        "device": "cpu",
        "eval_split": "test",
        "eval_run": str(first_stage),
        "eval_every": 1,
    }
    config.write_text(yaml.safe_dump(values))
    assert cli("train", str(config)) == 0
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [1, 2]
    model = BiEncoder.load(out / "model")
    assert model.interaction is not None and model.interaction.mm_dim == 8
    fresh = make_interaction("mfb", model.dim, {"mm_dim": 8, "factors": 2})
    assert not torch.equal(model.interaction.linear_out.weight, fresh.linear_out.weight)
    reranked = tmp_path / "re.trec"
    argv = [
        "rerank",
        str(tiny_beir),
        "--split",
        "test",
        "--run",
        str(first_stage),
        "--model",
        str(out / "model"),
    ]
    assert cli(*argv, "--depth", "2", "--out", str(reranked), "--device", "cpu") == 0
    got = read_run(reranked)
    assert set(got["q1"]) == {"d1", "d2"} and set(got["q2"]) == {"d3", "d4"}
    from retrievers.io.dataset import load_dataset

    texts = {doc.id: doc.contents for doc in load_dataset(tiny_beir).docs()}
    expected = model.score(["cats purr", "cats purr"], [texts["d1"], texts["d2"]])
    assert got["q1"]["d1"] == pytest.approx(float(expected[0]), abs=1e-4)
    assert got["q1"]["d2"] == pytest.approx(float(expected[1]), abs=1e-4)


def test_interaction_config_errors(tiny_beir, tiny_bert, tmp_path):
    from ranker.training.build import build_relevance
    from ranker.training.config import build_config

    base = {"dataset": str(tiny_beir), "negatives": "n", "output_dir": str(tmp_path), "model": str(tiny_bert)}
    with pytest.raises(InputError, match="interaction"):
        build_config({**base, "model_type": "cross", "interaction": "mlb"})
    with pytest.raises(InputError, match="interaction"):
        build_config({**base, "model_type": "bi", "interaction": "tucker"})
    bad = build_config({**base, "model_type": "bi", "interaction": "mlb", "interaction_options": {"rank": 2}})
    with pytest.raises(InputError, match=r"interaction_options.*takes no option"):
        build_relevance(bad)
