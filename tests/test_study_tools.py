"""What the pooling study needs: a learning rate of its own for the poolers' parameters,
bf16 dense indexes, `ranker pooling-table` (ranked, tested, with costs) and
`ranker pooling-search --set`."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from ranker.evaluation.forest import markdown, read_rows
from ranker.models import BiEncoder
from ranker.models.cost import EncodingCost, parameter_split
from ranker.training.optim import make_optimizer
from retrievers.errors import InputError


def test_head_lr_gives_the_pooler_its_own_learning_rate(tiny_bert):
    model = BiEncoder.from_pretrained(tiny_bert, pooling="latent")
    pooler = {id(p) for p in model.query_encoder.pooler.parameters()}
    plain = make_optimizer(model, 1e-5, 0.01)
    assert [g["lr"] for g in plain.param_groups] == [1e-5, 1e-5]  # as before: decay / no decay
    split = make_optimizer(model, 1e-5, 0.01, head_lr=1e-3)
    for group in split.param_groups:
        ids = {id(p) for p in group["params"]}
        assert ids <= pooler if group["lr"] == 1e-3 else not ids & pooler
    assert {id(p) for g in split.param_groups if g["lr"] == 1e-3 for p in g["params"]} == pooler
    assert sum(len(g["params"]) for g in split.param_groups) == sum(
        p.requires_grad for p in model.parameters()
    )
    for group in split.param_groups:  # decay still skips biases and norms, in both kinds
        assert all((p.ndim < 2) == (group["weight_decay"] == 0.0) for p in group["params"])


def test_head_lr_reaches_training(tiny_bert, tiny_beir, tmp_path):
    from test_pooling_search import write_negatives

    from ranker.training.config import build_config
    from ranker.training.pipeline import train_from_config

    write_negatives(tmp_path / "n.jsonl")
    config = build_config(
        {
            "model_type": "bi",
            "model": str(tiny_bert),
            "pooling": "latent",
            "dataset": str(tiny_beir),
            "negatives": str(tmp_path / "n.jsonl"),
            "output_dir": str(tmp_path / "out"),
            "batch_size": 2,
            "n_negatives": 1,
            "max_steps": 2,
            "warmup_steps": 0,
            "lr": 1e-4,
            "head_lr": 1e-2,
            "save_every": 0,
            "dump_weights": False,
            "precision": "bf16",
            "device": "cpu",
        }
    )
    before = BiEncoder.from_pretrained(tiny_bert, pooling="latent")
    train_from_config(config)
    after = BiEncoder.load(tmp_path / "out" / "model")
    backbone_change = max(
        (a - b).abs().max().item()
        for (name, a), (_, b) in zip(
            after.query_encoder.backbone.named_parameters(),
            before.query_encoder.backbone.named_parameters(),
            strict=True,
        )
        if ".encoder.layer." in name
    )
    # the latents move by about head_lr per Adam step, the backbone by about lr
    latents_change = (
        (after.query_encoder.pooler.block.latents - before.query_encoder.pooler.block.latents)
        .abs()
        .max()
        .item()
    )
    assert latents_change > 5e-3 and backbone_change < 1e-3


def test_bf16_dense_index_is_recorded_and_close_to_fp32(tiny_bert, tiny_beir, tmp_path, cli):
    from retrievers.io.trec import read_run

    for dtype in ("float32", "bfloat16"):
        argv = ["index", tiny_beir, "--retriever", "dense", "--model", tiny_bert, "--dtype", dtype]
        assert cli(*argv, "--index", tmp_path / dtype)[0] == 0
        out = tmp_path / f"{dtype}.trec"
        assert cli("search", tiny_beir, "--index", tmp_path / dtype, "--out", out)[0] == 0
    meta = json.loads((tmp_path / "bfloat16" / "ranker-index.json").read_text())
    assert meta["encoder_options"] == {"dtype": "bfloat16", "path": "weights"}
    meta = json.loads((tmp_path / "float32" / "ranker-index.json").read_text())
    assert meta["encoder_options"] == {"dtype": "float32", "path": "float32"}
    fp32, bf16 = read_run(tmp_path / "float32.trec"), read_run(tmp_path / "bfloat16.trec")
    assert fp32.keys() == bf16.keys()
    for qid in fp32:
        assert fp32[qid].keys() == bf16[qid].keys()
        assert max(abs(fp32[qid][d] - bf16[qid][d]) for d in fp32[qid]) < 0.05
        assert fp32[qid] != bf16[qid]  # the bf16 index really encoded in bf16


def _compare_json(tmp_path, cli, tiny_beir):
    """A real `ranker compare --format json` over three runs, labelled like poolers."""
    runs = {
        "mean": {"q1": {"d1": 3, "d2": 2}, "q2": {"d3": 3, "d1": 1}, "q3": {"d4": 2, "d2": 1}},
        "cls": {"q1": {"d2": 3, "d1": 2}, "q2": {"d1": 3, "d3": 1}, "q3": {"d2": 2, "d4": 1}},
        "gem": {"q1": {"d1": 3, "d3": 2}, "q2": {"d3": 3, "d4": 1}, "q3": {"d4": 3, "d1": 1}},
    }
    args = []
    for name, run in runs.items():
        path = tmp_path / f"{name}.trec"
        path.write_text(
            "".join(
                f"{q} Q0 {d} {r} {s} t\n"
                for q, docs in run.items()
                for r, (d, s) in enumerate(sorted(docs.items(), key=lambda x: -x[1]), 1)
            )
        )
        args.append(f"{name}={path}")
    out = tmp_path / "cmp.json"
    rc, _, err = cli("compare", tiny_beir, "--baseline", args[0], *args[1:], "--format", "json", "--out", out)
    assert rc == 0, err
    return out


def test_pooling_table_ranks_tests_and_costs(tiny_bert, tiny_beir, tmp_path, cli):
    report = _compare_json(tmp_path, cli, tiny_beir)
    baseline, rows, _ = read_rows(report, "ndcg@10")
    assert baseline == "mean" and [r.score for r in rows] == sorted((r.score for r in rows), reverse=True)
    assert next(r for r in rows if r.run == "mean").delta is None
    for row in rows:
        if row.run != "mean":
            assert row.delta == pytest.approx(row.score - next(r.score for r in rows if r.run == "mean"))
    mean_model, latent_model = tmp_path / "m-mean", tmp_path / "m-latent"
    BiEncoder.from_pretrained(tiny_bert, pooling="mean").save(mean_model)
    BiEncoder.from_pretrained(tiny_bert, pooling="latent").save(latent_model)
    table, plot, js = tmp_path / "t.md", tmp_path / "f.png", tmp_path / "t.json"
    rc, _, err = cli(
        "pooling-table", report, "--model", f"mean={mean_model}", "--model", f"gem={latent_model}",
        "--dataset", tiny_beir, "--docs", "4", "--repeats", "2", "--out", table, "--plot", plot, "--json", js,
    )  # fmt: skip
    assert rc == 0, err
    text = table.read_text()
    lines = [line for line in text.splitlines() if line.startswith("| ") and "rank" not in line]
    assert [line.split(" | ")[1].strip("* ") for line in lines] == [r.run for r in rows]
    mean_line = next(line for line in lines if "**mean**" in line)
    assert "baseline" in mean_line and "| 0 (0.00%) | 1.00x" in mean_line
    costs = json.loads(js.read_text())["costs"]
    latent = BiEncoder.from_pretrained(tiny_bert, pooling="latent")
    assert (
        costs["gem"]["added_params"] == sum(p.numel() for p in latent.query_encoder.pooler.parameters()) > 0
    )
    assert (
        costs["mean"]["added_params"] == 0 and costs["mean"]["backbone_params"] == parameter_split(latent)[1]
    )
    assert "cls" not in costs and plot.stat().st_size > 0


def test_pooling_table_errors(tmp_path, cli, tiny_beir):
    report = _compare_json(tmp_path, cli, tiny_beir)
    rc, _, err = cli("pooling-table", report, "--model", "nope=x")
    assert rc != 0 and "'nope' names no run" in err
    rc, _, err = cli("pooling-table", report, "--model", "mean=x")
    assert rc != 0 and "--dataset" in err
    rc, _, err = cli("pooling-table", report, "--model", "meanx")
    assert rc != 0 and "LABEL=DIR" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    rc, _, err = cli("pooling-table", bad, "--out", tmp_path / "never.md")
    assert rc != 0 and "ranker compare" in err and not (tmp_path / "never.md").exists()


def test_markdown_cost_ratio_is_relative_to_the_baseline():
    from ranker.evaluation.forest import Row

    rows = [
        Row("a", 0.5, (0.4, 0.6), 0.1, (0.05, 0.15), 0.8, 0.01, True),
        Row("base", 0.4, (0.3, 0.5)),
    ]
    costs = {"a": EncodingCost(10, 1000, 0.003), "base": EncodingCost(0, 1000, 0.002)}
    text = markdown("base", rows, "ndcg@10", costs)
    assert "| 1 | a | 0.5000 [0.4000, 0.6000] | +0.1000 [+0.0500, +0.1500] * | +0.80 | 0.010 |" in text
    assert "10 (1.00%) | 1.50x (3.0 ms/doc)" in text and "| 2 | **base** |" in text


def test_pooling_search_set_overrides(tmp_path):
    from ranker.search.run import read_search_config
    from ranker.training.config import parse_overrides

    base = {"dataset": "d", "negatives": "n", "output_dir": "o", "model": "MODEL", "model_type": "bi"}
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump({"train": base, "space": {"pooling": ["mean", "max"]}, "search": {"steps": 5}})
    )
    train, _, search = read_search_config(
        path, parse_overrides(["train.model=/real/model", "search.steps=7", "train.head_lr=0.01"])
    )
    assert train.model == "/real/model" and search.steps == 7 and train.head_lr == 0.01
    assert train.dataset == "d"
    with pytest.raises(InputError, match=r"only train\.KEY=VALUE and search\.KEY=VALUE"):
        read_search_config(path, parse_overrides(["space.pooling=[mean]"]))
    with pytest.raises(InputError, match="unknown search key 'nope'"):
        read_search_config(path, parse_overrides(["search.nope=1"]))
    with pytest.raises(InputError, match=r"give train\.KEY=VALUE"):
        read_search_config(path, parse_overrides(["train=3"]))


def test_mixture_bf16_and_head_lr(tiny_bert):
    from ranker.encoders.backbone import Backbone
    from ranker.search.mixture import Mixture, Settings
    from ranker.search.space import build_space

    space = build_space({"pooling": ["mean", "latent"]}, "space")
    settings = Settings(lr=1e-5, weight_decay=0.0, scale=20.0, loss="infonce", max_grad_norm=1.0,
                        head_lr=1e-3, bf16=True)  # fmt: skip
    mixture = Mixture(Backbone.from_pretrained(tiny_bert), space, 1, settings, 16, True, torch.device("cpu"))
    assert sorted({g["lr"] for g in mixture.optimizers[0].param_groups}) == [1e-5, 1e-3]
    with mixture._autocast():
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16


def test_timing_rounds_rotate_which_model_goes_first(monkeypatch):
    import ranker.models
    from ranker.models.cost import encoding_costs, turn_order

    assert turn_order(["a", "b", "c"], 0) == ["a", "b", "c"]
    assert turn_order(["a", "b", "c"], 4) == ["b", "c", "a"]
    calls = []

    class Fake(torch.nn.Module):
        def __init__(self, label):
            super().__init__()
            self.label = label

        def set_autocast(self, dtype):
            pass

        def encode_corpus(self, texts, batch_size):
            calls.append(self.label)

    monkeypatch.setattr(ranker.models, "load_biencoder", Fake)
    encoding_costs({"a": "a", "b": "b", "c": "c"}, ["x"], repeats=3)
    assert calls == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]  # warm-up, 3 rounds
