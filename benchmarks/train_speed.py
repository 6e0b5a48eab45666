"""Training speed: (1) the cost of a CET step against a single-model step, (2) bi-encoder
training throughput against sentence-transformers' trainer with MultipleNegativesRankingLoss,
(3) the cost of the false-negative remedies (distillation, guide masking, debiased InfoNCE)
per bi-encoder step against plain InfoNCE.

Both sides use the same model, batch, texts, max length, precision and device, in one process.
The CET settings and the single-model baseline are built once and timed in alternating rounds
(median per step), and ours is timed before and after the sentence-transformers run, so that
a machine whose speed drifts during the run (shared CPUs do) hits every setting alike.

Usage:
  python benchmarks/train_speed.py --data ../shared/data/scifact --negatives NEG.jsonl \
      --model MINILM_DIR [--device cuda] [--steps 4] [--rounds 3] [--batch 32] [--max-length 128]
      [--parts cet,bi,remedies --teacher-scores SCORES.jsonl]
Needs: sentence-transformers and datasets (for the peer); (3) needs `ranker score` output for
the negatives file (--teacher-scores), and guides with --model itself.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time

import torch

from ranker.training.build import build_relevance, build_selection
from ranker.training.config import build_config
from ranker.training.data import BatchMaker, load_texts, read_training_examples
from ranker.training.distributed import Context
from ranker.training.pipeline import seed_everything
from ranker.training.selection import FeatureEncoder
from ranker.training.trainer import Trainer
from retrievers.io.dataset import load_dataset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_trainer(
    values: dict, batches: BatchMaker, retrievers: list[str], device, weight_pass: str = "eval"
) -> Trainer:
    """One of our Trainers, seeded, ready for ``_step``."""
    config = build_config({**values, "weight_pass": weight_pass})
    seed_everything(config.seed)
    return Trainer(
        config,
        Context(0, 1, device),
        batches,
        build_relevance(config),
        build_selection(config, retrievers),
    )


def interleaved_step_times(
    trainers: dict[str, Trainer], device, steps: int, warmup: int, rounds: int
) -> dict[str, float]:
    """Median seconds per optimizer step of each trainer, measured in alternating rounds
    (``steps`` timed steps per trainer per round, after ``warmup`` untimed ones), so that a
    machine getting slower or faster during the run hits every setting alike."""
    for trainer in trainers.values():
        for step in range(warmup):
            trainer._step(step)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    position = warmup
    for _ in range(rounds):
        for name, trainer in trainers.items():
            sync(device)
            began = time.perf_counter()
            for step in range(position, position + steps):
                trainer._step(step)
            sync(device)
            times[name].append((time.perf_counter() - began) / steps)
        position += steps
    return {name: statistics.median(t) for name, t in times.items()}


def st_steps_per_s(
    model_dir: str,
    batches: BatchMaker,
    batch: int,
    max_length: int,
    device,
    steps: int,
    warmup: int,
    bf16: bool,
) -> float:
    """Steps per second of SentenceTransformerTrainer + MultipleNegativesRankingLoss on the
    same (query, positive, negative) triples, timed between step ends after ``warmup``."""
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from transformers import TrainerCallback

    rows = {"anchor": [], "positive": [], "negative": []}
    for i in range(warmup + steps):
        b = batches.batch(i)
        rows["anchor"] += b.queries
        rows["positive"] += b.pos_texts
        rows["negative"] += [n[0] for n in b.neg_texts]
    model = SentenceTransformer(model_dir, device=str(device))
    model.max_seq_length = max_length
    stamps: list[float] = []

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            sync(device)
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as tmp:
        args = SentenceTransformerTrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=batch,
            max_steps=warmup + steps,
            learning_rate=2e-5,
            warmup_steps=0,
            bf16=bf16,
            logging_steps=10_000,
            save_strategy="no",
            report_to="none",
            dataloader_drop_last=True,
            seed=42,
            use_cpu=device.type == "cpu",
        )
        trainer = SentenceTransformerTrainer(
            model=model,
            args=args,
            train_dataset=Dataset.from_dict(rows),
            loss=MultipleNegativesRankingLoss(model),
            callbacks=[Clock()],
        )
        trainer.train()
    return steps / (stamps[-1] - stamps[warmup - 1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--negatives", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--cross-batch", type=int, default=8)
    parser.add_argument("--negs", type=int, default=3, help="negatives per query (cross-encoder)")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timing rounds")
    parser.add_argument("--skip-st", action="store_true")
    parser.add_argument("--parts", default="cet,bi", help="comma-separated: cet, bi, remedies")
    parser.add_argument("--teacher-scores", default="", help="`ranker score` output (for remedies)")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    examples, retrievers = read_training_examples(args.negatives)
    wanted = {d for e in examples for d in (*e.positives, *e.negatives)}
    texts = load_texts(load_dataset(args.data).docs(), wanted)
    missing = FeatureEncoder(retrievers).missing()
    base = {
        "dataset": args.data,
        "negatives": args.negatives,
        "output_dir": "unused",
        "model": args.model,
        "max_length": args.max_length,
        "lr": 2e-5,
        "warmup_steps": 0,
        "max_steps": 10_000,
        "device": args.device,
        "dump_weights": False,
    }
    print(f"device={device} steps={args.steps} max_length={args.max_length}")

    if "cet" in parts:
        cet_step_cost(args, base, examples, texts, missing, retrievers, device)
    if "bi" in parts:
        bi_throughput(args, base, examples, texts, missing, retrievers, device, bf16)
    if "remedies" in parts:
        remedy_step_cost(args, base, examples, texts, missing, retrievers, device)


def remedy_step_cost(args, base, examples, texts, missing, retrievers, device) -> None:
    """(3) Seconds per bi-encoder step of each false-negative remedy against plain InfoNCE, all
    built once and timed in alternating rounds (the quickstart recipe: 1 hard negative)."""
    if not args.teacher_scores:
        raise SystemExit("--parts remedies needs --teacher-scores (ranker score output)")
    bi = {**base, "model_type": "bi", "loss": "infonce", "n_negatives": 1, "batch_size": args.batch}
    distill = {"scores": args.teacher_scores, "teacher_temperature": 0.05}
    settings = {
        "plain InfoNCE": {},
        "+ margin_mse (teacher scores read from file)": {"distill": {**distill, "loss": "margin_mse"}},
        "+ kl (teacher scores read from file)": {"distill": {**distill, "loss": "kl"}},
        "+ guide masking (guide model = --model, per batch)": {"guide": {"model": args.model}},
        "+ guide masking (guide scores read from file)": {"guide": {"scores": args.teacher_scores}},
        "debiased InfoNCE (tau+ 0.1)": {"debias": {"tau_plus": 0.1}},
    }
    bb = BatchMaker(examples, texts, 1, args.batch, 42, missing)
    trainers = {
        label: make_trainer({**bi, **extra}, bb, retrievers, device) for label, extra in settings.items()
    }
    per_step = interleaved_step_times(trainers, device, args.steps, args.warmup, args.rounds)
    plain = per_step["plain InfoNCE"]
    for label, seconds in per_step.items():
        print(f"bi-encoder, {label}: {seconds * 1000:.1f} ms/step  ratio = {seconds / plain:.2f}x")


def cet_step_cost(args, base, examples, texts, missing, retrievers, device) -> None:
    """(1) CET step cost, cross-encoder R: every setting built once, timed in alternating rounds."""
    cross = {
        **base,
        "model_type": "cross",
        "loss": "pairwise",
        "n_negatives": args.negs,
        "batch_size": args.cross_batch,
    }
    cb = BatchMaker(examples, texts, args.negs, args.cross_batch, 42, missing)
    settings = {
        "single model": ("none", "eval"),
        "CET text S, eval-mode weight pass (the authors' way)": ("text", "eval"),
        "CET text S, shared weight pass": ("text", "shared"),
        "CET feature S, eval-mode weight pass": ("features", "eval"),
    }
    trainers = {
        label: make_trainer({**cross, "selection": sel}, cb, retrievers, device, wp)
        for label, (sel, wp) in settings.items()
    }
    per_step = interleaved_step_times(trainers, device, args.steps, args.warmup, args.rounds)
    single = per_step["single model"]
    for label, seconds in per_step.items():
        print(f"cross-encoder, {label}: {seconds * 1000:.1f} ms/step  ratio = {seconds / single:.2f}x")
    del trainers


def bi_throughput(args, base, examples, texts, missing, retrievers, device, bf16) -> None:
    """(2) Bi-encoder throughput vs sentence-transformers, ours timed before and after the peer."""
    bi = {**base, "model_type": "bi", "loss": "infonce", "n_negatives": 1, "batch_size": args.batch}
    bb = BatchMaker(examples, texts, 1, args.batch, 42, missing)
    ours_trainer = {"ours": make_trainer(bi, bb, retrievers, device)}
    ours_before = (
        args.batch / interleaved_step_times(ours_trainer, device, args.steps, args.warmup, 1)["ours"]
    )
    print(f"ours bi-encoder (InfoNCE, in-batch + 1 hard negative): {ours_before:.1f} samples/s")
    if not args.skip_st:
        peer = (
            st_steps_per_s(args.model, bb, args.batch, args.max_length, device, args.steps, args.warmup, bf16)
            * args.batch
        )
        print(f"sentence-transformers trainer (MNRL, same triples): {peer:.1f} samples/s")
        ours_after = args.batch / interleaved_step_times(ours_trainer, device, args.steps, 0, 1)["ours"]
        print(f"ours bi-encoder again, after the peer: {ours_after:.1f} samples/s")
        ours = (ours_before + ours_after) / 2
        print(f"ratio ours (mean of before/after) / sentence-transformers = {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
