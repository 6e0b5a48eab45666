"""`ranker train` / `ranker rerank` end to end on a tiny random BERT, and config handling."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
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
    good = write_config(tmp_path / "good.yaml", dataset="d", negatives="n", output_dir="o", model="m")
    with pytest.raises(InputError, match="unknown config key 'bogus'"):
        load_config(good, ["bogus=1"])


def test_overrides_types_and_required_keys(tmp_path):
    config = write_config(tmp_path / "c.yaml", dataset="d", negatives="n", output_dir="o", model="m", lr=1e-5)
    loaded = load_config(config, ["lr=3e-6", "loss=pairwise", "normalize_weights=true"])
    assert loaded.lr == 3e-6 and loaded.loss == "pairwise" and loaded.normalize_weights is True
    with pytest.raises(InputError, match=r"'batch_size'.*expected a valid integer"):
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


REQUIRED = "dataset: d\nnegatives: n\noutput_dir: o\nmodel: m\n"


@pytest.mark.parametrize(
    ("text", "key", "line"),
    [
        ("lr: -1\n", "lr", 5),
        ("lr: .nan\n", "lr", 5),
        ("lr: .inf\n", "lr", 5),
        ("lr: 0\n", "lr", 5),
        ("warmup_steps: -3\n", "warmup_steps", 5),
        ("keep_checkpoints: -1\n", "keep_checkpoints", 5),
        ("save_every: -1\n", "save_every", 5),
        ("batch_size: 0\n", "batch_size", 5),
        ("batch_size: true\n", "batch_size", 5),
        ("max_steps: 2.5\n", "max_steps", 5),
        ("temperature: 0\n", "temperature", 5),
        ("max_weight: -1\n", "max_weight", 5),
        ("weight_decay: .nan\n", "weight_decay", 5),
        ("n_negatives: 0\n", "n_negatives", 5),
        ("precision: fp8\n", "precision", 5),
        ("loss: hinge\n", "loss", 5),
        ("lora: {rank: 0}\n", "lora.rank", 5),
        ("lora: {rank: 4, dropout: 1.5}\n", "lora.dropout", 5),
        ("lora: {rnk: 4}\n", "lora.rnk", 5),
        ("lora: 4\n", "lora", 5),
        ("seed: -1\n", "seed", 5),
    ],
)
def test_invalid_values_fail_at_load_naming_key_file_and_line(tmp_path, text, key, line):
    path = tmp_path / "c.yaml"
    path.write_text(REQUIRED + text)
    with pytest.raises(InputError) as err:
        load_config(path)
    assert f"'{key}'" in err.value.message and err.value.path == str(path) and err.value.line == line
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "expected", "line"),
    [
        (b"lr: [1\n", "not valid YAML", 2),
        (b"a: !!python/object:os.system {}\n", "python/object", 1),
        (b"\xff\xfe: 1\n", "not valid UTF-8", None),
        (b"- a\n- b\n", "mapping of config keys", 1),
        (b"lr: 1\nlr: 2\n", "appears twice", 2),
    ],
)
def test_unreadable_config_files(tmp_path, content, expected, line):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    with pytest.raises(InputError, match=expected) as err:
        load_config(path)
    assert err.value.path == str(path) and err.value.line == line and "\n" not in str(err.value)
    with pytest.raises(InputError, match="directory"):
        load_config(tmp_path)


def test_set_with_nested_keys_and_saved_config_round_trips(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(REQUIRED + "lora: {alpha: 16}\n")
    config = load_config(path, ["lora.rank=4", "lora.target_modules=[query, value]", "lr=2e-5"])
    assert config.lora is not None and config.lora.rank == 4 and config.lora.alpha == 16
    assert config.lora.peft_kwargs()["target_modules"] == ["query", "value"] and config.lr == 2e-5
    saved = tmp_path / "saved.yaml"
    saved.write_text(yaml.safe_dump(config.to_dict()))
    assert load_config(saved) == config
    assert load_config(path, ["lora=null"]).lora is None
    with pytest.raises(InputError, match=r"'lr'.*from --set"):
        load_config(path, ["lr=-1"])


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


def test_train_cross_with_lora_saves_config_and_a_model_that_reloads(
    tiny_beir, tiny_bert, toy_negatives, tmp_path
):
    pytest.importorskip("peft")
    from safetensors.torch import load_file

    from ranker.models import CrossEncoder

    out = tmp_path / "lora"
    config = write_config(
        tmp_path / "c.yaml",
        dataset=str(tiny_beir),
        negatives=str(toy_negatives),
        output_dir=str(out),
        model=str(tiny_bert),
        n_negatives=2,
        batch_size=2,
        max_steps=3,
        warmup_steps=0,
        lr=0.05,
        max_length=32,
    )
    assert cli("train", str(config), "--set", "lora.rank=4", "--set", "lora.target_modules=[query]") == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lora"] == {"rank": 4, "alpha": None, "dropout": 0.0, "target_modules": ["query"]}
    assert load_config(out / "config.yaml").lora.rank == 4
    model = CrossEncoder.load(out / "model")  # a plain folder: the adapter is merged in
    assert not any("lora" in name for name, _ in model.named_parameters())
    before = load_file(str(tiny_bert / "model.safetensors"))
    saved_state = load_file(str(out / "model" / "model.safetensors"))  # BertForSequenceClassification
    after = {k.removeprefix("bert."): v for k, v in saved_state.items()}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("query" in k for k in changed)  # only the adapted layers moved


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
