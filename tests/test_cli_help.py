"""Every subcommand's --help: a description, its defaults, and examples; -q; cet-auc JSON."""

from __future__ import annotations

import json

import pytest

from ranker.cli import COMMANDS, build_parser, main


def _help(command: str) -> str:
    """``ranker COMMAND --help`` as printed."""
    return build_parser()._subparsers._group_actions[0].choices[command].format_help()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_help_has_description_defaults_and_examples(command):
    text = _help(command)
    assert build_parser()._subparsers._group_actions[0].choices[command].description
    examples = text.split("examples:\n", 1)[1].splitlines()
    assert examples and all(
        line.strip().split()[:2] in (["ranker", command], ["torchrun", "--nproc-per-node"])
        for line in examples
    ), examples
    assert "(default: True)" not in text and "(default: False)" not in text  # flags show no default


def test_defaults_and_split_are_stated():
    def flat(command):
        return " ".join(_help(command).split())

    search = flat("search")
    assert "(default: 1000)" in search and "(default: test)" in search
    assert "(default: train)" in flat("mine") and "(default: test)" in flat("evaluate")
    assert "(default: ndcg@10 mrr@10 recall@100 map)" in flat("evaluate")
    assert "--split SPLIT split whose queries the run answers (required)" in flat("rerank")


def test_cet_auc_without_hidden_positives_writes_valid_json(tmp_path, capsys):
    weights = tmp_path / "w.jsonl"
    weights.write_text(
        json.dumps({"qid": "q1", "docid": "d3", "weight": 1.0, "weight_s": 1.0, "step": 1}) + "\n"
    )
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 d1 1\n")
    out = tmp_path / "auc.json"
    assert main(["cet-auc", str(weights), "--qrels", str(qrels), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    result = json.loads(printed.out)  # strict JSON: no NaN
    assert result["auc_selection"] is None and result["hidden_positives"] == 0
    assert json.loads(out.read_text()) == result and "NaN" not in printed.out
    assert "no hidden positive was sampled" in printed.err


def test_quiet_prints_nothing_on_stderr(tiny_beir, tmp_path):
    """No progress bar, no INFO line, no Java INFO line (a fresh process, as users run it)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    env.pop("TQDM_DISABLE", None)
    argv = [sys.executable, "-m", "ranker", "-q", "index", str(tiny_beir), "--index", str(tmp_path / "idx")]
    done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr == "" and done.stdout == ""
    loud = subprocess.run(
        argv[:3] + argv[4:-1] + [str(tmp_path / "idx2")], capture_output=True, text=True, env=env
    )
    assert loud.returncode == 0 and "INFO" in loud.stderr and "MemorySegmentIndexInput" not in loud.stderr
