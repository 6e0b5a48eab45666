"""`ranker pooling-search`: the search space, the balanced assignment, the supernet mixture's
training step, and the command end to end on a tiny BERT (ranking, Kendall tau, best config)."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch
import yaml

from ranker.encoders import Backbone
from ranker.search import Candidate, Mixture, balanced_assignment, build_space, kendall_tau
from ranker.search.mixture import Settings
from retrievers.errors import InputError


def test_space_is_the_product_of_kinds_layers_and_settings():
    space = build_space(
        {
            "pooling": ["mean", "ponet"],
            "layers": [[-1], [-2, -1]],
            "settings": {"ponet": {"segments": [2, 4]}},
        }
    )
    names = [c.name for c in space]
    assert names == [
        "mean[-1]",
        "mean[-2,-1]",
        "ponet[-1](segments=2)",
        "ponet[-1](segments=4)",
        "ponet[-2,-1](segments=2)",
        "ponet[-2,-1](segments=4)",
    ]
    assert space[3].train_keys() == {"pooling": "ponet", "pooling_options": {"layers": [-1], "segments": 4}}
    explicit = build_space(
        {"candidates": [{"pooling": "gem", "options": {"p_init": 2.0}}, {"pooling": "mean"}]}
    )
    assert explicit[0] == Candidate("gem", (-1,), {"p_init": 2.0})
    with pytest.raises(InputError, match="unknown pooling 'avg'"):
        build_space({"pooling": ["avg", "mean"]})
    with pytest.raises(InputError, match="at least 2"):
        build_space({"pooling": ["mean"]})


def test_balanced_assignment_has_uniform_marginal_and_keeps_preferences():
    weights = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.5]])
    raw = torch.softmax(weights * 10, 1)
    assert raw.mean(0)[0] > 0.8  # unbalanced: supernet 0 would take everything
    prob = balanced_assignment(weights, temperature=10, threshold=1e-6)
    torch.testing.assert_close(prob.sum(1), torch.ones(4))
    torch.testing.assert_close(prob.mean(0), torch.full((2,), 0.5), atol=2e-3, rtol=0)
    assert prob[0, 0] > prob[3, 0]  # the strongest preference for supernet 0 stays the strongest
    assert prob.argmax(1).tolist().count(0) == 2
    torch.testing.assert_close(balanced_assignment(torch.rand(3, 1), 5.0), torch.ones(3, 1))
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


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


def test_a_step_trains_only_the_sampled_supernet_and_pooler(tiny_bert, tiny_beir, tmp_path):
    from ranker.training.data import BatchMaker, load_texts, read_training_examples
    from retrievers.io.dataset import load_dataset

    write_negatives(tmp_path / "n.jsonl")
    examples, _ = read_training_examples(tmp_path / "n.jsonl")
    texts = load_texts(load_dataset(tiny_beir).docs(), {"d1", "d2", "d3", "d4"}, examples)
    batches = BatchMaker(examples, texts, 1, 2, 0, [0.0, 0.0, 0.0])
    space = [Candidate("gem"), Candidate("ponet", options={"segments": 2})]
    settings = Settings(lr=1e-2, weight_decay=0.0, scale=20.0, loss="infonce", max_grad_norm=1.0, seed=3)
    mixture = Mixture(Backbone.from_pretrained(tiny_bert), space, 2, settings, 16, True, torch.device("cpu"))
    before = [{k: v.clone() for k, v in net.state_dict().items()} for net in mixture.nets]
    a, m, loss, reward = mixture.step(batches.batch(0), batches.batch(1))
    assert math.isfinite(loss) and 0 < reward <= 1
    assert mixture.counts.sum() == 1 and mixture.counts[a, m] == 1
    assert mixture.weights[a, m] == pytest.approx(0.9 + 0.1 * reward)
    after = [net.state_dict() for net in mixture.nets]
    changed = {k for k in after[m] if not torch.equal(after[m][k], before[m][k])}
    assert any(k.startswith(f"poolers.{a}.") for k in changed)
    assert any(k.startswith("backbone.") for k in changed)
    assert not any(k.startswith(f"poolers.{1 - a}.") for k in changed)  # the other pooler untouched
    other = 1 - m
    assert all(torch.equal(after[other][k], before[other][k]) for k in after[other])


def test_pooling_search_end_to_end(tiny_bert, tiny_beir, tmp_path, capsys):
    from ranker.cli import pooling_search as cli_module
    from ranker.training.build import build_relevance
    from ranker.training.config import load_config

    write_negatives(tmp_path / "n.jsonl")
    out = tmp_path / "search"
    config = {
        "train": {
            "dataset": str(tiny_beir),
            "negatives": str(tmp_path / "n.jsonl"),
            "output_dir": str(out),
            "model": str(tiny_bert),
            "model_type": "bi",
            "loss": "infonce",
            "batch_size": 2,
            "n_negatives": 1,
            "lr": 1e-2,
            "max_length": 16,
            "device": "cpu",
        },
        "space": {"pooling": ["mean", "gem", "pyramid"]},
        "search": {
            "supernets": 2,
            "steps": 4,
            "dev_split": "test",
            "dev_fraction": 0.34,
            "standalone": True,
            "standalone_steps": 2,
        },
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(config))
    parser = argparse.ArgumentParser()
    cli_module.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["pooling-search", str(tmp_path / "s.yaml")])
    assert args.func(args) == 0
    printed = capsys.readouterr().out
    assert "Kendall tau against the stand-alone ranking: single:" in printed and "mixture:" in printed
    result = json.loads((out / "search.json").read_text())
    assert [c["name"] for c in result["candidates"]] == ["mean[-1]", "gem[-1]", "pyramid[-1]"]
    for kind in ("single", "mixture", "standalone"):
        assert len(result[kind]["scores"]) == 3 and all(0 <= s <= 1 for s in result[kind]["scores"])
    assert result["single"]["supernets"] == 1 and result["mixture"]["supernets"] == 2
    assert sum(map(sum, result["mixture"]["counts"])) == 4
    taus = [result[k]["kendall_tau"] for k in ("single", "mixture")]
    assert all(math.isnan(t) or -1 <= t <= 1 for t in taus)
    best = result["best"]["name"]
    assert result["mixture"]["scores"][[c["name"] for c in result["candidates"]].index(best)] == max(
        result["mixture"]["scores"]
    )
    assert (out / "search.md").read_text().count("\n| ") == 3 and (out / "search.png").stat().st_size > 0
    trained = load_config(out / "best.yaml")
    assert trained.pooling == result["best"]["pooling"] and trained.output_dir == str(out / "best")
    assert build_relevance(trained).query_encoder.pooler.mode == trained.pooling


def test_search_config_errors(tmp_path):
    from ranker.search.run import read_search_config

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"train": {"model_type": "cross"}, "space": {"pooling": ["mean", "max"]}}))
    with pytest.raises(InputError, match="model_type: bi"):
        read_search_config(path)
    base = {"dataset": "d", "negatives": "n", "output_dir": "o", "model": "m", "model_type": "bi"}
    path.write_text(
        yaml.safe_dump({"train": base, "space": {"pooling": ["mean", "max"]}, "search": {"k": 2}})
    )
    with pytest.raises(InputError, match="unknown search key 'k'"):
        read_search_config(path)
