"""Resumable, shardable corpus encoding into memory-mapped float32 arrays.

Layout of an output folder::

    encode_config.json                 # settings, dataset, dim, count, world size
    shard-00000-of-00002.f32           # raw float32 (rows x dim), memory-mapped while writing
    shard-00000-of-00002.ids.txt       # the shard's document ids, one a line
    shard-00000-of-00002.json          # progress: start, stop, done, complete

Each process of a ``torchrun`` job (``RANK`` / ``WORLD_SIZE``) encodes one contiguous slice of
the corpus; :func:`read_embeddings` checks that every shard is complete and returns the ids
and vectors of all shards as one, in corpus order. An interrupted run resumes from the last
block it recorded, provided the settings are the same.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)

CONFIG_NAME = "encode_config.json"


def shard_range(count: int, rank: int, world_size: int) -> tuple[int, int]:
    """The contiguous slice ``[start, stop)`` of ``count`` items that ``rank`` encodes."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world size {world_size}")
    return count * rank // world_size, count * (rank + 1) // world_size


def shard_stem(rank: int, world_size: int) -> str:
    return f"shard-{rank:05d}-of-{world_size:05d}"


def distributed_rank() -> tuple[int, int]:
    """(rank, world size) from the ``torchrun`` environment, (0, 1) outside it."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented, key-sorted JSON, written atomically."""
    with atomic_write(path) as out:
        json.dump(data, out, indent=2, sort_keys=True)
        out.write("\n")


def _check_config(out: Path, config: dict[str, Any]) -> None:
    """Record ``config`` in a new folder, or check it against the one already there."""
    path = out / CONFIG_NAME
    if path.is_file():
        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing != config:
            changed = sorted(k for k in set(existing) | set(config) if existing.get(k) != config.get(k))
            raise InputError(
                f"holds an encoding made with different settings ({', '.join(changed)}); "
                "resume with the same settings or choose another --out",
                path,
            )
        return
    if out.exists() and any(p.name != CONFIG_NAME and not p.name.startswith("shard-") for p in out.iterdir()):
        raise InputError("exists and holds other files; choose an empty or new folder", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, config)


def encode_to_directory(
    encode: Callable[[Sequence[str]], np.ndarray],
    docs: Callable[[], Iterable[tuple[str, str]]],
    out: str | Path,
    *,
    dim: int,
    settings: dict[str, Any],
    rank: int = 0,
    world_size: int = 1,
    block_size: int = 8192,
    show_progress: bool = True,
) -> Path:
    """Encode this rank's shard of a corpus into ``out``, resuming if interrupted.

    Args:
        encode: Texts -> float32 array (len(texts), dim), e.g. ``BiEncoder.encode_corpus``.
        docs: Called to stream ``(doc_id, text)`` pairs (twice: to count, then to encode).
        out: Output folder (shared by all ranks).
        dim: Embedding width.
        settings: What determines the vectors (model, pooling, dataset, ...); a resumed run
            must have the same settings.
        rank, world_size: This process's shard.
        block_size: Documents encoded between progress records.
        show_progress: tqdm bar.

    Returns:
        The shard's progress file.
    """
    out = Path(out)
    ids = [doc_id for doc_id, _ in docs()]
    config = {**settings, "dim": int(dim), "count": len(ids), "world_size": int(world_size)}
    _check_config(out, config)
    start, stop = shard_range(len(ids), rank, world_size)
    stem = out / shard_stem(rank, world_size)
    progress_path = stem.with_suffix(".json")
    vectors_path = stem.with_suffix(".f32")
    rows = stop - start
    progress = {"rank": rank, "start": start, "stop": stop, "done": 0, "complete": False}
    if progress_path.is_file() and vectors_path.is_file():
        progress = json.loads(progress_path.read_text(encoding="utf-8"))
        if (progress["start"], progress["stop"]) != (start, stop):
            raise InputError("shard range does not match this corpus", progress_path)
        logger.info("resuming shard %d at %d/%d", rank, progress["done"], rows)
    else:
        with atomic_write(stem.with_suffix(".ids.txt")) as handle:
            handle.writelines(f"{doc_id}\n" for doc_id in ids[start:stop])
        np.memmap(vectors_path, dtype=np.float32, mode="w+", shape=(max(rows, 1), dim)).flush()
        write_json(progress_path, progress)
    if progress["complete"]:
        logger.info("shard %d already complete", rank)
        return progress_path
    vectors = np.memmap(vectors_path, dtype=np.float32, mode="r+", shape=(max(rows, 1), dim))
    done = progress["done"]
    texts: list[str] = []
    with tqdm(
        total=rows,
        initial=done,
        disable=bars_disabled(show_progress),
        desc=f"encode shard {rank}",
        unit="doc",
    ) as bar:
        for index, (_, text) in enumerate(docs()):
            if index < start + done:
                continue
            if index >= stop:
                break
            texts.append(text)
            if len(texts) == block_size or index == stop - 1:
                vectors[done : done + len(texts)] = encode(texts)
                vectors.flush()
                done += len(texts)
                bar.update(len(texts))
                texts = []
                write_json(progress_path, {**progress, "done": done, "complete": done == rows})
    if done != rows:
        raise InputError(
            f"the corpus changed while encoding: shard {rank} got {done} of {rows} documents", out
        )
    write_json(progress_path, {**progress, "done": done, "complete": True})
    return progress_path


def read_embeddings(directory: str | Path, mmap: bool = True) -> tuple[list[str], np.ndarray]:
    """Ids and vectors of a folder written by :func:`encode_to_directory`, all shards as one.

    With one shard and ``mmap`` the array is a read-only memory map; several shards are
    concatenated in memory.

    Raises:
        InputError: the folder is not an encoding, or a shard is missing or incomplete.
    """
    directory = Path(directory)
    path = directory / CONFIG_NAME
    if not path.is_file():
        raise InputError(f"not an encoding folder (no {CONFIG_NAME})", directory)
    config = json.loads(path.read_text(encoding="utf-8"))
    world, dim, count = config["world_size"], config["dim"], config["count"]
    ids: list[str] = []
    parts: list[np.ndarray] = []
    for rank in range(world):
        stem = directory / shard_stem(rank, world)
        progress_file = stem.with_suffix(".json")
        if not progress_file.is_file():
            raise InputError(f"shard {rank} of {world} is missing; run the encoding for it", directory)
        progress = json.loads(progress_file.read_text(encoding="utf-8"))
        if not progress.get("complete"):
            raise InputError(
                f"shard {rank} is incomplete ({progress['done']} of "
                f"{progress['stop'] - progress['start']}); resume the encoding",
                progress_file,
            )
        rows = progress["stop"] - progress["start"]
        shard_ids = stem.with_suffix(".ids.txt").read_text(encoding="utf-8").splitlines()
        if len(shard_ids) != rows:
            raise InputError(f"expected {rows} ids, found {len(shard_ids)}", stem.with_suffix(".ids.txt"))
        ids.extend(shard_ids)
        array = np.memmap(stem.with_suffix(".f32"), dtype=np.float32, mode="r", shape=(max(rows, 1), dim))
        parts.append(array[:rows])
    if len(ids) != count:
        raise InputError(f"shards hold {len(ids)} documents, expected {count}", directory)
    vectors = parts[0] if len(parts) == 1 and mmap else np.concatenate(parts, axis=0)
    return ids, vectors
