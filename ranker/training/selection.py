"""A cheap CET selection model over the retriever's own evidence.

In pooling, the systems that retrieved a document are what got it judged; so the chance that
a negative was *selected* can be modelled from how it was retrieved: its rank, its score
(standardised within the query's list) and which retriever found it. :class:`FeatureSelector`
is a small MLP over those features, trained as CET's S model (Cai et al., CIKM 2022) in place
of the paper's text cross-encoder.

Positives carry no retriever features in a negatives file; they get the "not retrieved"
indicator, so S's pairwise loss is driven by how it orders negatives against that constant,
weighted by R's beliefs -- which is exactly the coupling that matters for w_R.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

BASE_FEATURES = ("log_rank", "score_z", "missing")


class FeatureEncoder:
    """Turns (rank, score, retriever) records into fixed-size float vectors."""

    def __init__(self, retrievers: Sequence[str]):
        self.retrievers = sorted(set(retrievers))
        self.index = {name: i for i, name in enumerate(self.retrievers)}

    @property
    def size(self) -> int:
        return len(BASE_FEATURES) + len(self.retrievers)

    def list_features(self, records: Sequence[dict]) -> list[list[float]]:
        """Features of one query's negatives; scores are standardised within the list."""
        scores = [float(r["score"]) for r in records]
        mean = sum(scores) / len(scores) if scores else 0.0
        var = sum((s - mean) ** 2 for s in scores) / len(scores) if scores else 0.0
        std = math.sqrt(var) or 1.0
        out = []
        for record, score in zip(records, scores, strict=True):
            vec = [math.log1p(max(int(record["rank"]), 0)), (score - mean) / std, 0.0]
            onehot = [0.0] * len(self.retrievers)
            if record.get("retriever") in self.index:
                onehot[self.index[record["retriever"]]] = 1.0
            out.append(vec + onehot)
        return out

    def missing(self) -> list[float]:
        """The vector of a document no retriever returned (e.g. a judged positive)."""
        return [0.0, 0.0, 1.0] + [0.0] * len(self.retrievers)


class FeatureSelector(nn.Module):
    """MLP ``features -> selection logit``."""

    def __init__(self, retrievers: Sequence[str], hidden: int = 32):
        super().__init__()
        self.encoder = FeatureEncoder(retrievers)
        self.hidden = hidden
        self.net = nn.Sequential(nn.Linear(self.encoder.size, hidden), nn.GELU(), nn.Linear(hidden, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[..., F]`` -> ``[...]`` logits."""
        return self.net(features).squeeze(-1)

    def save(self, directory: str | Path) -> None:
        """Write ``selector.safetensors`` and ``selector.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.contiguous() for k, v in self.state_dict().items()},
            directory / "selector.safetensors",
        )
        (directory / "selector.json").write_text(
            json.dumps({"retrievers": self.encoder.retrievers, "hidden": self.hidden})
        )

    @classmethod
    def load(cls, directory: str | Path) -> FeatureSelector:
        directory = Path(directory)
        meta = json.loads((directory / "selector.json").read_text())
        model = cls(meta["retrievers"], meta["hidden"])
        model.load_state_dict(load_file(directory / "selector.safetensors"))
        return model
