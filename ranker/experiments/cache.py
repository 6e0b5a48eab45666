"""Step caching: content fingerprints of inputs, step keys, done-markers and the work-folder lock.

A step's key hashes its command (after variable substitution, with the work and spec folders
written as placeholders so a moved checkout keeps its cache), the fingerprints of the files
and folders it reads, and the keys of the steps whose outputs it reads. A step counts as done
only when its done-marker holds the current key and every declared output exists; the marker
is written atomically after the command succeeded.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrievers.io.atomic import atomic_write

logger = logging.getLogger(__name__)

STATE_DIR = ".ranker-run"
_CHUNK = 1 << 20
_RACY_NS = 2_000_000_000


class Fingerprints:
    """sha256 of files and folders, cached by (path, size, mtime) in the work folder."""

    def __init__(self, cache_file: Path):
        self.cache_file = cache_file
        self._work = cache_file.parent.parent.resolve()  # WORK/.ranker-run/fingerprints.json
        self._cache: dict[str, list] = {}
        if cache_file.is_file():
            with contextlib.suppress(ValueError, OSError):
                self._cache = {
                    k: v
                    for k, v in json.loads(cache_file.read_text()).items()
                    if isinstance(v, list) and len(v) == 4
                }
        self._dirty = False

    def of(self, path: Path) -> str:
        """Fingerprint of a file (its bytes) or folder (relative names and file fingerprints)."""
        path = path.resolve()
        if path.is_dir():
            digest = hashlib.sha256()
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                rel = child.relative_to(path).as_posix()
                if any(part.startswith(".") and part.endswith(".tmp") for part in rel.split("/")):
                    continue
                digest.update(rel.encode() + b"\0" + self._file(child).encode() + b"\n")
            return digest.hexdigest()
        return self._file(path)

    def _name(self, path: Path) -> str:
        """The cache key of ``path``: relative to the work folder when inside it (no absolute
        paths of this machine in the work folder's records), else absolute."""
        return path.relative_to(self._work).as_posix() if self._work in path.parents else str(path)

    def _file(self, path: Path) -> str:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns]
        name = self._name(path)
        cached = self._cache.get(name)
        # trust an entry only if the file was older than the hashing by a margin ("racy git"):
        # a write within the same timestamp tick would otherwise go unnoticed
        if cached and cached[:2] == stamp and cached[3] - stat.st_mtime_ns > _RACY_NS:
            return cached[2]
        hashed_at = time.time_ns()
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        self._cache[name] = [*stamp, digest.hexdigest(), hashed_at]
        self._dirty = True
        return digest.hexdigest()

    def save(self) -> None:
        """Persist the cache (atomically)."""
        if self._dirty:
            with atomic_write(self.cache_file) as handle:
                json.dump(self._cache, handle)
            self._dirty = False


def step_key(argv: list[str], inputs: dict[str, str], upstream: dict[str, str]) -> str:
    """The cache key of a step: its command, its inputs' fingerprints, its upstream steps' keys.

    Outputs are not part of it: a renamed output is missing, which also makes the step run.
    """
    payload = json.dumps({"argv": argv, "inputs": inputs, "upstream": upstream}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class StepState:
    """The runner's records for one step: ``NAME.started`` (key) and ``NAME.done`` (marker)."""

    def __init__(self, work: Path, name: str):
        self.dir = work / STATE_DIR / "steps"
        self.started_file = self.dir / f"{name}.started"
        self.done_file = self.dir / f"{name}.done"
        self.log_file = work / STATE_DIR / "logs" / f"{name}.log"

    def done_record(self) -> dict[str, Any] | None:
        """The done-marker's content, or None."""
        if not self.done_file.is_file():
            return None
        try:
            return json.loads(self.done_file.read_text())
        except ValueError:
            return None

    def started_key(self) -> str | None:
        """The key of the last attempt that started (finished or not)."""
        if not self.started_file.is_file():
            return None
        return self.started_file.read_text().strip() or None

    def mark_started(self, key: str) -> None:
        """Record that an attempt with ``key`` begins; forgets any older done-marker."""
        with contextlib.suppress(FileNotFoundError):
            self.done_file.unlink()
        with atomic_write(self.started_file) as handle:
            handle.write(key + "\n")

    def mark_done(self, record: dict[str, Any]) -> None:
        """Write the done-marker (atomically): from now on the step's outputs count."""
        with atomic_write(self.done_file) as handle:
            json.dump(record, handle, indent=1)

    def made_by_runner(self) -> bool:
        """Whether the runner has ever started this step here (its outputs are ours to replace)."""
        return self.started_file.is_file() or self.done_file.is_file()


@contextlib.contextmanager
def work_lock(work: Path) -> Iterator[None]:
    """Hold the exclusive lock on the work folder for the whole run (the output lock every
    writer takes, :func:`retrievers.io.lock.output_lock`, kept in the state folder; released
    by the operating system when the process dies, even by ``kill -9``)."""
    from retrievers.io.lock import output_lock

    busy = "another `ranker run` is using this work folder ({pid}); wait for it or pass another --work"
    with output_lock(work, lock_file=work / STATE_DIR / "lock", busy=busy):
        yield
