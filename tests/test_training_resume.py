"""`ranker train --resume` after a kill -9: a changed config is refused with the changed keys
named (old -> new); a change to a safe key is allowed; nothing to resume starts over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ranker.cli import main
from ranker.training.config import load_config
from ranker.training.resume import SAFE_KEYS

REPO = Path(__file__).resolve().parents[1]

# `ranker train` in a child that SIGKILLs itself at the start of 0-based step DIE_AT.
DIE = """
import os, signal, sys
from ranker.training import trainer
original = trainer.Trainer._step
def step_or_die(self, step):
    if step == int(os.environ["DIE_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return original(self, step)
trainer.Trainer._step = step_or_die
from ranker.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _config(tiny_beir: Path, tiny_bert: Path, tmp_path: Path) -> Path:
    negatives = tiny_beir / "negatives.jsonl"
    negatives.write_text(
        "".join(
            json.dumps(
                {
                    "qid": q,
                    "query": text,
                    "positives": [pos],
                    "negatives": [
                        {"docid": d, "rank": r + 1, "score": 1.0 - r / 10, "retriever": "bm25"}
                        for r, d in enumerate(x for x in ("d1", "d2", "d3", "d4") if x != pos)
                    ],
                }
            )
            + "\n"
            for q, text, pos in [("q1", "cats purr", "d1"), ("q2", "swimming fish", "d3")]
        )
    )
    out = tmp_path / "out"
    config = tmp_path / "train.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "dataset": str(tiny_beir),
                "negatives": str(negatives),
                "output_dir": str(out),
                "model": str(tiny_bert),
                "n_negatives": 2,
                "batch_size": 2,
                "max_steps": 5,
                "save_every": 2,
                "warmup_steps": 0,
                "lr": 0.05,
                "max_length": 32,
                "device": "cpu",
            }
        )
    )
    return config


@pytest.fixture()
def killed_run(tiny_beir, tiny_bert, tmp_path) -> tuple[Path, Path]:
    """A config and its output folder, killed -9 in step 4 after the step-2 checkpoint."""
    config, out = _config(tiny_beir, tiny_bert, tmp_path), tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIE_AT": "3", "OMP_NUM_THREADS": "1"}
    died = subprocess.run([sys.executable, "-c", DIE, "-q", "train", str(config)], env=env)
    assert died.returncode == -signal.SIGKILL
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 2
    assert not (out / "model").exists()
    return config, out


def _state(out: Path) -> dict[str, float]:
    return {str(p.relative_to(out)): p.stat().st_mtime for p in out.rglob("*")}


def test_resume_after_kill_refuses_a_changed_config_and_accepts_a_safe_change(killed_run, capsys):
    config, out = killed_run
    before = _state(out)
    capsys.readouterr()
    assert main(["-q", "train", str(config), "--resume", "--set", "lr=0.01", "--set", "seed=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert str(out / "config.yaml") in err[0]
    assert "lr 0.05 -> 0.01" in err[0] and "seed 42 -> 3" in err[0]
    assert _state(out) == before  # nothing written, nothing removed
    assert "keep_checkpoints" in SAFE_KEYS
    assert main(["-q", "train", str(config), "--resume", "--set", "keep_checkpoints=5"]) == 0
    assert (out / "model" / "ranker_config.json").is_file()
    assert yaml.safe_load((out / "config.yaml").read_text())["keep_checkpoints"] == 5
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 5


def test_resume_without_a_checkpoint_starts_over_with_the_new_config(tiny_beir, tiny_bert, tmp_path):
    config = _config(tiny_beir, tiny_bert, tmp_path)
    out = tmp_path / "out"
    out.mkdir()  # what a run killed before its first checkpoint leaves: its config.yaml
    (out / "config.yaml").write_text(yaml.safe_dump(load_config(config).to_dict()))
    assert main(["-q", "train", str(config), "--resume", "--set", "lr=0.01", "--set", "max_steps=2"]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["lr"] == 0.01 and saved["max_steps"] == 2
    assert json.loads((out / "checkpoints" / "latest.json").read_text())["step"] == 2
