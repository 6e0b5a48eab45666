"""Hard-negative mining: candidates -> filters (-> promotion) -> seeded sampler -> atomic,
resumable writer.

:func:`mine` streams queries in chunks through the stages and appends finished queries to a
hidden partial file beside the output. Interrupted, it leaves that file; rerun with the same
settings, it skips the queries already written (no duplicates) and finishes. Each query's
sample depends only on the seed and its id, so a resumed run writes the same file as an
uninterrupted one. The output appears only when complete, with a ``.stats.json`` sidecar
counting what each filter dropped.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.mining.candidates import Searcher, iter_candidates, merge_hits, positive_score
from retrievers.mining.evidence import Evidence
from retrievers.mining.filters import (
    CrossEncoderDenoise,
    ExcludeKnownRelevant,
    ExcludePositives,
    Filter,
    MarginToPositive,
    PairScorer,
    PercentOfPositive,
    QueryContext,
    RankWindow,
    apply_filters,
)
from retrievers.mining.negatives import MinedQuery, Negative, iter_negatives
from retrievers.mining.promote import Judge, Promote
from retrievers.mining.sampler import STRATEGIES, query_rng, sample, simans_log_weights
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiningConfig:
    """Mining settings (the names follow sentence-transformers' ``mine_hard_negatives``).

    Attributes:
        depth: Candidates retrieved per query and index.
        min_rank: Best rank a negative may have (1-based; e.g. 10 skips the top 9).
        max_rank: Worst rank a negative may have (default: ``depth``).
        num_negatives: Negatives kept per query.
        sampling: ``top``, ``random`` or ``simans`` among the filtered candidates.
        seed: Seed of the random sampler.
        max_relative: TopK-PercPos: drop candidates scoring above this fraction of the
            positive's score (e.g. 0.95).
        margin: TopK-MarginPos: drop candidates scoring above the positive's score minus this.
        ce_threshold: With a cross-encoder scorer, drop candidates it scores above this.
        min_relevance: Lowest qrels grade that counts as a positive.
        chunk_size: Queries retrieved at a time.
        promote_margin: With a judge, promote candidates it scores above the best
            positive's judge score plus this to positives (RLHN relabelling).
        simans_a: SimANS ``a`` (sharpness of ``exp(-a (s- - s+ - b)^2)``), with
            ``sampling="simans"``; ``s+`` is the mean score of the query's positives in the
            retriever that scored the candidate.
        simans_b: SimANS ``b`` (where the sampling probability peaks, relative to ``s+``).
    """

    depth: int = 100
    min_rank: int = 1
    max_rank: int | None = None
    num_negatives: int = 8
    sampling: str = "top"
    seed: int = 42
    max_relative: float | None = None
    margin: float | None = None
    ce_threshold: float | None = None
    min_relevance: int = 1
    chunk_size: int = 256
    promote_margin: float | None = None
    simans_a: float = 1.0
    simans_b: float = 0.0

    def __post_init__(self) -> None:
        max_rank = self.depth if self.max_rank is None else self.max_rank
        if self.depth < 1 or self.num_negatives < 1 or self.chunk_size < 1:
            raise InputError("depth, num_negatives and chunk_size must be at least 1")
        if not 1 <= self.min_rank <= max_rank <= self.depth:
            raise InputError(
                f"rank window {self.min_rank}..{max_rank} must satisfy "
                f"1 <= min_rank <= max_rank <= depth ({self.depth})"
            )
        if self.sampling not in STRATEGIES:
            raise InputError(f"unknown sampling {self.sampling!r}; expected {', '.join(STRATEGIES)}")
        if not 0 <= self.seed < 2**32:
            raise InputError(f"seed must be from 0 to {2**32 - 1}, got {self.seed}")
        if self.simans_a <= 0:
            raise InputError(f"simans_a must be positive, got {self.simans_a}")
        if self.max_relative is not None and self.max_relative <= 0:
            raise InputError(f"max_relative must be positive, got {self.max_relative}")

    @property
    def window(self) -> tuple[int, int]:
        """The rank window as ``(min_rank, max_rank)``."""
        return self.min_rank, self.depth if self.max_rank is None else self.max_rank


def positives_from_qrels(
    queries: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    min_relevance: int = 1,
    corpus: Callable[[str], bool] | None = None,
    source: str | None = None,
) -> dict[str, list[str]]:
    """Map each query to its positive document ids (grade >= ``min_relevance``).

    Queries without a positive are left out (the caller logs how many).

    Raises:
        InputError: qrels name a query not in ``queries``, or a document ``corpus`` lacks.
    """
    positives: dict[str, list[str]] = {}
    for qid, docs in qrels.items():
        if qid not in queries:
            raise InputError(f"qrels name query {qid!r}, which has no text", source)
        if corpus is not None:
            unknown = sorted(d for d in docs if not corpus(d))
            if unknown:
                raise InputError(
                    f"qrels of query {qid!r} name document {unknown[0]!r}, which "
                    f"is not in the index ({len(unknown)} unknown)",
                    source,
                )
        pos = [docid for docid, rel in docs.items() if rel >= min_relevance]
        if pos:
            positives[qid] = pos
    return positives


def _paths(out: Path) -> tuple[Path, Path, Path]:
    partial = out.parent / f".{out.name}.partial"
    return partial, partial.with_name(partial.name + ".json"), out.with_suffix(".stats.json")


def _resume(partial: Path, state_path: Path, state: dict[str, Any], chunk_size: int) -> set[str]:
    """Check an interrupted run matches ``state``; return the query ids it finished.

    Only whole chunks are kept: queries of a chunk cut short are mined again with the rest
    of their chunk, so every query is encoded in the same batch as in an uninterrupted run
    and the resumed file is byte-identical (batch composition moves float scores slightly).
    """
    if not partial.exists():
        with atomic_write(state_path) as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
        partial.write_bytes(b"")
        return set()
    previous = json.loads(state_path.read_text(encoding="utf-8")) if state_path.exists() else None
    if previous != state:
        raise InputError(
            "an interrupted mining run with other settings left this file; rerun "
            "with the same settings to resume, or delete it",
            partial,
        )
    data = partial.read_bytes()
    lines = data[: data.rfind(b"\n") + 1].splitlines(keepends=True)  # drops a line cut short
    keep = len(lines) // chunk_size * chunk_size
    with partial.open("r+b") as handle:
        handle.truncate(sum(len(line) for line in lines[:keep]))
    try:
        done = {rec.qid for rec in iter_negatives(partial)}
    except InputError as err:  # damaged (two old writers at once): keep the whole chunks before
        good = ((err.line or 1) - 1) // chunk_size * chunk_size
        logger.warning("%s; mining again from query %d", err, good + 1)
        with partial.open("r+b") as handle:
            handle.truncate(sum(len(line) for line in lines[:good]))
        done = {rec.qid for rec in iter_negatives(partial)}
    logger.info("resuming: %d queries already mined in %s", len(done), partial)
    return done


def mine(
    queries: Mapping[str, str],
    positives: Mapping[str, Sequence[str]],
    searchers: Mapping[str, Searcher],
    out: str | Path,
    config: MiningConfig,
    scorer: PairScorer | None = None,
    doc_text: Callable[[str], str] | None = None,
    progress: bool = True,
    source: Mapping[str, Any] | None = None,
    evidence: Mapping[str, Searcher] | None = None,
    judge: Judge | None = None,
    exclude: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, Any]:
    """Mine hard negatives for every query with positives and write them to ``out``.

    Args:
        queries: Query id -> text (queries without positives are skipped and counted).
        positives: Query id -> known positive document ids (see :func:`positives_from_qrels`).
        searchers: Retriever label -> searcher; the label is stored with each negative.
        out: The negatives JSONL to write; must not exist.
        config: Mining settings.
        scorer: Optional cross-encoder ``score(queries, docs)`` for RocketQA denoising.
        doc_text: Document id -> text (needed with ``scorer``).
        progress: Show a progress bar.
        source: What the caller mined from (dataset, split, index folders); JSON-safe. It
            must match to resume, and is saved in the stats as ``source`` so that a rerun
            can tell the output came from the same command (see :func:`same_source`).
        evidence: More retrievers whose ranks and scores are recorded for every negative
            and positive (see :mod:`retrievers.mining.evidence`) without contributing
            candidates, e.g. the run that built a judging pool.
        judge: With ``config.promote_margin``, the named scorer whose verdict promotes
            candidates (after the known-positive and rank-window filters, before the others)
            to positives (see :mod:`retrievers.mining.promote`); needs ``doc_text``.
        exclude: Query id -> documents never to take as negatives (counted as
            ``hidden_positive``), e.g. the relevant documents a judging pool missed: the
            clean-negatives oracle (see :class:`~retrievers.mining.filters.ExcludeKnownRelevant`).

    Returns:
        The statistics also saved in the ``.stats.json`` sidecar.
    """
    out = Path(out)
    if out.exists():
        raise FileExistsError(f"{out}: output exists; remove it or choose another name")
    if not searchers:
        raise InputError("mining needs at least one index")
    evidence = dict(evidence or {})
    if set(evidence) & set(searchers):
        both = sorted(set(evidence) & set(searchers))
        raise InputError(f"an index is both a candidate and an evidence index: {both}")
    if (scorer is None) != (config.ce_threshold is None):
        raise InputError("cross-encoder rescoring needs both a scorer and ce_threshold")
    if scorer is not None and doc_text is None:
        raise InputError("cross-encoder rescoring needs document texts (doc_text)")
    if (judge is None) != (config.promote_margin is None):
        raise InputError("promotion needs both a judge and promote_margin")
    if judge is not None and doc_text is None:
        raise InputError("promotion needs document texts (doc_text)")
    todo = {qid: text for qid, text in queries.items() if positives.get(qid)}
    if not todo:
        raise InputError("no query has a positive judgment; nothing to mine")
    base: list[Filter] = [ExcludePositives()]
    if exclude is not None:
        base.append(ExcludeKnownRelevant({q: frozenset(d) for q, d in exclude.items()}))
    base.append(RankWindow(*config.window))
    promote = (
        Promote(judge, doc_text, config.promote_margin)
        if judge is not None and doc_text is not None and config.promote_margin is not None  # checked above
        else None
    )
    filters: list[Filter] = []
    if config.max_relative is not None:
        filters.append(PercentOfPositive(config.max_relative))
    if config.margin is not None:
        filters.append(MarginToPositive(config.margin))
    if scorer is not None and doc_text is not None and config.ce_threshold is not None:  # checked above
        filters.append(CrossEncoderDenoise(scorer, doc_text, config.ce_threshold))
    need_pos = config.max_relative is not None or config.margin is not None
    out.parent.mkdir(parents=True, exist_ok=True)
    partial, state_path, stats_path = _paths(out)
    state = {
        "config": asdict(config),
        "retrievers": list(searchers),
        "evidence": list(evidence),
        "queries": len(todo),
        "scorer": scorer is not None,
        "judge": judge.name if judge is not None else None,
        "source": dict(source or {}),
        **({"excluded": sum(map(len, exclude.values()))} if exclude is not None else {}),
    }
    done = _resume(partial, state_path, state, config.chunk_size)
    remaining = {qid: text for qid, text in todo.items() if qid not in done}
    with (
        partial.open("a", encoding="utf-8") as handle,
        tqdm(
            total=len(todo), initial=len(done), desc="mining", unit="q", disable=bars_disabled(progress)
        ) as bar,
    ):
        for i, (qid, hits) in enumerate(
            iter_candidates({**searchers, **evidence}, remaining, config.depth, config.chunk_size), start=1
        ):
            pos = list(positives[qid])
            found = Evidence.of(hits, config.depth)
            hits = {name: hits[name] for name in searchers}
            scores = {
                name: positive_score(searchers[name], todo[qid], pos, hits[name]) if need_pos else None
                for name in searchers
            }
            ctx = QueryContext(qid, todo[qid], frozenset(pos), scores)
            cands = merge_hits(hits)
            kept, dropped = apply_filters(base, ctx, cands)
            promoted: dict[str, dict[str, Any]] = {}
            if promote is not None:
                kept, promoted = promote(ctx, kept)
                dropped[promote.name] = len(promoted)
            kept, more = apply_filters(filters, ctx, kept)
            dropped.update(more)
            log_weights = None
            strategy = config.sampling
            if strategy == "simans" and len(kept) > config.num_negatives:
                log_weights = _simans(config, searchers, todo[qid], pos, hits, kept)
                if log_weights is None:  # no positive score: uniform, marked on the line
                    strategy = "random"
            rng = query_rng(config.seed, qid)
            chosen = sample(kept, config.num_negatives, strategy, rng, log_weights)
            negatives = [
                Negative(
                    c.docid,
                    c.rank,
                    c.score,
                    c.retriever,
                    {**({"ce_score": c.ce_score} if hasattr(c, "ce_score") else {}), **found.of_doc(c.docid)},
                )
                for c in chosen
            ]
            counts = {"candidates": len(cands), **dropped, "sampled_out": len(kept) - len(chosen)}
            pos = pos + list(promoted)
            extra = {"filter_counts": counts, **found.of_query(pos)}
            if promoted:
                extra["promoted"] = promoted
            if strategy != config.sampling:
                extra["simans_fallback"] = "random"
            handle.write(MinedQuery(qid, todo[qid], pos, negatives, extra).to_json() + "\n")
            bar.update(1)
            if i % config.chunk_size == 0:
                handle.flush()
                os.fsync(handle.fileno())
    stats = _finish(partial, out, len(queries) - len(todo))
    stats["config"] = asdict(config)
    stats["retrievers"] = list(searchers)
    stats["evidence"] = list(evidence)
    stats["source"] = dict(source or {})
    if judge is not None:
        stats["judge"] = judge.name
    if config.sampling == "simans":
        stats["simans_uniform_fallback"] = stats.pop("fallback")
        if stats["simans_uniform_fallback"]:
            logger.warning(
                "%d queries had no known positive score in a candidate's retriever; their "
                "negatives were sampled uniformly instead of by SimANS",
                stats["simans_uniform_fallback"],
            )
    else:
        stats.pop("fallback")
    with atomic_write(stats_path) as handle:
        json.dump(stats, handle, indent=2)
        handle.write("\n")
    partial.unlink()
    state_path.unlink()
    logger.info(
        "mined %d negatives for %d queries -> %s; dropped per filter: %s",
        stats["negatives"],
        stats["queries_written"],
        out,
        stats["dropped"],
    )
    return stats


def _simans(
    config: MiningConfig,
    searchers: Mapping[str, Searcher],
    query: str,
    positives: Sequence[str],
    hits: Mapping[str, Sequence[tuple[str, float]]],
    kept: Sequence[Any],
) -> np.ndarray | None:
    """SimANS log-weights of ``kept`` (one per candidate), the positive score being the mean
    over the query's positives in the candidate's retriever; ``None`` if one is unknown."""
    wanted = {c.retriever for c in kept}
    pos = {name: positive_score(searchers[name], query, positives, hits[name], "mean") for name in wanted}
    if any(score is None for score in pos.values()):
        return None
    return simans_log_weights(
        np.array([c.score for c in kept]),
        np.array([pos[c.retriever] for c in kept]),
        config.simans_a,
        config.simans_b,
    )


def same_source(out: str | Path, config: MiningConfig, source: Mapping[str, Any]) -> bool:
    """Whether the finished negatives file ``out`` was mined with ``config`` from ``source``
    (read from its ``.stats.json``, written last, so its presence means ``out`` is complete)."""
    stats_path = _paths(Path(out))[2]
    try:
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return stats.get("config") == asdict(config) and stats.get("source") == json.loads(json.dumps(source))


def _finish(partial: Path, out: Path, without_positives: int) -> dict[str, Any]:
    """Copy finished records (queries with >= 1 negative) to ``out``; total the counts."""
    dropped: Counter[str] = Counter()
    written = empty = negatives = candidates = promoted = fallback = 0
    by_retriever: Counter[str] = Counter()
    with atomic_write(out) as handle:
        for rec in iter_negatives(partial):
            counts = dict(rec.extra.get("filter_counts", {}))
            candidates += counts.pop("candidates", 0)
            dropped.update(counts)
            if not rec.negatives:
                empty += 1
                continue
            written += 1
            negatives += len(rec.negatives)
            promoted += len(rec.extra.get("promoted", {}))
            fallback += "simans_fallback" in rec.extra
            by_retriever.update(n.retriever for n in rec.negatives)
            handle.write(rec.to_json() + "\n")
    if empty:
        logger.warning("%d queries had no candidate left after filtering; left out", empty)
    if without_positives:
        logger.warning("%d queries have no positive judgment; skipped", without_positives)
    return {
        "queries_written": written,
        "queries_without_positives": without_positives,
        "queries_without_negatives": empty,
        "candidates": candidates,
        "dropped": dict(dropped),
        "negatives": negatives,
        "negatives_by_retriever": dict(by_retriever),
        "promoted": promoted,
        "fallback": fallback,
    }
