"""`ranker train` / `ranker rerank` end to end on a tiny random BERT, and config handling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from ranker.cli import rerank as rerank_cli
from ranker.cli import train as train_cli
from ranker.training.config import TrainConfig, build_config, load_config
from retrievers.errors import InputError
from retrievers.io.trec import read_run, write_run


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(required=True)
    train_cli.register(sub)
    rerank_cli.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def write_config(path: Path, **values) -> Path:
    path.write_text(yaml.safe_dump(values))
    return path


def test_unknown_key_is_named(tmp_path):
    config = write_config(
        tmp_path / "c.yaml",
        dataset="d",
        negatives="n",
        output_dir="o",
        model="m",
        learning_rate=1e-5,
    )
    with pytest.raises(InputError, match="unknown config key 'learning_rate'") as err:
        load_config(config)
    assert str(config) in str(err.value)
    with pytest.raises(InputError, match="unknown config key 'bogus'"):
        load_config(config, ["bogus=1"])


def test_overrides_types_and_required_keys(tmp_path):
    config = write_config(tmp_path / "c.yaml", dataset="d", negatives="n", output_dir="o", model="m", lr=1e-5)
    loaded = load_config(config, ["lr=3e-6", "loss=pairwise", "normalize_weights=true"])
    assert loaded.lr == 3e-6 and loaded.loss == "pairwise" and loaded.normalize_weights is True
    with pytest.raises(InputError, match=r"'batch_size'.*expected int"):
        load_config(config, ["batch_size=big"])
    with pytest.raises(InputError, match="'loss'"):
        load_config(config, ["loss=hinge"])
    with pytest.raises(InputError, match="'model' is required"):
        load_config(config, ["model="])
    with pytest.raises(InputError, match="cross-encoder"):
        build_config({"model_type": "cross", "loss": "infonce"})
    assert isinstance(loaded, TrainConfig)
    with pytest.raises(AttributeError):
        loaded.lr = 1.0  # frozen


@pytest.fixture()
def toy_negatives(tiny_beir: Path) -> Path:
    path = tiny_beir / "negatives.jsonl"
    lines = [
        ("q1", "cats purr", ["d1"], ["d2", "d3", "d4"]),
        ("q2", "swimming fish", ["d3"], ["d1", "d2", "d4"]),
        ("q3", "singing birds", ["d4"], ["d2", "d1", "d3"]),
    ]
    with path.open("w") as out:
        for qid, query, pos, negs in lines:
            out.write(
                json.dumps(
                    {
                        "qid": qid,
                        "query": query,
                        "positives": pos,
                        "negatives": [
                            {"docid": d, "rank": r + 1, "score": 5.0 - r, "retriever": "bm25"}
                            for r, d in enumerate(negs)
                        ],
                    }
                )
                + "\n"
            )
    return path


def test_train_cross_with_text_cet_then_rerank(tiny_beir, tiny_bert, toy_negatives, tmp_path):
    out = tmp_path / "cross"
    config = write_config(
        tmp_path / "c.yaml",
        dataset=str(tiny_beir),
        negatives=str(toy_negatives),
        output_dir=str(out),
        model=str(tiny_bert),
        model_type="cross",
        loss="pairwise",
        selection="text",
        n_negatives=2,
        batch_size=2,
        max_steps=3,
        warmup_steps=1,
        log_every=1,
        max_length=32,
    )
    assert cli("train", str(config), "--set", "max_weight=4") == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["max_weight"] == 4.0 and saved["selection"] == "text"
    assert json.loads((out / "checkpoints" / "step-3" / "config.json").read_text())["max_weight"] == 4
    run = tmp_path / "bm25.trec"
    write_run(run, {"q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0}, "q2": {"d3": 1.0, "d4": 0.5}})
    assert (
        cli(
            "rerank",
            str(tiny_beir),
            "--split",
            "test",
            "--run",
            str(run),
            "--model",
            str(out / "model"),
            "--depth",
            "2",
            "--out",
            str(tmp_path / "re.trec"),
            "--device",
            "cpu",
        )
        == 0
    )
    reranked = read_run(tmp_path / "re.trec")
    assert {q: len(d) for q, d in reranked.items()} == {"q1": 2, "q2": 2}
    assert set(reranked["q1"]) == {"d1", "d2"}  # only the top 2 of the input are reranked


def test_train_bi_with_feature_cet_and_periodic_eval(tiny_beir, tiny_bert, toy_negatives, tmp_path):
    out = tmp_path / "bi"
    assert (
        cli(
            "train",
            "--set",
            f"dataset={tiny_beir}",
            "--set",
            f"negatives={toy_negatives}",
            "--set",
            f"output_dir={out}",
            "--set",
            f"model={tiny_bert}",
            "--set",
            "model_type=bi",
            "--set",
            "loss=infonce",
            "--set",
            "selection=features",
            "--set",
            "batch_size=2",
            "--set",
            "max_steps=4",
            "--set",
            "n_negatives=1",
            "--set",
            "eval_split=test",
            "--set",
            "eval_every=2",
            "--set",
            "warmup_steps=0",
            "--set",
            "max_length=32",
        )
        == 0
    )
    evals = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    assert [e["step"] for e in evals] == [2, 4] and "ndcg@10" in evals[0]
    best = json.loads((out / "summary.json").read_text())["best"]
    assert best["value"] == max(e["ndcg@10"] for e in evals)
    assert (out / "best" / "ranker_config.json").exists()
    assert (out / "selection" / "selector.safetensors").exists()


def test_bad_negatives_file_names_the_line(tiny_beir, tiny_bert, tmp_path):
    bad = tmp_path / "neg.jsonl"
    bad.write_text(
        '{"qid": "q1", "query": "x", "positives": ["d1"], "negatives": []}\n'
        '{"qid": "q2", "query": "y", "positives": ["d3"], "negatives": [{"docid": 5}]}\n'
    )
    with pytest.raises(InputError) as err:
        cli(
            "train",
            "--set",
            f"dataset={tiny_beir}",
            "--set",
            f"negatives={bad}",
            "--set",
            f"output_dir={tmp_path / 'o'}",
            "--set",
            f"model={tiny_bert}",
        )
    assert "neg.jsonl" in str(err.value) and ":2" in str(err.value)
    assert not (tmp_path / "o").exists()
