"""Pooling-bias simulator: keep only the judgments a shallow judging pool would have found.

TREC-style collections are judged by pooling the top ``depth`` documents of a few runs
(Spärck Jones & van Rijsbergen, 1975; Buckley et al., 2007, "Bias and the limits of pooling
for large collections"). Starting from a collection with deep judgments (Cranfield,
Medline), this writes a copy whose qrels keep only the judgments inside such a pool and a
``<split>-hidden`` qrels file with the rest, so that training on the shallow labels and
evaluating on the full ones measures what pooling bias costs. The pool itself (the judged
documents of each pooled query) is written too, as ``pool.<split>.tsv`` (``qid<TAB>docid``):
with it, :mod:`retrievers.audit` can tell which mined negatives were judged.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_directory
from retrievers.io.dataset import BeirDataset, Dataset, MsMarcoDataset
from retrievers.io.trec import QrelsDict, RunDict, ranked, read_run

logger = logging.getLogger(__name__)


def judging_pool(runs: Sequence[RunDict], depth: int) -> dict[str, set[str]]:
    """Per query, the union of every run's top ``depth`` documents (ties by document id)."""
    if depth < 1:
        raise InputError(f"pool depth must be at least 1, got {depth}")
    pool: dict[str, set[str]] = {}
    for run in runs:
        for qid, docs in run.items():
            pool.setdefault(qid, set()).update(d for d, _ in ranked(docs)[:depth])
    return pool


def pool_file_name(split: str) -> str:
    """The name of the pool file :func:`simulate_pool` writes for a pooled ``split``."""
    return f"pool.{split}.tsv"


def write_pool(path: Path, pool: Mapping[str, set[str]], qids: Sequence[str]) -> None:
    """``qid<TAB>docid`` lines of the pool of ``qids`` (documents sorted)."""
    with path.open("w", encoding="utf-8") as out:
        for qid in qids:
            out.writelines(f"{qid}\t{docid}\n" for docid in sorted(pool.get(qid, ())))


def read_pool(path: str | Path) -> dict[str, set[str]]:
    """A pool file (``qid<TAB>docid`` a line, see :func:`write_pool`): the judged documents
    of each query.

    Raises:
        InputError: a line without exactly two tab-separated fields (file and line named),
            or an empty file.
    """
    path = Path(path)
    pool: dict[str, set[str]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the pool file: {err}", path) from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not all(f.strip() for f in fields):
            raise InputError("expected 'qid<TAB>docid' (a pool file written by `ranker pool`)", path, number)
        pool.setdefault(fields[0].strip(), set()).add(fields[1].strip())
    if not pool:
        raise InputError("the pool file lists no document", path)
    return pool


def split_qrels(
    qrels: Mapping[str, Mapping[str, int]], pool: Mapping[str, set[str]]
) -> tuple[QrelsDict, QrelsDict]:
    """Split judgments into those inside the pool and the hidden rest."""
    kept: QrelsDict = {}
    hidden: QrelsDict = {}
    for qid, docs in qrels.items():
        found = pool.get(qid, set())
        for docid, rel in docs.items():
            (kept if docid in found else hidden).setdefault(qid, {})[docid] = rel
    return kept, hidden


def split_queries(qids: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded split of ``qids`` into (train, test), train holding ``round(fraction * n)``."""
    if not 0 < fraction < 1:
        raise InputError(f"train fraction must be between 0 and 1, got {fraction}")
    order = np.random.default_rng(seed).permutation(len(qids))
    n_train = round(fraction * len(qids))
    train = {qids[i] for i in order[:n_train]}
    return [q for q in qids if q in train], [q for q in qids if q not in train]


def _stats(kept: QrelsDict, hidden: QrelsDict) -> dict[str, int]:
    def relevant(qrels: QrelsDict) -> int:
        return sum(rel > 0 for docs in qrels.values() for rel in docs.values())

    queries = set(kept) | set(hidden)
    return {
        "queries": len(queries),
        "judgments_kept": sum(map(len, kept.values())),
        "judgments_hidden": sum(map(len, hidden.values())),
        "relevant_kept": relevant(kept),
        "relevant_hidden": relevant(hidden),
        "queries_without_pooled_relevant": sum(
            1 for q in queries if not any(r > 0 for r in kept.get(q, {}).values())
        ),
    }


class _Writer:
    """Writes splits in the source dataset's layout (BEIR for ir_datasets sources)."""

    def __init__(self, source: Dataset, root: Path):
        self.source, self.root = source, root
        self.msmarco = isinstance(source, MsMarcoDataset)
        if isinstance(source, MsMarcoDataset):
            shutil.copyfile(source.corpus_path, root / "collection.tsv")
        elif isinstance(source, BeirDataset):
            shutil.copyfile(source.corpus_path, root / "corpus.jsonl")
            shutil.copyfile(source.root / "queries.jsonl", root / "queries.jsonl")
        else:
            with (root / "corpus.jsonl").open("w", encoding="utf-8") as out:
                for doc in source.docs():
                    out.write(
                        json.dumps({"_id": doc.id, "title": doc.title, "text": doc.text}, ensure_ascii=False)
                        + "\n"
                    )
            self._queries: dict[str, str] = {}

    def split(self, name: str, qrels: QrelsDict, queries: Mapping[str, str]) -> None:
        if self.msmarco:
            with (self.root / f"queries.{name}.tsv").open("w", encoding="utf-8") as out:
                for qid in qrels:
                    out.write(f"{qid}\t{queries[qid]}\n")
            with (self.root / f"qrels.{name}.tsv").open("w", encoding="utf-8") as out:
                for qid, docs in qrels.items():
                    out.writelines(f"{qid}\t0\t{d}\t{r}\n" for d, r in docs.items())
            return
        if not isinstance(self.source, BeirDataset):
            self._queries.update({qid: queries[qid] for qid in qrels})
        (self.root / "qrels").mkdir(exist_ok=True)
        with (self.root / "qrels" / f"{name}.tsv").open("w", encoding="utf-8") as out:
            out.write("query-id\tcorpus-id\tscore\n")
            for qid, docs in qrels.items():
                out.writelines(f"{qid}\t{d}\t{r}\n" for d, r in docs.items())

    def close(self) -> None:
        if not self.msmarco and not isinstance(self.source, BeirDataset):
            with (self.root / "queries.jsonl").open("w", encoding="utf-8") as out:
                for qid, text in self._queries.items():
                    out.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")


def simulate_pool(
    dataset: Dataset,
    split: str,
    run_paths: Sequence[str | Path],
    depth: int,
    out: str | Path,
    train_fraction: float | None = None,
    seed: int = 0,
    held_out: str = "test",
) -> dict[str, Any]:
    """Write a copy of ``dataset`` whose ``split`` qrels keep only a depth-``depth`` pool.

    Args:
        dataset: The deeply judged collection.
        split: The split whose judgments are pooled.
        run_paths: TREC runs forming the pool.
        depth: Pool depth per run.
        out: New dataset folder (must not exist or be empty).
        train_fraction: For collections with one split: put this fraction of its queries
            (seeded) in a ``train`` split with pooled qrels (+ ``train-hidden``); the rest
            become ``test`` with their full judgments.
        seed: Seed of the query split.
        held_out: Name of the split of held-out queries (``test``; e.g. ``dev`` to carve a
            development split out of a collection's ``train`` split, keeping its other splits).

    Returns:
        The summary also written to ``pool.json`` in ``out``.
    """
    qrels = dataset.qrels(split)
    queries = dataset.queries(split)
    runs = [read_run(path) for path in run_paths]
    if not runs:
        raise InputError("the pool needs at least one run (--pool-run)")
    for path, run in zip(run_paths, runs, strict=True):
        if not set(run) & set(qrels):
            raise InputError(f"run shares no query with split {split!r} of {dataset.name}", path)
    pool = judging_pool(runs, depth)
    others = [s for s in dataset.splits() if s != split]
    summary: dict[str, Any] = {
        "source": dataset.describe(),
        "split": split,
        "depth": depth,
        "runs": [str(p) for p in run_paths],
        "pool_file": pool_file_name(split if train_fraction is None else "train"),
        "splits": {},
    }
    with atomic_directory(out) as tmp:
        writer = _Writer(dataset, tmp)
        if train_fraction is None:
            pooled, hidden = split_qrels(qrels, pool)
            writer.split(split, pooled, queries)
            writer.split(f"{split}-hidden", hidden, queries)
            write_pool(tmp / pool_file_name(split), pool, list(qrels))
            summary["splits"][split] = _stats(pooled, hidden)
            for other in others:
                writer.split(other, dataset.qrels(other), dataset.queries(other))
        else:
            clash = {"train", "train-hidden", held_out} & set(others)
            if clash:
                raise InputError(
                    f"dataset {dataset.name!r} already has splits {sorted(clash)}; "
                    "--train-fraction needs new split names (--held-out-split NAME)"
                )
            train, test = split_queries(list(qrels), train_fraction, seed)
            pooled, hidden = split_qrels({q: qrels[q] for q in train}, pool)
            writer.split("train", pooled, queries)
            writer.split("train-hidden", hidden, queries)
            write_pool(tmp / pool_file_name("train"), pool, train)
            writer.split(held_out, {q: qrels[q] for q in test}, queries)
            for other in others:
                writer.split(other, dataset.qrels(other), dataset.queries(other))
            summary.update(train_fraction=train_fraction, seed=seed)
            summary["splits"]["train"] = _stats(pooled, hidden)
            summary["splits"][held_out] = {"queries": len(test), "judgments": "full"}
        writer.close()
        (tmp / "pool.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    logger.info("pooled dataset written to %s: %s", out, summary["splits"])
    return summary
