"""Training from cached token states against the live frozen backbone and full fine-tuning.

One process, one batch recipe (MiniLM, 128 tokens, 32 queries + 1 hard negative each, in-batch
negatives), every setting built once and timed in alternating rounds (median seconds per
optimizer step), so that a shared machine's drift hits every setting alike:

* full fine-tuning (mean pooling, the whole backbone trains);
* the live frozen backbone (no gradient below the pooler) with mean + adapter, and with MLTP;
* the same two trained from a `ranker cache-states` folder.

The states are read once before timing (the page cache of any run past its first epoch;
``--cold`` times the first epoch instead, where each step waits for the disk). Then the
cache's size per 1,000 texts per layer, and the memory of a process that trains from
the cache (run in a child process): resident anonymous memory (what the process owns) against
the size of the states on disk (read through memory maps, never loaded whole).

Usage (the states and dev split come from `ranker run experiments/pooling.yaml --profile cached`):
  W=experiments/work/pooling/cached
  python benchmarks/cache_speed.py --data $W/scifact-dev --negatives $W/negatives.dev.jsonl \
      --model MINILM_DIR --states $W/states-minilm [--steps 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

import torch
from train_speed import interleaved_step_times, make_trainer

from ranker.training.data import BatchMaker, load_texts, read_training_examples
from ranker.training.selection import FeatureEncoder
from retrievers.io.dataset import load_dataset


def memory_kb() -> dict[str, int]:
    """This process's RssAnon / RssFile / VmHWM in kB (Linux)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("RssAnon", "RssFile", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def states_size(states: Path) -> tuple[int, int, int]:
    """(bytes of layer files, texts, layers) of a cache folder."""
    config = json.loads((states / "states_config.json").read_text())
    layer_bytes = sum(p.stat().st_size for p in states.glob("*/shard-*/layer-*"))
    texts = sum(json.loads(p.read_text())["count"] for p in states.glob("*/shard-*/progress.json"))
    return layer_bytes, texts, len(config["layers"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--negatives", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--states", required=True)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per setting per round")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument(
        "--cold", action="store_true", help="time with the states not yet in the page cache (first epoch)"
    )
    parser.add_argument("--memory-steps", type=int, default=0, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    device = torch.device("cpu")
    examples, retrievers = read_training_examples(args.negatives)
    wanted = {d for e in examples for d in (*e.positives, *e.negatives)}
    texts = load_texts(load_dataset(args.data).docs(), wanted)
    batches = BatchMaker(examples, texts, 1, args.batch, 42, FeatureEncoder(retrievers).missing())
    base = {
        "dataset": args.data,
        "negatives": args.negatives,
        "output_dir": "unused",
        "model": args.model,
        "model_type": "bi",
        "loss": "infonce",
        "n_negatives": 1,
        "batch_size": args.batch,
        "max_length": args.max_length,
        "lr": 1e-3,
        "warmup_steps": 0,
        "max_steps": 100_000,
        "dump_weights": False,
    }
    cached = {"freeze": "all", "states": args.states}
    if args.memory_steps:  # child: train from the cache only, report memory
        trainer = make_trainer(
            {**base, "pooling": "mltp", "adapter": True, "backbone": cached}, batches, [], device
        )
        before = memory_kb()
        for step in range(args.memory_steps):
            trainer._step(step)
        print(json.dumps({"before": before, "after": memory_kb()}))
        return
    bf16 = {"precision": "bf16"}  # the fastest live path on this CPU (AMX); the cache is bf16 too
    settings = {
        "full fine-tuning, mean": {**base, **bf16, "pooling": "mean", "lr": 2e-5},
        "live frozen backbone, mean + adapter": {
            **base,
            **bf16,
            "pooling": "mean",
            "adapter": True,
            "backbone": {"freeze": "all"},
        },
        "cached states, mean + adapter": {**base, "pooling": "mean", "adapter": True, "backbone": cached},
        "live frozen backbone, mltp": {**base, **bf16, "pooling": "mltp", "backbone": {"freeze": "all"}},
        "cached states, mltp": {**base, "pooling": "mltp", "backbone": cached},
    }
    if not args.cold:  # read every state file once: the page cache of any run past its first epoch
        for path in sorted(Path(args.states).glob("*/shard-*/layer-*")):
            with path.open("rb") as handle:
                while handle.read(1 << 24):
                    pass
    trainers = {label: make_trainer(values, batches, [], device) for label, values in settings.items()}
    per_step = interleaved_step_times(trainers, device, args.steps, args.warmup, args.rounds)
    full = per_step["full fine-tuning, mean"]
    print(
        f"threads={torch.get_num_threads()} batch={args.batch} queries + 1 hard negative each, "
        f"max_length={args.max_length}"
    )
    print("| setting | ms/step | steps/s | speed-up vs full fine-tuning |")
    print("|---|---:|---:|---:|")
    for label, seconds in per_step.items():
        print(f"| {label} | {seconds * 1000:.1f} | {1 / seconds:.2f} | {full / seconds:.1f}x |")
    layer_bytes, n_texts, n_layers = states_size(Path(args.states))
    per = layer_bytes / (n_texts / 1000) / n_layers
    print(
        f"\ncache: {layer_bytes / 2**30:.2f} GiB of states for {n_texts} texts x {n_layers} layers = "
        f"{per / 2**20:.1f} MiB per 1,000 texts per layer"
    )
    del trainers
    child = subprocess.run(
        [sys.executable, __file__, *sys.argv[1:], "--memory-steps", "50"],
        capture_output=True,
        text=True,
        check=True,
    )
    memory = json.loads(child.stdout.strip().splitlines()[-1])
    after = memory["after"]
    print(
        f"training mltp from the cache, 50 steps: private (anonymous) resident memory "
        f"{after['RssAnon'] / 2**10:.0f} MiB, file pages mapped {after['RssFile'] / 2**10:.0f} MiB, "
        f"peak resident {after['VmHWM'] / 2**10:.0f} MiB; states on disk {layer_bytes / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
