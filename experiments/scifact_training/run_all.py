"""Train the SciFact conditions and write their test runs (no ranx needed here).

For each condition: ``ranker train``'s own code path (load_config + train_from_config) with
the YAML in this folder and --set overrides, then a test run: the bi-encoder retrieves
(exact inner product over the corpus), the cross-encoder reranks BM25's top 100.

Usage: python experiments/scifact_training/run_all.py DATA MODEL WORK OUT [CONDITION ...]
  WORK holds negatives.jsonl and bm25.test.trec (prepare.py); OUT receives
  runs/<condition>.trec, logs/<condition>/ (metrics.csv, config.yaml, summary.json,
  weights.jsonl.gz) and timings.json.
Conditions: zeroshot-bi, bi, bi-cet-text, bi-cet-features, cross, cross-cet-text,
  cross-cet-features.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path

import torch

from ranker.training.config import load_config
from ranker.training.evaluate import dense_search
from ranker.training.pipeline import train_from_config
from retrievers.io.dataset import load_dataset
from retrievers.io.trec import read_run, write_run

HERE = Path(__file__).resolve().parent
CONDITIONS = {
    "bi": ("bi.yaml", []),
    "bi-cet-text": ("bi.yaml", ["selection=text"]),
    "bi-cet-features": ("bi.yaml", ["selection=features"]),
    "cross": ("cross.yaml", []),
    "cross-cet-text": ("cross.yaml", ["selection=text"]),
    "cross-cet-features": ("cross.yaml", ["selection=features"]),
    # a longer cross-encoder profile (second GPU call)
    "cross-long": ("cross.yaml", ["max_steps=800", "warmup_steps=80", "lr=5e-5"]),
    "cross-cet-features-long": (
        "cross.yaml",
        ["max_steps=800", "warmup_steps=80", "lr=5e-5", "selection=features"],
    ),
}


def test_run(kind: str, model_dir: Path, dataset, bm25: Path) -> dict:
    from ranker.models import CrossEncoder, load_biencoder
    from ranker.rerank import rerank

    device = "cuda" if torch.cuda.is_available() else "cpu"
    queries = dataset.queries("test")
    queries = {q: t for q, t in queries.items() if q in dataset.qrels("test")}
    texts = {d.id: d.contents for d in dataset.docs()}
    if kind == "bi":
        model = load_biencoder(str(model_dir)).to(device)
        return dense_search(model, queries, texts, k=100, batch_size=256)
    model = CrossEncoder.load(model_dir).to(device)
    return rerank(model, queries, texts, read_run(bm25), depth=100, batch_size=128)


def main(data: str, model: str, work: str, out: str, names: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    work_dir, out_dir = Path(work), Path(out)
    (out_dir / "runs").mkdir(parents=True, exist_ok=True)
    dataset = load_dataset(data)
    timings = {}
    for name in names or ["zeroshot-bi", *CONDITIONS]:
        began = time.perf_counter()
        if name == "zeroshot-bi":
            run = test_run("bi", Path(model), dataset, work_dir / "bm25.test.trec")
        else:
            yaml_name, extra = CONDITIONS[name]
            train_dir = work_dir / "train" / name
            config = load_config(
                HERE / yaml_name,
                [
                    f"dataset={data}",
                    f"model={model}",
                    f"negatives={work_dir / 'negatives.jsonl'}",
                    f"output_dir={train_dir}",
                    *extra,
                ],
            )
            result = train_from_config(config)
            trained = time.perf_counter() - began
            run = test_run(config.model_type, train_dir / "model", dataset, work_dir / "bm25.test.trec")
            logs = out_dir / "logs" / name
            logs.mkdir(parents=True, exist_ok=True)
            for f in ("metrics.csv", "config.yaml", "summary.json"):
                shutil.copy(train_dir / f, logs / f)
            if (train_dir / "weights.jsonl").exists():
                with (
                    (train_dir / "weights.jsonl").open("rb") as src,
                    gzip.open(logs / "weights.jsonl.gz", "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst)
            timings[f"{name}_train_s"] = round(trained, 1)
            timings[f"{name}_first_loss"] = result.first_loss
            timings[f"{name}_final_loss"] = result.final_loss
        write_run(out_dir / "runs" / f"{name}.trec", run, tag=name)
        timings[f"{name}_total_s"] = round(time.perf_counter() - began, 1)
        (out_dir / "timings.json").write_text(json.dumps(timings, indent=1))
        if os.environ.get("PACK_TO"):  # one archive (the GPU machine returns few files)
            with tarfile.open(os.environ["PACK_TO"] + ".tmp", "w:gz") as tar:
                tar.add(out_dir, arcname="results")
            os.replace(os.environ["PACK_TO"] + ".tmp", os.environ["PACK_TO"])
        logging.info("%s done in %.0f s", name, timings[f"{name}_total_s"])


if __name__ == "__main__":
    main(*sys.argv[1:5], sys.argv[5:])
