#!/usr/bin/env bash
# The main job: set up .venv, then run the quickstart experiment on SciFact (BM25 index ->
# mine negatives -> train a MiniLM cross-encoder -> rerank -> evaluate -> significance test
# against BM25; see experiments/quickstart.yaml). Extra arguments go to `ranker run`, e.g.
# `bash scripts/quickstart.sh --profile full`. Rerunning skips the steps already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/ranker run experiments/quickstart.yaml "$@"
