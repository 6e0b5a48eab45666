"""Build and run a Trainer on the toy data with the tiny stand-in models (tests and subprocesses).

Usage as a script: ``python tests/training_run.py DATA_DIR OUT_DIR MODEL_TYPE SELECTION
[--resume] [--die-at STEP]``; prints nothing, leaves the trained model in OUT_DIR. With
``--die-at STEP`` the process SIGKILLs itself at the start of 0-based step STEP: a kill -9 at
a known point, whatever the machine's speed.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training_fakes import TinyBi, TinyCross

from ranker.training.config import build_config
from ranker.training.distributed import setup, teardown
from ranker.training.pipeline import make_batches, seed_everything
from ranker.training.selection import FeatureSelector
from ranker.training.trainer import Trainer
from retrievers.io.dataset import load_dataset


def make_trainer(
    data: Path,
    out: Path,
    model_type: str = "cross",
    selection: str = "none",
    weight_pass: str = "eval",
    dropout: float = 0.1,
    **overrides,
) -> Trainer:
    values = {
        "dataset": str(data),
        "negatives": str(data / "negatives.jsonl"),
        "output_dir": str(out),
        "model": "tiny",
        "model_type": model_type,
        "loss": "infonce" if model_type == "bi" else "listwise",
        "selection": selection,
        "batch_size": 4,
        "n_negatives": 2,
        "max_steps": 20,
        "warmup_steps": 2,
        "lr": 0.05,
        "selection_lr": 0.05,
        "log_every": 1,
        "save_every": 5,
        "seed": 7,
        "device": "cpu",
        "temperature": 1.0,
        "weight_pass": weight_pass,
        # the raw CET weights reach the losses, so tests can check them against the formula
        "normalize_weights": "none",
        **overrides,
    }
    config = build_config(values)
    ctx = setup("cpu")
    seed_everything(config.seed)
    batches, retrievers = make_batches(config, load_dataset(config.dataset))
    model = TinyBi(dropout=dropout) if model_type == "bi" else TinyCross(dropout=dropout)
    sel = {
        "none": None,
        "features": FeatureSelector(retrievers),
        "text": TinyCross(dropout=dropout),
    }[selection]
    trainer = Trainer(config, ctx, batches, model, sel)
    trainer.ctx_for_teardown = ctx
    return trainer


def main(argv: list[str]) -> None:
    data, out, model_type, selection = Path(argv[0]), Path(argv[1]), argv[2], argv[3]
    trainer = make_trainer(data, out, model_type, selection)
    if "--die-at" in argv:
        die_at, original = int(argv[argv.index("--die-at") + 1]), trainer._step

        def step_or_die(step):
            if step == die_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return original(step)

        trainer._step = step_or_die
    torch.set_num_threads(1)
    trainer.train(resume="--resume" in argv)
    teardown(trainer.ctx_for_teardown)


if __name__ == "__main__":
    main(sys.argv[1:])
