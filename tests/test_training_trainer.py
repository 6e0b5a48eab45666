"""The training loop on toy data with tiny models: it learns, CET logs and dumps weights,
checkpoints resume bit-identically after a kill, bad setups are refused."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from training_fakes import write_toy_data
from training_run import make_trainer

from ranker.training.logfiles import COLUMNS, STEP_STATS, zero_stats

HERE = Path(__file__).resolve().parent


@pytest.fixture()
def toy(tmp_path):
    data, _ = write_toy_data(tmp_path / "toy")
    return data


def _rows(out: Path) -> list[dict]:
    with (out / "metrics.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("model_type", ["cross", "bi"])
def test_short_run_lowers_the_loss(toy, tmp_path, model_type):
    trainer = make_trainer(toy, tmp_path / "out", model_type, max_steps=30)
    result = trainer.train()
    rows = _rows(tmp_path / "out")
    first = sum(float(r["loss"]) for r in rows[:5]) / 5
    last = sum(float(r["loss"]) for r in rows[-5:]) / 5
    assert last < 0.7 * first, (first, last)
    assert result.steps == 30 and len(rows) == 30
    assert (tmp_path / "out" / "model" / "model.safetensors").exists()
    assert (tmp_path / "out" / "config.yaml").exists()


@pytest.mark.parametrize("selection", ["none", "features"])
def test_outputs_are_named_stats_written_atomically(toy, tmp_path, selection):
    out = tmp_path / "out"
    trainer = make_trainer(toy, out, "cross", selection, max_steps=3, save_every=0)
    assert (trainer.cet is None) == (selection == "none")
    trainer.train()
    with (out / "metrics.csv").open() as handle:
        assert (
            next(csv.reader(handle)) == COLUMNS == ["step", "lr", *STEP_STATS, "samples_per_s", "elapsed_s"]
        )
    row = {k: float(v) for k, v in _rows(out)[-1].items()}
    if selection == "none":
        assert row["selection_loss"] == row["w_mean"] == row["w_max"] == 0.0
    else:
        assert row["selection_loss"] > 0 and 1.0 <= row["w_min"] <= row["w_mean"] <= row["w_max"]
    assert row["loss"] > 0 and row["loss_unweighted"] > 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["last"]["step"] == 3
    assert yaml.safe_load((out / "config.yaml").read_text())["max_steps"] == 3
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")], "a temporary file was left"


@pytest.mark.parametrize("selection", ["features", "text"])
def test_cet_run_logs_and_dumps_weights(toy, tmp_path, selection):
    out = tmp_path / "out"
    make_trainer(toy, out, "cross", selection, max_steps=6, max_weight=3.0).train()
    rows = _rows(out)
    assert all(1.0 <= float(r["w_min"]) <= float(r["w_mean"]) <= float(r["w_max"]) <= 3.0 for r in rows)
    dumped = [json.loads(line) for line in (out / "weights.jsonl").read_text().splitlines()]
    assert len(dumped) == 6 * 4 * 2  # steps x queries x negatives
    assert {"qid", "docid", "weight", "weight_s", "step"} <= set(dumped[0])
    assert {d["step"] for d in dumped} == set(range(1, 7))
    assert (out / "selection").is_dir()


def test_cet_weights_come_from_the_other_model(toy, tmp_path, monkeypatch):
    """w_R is computed from S's eval-mode scores of the negatives, w_S from R's."""
    trainer = make_trainer(toy, tmp_path / "out", "cross", "text", max_steps=1, dump_weights=False)
    seen = {}
    original = trainer.loss.__class__.__call__

    def spy(self, scores, weights=None):
        seen.setdefault(id(self), []).append(weights)
        return original(self, scores, weights)

    monkeypatch.setattr(trainer.loss.__class__, "__call__", spy)
    batch = trainer.batches.batch(0)
    cet = trainer.cet
    assert cet is not None
    with torch.no_grad():
        cet.model.eval()
        trainer.relevance.eval()
        s_neg = cet.scorer(batch).negatives()
        r_neg = trainer.r_scorer(batch).negatives()
    cet.model.train()
    trainer.relevance.train()
    stats = zero_stats()  # what Trainer._step hands each micro-step
    trainer._micro_step(batch, 1, stats)
    w_r = seen[id(trainer.loss)][0]
    w_s = seen[id(cet.loss)][0]
    assert torch.allclose(w_r, 1 / (1 - torch.sigmoid(s_neg / 1.0)), rtol=1e-5)
    assert torch.allclose(w_s, 1 / (1 - torch.sigmoid(r_neg / 1.0)), rtol=1e-5)


def test_refuses_to_overwrite_a_run(toy, tmp_path):
    make_trainer(toy, tmp_path / "out", max_steps=2).train()
    with pytest.raises(FileExistsError, match="--resume"):
        make_trainer(toy, tmp_path / "out", max_steps=2).train()


def _script(*args: str) -> list[str]:
    return [sys.executable, str(HERE / "training_run.py"), *args]


def test_resume_after_kill_is_bit_identical(toy, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "OMP_NUM_THREADS": "1"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_script(str(toy), str(full), "cross", "features"), check=True, env=env)
    # SIGKILLed by itself in step 13: after the step-10 checkpoint and 12 logged rows
    died = subprocess.run(_script(str(toy), str(killed), "cross", "features", "--die-at", "12"), env=env)
    assert died.returncode == -signal.SIGKILL
    assert not (killed / "model").exists()
    assert json.loads((killed / "checkpoints" / "latest.json").read_text())["step"] == 10
    assert len(_rows(killed)) == 12  # rows after the checkpoint, dropped on resume
    subprocess.run(_script(str(toy), str(killed), "cross", "features", "--resume"), check=True, env=env)
    for name in ("relevance", "selection"):
        a = load_file(str(full / "checkpoints" / "step-20" / f"{name}.safetensors"))
        b = load_file(str(killed / "checkpoints" / "step-20" / f"{name}.safetensors"))
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    rows = _rows(killed)
    assert [int(r["step"]) for r in rows] == list(range(1, 21))
    assert [r["loss"] for r in rows] == [r["loss"] for r in _rows(full)]
    steps = [json.loads(line)["step"] for line in (killed / "weights.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and len(steps) == 20 * 4 * 2


@pytest.mark.parametrize("dropout, expected", [(0.0, "shared"), (0.1, "eval")])
def test_auto_weight_pass_shares_only_without_dropout(toy, tmp_path, dropout, expected):
    trainer = make_trainer(toy, tmp_path / "out", "cross", "text", weight_pass="auto", dropout=dropout)
    assert trainer.weight_pass == expected


@pytest.mark.parametrize("model_type, selection", [("cross", "text"), ("bi", "features")])
def test_without_dropout_shared_and_eval_passes_give_the_same_weights(toy, tmp_path, model_type, selection):
    """The shared pass is only an optimisation when no dropout is active: the same weights as
    the authors' separate eval-mode pass (to rounding; later steps then differ only by how
    Adam amplifies rounding, so the first step is compared)."""
    dumps = {}
    for mode in ("eval", "shared"):
        out = tmp_path / mode
        make_trainer(
            toy,
            out,
            model_type,
            selection,
            weight_pass=mode,
            dropout=0.0,
            max_steps=1,
            temperature=10.0,
        ).train()
        lines = (out / "weights.jsonl").read_text().splitlines()
        dumps[mode] = [w for d in map(json.loads, lines) for w in (d["weight"], d["weight_s"])]
    assert len(dumps["eval"]) == len(dumps["shared"]) > 0
    assert dumps["eval"] == pytest.approx(dumps["shared"], rel=1e-5)
    # with dropout the two passes differ, so the switch is not a no-op
    noisy = {}
    for mode in ("eval", "shared"):
        out = tmp_path / f"{mode}-dropout"
        make_trainer(
            toy,
            out,
            model_type,
            "text" if model_type == "cross" else selection,
            weight_pass=mode,
            dropout=0.5,
            max_steps=1,
            temperature=10.0,
        ).train()
        lines = (out / "weights.jsonl").read_text().splitlines()
        noisy[mode] = [w for d in map(json.loads, lines) for w in (d["weight"], d["weight_s"])]
    assert noisy["eval"] != pytest.approx(noisy["shared"], rel=1e-3)


@pytest.mark.parametrize("model_type", ["cross", "bi"])
def test_negatives_only_scoring_matches_the_full_scores(toy, tmp_path, model_type):
    trainer = make_trainer(toy, tmp_path / "out", model_type, "features")
    batch = trainer.batches.batch(0)
    trainer.relevance.eval()
    with torch.no_grad():
        full = trainer.r_scorer(batch).negatives()
        only = trainer.r_scorer.negatives(batch)
        features_full = trainer.cet.scorer(batch).negatives()
        features_only = trainer.cet.scorer.negatives(batch)
    torch.testing.assert_close(only, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(features_only, features_full)


def test_selection_warmup_trains_s_alone_then_r_reads_the_usual_batches(toy, tmp_path):
    """Issue 26, fix (iii): S steps alone first (R untouched), then R runs its max_steps on
    the micro-batches a run without warm-up reads."""
    out = tmp_path / "out"
    trainer = make_trainer(
        toy, out, "cross", "features", max_steps=3, selection_warmup=2, save_every=0, dump_weights=False
    )
    assert trainer.cet is not None
    read: list[int] = []
    original = trainer.batches.batch

    def spy(index, part=0, parts=1):
        read.append(index)
        return original(index, part, parts)

    trainer.batches.batch = spy  # type: ignore[method-assign]
    r_start = {k: v.clone() for k, v in trainer.relevance.state_dict().items()}
    s_start = {k: v.clone() for k, v in trainer.cet.model.state_dict().items()}
    for step in range(2):
        trainer._step(step)
    assert all(torch.equal(v, trainer.relevance.state_dict()[k]) for k, v in r_start.items())
    assert not all(torch.equal(v, trainer.cet.model.state_dict()[k]) for k, v in s_start.items())
    trainer._step(2)
    assert not all(torch.equal(v, trainer.relevance.state_dict()[k]) for k, v in r_start.items())
    assert read == [0, 1, 0]

    result = make_trainer(
        toy, tmp_path / "full", "cross", "features", max_steps=3, selection_warmup=2
    ).train()
    assert result.steps == 5 and len(_rows(tmp_path / "full")) == 5
    rows = _rows(tmp_path / "full")
    assert all(float(r["loss"]) == 0.0 < float(r["selection_loss"]) for r in rows[:2])
    assert all(float(r["loss"]) > 0 for r in rows[2:])
    dumped = [json.loads(line) for line in (tmp_path / "full" / "weights.jsonl").read_text().splitlines()]
    assert {d["step"] for d in dumped} == {3, 4, 5}  # weights of R's steps only


def test_selection_warmup_needs_cet(toy, tmp_path):
    from retrievers.errors import InputError

    with pytest.raises(InputError, match="selection_warmup"):
        make_trainer(toy, tmp_path / "out", "cross", "none", selection_warmup=2)
