"""One writer per output: an exclusive lock beside the output, held for a whole command.

Every command that writes an output takes :func:`output_lock` on it before any work. The
lock is ``fcntl.flock`` on a hidden file beside the output (``.NAME.lock``), which holds the
holder's process id: a second writer is refused at once with an
:class:`OutputBusyError` naming that pid. The operating system releases the lock when its
process dies (even by ``kill -9``), so a lock file left by a dead process is simply taken
over by the next writer; the holder removes the file when it is done.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from retrievers.errors import InputError

logger = logging.getLogger(__name__)


class OutputBusyError(InputError):
    """Another running process holds the lock on this output."""


def lock_path(path: str | Path) -> Path:
    """The lock file of output ``path``: ``.NAME.lock`` beside it (through a symlinked
    output or parent, beside what the link points at)."""
    target = Path(os.path.realpath(path))
    return target.parent / f".{target.name}.lock"


def _make_parents(folder: Path, output: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return those created (innermost last)."""
    missing = []
    for parent in [folder, *folder.parents]:
        if parent.exists() or parent.is_symlink():
            break
        missing.append(parent)
    for parent in reversed(missing):
        try:
            parent.mkdir()
        except (FileExistsError, NotADirectoryError):
            if not parent.is_dir():
                raise InputError(
                    "cannot write output (a parent of this path is a file, not a folder)", output
                ) from None
        except OSError as err:
            raise InputError(f"cannot write output ({err.strerror})", output) from None
    return list(reversed(missing))


def _holder(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None


def _acquire(lock_file: Path, output: Path, busy: str) -> int:
    while True:
        try:
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except NotADirectoryError:
            raise InputError(
                "cannot write output (a parent of this path is a file, not a folder)", output
            ) from None
        except OSError as err:
            raise InputError(f"cannot write output ({err.strerror})", output) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            pid = "pid unknown" if holder is None else f"pid {holder}"
            raise OutputBusyError(busy.format(pid=pid), output) from None
        try:  # the previous holder may have removed the file between our open and flock
            same = os.path.samestat(os.fstat(fd), os.stat(lock_file))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        previous = _holder(fd)
        if previous is not None and previous != os.getpid():
            logger.info("%s: taking over the lock of pid %d, which no longer runs", output, previous)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as err:
            with contextlib.suppress(OSError):
                os.unlink(lock_file)
            os.close(fd)
            raise InputError(f"cannot write output ({err.strerror})", output) from None
        return fd


BUSY = "another process ({pid}) is writing this output; wait for it to finish or choose another"


@contextlib.contextmanager
def output_lock(path: str | Path, lock_file: str | Path | None = None, busy: str = BUSY) -> Iterator[Path]:
    """Hold the exclusive lock on output ``path`` for the block; yields the lock file.

    Missing parent folders are created (and removed again if still empty at the end); if the
    block fails, an output folder it created and left empty is removed too.

    Args:
        path: The output (file or folder) about to be written.
        lock_file: Where the lock lives (default: :func:`lock_path`).
        busy: The refusal message; ``{pid}`` becomes the holder's ``pid N``.

    Raises:
        OutputBusyError: another live process holds the lock (refused at once, no waiting).
        InputError: the lock cannot be created there (a read-only folder, a full disk...).
    """
    path = Path(path)
    lock = Path(lock_file) if lock_file is not None else lock_path(path)
    created = _make_parents(lock.parent, path)
    try:
        fd = _acquire(lock, path, busy)
    except BaseException:
        _remove_empty(created)
        raise
    existed = path.exists() or path.is_symlink()
    try:
        yield lock
    except BaseException:
        if not existed:  # a failed command leaves no empty output folder of its own making
            _remove_empty([path])
        raise
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)  # while still holding it: see the samestat check in _acquire
        os.close(fd)
        _remove_empty(created)


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:
            return


@contextlib.contextmanager
def output_locks(paths: Sequence[str | Path]) -> Iterator[None]:
    """:func:`output_lock` on each of ``paths`` (in a fixed order, so two commands writing
    overlapping outputs cannot each hold one and wait for the other)."""
    unique = sorted({os.path.realpath(p): Path(p) for p in paths}.items())
    with contextlib.ExitStack() as stack:
        for _, path in unique:
            stack.enter_context(output_lock(path))
        yield
