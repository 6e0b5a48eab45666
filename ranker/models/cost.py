"""What a pooler costs on a trained model: the parameters it adds and the encoding time.

Each model embeds the same documents in inference mode; the models take turns, round after
round, so a slow spell of a shared machine hits every model alike, and the median round counts.
Each round starts with the next model: timed always first, the baseline of a pooling study ran
up to 1.4x faster than poolers that cost the same (cls, last), a position effect, not a cost.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from collections.abc import Mapping, Sequence

from torch import nn

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class EncodingCost:
    """One model's cost: head (pooler, interaction) and backbone parameters, seconds per doc."""

    added_params: int
    backbone_params: int
    seconds_per_doc: float


def parameter_split(model: nn.Module) -> tuple[int, int]:
    """``(added, backbone)`` parameter counts: parameters outside the backbone (a trainable
    pooler's, an interaction head's) and inside it; shared towers are counted once."""
    from ranker.training.optim import is_head

    added = backbone = 0
    for name, param in model.named_parameters():
        if is_head(name):
            added += param.numel()
        else:
            backbone += param.numel()
    return added, backbone


def turn_order(labels: Sequence[str], round_: int) -> list[str]:
    """The models' order in round ``round_``: rotated, so that no model always goes first."""
    k = round_ % max(1, len(labels))
    return [*labels[k:], *labels[:k]]


def encoding_costs(
    models: Mapping[str, str],
    texts: Sequence[str],
    batch_size: int = 32,
    repeats: int = 3,
    dtype: str | None = None,
) -> dict[str, EncodingCost]:
    """Load each saved bi-encoder (label -> folder) and time it on ``texts``, taking turns."""
    from ranker.models import load_biencoder
    from ranker.precision import apply_precision, resolve_precision

    loaded = {}
    for label, path in models.items():
        model = load_biencoder(path)
        if dtype not in (None, "float32"):  # a --dtype value
            apply_precision(model, resolve_precision(dtype))
        loaded[label] = model.eval()
    warm = list(texts[: min(len(texts), batch_size)])
    for model in loaded.values():
        model.encode_corpus(warm, batch_size=batch_size)
    rounds: dict[str, list[float]] = {label: [] for label in loaded}
    for r in range(repeats):
        for label in turn_order(list(loaded), r):
            start = time.perf_counter()
            loaded[label].encode_corpus(texts, batch_size=batch_size)
            rounds[label].append(time.perf_counter() - start)
        logger.info("timing round %d/%d done", r + 1, repeats)
    out = {}
    for label, model in loaded.items():
        added, backbone = parameter_split(model)
        out[label] = EncodingCost(added, backbone, statistics.median(rounds[label]) / max(1, len(texts)))
    return out
