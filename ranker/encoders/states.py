"""A frozen backbone's token states, computed once and read back through memory maps.

A pooler, an adapter on the pooled vector or a selection model trained on top of a *fixed*
backbone sees the same hidden states at every step, so ``ranker cache-states`` runs the
backbone once over a corpus and its queries and training reads the states back
(:class:`~ranker.encoders.cached.CachedBackbone`). Layout of a cache folder::

    states_config.json                       # settings + fingerprint (what every reader checks)
    corpus/shard-00000-of-00001/             # one part per text set, one shard per rank
        progress.json                        # done / complete, as in ``ranker encode``
        ids.txt                              # the texts' ids, one a line
        keys.u64                             # hash of each text as the tokenizer saw it
        offsets.i64                          # (count + 1) token offsets of the texts
        input_ids.i32                        # token ids, all texts end to end
        layer-06.bf16                        # (tokens, hidden) states of hidden state 6
    queries-train/shard-00000-of-00001/ ...

Texts are ragged (no padding is stored); states are float32 or bfloat16 (stored as raw 16-bit
words). A text is looked up by the hash of the exact string the tokenizer received
(prefix included), so the trainer and the indexer find a text's states without ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from ranker.encoders.backbone import autocast
from ranker.encoders.corpus import shard_range, shard_stem, write_json
from retrievers.errors import InputError
from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)

CONFIG_NAME = "states_config.json"
STORAGE = {"float32": ("f32", np.float32), "bfloat16": ("bf16", np.uint16)}
LAYER_PARAM = re.compile(r"(?:^|\.)(?:layer|layers|h|block|blocks)\.(\d+)\.")


# -- fingerprints -------------------------------------------------------------------------------
def text_key(text: str) -> int:
    """64-bit hash of a text exactly as the tokenizer receives it."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def weights_fingerprint(model: torch.nn.Module, below_layer: int) -> str:
    """Content hash of the parameters that feed hidden states ``0 .. below_layer``: every
    parameter outside the numbered transformer layers (embeddings, final norm, unused heads)
    and those of layers ``0 .. below_layer - 1``; BERT's ``pooler`` head, which no hidden
    state depends on, is left out. Independent of file bytes and of what was
    trained above the boundary, so a model trained on top of the cache still matches it."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        match = LAYER_PARAM.search(name)
        if (match and int(match.group(1)) >= below_layer) or name.startswith("pooler."):
            continue  # above the boundary, or BERT's unused pooling head (never in hidden states)
        digest.update(name.encode())
        digest.update(param.detach().to(torch.float32).contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Content hash of a tokenizer (its serialized fast tokenizer, or vocabulary)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:  # truncation/padding are call settings the tokenizer keeps, not content
        state = {k: v for k, v in json.loads(backend.to_str()).items() if k not in ("truncation", "padding")}
        text = json.dumps(state, sort_keys=True)
    else:
        text = json.dumps(tokenizer.get_vocab(), sort_keys=True)
    extra = json.dumps(
        [tokenizer.padding_side, str(tokenizer.pad_token), str(tokenizer.eos_token)], sort_keys=True
    )
    return hashlib.sha256((text + extra).encode()).hexdigest()[:16]


def texts_fingerprint(items: Iterable[tuple[str, str]]) -> str:
    """Content hash of ``(id, text)`` pairs in order (a corpus, a query set)."""
    digest = hashlib.sha256()
    for item_id, text in items:
        digest.update(item_id.encode())
        digest.update(b"\0")
        digest.update(text.encode())
        digest.update(b"\1")
    return digest.hexdigest()[:16]


def describe_mismatch(cache: Path, wanted: dict[str, Any], found: dict[str, Any]) -> str:
    """One line naming each differing key with both sides."""
    parts = [
        f"{key}: cache has {found.get(key)!r}, this run has {wanted.get(key)!r}"
        for key in sorted(set(wanted) | set(found))
        if key in wanted and wanted.get(key) != found.get(key)
    ]
    return f"states cache {cache} was made for another setup ({'; '.join(parts)})"


# -- writing ------------------------------------------------------------------------------------
def estimate_bytes(tokens: int, hidden: int, layers: int, dtype: str) -> int:
    """Bytes on disk for ``tokens`` token states of ``layers`` layers (plus ids and offsets)."""
    width = np.dtype(STORAGE[dtype][1]).itemsize
    return tokens * (hidden * layers * width + 4) + 16 * (tokens // 64 + 1)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def check_or_write_config(out: Path, config: dict[str, Any]) -> None:
    """Record ``config`` in a new cache folder, or check it against the one there (resume)."""
    path = out / CONFIG_NAME
    if path.is_file():
        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing != config:
            raise InputError(describe_mismatch(out, config, existing) + "; resume with the same settings")
        return
    if out.exists() and any(out.iterdir()):
        raise InputError("exists and holds other files; choose an empty or new folder", out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, config)


def open_states(
    shard: Path, layer: int, dtype: str, tokens: int, hidden: int, mode: Literal["r", "r+", "w+"]
) -> np.memmap:
    """The (tokens, hidden) memory map of one hidden layer's states in a shard folder."""
    suffix, storage = STORAGE[dtype]
    return np.memmap(
        shard / f"layer-{layer:02d}.{suffix}", dtype=storage, mode=mode, shape=(max(tokens, 1), hidden)
    )


@dataclass
class StateWriter:
    """Writes one part (a text set) of a cache: this rank's shard, resumable.

    Args:
        forward: ``padded features -> tuple of hidden states`` (the frozen backbone).
        tokenize: ``texts -> list of token-id lists`` (truncated, unpadded).
        pad: ``list of token-id lists -> padded features``.
        layers: Hidden-state indices to keep.
        hidden: Hidden size.
        dtype: ``"float32"`` or ``"bfloat16"`` (storage, and the forward's autocast).
        device: Where the forward runs (its autocast's device type).
    """

    forward: Callable[[dict[str, torch.Tensor]], Sequence[torch.Tensor]]
    tokenize: Callable[[list[str]], list[list[int]]]
    pad: Callable[[list[list[int]]], dict[str, torch.Tensor]]
    layers: list[int]
    hidden: int
    dtype: str
    batch_size: int = 32
    block_size: int = 2048
    device: str = "cpu"

    def write(
        self,
        folder: Path,
        items: Sequence[tuple[str, str]],
        rank: int = 0,
        world: int = 1,
        show_progress: bool = True,
    ) -> Path:
        """Cache this rank's slice of ``items`` (``(id, text)``) into ``folder``."""
        start, stop = shard_range(len(items), rank, world)
        shard = folder / shard_stem(rank, world)
        progress_path = shard / "progress.json"
        mine = items[start:stop]
        progress: dict[str, Any] = {"done": 0, "complete": False}
        if progress_path.is_file():
            progress = json.loads(progress_path.read_text(encoding="utf-8"))
            if progress.get("count") != len(mine):
                raise InputError("shard does not match this text set; choose another --out", progress_path)
            if progress["complete"]:
                logger.info("%s: already complete", shard)
                return shard
            lengths = np.fromfile(shard / "offsets.i64", dtype=np.int64)
        else:
            shard.mkdir(parents=True, exist_ok=True)
            lengths = np.zeros(len(mine) + 1, dtype=np.int64)
            for b in range(0, len(mine), self.block_size):
                counted = self.tokenize([text for _, text in mine[b : b + self.block_size]])
                lengths[b + 1 : b + 1 + len(counted)] = [len(row) for row in counted]
            np.cumsum(lengths, out=lengths)
            total = int(lengths[-1])
            with atomic_write(shard / "ids.txt") as handle:
                handle.writelines(f"{item_id}\n" for item_id, _ in mine)
            keys = np.array([text_key(text) for _, text in mine], dtype=np.uint64)
            keys.tofile(shard / "keys.u64")
            lengths.tofile(shard / "offsets.i64")
            np.memmap(shard / "input_ids.i32", dtype=np.int32, mode="w+", shape=(max(total, 1),)).flush()
            for layer in self.layers:
                open_states(shard, layer, self.dtype, total, self.hidden, "w+").flush()
            progress = {"count": len(mine), "tokens": total, "done": 0, "complete": False}
            write_json(progress_path, progress)
        offsets = lengths
        total = int(offsets[-1])
        token_ids = np.memmap(shard / "input_ids.i32", dtype=np.int32, mode="r+", shape=(max(total, 1),))
        arrays = {
            layer: open_states(shard, layer, self.dtype, total, self.hidden, "r+") for layer in self.layers
        }
        done = int(progress["done"])
        autocast_dtype = torch.bfloat16 if self.dtype == "bfloat16" else None
        with tqdm(
            total=len(mine),
            initial=done,
            disable=not show_progress,
            desc=f"states {folder.name}",
            unit="text",
        ) as bar:
            while done < len(mine):
                block = mine[done : done + self.block_size]
                ids = self.tokenize([text for _, text in block])
                order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
                for b in range(0, len(order), self.batch_size):
                    rows = order[b : b + self.batch_size]
                    features = self.pad([ids[i] for i in rows])
                    with torch.inference_mode(), autocast(self.device, autocast_dtype):
                        hidden = self.forward(features)
                    mask = features["attention_mask"].bool()
                    where = _positions(offsets, done, rows, ids)
                    for layer in self.layers:
                        states = hidden[layer].cpu()[mask]  # (real tokens, H), rows in batch order
                        arrays[layer][where] = _to_storage(states, self.dtype)
                    token_ids[where] = features["input_ids"][mask].numpy().astype(np.int32)
                    bar.update(len(rows))
                for array in (*arrays.values(), token_ids):
                    array.flush()
                done += len(block)
                write_json(progress_path, {**progress, "done": done, "complete": done == len(mine)})
        write_json(progress_path, {**progress, "done": done, "complete": True})
        return shard


def _positions(offsets: np.ndarray, base: int, rows: list[int], ids: list[list[int]]) -> np.ndarray:
    """Flat token positions of ``rows`` (indices into the block starting at ``base``), in order."""
    return np.concatenate(
        [np.arange(offsets[base + r], offsets[base + r] + len(ids[r]), dtype=np.int64) for r in rows]
    )


def _to_storage(states: torch.Tensor, dtype: str) -> np.ndarray:
    if dtype == "bfloat16":
        return states.to(torch.bfloat16).contiguous().view(torch.int16).numpy().view(np.uint16)
    return states.float().numpy()


# -- reading ------------------------------------------------------------------------------------
class _Shard:
    """One complete shard, memory-mapped on first use."""

    def __init__(self, path: Path, layers: list[int], hidden: int, dtype: str) -> None:
        progress_path = path / "progress.json"
        if not progress_path.is_file():
            raise InputError("incomplete states cache shard (no progress.json); rerun cache-states", path)
        progress = json.loads(progress_path.read_text(encoding="utf-8"))
        if not progress.get("complete"):
            raise InputError(
                f"incomplete states cache shard ({progress.get('done')} of {progress.get('count')}); "
                "rerun the same cache-states command to resume",
                path,
            )
        self.path, self.hidden, self.dtype = path, hidden, dtype
        self.offsets = np.fromfile(path / "offsets.i64", dtype=np.int64)
        self.keys = np.fromfile(path / "keys.u64", dtype=np.uint64)
        self.tokens = int(self.offsets[-1])
        self.input_ids = np.memmap(
            path / "input_ids.i32", dtype=np.int32, mode="r", shape=(max(self.tokens, 1),)
        )
        self.layers = {layer: open_states(path, layer, dtype, self.tokens, hidden, "r") for layer in layers}


class StatesCache:
    """Read access to a cache folder: look texts up by content, gather their token states.

    Args:
        directory: A folder written by ``ranker cache-states``.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        path = self.directory / CONFIG_NAME
        if not path.is_file():
            raise InputError(
                f"not a states cache (no {CONFIG_NAME}); make one with `ranker cache-states`", self.directory
            )
        self.config: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self.layers: list[int] = [int(i) for i in self.config["layers"]]
        self.hidden = int(self.config["hidden_size"])
        self.dtype: str = self.config["dtype"]
        self.max_length = int(self.config["max_length"])
        self.shards: list[_Shard] = []
        self._index: dict[int, tuple[int, int]] = {}
        for part in self.config["parts"]:
            for rank in range(int(self.config["world_size"])):
                shard_path = self.directory / part / shard_stem(rank, int(self.config["world_size"]))
                shard = _Shard(shard_path, self.layers, self.hidden, self.dtype)
                number = len(self.shards)
                self.shards.append(shard)
                for row, key in enumerate(shard.keys.tolist()):
                    self._index.setdefault(int(key), (number, row))

    def __len__(self) -> int:
        return len(self._index)

    def __deepcopy__(self, memo: dict) -> StatesCache:
        """Read-only and memory-mapped: copies of a model share one cache."""
        return self

    @property
    def fingerprint(self) -> dict[str, Any]:
        """What a reader must match: weights, tokenizer, max length, dtype, text sets."""
        return dict(self.config["fingerprint"])

    def check(self, wanted: dict[str, Any]) -> None:
        """Refuse a reader whose setup differs (one line naming both sides)."""
        found = self.fingerprint
        if any(key in found and found[key] != value for key, value in wanted.items()):
            raise InputError(describe_mismatch(self.directory, wanted, found))

    def locate(self, texts: Sequence[str]) -> list[tuple[int, int]]:
        """``(shard, row)`` of each text; a text that is not cached is an error."""
        out = []
        for text in texts:
            where = self._index.get(text_key(text))
            if where is None:
                preview = text[:60].replace("\n", " ")
                raise InputError(
                    f"text not in the states cache: {preview!r} (cache-states must cover every "
                    "query and document the model reads, with the same prefixes)",
                    self.directory,
                )
            out.append(where)
        return out

    def token_ids(self, where: Sequence[tuple[int, int]]) -> list[list[int]]:
        """The cached token ids of each located text."""
        out = []
        for shard_no, row in where:
            shard = self.shards[shard_no]
            out.append(shard.input_ids[shard.offsets[row] : shard.offsets[row + 1]].tolist())
        return out

    def gather(self, layer: int, where: Sequence[tuple[int, int]], length: int, left: bool) -> torch.Tensor:
        """States (B, length, H) of one hidden layer for the located texts, zero-padded on the
        right (or left), as float32 (bfloat16 caches are widened exactly)."""
        if layer not in self.layers:
            raise InputError(
                f"hidden state {layer} is not cached (cached: {self.layers}); rerun cache-states "
                "with --layers covering the pooler's layers",
                self.directory,
            )
        _, storage = STORAGE[self.dtype]
        out = np.zeros((len(where), length, self.hidden), dtype=storage)
        for i, (shard_no, row) in enumerate(where):
            shard = self.shards[shard_no]
            lo, hi = int(shard.offsets[row]), int(shard.offsets[row + 1])
            n = hi - lo
            span = slice(length - n, length) if left else slice(0, n)
            out[i, span] = shard.layers[layer][lo:hi]
        tensor = torch.from_numpy(out)
        if self.dtype == "bfloat16":
            return tensor.view(torch.int16).view(torch.bfloat16).float()
        return tensor
