"""Hostile inputs through the CLI, table-driven: every case runs ``ranker.cli.main`` in-process
and must exit 2 with exactly one line on stderr naming the file (and the line where there is
one), leaving no output behind; valid-but-odd inputs (a BOM, gzip) must give the right result.

Placeholders in a case's command: ``{tmp}`` (the test's folder, where ``files`` are written),
``{data}`` (a small valid BEIR dataset), ``{ce}`` / ``{bi}`` (a saved cross-/bi-encoder),
``{bert}`` (a plain tiny transformers folder), ``{run}`` / ``{neg}`` / ``{cfg}`` (a valid TREC
run, negatives file and training config for that dataset).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch
import yaml

from ranker.cli import main

NEG = '{"qid": "q1", "query": "cats purr", "positives": ["d1"], "negatives": [%s]}\n'
NEG_ITEM = '{"docid": "%s", "rank": %s, "score": %s, "retriever": "bm25"}'
GOOD_NEG = NEG % ", ".join(NEG_ITEM % (d, r, 1.0 / r) for r, d in enumerate(["d2", "d3", "d4"], 1))
QRELS_HEAD = "query-id\tcorpus-id\tscore\n"
CORPUS = '{"_id": "d1", "text": "cats purr"}\n{"_id": "d2", "text": "dogs bark"}\n'
QUERIES = '{"_id": "q1", "text": "cats"}\n'
SPEC = "name: x\nsteps:\n  - name: a\n    run: [evaluate, x, r.trec]\n    outputs: [o]\n"


@dataclass
class Case:
    """One hostile input: write ``files``, run ``argv``, expect one error line naming ``bad``."""

    id: str
    argv: str
    bad: str
    line: int | None = None
    files: dict[str, str | bytes] = field(default_factory=dict)
    out: str | None = None  # must not exist afterwards
    prep: Callable[[Path], None] | None = None  # more set-up, given the test folder


def _cfg_case(name: str, line: str) -> Case:
    """A training config that is the valid one with ``line`` first: refused, naming line 1."""
    return Case(name, "train {tmp}/c.yaml", "{tmp}/c.yaml", 1, prep=lambda tmp: _cfg(tmp, line))


def beir(name: str, corpus: str = CORPUS, queries: str = QUERIES, qrels: str | bytes | None = None):
    """Files of a BEIR folder ``name`` (any part replaced by a hostile one)."""
    qrels = QRELS_HEAD + "q1\td1\t1\n" if qrels is None else qrels
    return {f"{name}/corpus.jsonl": corpus, f"{name}/queries.jsonl": queries, f"{name}/qrels/test.tsv": qrels}


RERANK = "rerank {tmp}/ds --split test --run {run} --model {ce} --out {tmp}/out.trec --device cpu"
RERANK_RUN = "rerank {data} --split test --run {tmp}/r.trec --model {ce} --out {tmp}/out.trec --device cpu"
EVAL = "evaluate {data} --split test {tmp}/r.trec"
FUSE = "fuse {tmp}/r.trec {run} --out {tmp}/out.trec"
TRAIN = "train {cfg} --set negatives={tmp}/n.jsonl"
AUDIT = "audit {tmp}/n.jsonl --qrels {data}/qrels/test.tsv --json {tmp}/out.json"


def _msmarco(tmp: Path, collection: bytes) -> None:
    (tmp / "ms").mkdir()
    (tmp / "ms" / "collection.tsv").write_bytes(collection)
    (tmp / "ms" / "queries.test.tsv").write_text("q1\tcats\n")
    (tmp / "ms" / "qrels.test.tsv").write_text("q1 0 d1 1\n")


def _copy(src_key: str, edit: Callable[[Path], None]) -> Callable[[Path], None]:
    """Copy the saved model ``{src_key}`` to ``{tmp}/m`` and break it with ``edit``."""

    def prep(tmp: Path) -> None:
        shutil.copytree(MODELS[src_key], tmp / "m")
        edit(tmp / "m")

    return prep


def _pickled(folder: Path) -> None:
    """Weights as a pickled ``pytorch_model.bin`` instead of safetensors."""
    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2, 2)}, folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _truncate(name: str) -> Callable[[Path], None]:
    def edit(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: len(data) // 2])

    return edit


def _remote_code(folder: Path) -> None:
    """A model type transformers does not know, with code in the folder to load it."""
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="xbert", auto_map={"AutoConfig": "x.XConfig", "AutoModel": "x.XModel"})
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "x.py").write_text("raise SystemExit('the folder's code ran')\n")


# YAML bombs: an alias chain that expands to 4 x 10^9 characters (lines 1-10), nesting 5,000
# deep, and a 1 MB anchor aliased 2,000 times (2 GB expanded; line 3 holds the aliases)
LAUGHS = "a0: &a0 lol\n" + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 10))
DEEP = "x: " + "[" * 5000 + "]" * 5000 + "\n"
BIG_ANCHOR = "lr: 1.0e-5\nbig: &big " + "x" * 1_000_000 + "\nmany: [" + ", ".join(["*big"] * 2000) + "]\n"
# a spec variable that doubles nine times over: ${profile.v8} would be 10^9 characters
VAR_LAUGHS = (
    "name: x\nsteps:\n  - name: a\n    run: [evaluate, '${profile.v8}', r.trec]\n    outputs: [o]\nvars:\n"
    "  v0: lollollollollollollollollollol\n"
    + "".join(f"  v{i}: '{('${profile.v' + str(i - 1) + '}') * 10}'\n" for i in range(1, 9))
)

MODELS: dict[str, Path] = {}
# tqdm progress bars (transformers' "Loading weights", ours) are not messages
PROGRESS = re.compile(r"^[^:]*: +\d+%\|")

CASES = [
    # --- corpora (BEIR JSONL, MS MARCO TSV) read by rerank
    Case("corpus-bad-json", RERANK, "{tmp}/ds/corpus.jsonl", 3, beir("ds", CORPUS + "{not json\n")),
    Case("corpus-no-id", RERANK, "{tmp}/ds/corpus.jsonl", 1, beir("ds", '{"text": "x"}\n' + CORPUS)),
    Case(
        "corpus-dup-id",
        RERANK,
        "{tmp}/ds/corpus.jsonl",
        3,
        beir("ds", CORPUS + '{"_id": "d1", "text": "x"}\n'),
    ),
    Case("corpus-id-space", RERANK, "{tmp}/ds/corpus.jsonl", 1, beir("ds", '{"_id": "d 1", "text": "x"}\n')),
    Case(
        "corpus-id-nul", RERANK, "{tmp}/ds/corpus.jsonl", 1, beir("ds", '{"_id": "d\\u00001", "text": "x"}\n')
    ),
    Case("corpus-not-object", RERANK, "{tmp}/ds/corpus.jsonl", 1, beir("ds", "[1, 2]\n" + CORPUS)),
    Case(
        "corpus-text-number", RERANK, "{tmp}/ds/corpus.jsonl", 1, beir("ds", '{"_id": "d1", "text": [5]}\n')
    ),
    Case(
        "corpus-bad-utf8",
        RERANK,
        "{tmp}/ds/corpus.jsonl",
        1,
        {**beir("ds"), "ds/corpus.jsonl": b'{"_id": "d1", "text": "\xff"}\n'},
    ),
    Case(
        "corpus-bad-gzip",
        RERANK,
        "{tmp}/ds/corpus.jsonl.gz",
        None,
        {
            **{k: v for k, v in beir("ds").items() if not k.endswith("corpus.jsonl")},
            "ds/corpus.jsonl.gz": gzip.compress(CORPUS.encode() * 50)[:40],
        },
    ),
    Case(
        "msmarco-too-many-columns",
        "rerank {tmp}/ms --split test --run {run} --model {ce} --out {tmp}/out.trec --device cpu",
        "{tmp}/ms/collection.tsv",
        1,
        prep=lambda tmp: _msmarco(tmp, b"d1\ta\tb\tc\n"),
    ),
    # --- queries
    Case("queries-bad-json", RERANK, "{tmp}/ds/queries.jsonl", 1, beir("ds", queries="{\n")),
    Case("queries-dup-id", RERANK, "{tmp}/ds/queries.jsonl", 2, beir("ds", queries=QUERIES * 2)),
    Case("queries-no-text", RERANK, "{tmp}/ds/queries.jsonl", 1, beir("ds", queries='{"_id": "q1"}\n')),
    Case(
        "queries-id-tab",
        RERANK,
        "{tmp}/ds/queries.jsonl",
        1,
        beir("ds", queries='{"_id": "q\\t1", "text": "x"}\n'),
    ),
    # --- qrels
    Case(
        "qrels-1_0",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        2,
        beir("ds", qrels=QRELS_HEAD + "q1\td1\t1_0\n"),
    ),
    Case(
        "qrels-float",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        2,
        beir("ds", qrels=QRELS_HEAD + "q1\td1\t0.5\n"),
    ),
    Case(
        "qrels-columns",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        2,
        beir("ds", qrels=QRELS_HEAD + "q1 d1\n"),
    ),
    Case(
        "qrels-empty",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        None,
        beir("ds", qrels=""),
    ),
    Case(
        "qrels-nan",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        2,
        beir("ds", qrels=QRELS_HEAD + "q1\td1\tnan\n"),
    ),
    Case(
        "qrels-bad-utf8",
        "evaluate {tmp}/ds --split test {run}",
        "{tmp}/ds/qrels/test.tsv",
        2,
        beir("ds", qrels=QRELS_HEAD.encode() + b"q1\td\xff\t1\n"),
    ),
    Case(
        "audit-qrels-trec-bad", "audit {neg} --qrels {tmp}/q.txt", "{tmp}/q.txt", 1, {"q.txt": "q1 0 d1 x\n"}
    ),
    # --- runs (evaluate, fuse, rerank)
    Case("run-nan", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 1 nan x\n"}),
    Case("run-inf", EVAL, "{tmp}/r.trec", 2, {"r.trec": "q1 Q0 d1 1 1.0 x\nq1 Q0 d2 2 -inf x\n"}),
    Case("run-neg-rank", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 -1 1.0 x\n"}),
    Case("run-rank-word", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 one 1.0 x\n"}),
    Case("run-score-word", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 1 high x\n"}),
    Case("run-five-columns", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 1 1.0\n"}),
    Case("run-nul-id", EVAL, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d\x001 1 1.0 x\n"}),
    Case("run-empty", EVAL, "{tmp}/r.trec", None, {"r.trec": ""}),
    Case("run-dup-doc", EVAL, "{tmp}/r.trec", 2, {"r.trec": "q1 Q0 d1 1 1.0 x\nq1 Q0 d1 2 0.5 x\n"}),
    Case("run-bad-utf8", EVAL, "{tmp}/r.trec", 1, {"r.trec": b"q1 Q0 d\xff 1 1.0 x\n"}),
    Case("run-missing", EVAL, "{tmp}/r.trec"),
    Case("run-is-dir", EVAL, "{tmp}/r.trec", prep=lambda tmp: (tmp / "r.trec").mkdir()),
    Case("fuse-run-nan", FUSE, "{tmp}/r.trec", 1, {"r.trec": "q1 Q0 d1 1 nan x\n"}, out="{tmp}/out.trec"),
    Case(
        "fuse-bad-gzip",
        "fuse {tmp}/r.trec.gz {run} --out {tmp}/out.trec",
        "{tmp}/r.trec.gz",
        None,
        {"r.trec.gz": b"\x1f\x8b\x08\x00garbage"},
        out="{tmp}/out.trec",
    ),
    Case(
        "rerank-run-nan",
        RERANK_RUN,
        "{tmp}/r.trec",
        1,
        {"r.trec": "q1 Q0 d1 1 nan x\n"},
        out="{tmp}/out.trec",
    ),
    Case(
        "rerank-run-unknown-doc",
        RERANK_RUN,
        "{tmp}/r.trec",
        None,
        {"r.trec": "q1 Q0 nope 1 1.0 x\n"},
        out="{tmp}/out.trec",
    ),
    # --- negatives (train, audit)
    Case("neg-nan-score", TRAIN, "{tmp}/n.jsonl", 1, {"n.jsonl": NEG % (NEG_ITEM % ("d2", 1, "NaN"))}),
    Case(
        "neg-positive-among-negatives",
        TRAIN,
        "{tmp}/n.jsonl",
        1,
        {"n.jsonl": NEG % (NEG_ITEM % ("d1", 1, 1.0))},
    ),
    Case(
        "neg-empty-query",
        TRAIN,
        "{tmp}/n.jsonl",
        1,
        {"n.jsonl": (NEG % (NEG_ITEM % ("d2", 1, 1.0))).replace("cats purr", " ")},
    ),
    Case("neg-bad-json", TRAIN, "{tmp}/n.jsonl", 2, {"n.jsonl": GOOD_NEG + "{oops\n"}),
    Case("neg-docid-number", TRAIN, "{tmp}/n.jsonl", 1, {"n.jsonl": NEG % '{"docid": 5}'}),
    Case("neg-rank-zero", TRAIN, "{tmp}/n.jsonl", 1, {"n.jsonl": NEG % (NEG_ITEM % ("d2", 0, 1.0))}),
    Case("neg-unknown-doc", TRAIN, "{tmp}/n.jsonl", 1, {"n.jsonl": NEG % (NEG_ITEM % ("nope", 1, 1.0))}),
    Case(
        "neg-missing-key",
        TRAIN,
        "{tmp}/n.jsonl",
        1,
        {"n.jsonl": '{"qid": "q1", "query": "x", "negatives": []}\n'},
    ),
    Case("neg-empty-file", TRAIN, "{tmp}/n.jsonl", None, {"n.jsonl": ""}),
    Case(
        "audit-neg-nan",
        AUDIT,
        "{tmp}/n.jsonl",
        1,
        {"n.jsonl": NEG % (NEG_ITEM % ("d2", 1, "NaN"))},
        out="{tmp}/out.json",
    ),
    # --- training configs
    _cfg_case("cfg-negative-lr", "lr: -1.0\n"),
    _cfg_case("cfg-nan-lr", "lr: .nan\n"),
    _cfg_case("cfg-negative-warmup", "warmup_steps: -5\n"),
    _cfg_case("cfg-negative-keep", "keep_checkpoints: -1\n"),
    _cfg_case("cfg-zero-batch", "batch_size: 0\n"),
    _cfg_case("cfg-unknown-key", "learning_rate: 1\n"),
    _cfg_case("cfg-bad-lora", "lora: {rank: -2}\n"),
    Case(
        "cfg-set-negative-lr",
        "train {tmp}/c.yaml --set lr=-3",
        "{tmp}/c.yaml",
        None,
        prep=lambda tmp: _cfg(tmp, ""),
    ),
    Case("cfg-yaml-syntax", "train {tmp}/c.yaml", "{tmp}/c.yaml", 3, {"c.yaml": "lr: 1\nmodel: [a\n"}),
    Case(
        "cfg-python-tag",
        "train {tmp}/c.yaml",
        "{tmp}/c.yaml",
        1,
        {"c.yaml": "!!python/object/apply:os.system [ls]\n"},
    ),
    Case("cfg-bad-utf8", "train {tmp}/c.yaml", "{tmp}/c.yaml", None, {"c.yaml": b"lr: \xff\n"}),
    Case("cfg-is-dir", "train {tmp}/c.yaml", "{tmp}/c.yaml", prep=lambda tmp: (tmp / "c.yaml").mkdir()),
    Case("cfg-missing", "train {tmp}/c.yaml", "{tmp}/c.yaml"),
    Case("cfg-list", "train {tmp}/c.yaml", "{tmp}/c.yaml", 1, {"c.yaml": "- lr\n"}),
    # --- experiment specs
    Case(
        "spec-bad-utf8",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        None,
        {"s.yaml": b"name: \xff\n"},
        out="{tmp}/w",
    ),
    Case(
        "spec-yaml-syntax",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        3,
        {"s.yaml": "name: x\nsteps: [\n"},
        out="{tmp}/w",
    ),
    Case(
        "spec-unknown-command",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        3,
        {"s.yaml": SPEC.replace("evaluate", "evaluat")},
        out="{tmp}/w",
    ),
    Case(
        "spec-unknown-key",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        6,
        {"s.yaml": SPEC + "    ouputs: [p]\n"},
        out="{tmp}/w",
    ),
    Case(
        "spec-python-tag",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        1,
        {"s.yaml": "name: !!python/name:os.system\n"},
        out="{tmp}/w",
    ),
    Case(
        "spec-is-dir",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        prep=lambda tmp: (tmp / "s.yaml").mkdir(),
        out="{tmp}/w",
    ),
    Case(
        "spec-bad-tolerance",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        6,
        {"s.yaml": SPEC + "tolerance: lots\n"},
        out="{tmp}/w",
    ),
    # --- model folders (rerank: a saved cross-encoder; encode: a bi-encoder or transformers folder)
    Case(
        "model-missing",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
    ),
    Case(
        "model-no-config-json",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce", lambda m: (m / "config.json").unlink()),
    ),
    Case(
        "model-pickled-bin",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce", lambda m: _pickled(m)),
    ),
    Case(
        "model-truncated",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m/model.safetensors",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce", _truncate("model.safetensors")),
    ),
    Case(
        "model-no-head",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce-head", lambda m: (m / "head.safetensors").unlink()),
    ),
    Case(
        "model-truncated-head",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m/head.safetensors",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce-head", _truncate("head.safetensors")),
    ),
    Case(
        "model-bad-ranker-json",
        RERANK_RUN.replace("{ce}", "{tmp}/m"),
        "{tmp}/m/ranker_config.json",
        None,
        {"r.trec": "q1 Q0 d1 1 1.0 x\n"},
        prep=_copy("ce", lambda m: (m / "ranker_config.json").write_text("{")),
    ),
    Case("encode-model-missing", "encode {data} --model {tmp}/m --out {tmp}/out", "{tmp}/m", out="{tmp}/out"),
    Case(
        "encode-model-pickled",
        "encode {data} --model {tmp}/m --out {tmp}/out",
        "{tmp}/m",
        prep=_copy("bert", _pickled),
        out="{tmp}/out",
    ),
    Case(
        "encode-model-truncated",
        "encode {data} --model {tmp}/m --out {tmp}/out",
        "{tmp}/m/model.safetensors",
        prep=_copy("bert", _truncate("model.safetensors")),
        out="{tmp}/out",
    ),
    Case(
        "encode-bi-wrong-type",
        "encode {data} --model {ce} --out {tmp}/out",
        "{ce}",
        out="{tmp}/out",
    ),
    Case(
        "encode-bi-no-pooler",
        "encode {data} --model {tmp}/m --out {tmp}/out",
        "{tmp}/m/1_Pooling",
        prep=_copy("bi", lambda m: shutil.rmtree(m / "1_Pooling")),
        out="{tmp}/out",
    ),
    Case("train-model-pickled", "train {cfg} --set model={tmp}/m", "{tmp}/m", prep=_copy("bert", _pickled)),
    # --- checkpoints (train --resume)
    Case(
        "resume-pickled-state",
        "train {tmp}/r.yaml --resume",
        "{tmp}/out/checkpoints/step-2/state.pt",
        prep=lambda tmp: _checkpoint(tmp, "pickle"),
    ),
    Case(
        "resume-truncated-weights",
        "train {tmp}/r.yaml --resume",
        "{tmp}/out/checkpoints/step-2/relevance.safetensors",
        prep=lambda tmp: _checkpoint(tmp, "truncate"),
    ),
    Case(
        "resume-bad-latest",
        "train {tmp}/r.yaml --resume",
        "{tmp}/out/checkpoints/latest.json",
        prep=lambda tmp: _checkpoint(tmp, "latest"),
    ),
    Case(
        "resume-changed-config",
        "train {tmp}/r.yaml --resume --set lr=0.5",
        "{tmp}/out/config.yaml",
        prep=lambda tmp: _checkpoint(tmp, ""),
    ),
    # --- output paths
    Case("out-is-dir", "fuse {run} {run} --out {tmp}/o", "{tmp}/o", prep=lambda tmp: (tmp / "o").mkdir()),
    Case("out-through-file", "fuse {run} {run} --out {tmp}/f/out.trec", "{tmp}/f/out.trec", files={"f": "x"}),
    Case(
        "out-unwritable",
        "fuse {run} {run} --out {tmp}/ro/out.trec",
        "{tmp}/ro/out.trec",
        prep=lambda tmp: _readonly(tmp / "ro"),
        out="{tmp}/ro/out.trec",
    ),
    Case(
        "evaluate-out-is-dir",
        EVAL.replace("{tmp}/r.trec", "{run}") + " --out {tmp}/o",
        "{tmp}/o",
        prep=lambda tmp: (tmp / "o").mkdir(),
    ),
    Case(
        "rerank-out-through-file",
        RERANK_RUN.replace("{tmp}/out.trec", "{tmp}/f/out.trec"),
        "{tmp}/f/out.trec",
        files={"f": "x", "r.trec": "q1 Q0 d1 1 1.0 x\n"},
    ),
    Case(
        "audit-json-is-dir",
        "audit {neg} --qrels {data}/qrels/test.tsv --json {tmp}/o",
        "{tmp}/o",
        prep=lambda tmp: (tmp / "o").mkdir(),
    ),
    # --- YAML built to exhaust the reader (refused while reading, in well under a second)
    Case("cfg-billion-laughs", "train {tmp}/c.yaml", "{tmp}/c.yaml", 8, {"c.yaml": LAUGHS}),
    Case("cfg-deep-nesting", "train {tmp}/c.yaml", "{tmp}/c.yaml", 1, {"c.yaml": DEEP}),
    Case("cfg-big-anchor-aliased", "train {tmp}/c.yaml", "{tmp}/c.yaml", 3, {"c.yaml": BIG_ANCHOR}),
    Case("cfg-recursive-alias", "train {tmp}/c.yaml", "{tmp}/c.yaml", 1, {"c.yaml": "lr: &a [*a]\n"}),
    Case(
        "spec-billion-laughs",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        13,
        {"s.yaml": SPEC + LAUGHS},
    ),
    Case("spec-deep-nesting", "run {tmp}/s.yaml --work {tmp}/w", "{tmp}/s.yaml", 6, {"s.yaml": SPEC + DEEP}),
    Case(
        "spec-big-anchor-unused-variable",
        "run {tmp}/s.yaml --work {tmp}/w",
        "{tmp}/s.yaml",
        9,
        {"s.yaml": SPEC + "vars:\n  " + BIG_ANCHOR.replace("\n", "\n  ")},
        out="{tmp}/w",
    ),
    Case(
        "spec-variable-laughs",
        "run {tmp}/s.yaml --work {tmp}/w --list",
        "{tmp}/s.yaml",
        3,
        {"s.yaml": VAR_LAUGHS},
    ),
    Case(
        "run-set-laughs",
        "run {tmp}/s.yaml --work {tmp}/w --set " + shlex.quote("x=" + LAUGHS),
        "--set x",
        8,
        {"s.yaml": SPEC},
    ),
    # --- numbers at their limits
    _cfg_case("cfg-lr-huge", "lr: 1.0e+308\n"),
    _cfg_case("cfg-max-length-1", "max_length: 1\n"),
    _cfg_case("cfg-head-lr-huge", "head_lr: 1.0e+9\n"),
    # --- a model folder that asks for its own code to be run
    Case(
        "train-remote-code",
        TRAIN.replace("{tmp}/n.jsonl", "{neg}") + " --set model={tmp}/m",
        "{tmp}/m",
        prep=_copy("bert", lambda m: _remote_code(m)),
    ),
    Case(
        "encode-remote-code",
        "encode {data} --model {tmp}/m --out {tmp}/e",
        "{tmp}/m",
        prep=_copy("bert", lambda m: _remote_code(m)),
        out="{tmp}/e",
    ),
]


def _cfg(tmp: Path, extra: str) -> None:
    """The valid training config with ``extra`` (one ``key: value`` line) as its first line."""
    values = yaml.safe_load(FIXED["cfg"].read_text())
    values.pop(extra.split(":")[0], None)
    (tmp / "c.yaml").write_text(extra + yaml.safe_dump(values))


def _readonly(folder: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder.mkdir()
    folder.chmod(0o500)


def _checkpoint(tmp: Path, damage: str) -> None:
    """A copy of the module's trained run in ``{tmp}/out`` (killed after its step-2
    checkpoint), its config as ``{tmp}/r.yaml``, then the checkpoint damaged."""
    shutil.copytree(TRAINED["out"], tmp / "out")
    config = yaml.safe_load(TRAINED["config"].read_text())
    (tmp / "r.yaml").write_text(yaml.safe_dump({**config, "output_dir": str(tmp / "out")}))
    step = tmp / "out" / "checkpoints" / "step-2"
    if damage == "pickle":  # what a plain torch.save holds: arbitrary pickled objects
        torch.save({"optimizers": {}, "rng": Path("/")}, step / "state.pt")
    elif damage == "truncate":
        _truncate("relevance.safetensors")(step)
    elif damage == "latest":
        (tmp / "out" / "checkpoints" / "latest.json").write_text("{")


FIXED: dict[str, Path] = {}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, tiny_bert) -> dict[str, Path]:
    from ranker.models import BiEncoder, CrossEncoder

    root = tmp_path_factory.mktemp("models")
    CrossEncoder.from_pretrained(tiny_bert, max_length=32).save(root / "ce")
    # an explicit pooler keeps ranker's own head file (head.safetensors)
    CrossEncoder.from_pretrained(tiny_bert, pooling="cls", max_length=32).save(root / "ce-head")
    BiEncoder.from_pretrained(tiny_bert, max_length=32).save(root / "bi")
    MODELS.update({"ce": root / "ce", "ce-head": root / "ce-head", "bi": root / "bi", "bert": tiny_bert})
    return MODELS


TRAINED: dict[str, Path] = {}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, saved_models) -> dict[str, Path]:
    """One 2-step training run (checkpoints at steps 1 and 2), trained once for the module,
    its final model removed as if it was killed after the last checkpoint."""
    root = tmp_path_factory.mktemp("trained")
    corpus = "".join(json.dumps({"_id": f"d{i}", "text": f"text {i}"}) + "\n" for i in range(1, 5))
    for name, content in beir("ds", corpus).items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    (root / "n.jsonl").write_text(GOOD_NEG)
    config = root / "train.yaml"
    values = {
        "dataset": str(root / "ds"),
        "negatives": str(root / "n.jsonl"),
        "output_dir": str(root / "out"),
        "model": str(saved_models["bert"]),
        **TRAIN_SETTINGS,
    }
    config.write_text(yaml.safe_dump(values))
    assert main(["-q", "train", str(config)]) == 0
    shutil.rmtree(root / "out" / "model")
    TRAINED.update({"out": root / "out", "config": config})
    return TRAINED


TRAIN_SETTINGS = {
    "n_negatives": 2,
    "batch_size": 1,
    "max_steps": 2,
    "save_every": 1,
    "warmup_steps": 0,
    "max_length": 32,
    "device": "cpu",
    "log_every": 1,
}


def _fill(text: str, values: dict[str, Path]) -> str:
    return text.format(**{k: str(v) for k, v in values.items()})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_one_line_naming_the_file(
    case, tmp_path, tiny_beir, saved_models, trained_run, capsys
):
    work = tmp_path / "case"
    work.mkdir()
    run = tmp_path / "good.trec"
    run.write_text("q1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\nq2 Q0 d3 1 1.0 x\n")
    neg = tmp_path / "good.jsonl"
    neg.write_text(GOOD_NEG)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "dataset": str(tiny_beir),
                "negatives": str(neg),
                "output_dir": str(work / "out"),
                "model": str(saved_models["bert"]),
                **TRAIN_SETTINGS,
            }
        )
    )
    FIXED["cfg"] = cfg
    values = {"tmp": work, "data": tiny_beir, "run": run, "neg": neg, "cfg": cfg, **saved_models}
    for name, content in case.files.items():
        path = work / name
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    if case.prep is not None:
        case.prep(work)
    before = sorted(p.relative_to(work) for p in work.rglob("*") if p.is_file())
    capsys.readouterr()
    try:
        code = main(["-q", *shlex.split(_fill(case.argv, values))])
    finally:
        for folder in work.rglob("ro"):
            folder.chmod(0o700)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == 2, err
    assert len(err) == 1, err
    where = _fill(case.bad, values)
    if case.line is not None:
        where += f":{case.line}"
    assert f" {where}: " in err[0] or f" {where} " in err[0], err[0]
    if case.line is None:
        assert f"{_fill(case.bad, values)}:" in err[0] and not _names_a_line(err[0], _fill(case.bad, values))
    if case.out is not None:
        assert not Path(_fill(case.out, values)).exists()
    after = sorted(p.relative_to(work) for p in work.rglob("*") if p.is_file())
    assert after == before, "files were left behind"


def _names_a_line(message: str, path: str) -> bool:
    rest = message.split(path, 1)[1]
    return rest[:1] == ":" and rest[1:2].isdigit()


def test_there_are_at_least_sixty_cases():
    assert len(CASES) >= 60
    assert len({c.id for c in CASES}) == len(CASES)
    assert all(c.line is None or type(c.line) is int for c in CASES)
    assert all(isinstance(c.files, dict) for c in CASES)


# --- valid but odd: the right result ----------------------------------------------------------


def test_bom_and_gzip_give_the_right_results(tmp_path, saved_models, capsys):
    """A UTF-8 BOM at the start of an MS MARCO collection, qrels and a (gzipped) run is not
    part of the first id: the relevant document still matches, and gets reranked."""
    _msmarco(tmp_path, "\ufeffd1\tcats purr\nd2\tdogs bark\n".encode())
    (tmp_path / "ms" / "qrels.test.tsv").write_text("\ufeffq1 0 d1 1\n")
    run = tmp_path / "r.trec.gz"
    run.write_bytes(gzip.compress("\ufeffq1 Q0 d1 1 2.0 x\nq1 Q0 d2 2 1.0 x\n".encode()))
    out = tmp_path / "eval.json"
    argv = ["-q", "evaluate", str(tmp_path / "ms"), str(run), "--format", "json", "--out", str(out)]
    assert main(argv) == 0
    assert next(iter(json.loads(out.read_text()).values()))["ndcg@10"] == pytest.approx(1.0)
    reranked = tmp_path / "rr.trec"
    argv = ["-q", "rerank", str(tmp_path / "ms"), "--split", "test", "--run", str(run)]
    assert main([*argv, "--model", str(saved_models["ce"]), "--out", str(reranked), "--device", "cpu"]) == 0
    assert sorted(line.split()[2] for line in reranked.read_text().splitlines()) == ["d1", "d2"]


# --- numbers at their limits, refused at the command line ------------------------------------


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        ("mine {data} --index {tmp}/i --out {tmp}/n.jsonl --seed -1", "--seed"),
        ("index {data} --retriever dense --model {bert} --index {tmp}/i --batch-size 0", "--batch-size"),
        ("mine {data} --index {tmp}/i --out {tmp}/n.jsonl --batch-size 0", "--batch-size"),
    ],
)
def test_numbers_out_of_range_are_refused_before_any_work(
    argv, option, tmp_path, tiny_beir, saved_models, capsys
):
    values = {"tmp": tmp_path, "data": tiny_beir, **saved_models}
    with pytest.raises(SystemExit) as info:
        main(["-q", *shlex.split(_fill(argv, values))])
    assert info.value.code == 2
    assert f"argument {option}: must be" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["tiny"]  # the dataset, nothing written


def test_a_loss_that_turns_non_finite_stops_training_in_one_line(
    tmp_path, tiny_beir, saved_models, monkeypatch, capsys
):
    from ranker.training.trainer import Trainer

    real = Trainer._step

    def step(self, number):
        stats = real(self, number)
        return {**stats, "loss": float("nan")} if number == 1 else stats

    monkeypatch.setattr(Trainer, "_step", step)
    neg = tmp_path / "n.jsonl"
    neg.write_text(GOOD_NEG)
    config = tmp_path / "c.yaml"
    values = {"dataset": str(tiny_beir), "negatives": str(neg), "output_dir": str(tmp_path / "out")}
    config.write_text(yaml.safe_dump({**values, "model": str(saved_models["bert"]), **TRAIN_SETTINGS}))
    assert main(["-q", "train", str(config)]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert len(err) == 1 and "loss became non-finite (nan) at step 2" in err[0], err
    assert not (tmp_path / "out" / "model").exists()
