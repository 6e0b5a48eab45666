"""Machine-independent spellings of paths, for everything the runner writes.

Result files and step records must not carry the absolute paths of the machine they ran on:
the work folder becomes a relative path (or ``${work}``), the spec folder ``${spec_dir}``,
installed packages ``${pkg.NAME}`` and known collections ``${dataset.NAME}`` (the spec
variables that produce them), and the home folder ``~``.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

# .../site-packages/NAME or .../dist-packages/NAME (what ${pkg.NAME} expands to)
_PACKAGE = re.compile(r"/(?:[^\s`'\"|,;()\[\]]*/)?(?:site|dist)-packages/([A-Za-z_][A-Za-z0-9_]*)")


def portable(text: str, work: Path, spec_dir: Path, *, work_as: str = "${work}") -> str:
    """``text`` with this machine's absolute paths replaced by placeholders.

    Args:
        text: Any text (a command line, a markdown table).
        work: The work folder; ``work/x`` becomes ``x`` when ``work_as`` is ``""``, else
            ``${work}/x``.
        spec_dir: The spec's folder, written ``${spec_dir}``.
        work_as: The placeholder for the work folder itself.
    """
    work_text, spec_text = str(work.resolve()), str(spec_dir.resolve())
    if work_as:
        text = text.replace(work_text, work_as)
    else:
        text = text.replace(work_text + "/", "").replace(work_text, ".")
    text = text.replace(spec_text, "${spec_dir}")
    for folder, name in _dataset_folders():
        text = text.replace(folder, "${dataset." + name + "}")
    text = _PACKAGE.sub(lambda m: "${pkg." + m.group(1) + "}", text)
    home = str(Path.home())
    if home not in ("", "/"):
        text = text.replace(home + "/", "~/")
    return text


@lru_cache(maxsize=1)
def _dataset_folders() -> tuple[tuple[str, str], ...]:
    """(resolved folder, name) of the collections that bare dataset names resolve to (what
    ``${dataset.NAME}`` expands to), longest first."""
    from retrievers.io.dataset import search_path

    found: dict[str, str] = {}
    for base in search_path():
        if base.is_dir():
            for child in sorted(base.iterdir()):
                if child.is_dir():
                    found.setdefault(str(child.resolve()), child.name)
    return tuple(sorted(found.items(), key=lambda item: -len(item[0])))


def absolute_paths(text: str) -> list[str]:
    """The absolute paths (``/a/b...``) left in ``text``, for checks and tests."""
    return re.findall(r"(?<![\w.$}~])/(?:[\w.+-]+/)+[\w.+-]*", text)
