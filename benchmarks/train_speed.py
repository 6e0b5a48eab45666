"""Training speed: (1) the cost of a CET step against a single-model step, (2) bi-encoder
training throughput against sentence-transformers' trainer with MultipleNegativesRankingLoss.

Both sides use the same model, batch, texts, max length, precision and device, in one process.
Prints one line per measurement and the ratios. One run (no repetitions): on shared CPUs the
numbers move by ~10%.

Usage:
  python benchmarks/train_speed.py --data ../shared/data/scifact --negatives NEG.jsonl \
      --model MINILM_DIR [--device cuda] [--steps 20] [--batch 32] [--max-length 128]
Needs: sentence-transformers and datasets (for the peer).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time

import torch

from ranker.training.build import build_relevance, build_selection
from ranker.training.config import build_config
from ranker.training.data import BatchMaker, load_texts, read_negatives
from ranker.training.distributed import Context
from ranker.training.pipeline import seed_everything
from ranker.training.selection import FeatureEncoder
from ranker.training.trainer import Trainer
from retrievers.io.dataset import load_dataset


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def our_steps_per_s(
    values: dict,
    batches: BatchMaker,
    retrievers: list[str],
    device,
    steps: int,
    warmup: int,
    weight_pass: str = "eval",
) -> float:
    """Optimizer steps per second of our Trainer (after ``warmup`` untimed steps)."""
    config = build_config(values)
    seed_everything(config.seed)
    trainer = Trainer(
        config,
        Context(0, 1, device),
        batches,
        build_relevance(config),
        build_selection(config, retrievers),
        weight_pass=weight_pass,
    )
    for step in range(warmup):
        trainer._step(step)
    sync(device)
    began = time.perf_counter()
    for step in range(warmup, warmup + steps):
        trainer._step(step)
    sync(device)
    return steps / (time.perf_counter() - began)


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
    parser.add_argument("--skip-st", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    examples, retrievers = read_negatives(args.negatives)
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

    # (1) CET step cost, cross-encoder R
    cross = {
        **base,
        "model_type": "cross",
        "loss": "pairwise",
        "n_negatives": args.negs,
        "batch_size": args.cross_batch,
    }
    cb = BatchMaker(examples, texts, args.negs, args.cross_batch, 42, missing)
    single = our_steps_per_s(cross, cb, retrievers, device, args.steps, args.warmup)
    print(f"cross-encoder single-model step: {1 / single * 1000:.1f} ms")
    for label, extra, wp in (
        ("CET text S, eval-mode weight pass", "text", "eval"),
        ("CET text S, shared weight pass", "text", "shared"),
        ("CET feature S, eval-mode weight pass", "features", "eval"),
    ):
        rate = our_steps_per_s(
            {**cross, "selection": extra}, cb, retrievers, device, args.steps, args.warmup, wp
        )
        print(f"{label}: {1 / rate * 1000:.1f} ms  ratio to single = {single / rate:.2f}x")

    # (2) bi-encoder throughput vs sentence-transformers
    bi = {**base, "model_type": "bi", "loss": "infonce", "n_negatives": 1, "batch_size": args.batch}
    bb = BatchMaker(examples, texts, 1, args.batch, 42, missing)
    ours = our_steps_per_s(bi, bb, retrievers, device, args.steps, args.warmup) * args.batch
    print(f"ours bi-encoder (InfoNCE, in-batch + 1 hard negative): {ours:.1f} samples/s")
    if not args.skip_st:
        peer = (
            st_steps_per_s(
                args.model, bb, args.batch, args.max_length, device, args.steps, args.warmup, bf16
            )
            * args.batch
        )
        print(f"sentence-transformers trainer (MNRL, same triples): {peer:.1f} samples/s")
        print(f"ratio ours / sentence-transformers = {ours / peer:.2f}x")


if __name__ == "__main__":
    main()
