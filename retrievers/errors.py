"""Errors raised for bad user input, for the whole toolkit.

Every error that comes from a file a user gave us names the file, the line (when there is
one) and what was expected, so the CLI can print a single line and exit with status 2.

They live here because ``retrievers`` is the toolkit's bottom layer: it never imports
``ranker``, while ``ranker`` builds on it (as it does on ``retrievers.io`` for reading and
atomic writing), so this is the one module both packages can share without a third package.
"""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input from a user-supplied file, argument or dataset.

    Args:
        message: What was wrong and what was expected.
        path: The file the problem is in, if any.
        line: The 1-based line number in ``path``, if known.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        super().__init__(self.__str__())

    def __str__(self) -> str:
        where = ""
        if self.path is not None:
            where = self.path if self.line is None else f"{self.path}:{self.line}"
            where += ": "
        return f"{where}{self.message}"


def first_line(err: BaseException) -> str:
    """An exception's message cut to its first non-blank line (its type's name when it has
    no message): what one-line errors quote of a library's failure."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


class DatasetUnavailableError(InputError):
    """A dataset could not be found locally and could not be downloaded."""
