"""Write files atomically: to a temporary file beside the target, renamed on success.

Temporary names carry the writer's process id (``.NAME.<pid>.<random>.tmp``). A process
killed with ``kill -9`` cannot remove its temporary file or folder, so the next writer of
the same target removes those whose process is gone: no rerun ever leaves one behind.
Output paths that cannot be written (a directory, an unwritable folder, a path through a
file), and the file system failing under a writer (full, read-only, the folder removed
meanwhile) raise :class:`~retrievers.errors.InputError` naming the path and the cause; the
target is left as it was. An output that is a symbolic link is written through the link
(the new file or folder takes the place of what the link points at; the link stays).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from retrievers.errors import InputError

logger = logging.getLogger(__name__)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(path: str | Path) -> int:
    """Remove temporary files and folders left beside ``path`` by killed writers.

    Only names written by this module (``.NAME.<pid>.<random>.tmp``) whose process no
    longer runs are removed. Returns how many were removed.
    """
    path = Path(path)
    removed = 0
    with contextlib.suppress(OSError):
        for leftover in path.parent.glob(f".{path.name}.*.tmp"):
            pid_text = leftover.name[len(path.name) + 2 :].split(".", 1)[0]
            if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            logger.info("removed %s, left by an interrupted run", leftover)
            removed += 1
    return removed


# errors of the file system under a writer, not of the program: reported in one line
STORAGE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})


_NATIVE = re.compile(r"\(os error (\d+)\)")
_SHORT_WRITE = re.compile(r"^\d+ requested and \d+ written$")


def storage_error(err: BaseException) -> OSError | None:
    """``err`` as an ``OSError`` when the file system caused it, else ``None``: an OSError
    with a :data:`STORAGE_ERRORS` code, or a native writer's error that carries one (e.g.
    safetensors' ``SafetensorError: ... No space left on device (os error 28)``)."""
    if isinstance(err, OSError):
        if err.errno is None and _SHORT_WRITE.search(str(err)):  # numpy's tofile: the disk filled up
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return err if err.errno in STORAGE_ERRORS else None
    found = _NATIVE.search(str(err))
    if found and int(found.group(1)) in STORAGE_ERRORS:
        code = int(found.group(1))
        return OSError(code, os.strerror(code))
    return None


def resolve_output(path: str | Path) -> Path:
    """``path``, or where it points if it is a symbolic link (outputs are written through links)."""
    path = Path(path)
    return Path(os.path.realpath(path)) if path.is_symlink() else path


def _output_error(path: Path, err: OSError) -> InputError:
    reason = err.strerror or str(err)
    if isinstance(err, IsADirectoryError) or path.is_dir():
        reason = "is a directory"
    elif isinstance(err, FileNotFoundError) and not path.parent.is_dir():
        return InputError("cannot write output (its folder was removed while writing)", path)
    elif err.errno in STORAGE_ERRORS:
        return InputError(f"cannot write output ({reason}); the output is left as it was", path)
    return InputError(f"cannot write output ({reason}); expected a file path in a writable folder", path)


def write_failure(path: str | Path, err: OSError) -> InputError:
    """The one-line error for ``err``, raised by the file system while writing output ``path``."""
    return _output_error(Path(path), err)


def _prepare(path: Path, directory: bool = False) -> None:
    """Create the parent folder and check the target is not a directory (for files)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise InputError(
            "cannot write output (a parent of this path is a file, not a folder)", path
        ) from None
    except OSError as err:
        raise _output_error(path, err) from None
    if not directory and path.is_dir():
        raise InputError("cannot write output (is a directory); expected a file path", path)
    remove_stale_temporaries(path)


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file next to ``path``; rename it onto ``path`` only if the block succeeds.

    On any exception the temporary file is removed and ``path`` is left untouched, so no
    partial output is ever left behind and an existing file is never half-overwritten.

    Raises:
        InputError: ``path`` cannot be written (a directory, an unwritable folder...).
    """
    path = resolve_output(path)
    _prepare(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _output_error(path, err) from None
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
    binary = "b" in mode
    try:
        try:
            with os.fdopen(fd, mode, encoding=None if binary else encoding) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
        except Exception as err:
            failure = storage_error(err)
            if failure is None or failure.filename not in (None, tmp):
                raise
            raise _output_error(path, failure) from None
        try:
            os.replace(tmp, path)
        except OSError as err:
            raise _output_error(path, err) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def scratch_directory(path: str | Path) -> Path:
    """A new temporary folder beside ``path``, named so that :func:`remove_stale_temporaries`
    removes it if its process is killed; the caller removes it when done."""
    path = resolve_output(path)
    _prepare(path, directory=True)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent))
    except OSError as err:
        raise _output_error(path, err) from None
    os.chmod(tmp, 0o777 & ~_umask())
    return tmp


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Build a directory under a temporary name; move it to ``path`` only if the block succeeds.

    Refuses to replace an existing non-empty directory (nothing a user made is ever lost):
    the caller decides whether to delete it first.
    """
    path = resolve_output(path)
    if path.exists() and not path.is_dir():
        raise InputError("cannot write output (exists and is not a folder)", path)
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"{path}: directory exists and is not empty; remove it or choose another")
    tmp = scratch_directory(path)
    try:
        try:
            yield tmp
        except Exception as err:
            if (failure := storage_error(err)) is None:
                raise
            raise _output_error(path, failure) from None
        try:
            if path.exists():
                path.rmdir()
            os.replace(tmp, path)
        except OSError as err:
            raise _output_error(path, err) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def replace_directory(path: str | Path, save: Callable[[Path], object]) -> None:
    """Write a folder with ``save(folder)`` and swap it in for ``path``, replacing what was there.

    For outputs a program rewrites as it goes (a trainer's ``best/`` model): ``save`` writes
    into a new folder beside ``path`` (under a temporary name that a later writer removes if
    this process is killed), which then takes the place of the previous version by renames.
    """
    path = resolve_output(path)
    scratch = scratch_directory(path)
    try:
        try:
            save(scratch / "new")
            if path.exists():
                os.replace(path, scratch / "old")
            os.replace(scratch / "new", path)
        except Exception as err:
            failure = storage_error(err) or (err if isinstance(err, FileNotFoundError) else None)
            if failure is None:
                raise
            raise _output_error(path, failure) from None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
