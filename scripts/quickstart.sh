#!/usr/bin/env bash
# The main job: set up .venv, then run the quickstart experiment on SciFact
# (BM25 index -> search -> evaluate; see experiments/quickstart.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
out=runs/quickstart
mkdir -p "$out"
[ -d "$out/bm25-index" ] || .venv/bin/ranker index scifact --index "$out/bm25-index"
.venv/bin/ranker search scifact --split test --index "$out/bm25-index" --k 1000 --out "$out/bm25.test.trec"
.venv/bin/ranker evaluate scifact --split test "$out/bm25.test.trec" --metrics ndcg@10 recall@100 recall@1000
