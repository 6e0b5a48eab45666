#!/usr/bin/env bash
# The main job: set up .venv, then run the quickstart experiment on SciFact (BM25 index ->
# mine hard negatives -> fine-tune the MiniLM bi-encoder on them -> dense retrieval and fusion
# with BM25 -> paired tests between every pair of runs; see experiments/quickstart.yaml).
# Everything is written under experiments/work/quickstart/small/ (the checkout stays clean);
# the last lines printed are the result table, the wall time and where the results are.
# Extra arguments go to `ranker run`, e.g. `--publish` to refresh experiments/results/.
# Rerunning skips the steps already done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
exec .venv/bin/ranker run experiments/quickstart.yaml "$@"
