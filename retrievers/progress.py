"""Whether to draw a progress bar: the caller's wish, overruled by ``ranker -q``.

``tqdm`` reads ``TQDM_DISABLE`` only as a default: a bar created with an explicit
``disable=False`` is drawn all the same. Every bar in the toolkit passes
``disable=bars_disabled(show)`` instead, so that quiet means no bar anywhere.
"""

from __future__ import annotations

import os


def bars_disabled(show: bool = True) -> bool:
    """``disable=`` for ``tqdm``: true unless ``show`` and quiet mode (``TQDM_DISABLE``) is off."""
    return not show or os.environ.get("TQDM_DISABLE", "").strip().lower() not in ("", "0", "false", "no")
