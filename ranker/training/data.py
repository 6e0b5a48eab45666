"""Training data: a negatives file joined with document texts, cut into deterministic batches.

The negatives file (written by ``ranker mine``) has one JSON object a line::

    {"qid": str, "query": str, "positives": [docid, ...],
     "negatives": [{"docid": str, "rank": int, "score": float, "retriever": str}, ...]}

Batches are a pure function of ``(seed, micro-batch index)``: the query order of epoch ``e``
is a permutation seeded by ``(seed, e)`` and each query's positive and negatives are sampled
with a generator seeded by ``(seed, e, query)``. So a resumed run sees exactly the batches
an uninterrupted one would, with no data-loader state to save.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ranker.training.selection import FeatureEncoder
from retrievers.errors import InputError
from retrievers.mining.negatives import MinedQuery, iter_negatives

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One training query."""

    qid: str
    query: str
    positives: tuple[str, ...]
    negatives: tuple[str, ...]
    features: tuple[tuple[float, ...], ...]  # one vector per negative
    positive_features: tuple[tuple[float, ...], ...] = ()  # one per positive (if the file has evidence)
    path: str | None = field(default=None, compare=False, repr=False)  # the negatives file
    line: int | None = field(default=None, compare=False, repr=False)  # and its line


@dataclass
class Batch:
    """A micro-batch: B queries, each with one positive and n negatives."""

    qids: list[str]
    queries: list[str]
    pos_ids: list[str]
    pos_texts: list[str]
    neg_ids: list[list[str]]
    neg_texts: list[list[str]]
    pos_features: torch.Tensor  # [B, F]
    neg_features: torch.Tensor  # [B, n, F]

    def __len__(self) -> int:
        return len(self.qids)


def read_training_examples(path: str | Path) -> tuple[list[Example], list[str]]:
    """Training examples from a negatives file (read by :func:`retrievers.mining.iter_negatives`);
    returns the usable examples and the retriever names seen.

    See :func:`load_training_examples`, which also returns the feature encoder.
    """
    examples, encoder = load_training_examples(path)
    return examples, encoder.retrievers


def load_training_examples(
    path: str | Path, evidence: Sequence[str] | str = "all"
) -> tuple[list[Example], FeatureEncoder]:
    """Read a negatives file: the usable examples, with the selection features of every
    negative and positive, and the :class:`FeatureEncoder` that made them.

    ``evidence`` picks the retrievers whose ranks and scores the features hold: ``all`` (every
    retriever with evidence in the file), ``pool`` (the evidence-only retrievers, i.e. those
    that mined no negative: ``ranker mine --evidence-index``, the systems that built the
    judging pool; every retriever, with a warning, if there is none) or a list of names.

    Queries with no positive or no negative are skipped (and counted in the log). A file
    with retriever evidence (``evidence_lists`` on each line, written by ``ranker mine``)
    gives positives and negatives the same features; an older file gives positives the
    constant "missing" vector (training with ``selection: features`` warns why that matters).

    Raises:
        InputError: a line is not an object with the fields above (file and line named), or
            ``evidence`` names a retriever the file has no evidence of.
    """
    path = Path(path)
    raw: list[tuple[MinedQuery, list[dict]]] = []
    retrievers: set[str] = set()
    sources: set[str] = set()
    skipped = promoted = 0
    for record in iter_negatives(path):  # validates each line (file and line named)
        promoted += len(record.promoted)  # already among the positives: trained on as such
        negatives = [n.to_dict() for n in record.negatives]
        retrievers.update(n["retriever"] for n in negatives)
        lists = record.extra.get("evidence_lists")
        if isinstance(lists, dict):
            sources.update(lists)
        if not record.positives or not negatives:
            skipped += 1
            continue
        raw.append((record, negatives))
    if not raw:
        raise InputError("no query has both a positive and a negative", path)
    encoder = FeatureEncoder(sorted(retrievers), _chosen_evidence(path, evidence, sources, retrievers))
    examples = [_example(record, negatives, encoder, path) for record, negatives in raw]
    if promoted:
        logger.info("%s: %d positives promoted by a judge are trained on as positives", path, promoted)
    if not sources:
        logger.info("%s has no retriever evidence for positives (mined by an older version)", path)
    logger.info(
        "%s: %d training queries (%d skipped: no positive or no negative)",
        path,
        len(examples),
        skipped,
    )
    return examples, encoder


def _chosen_evidence(
    path: Path, evidence: Sequence[str] | str, sources: set[str], miners: set[str]
) -> list[str]:
    """The retrievers whose evidence the features hold (see :func:`load_training_examples`)."""
    if not sources or evidence == "all":
        return sorted(sources)
    if evidence == "pool":
        pool = sources - miners
        if not pool:
            logger.warning(
                "%s has evidence only of the retrievers that mined it (%s): the feature selection "
                "model sees the miner's ranks and may learn relevance instead of selection; mine "
                "with --evidence-index naming the systems that built the pool",
                path,
                ", ".join(sorted(sources)),
            )
            return sorted(sources)
        return sorted(pool)
    if isinstance(evidence, str):
        raise InputError(f"evidence {evidence!r}: expected 'all', 'pool' or a list of retriever names")
    unknown = sorted(set(evidence) - sources)
    if unknown:
        raise InputError(
            f"selection_evidence names {unknown}, which this file has no evidence of; expected "
            f"some of {sorted(sources)}",
            path,
        )
    return sorted(set(evidence))


def _example(record: MinedQuery, negatives: list[dict], encoder: FeatureEncoder, path: Path) -> Example:
    """One training query, with the features of its negatives and positives."""
    if encoder.evidence:
        lists = record.extra.get("evidence_lists") or {}
        found = record.extra.get("positive_evidence") or {}
        if not isinstance(lists, dict) or not isinstance(found, dict):
            raise InputError("evidence_lists and positive_evidence must be objects", path, record.line)
        features = [encoder.evidence_features(n.get("evidence") or {}, lists) for n in negatives]
        positive_features = [encoder.evidence_features(found.get(p) or {}, lists) for p in record.positives]
    else:
        features, positive_features = encoder.list_features(negatives), []
    return Example(
        record.qid,
        record.query,
        tuple(record.positives),
        tuple(n["docid"] for n in negatives),
        tuple(tuple(v) for v in features),
        tuple(tuple(v) for v in positive_features),
        str(path),
        record.line,
    )


def load_texts(docs: Iterable, wanted: set[str], examples: Sequence[Example] = ()) -> dict[str, str]:
    """Texts (title + text) of the wanted documents, streaming the corpus once.

    Raises:
        InputError: a wanted document is not in the corpus; with ``examples``, the message
            names the negatives file and line of the first query that lists it.
    """
    texts = {doc.id: doc.contents for doc in docs if doc.id in wanted}
    missing = wanted - texts.keys()
    if missing:
        for example in examples:
            unknown = [d for d in (*example.positives, *example.negatives) if d in missing]
            if unknown:
                raise InputError(
                    f"document {unknown[0]!r} (query {example.qid!r}) is not in the corpus "
                    f"({len(missing)} unknown document id(s) in this file)",
                    example.path,
                    example.line,
                )
        raise InputError(
            f"{len(missing)} document id(s) from the negatives file are not in the "
            f"corpus, e.g. {sorted(missing)[0]!r}"
        )
    return texts


class BatchMaker:
    """Deterministic micro-batches over a list of examples.

    Args:
        examples: training queries.
        texts: document id -> text.
        n_negatives: negatives per query (sampled without replacement; with replacement
            when a query has fewer).
        batch_size: queries per global micro-batch.
        seed: the run's seed.
        missing_features: the features of a positive whose example has none (a negatives
            file without evidence).
        negative_depth: sample only among each list's first N negatives (0: all).
    """

    def __init__(
        self,
        examples: list[Example],
        texts: dict[str, str],
        n_negatives: int,
        batch_size: int,
        seed: int,
        missing_features: list[float],
        negative_depth: int = 0,
    ):
        if len(examples) < batch_size:
            raise InputError(
                f"only {len(examples)} training queries; batch_size {batch_size} needs at least that many"
            )
        self.examples, self.texts = examples, texts
        self.n, self.batch_size, self.seed = n_negatives, batch_size, seed
        self.missing = missing_features
        self.depth = negative_depth
        self.per_epoch = len(examples) // batch_size

    def _order(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(len(self.examples))

    def batch(self, index: int, part: int = 0, parts: int = 1) -> Batch:
        """Global micro-batch ``index``; ``part`` of ``parts`` equal shares (one per process)."""
        if self.batch_size % parts:
            raise ValueError(f"batch_size {self.batch_size} is not divisible by {parts} processes")
        epoch, position = divmod(index, self.per_epoch)
        order = self._order(epoch)[position * self.batch_size : (position + 1) * self.batch_size]
        share = self.batch_size // parts
        rows = [self._sample(int(i), epoch) for i in order[part * share : (part + 1) * share]]
        ex = [r[0] for r in rows]
        return Batch(
            qids=[e.qid for e in ex],
            queries=[e.query for e in ex],
            pos_ids=[r[1] for r in rows],
            pos_texts=[self.texts[r[1]] for r in rows],
            neg_ids=[[e.negatives[j] for j in r[2]] for e, r in zip(ex, rows, strict=True)],
            neg_texts=[[self.texts[e.negatives[j]] for j in r[2]] for e, r in zip(ex, rows, strict=True)],
            pos_features=torch.tensor(
                [self._positive_features(e, r[1]) for e, r in zip(ex, rows, strict=True)],
                dtype=torch.float32,
            ),
            neg_features=torch.tensor(
                [[e.features[j] for j in r[2]] for e, r in zip(ex, rows, strict=True)],
                dtype=torch.float32,
            ),
        )

    def _positive_features(self, example: Example, positive: str) -> list[float]:
        if not example.positive_features:
            return self.missing
        return list(example.positive_features[example.positives.index(positive)])

    def _sample(self, i: int, epoch: int) -> tuple[Example, str, list[int]]:
        example = self.examples[i]
        rng = random.Random(f"{self.seed}/{epoch}/{example.qid}")
        positive = rng.choice(example.positives)
        pool = list(range(len(example.negatives)))[: self.depth or None]
        picks = rng.sample(pool, self.n) if len(pool) >= self.n else rng.choices(pool, k=self.n)
        return example, positive, picks
