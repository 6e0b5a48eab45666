"""A cheap CET selection model over the retrieval systems' own evidence.

In pooling, the systems that retrieved a document are what got it judged; so the chance that
a document was *selected* can be modelled from how it was retrieved. :class:`FeatureSelector`
is a small MLP over those features, trained as CET's S model (Cai et al., CIKM 2022) in place
of the paper's text cross-encoder.

Features come from the evidence ``ranker mine`` records (see
:mod:`retrievers.mining.evidence`): for each retriever, whether it returned the document within
its depth, ``log(1 + rank)`` and the score standardised within the query's list. A document a
retriever did not return gets the values just past the end of that list (rank ``depth + 1``,
the list's lowest score), for positives and negatives alike, so S cannot tell the classes
apart by a constant and must learn what the ranks say about being judged (e.g. "in BM25's
top 10" when BM25 built the pool; mine with ``--evidence-index`` for that).

Negatives files from older versions carry no evidence for positives: their negatives get
``(log_rank, score_z, missing=0, retriever one-hot)`` and every positive the constant
"missing" vector, which S can separate by that flag alone (a warning says so).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

BASE_FEATURES = ("log_rank", "score_z", "missing")
EVIDENCE_FEATURES = ("retrieved", "log_rank", "score_z")


class FeatureEncoder:
    """Turns retriever evidence into fixed-size float vectors.

    Args:
        retrievers: the retrievers that mined the negatives (their names are stored).
        evidence: the retrievers whose evidence the features hold, one block of
            :data:`EVIDENCE_FEATURES` each (empty: the old layout of :data:`BASE_FEATURES` and a
            retriever one-hot, for negatives files without evidence).
    """

    def __init__(self, retrievers: Sequence[str], evidence: Sequence[str] = ()):
        self.retrievers = sorted(set(retrievers))
        self.evidence = sorted(set(evidence))
        self.index = {name: i for i, name in enumerate(self.retrievers)}

    @property
    def size(self) -> int:
        """Length of a feature vector."""
        if self.evidence:
            return len(EVIDENCE_FEATURES) * len(self.evidence)
        return len(BASE_FEATURES) + len(self.retrievers)

    @property
    def names(self) -> list[str]:
        """One name per feature column."""
        if self.evidence:
            return [f"{r}.{f}" for r in self.evidence for f in EVIDENCE_FEATURES]
        return [*BASE_FEATURES, *(f"from.{r}" for r in self.retrievers)]

    def evidence_features(
        self, found: Mapping[str, Sequence[float]], lists: Mapping[str, Mapping[str, float]]
    ) -> list[float]:
        """Features of one document from ``{retriever: [rank, score]}`` and the query's
        ``{retriever: list statistics}`` (``depth``, ``mean``, ``std``, ``min``)."""
        out: list[float] = []
        for name in self.evidence:
            stats = lists.get(name, {})
            mean, std = float(stats.get("mean", 0.0)), float(stats.get("std", 0.0)) or 1.0
            hit = found.get(name)
            if hit is not None:
                rank, score = int(hit[0]), float(hit[1])
                out += [1.0, math.log1p(max(rank, 0)), (score - mean) / std]
            else:  # just past the end of the list
                depth = int(stats.get("depth", stats.get("n", 0)))
                out += [0.0, math.log1p(depth + 1), (float(stats.get("min", mean)) - mean) / std]
        return out

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
        """The old layout's vector of a document no retriever returned (a judged positive in
        a negatives file without evidence); zeros in the evidence layout, where it is unused."""
        if self.evidence:
            return [0.0] * self.size
        return [0.0, 0.0, 1.0] + [0.0] * len(self.retrievers)


class FeatureSelector(nn.Module):
    """MLP ``features -> selection logit``."""

    def __init__(self, retrievers: Sequence[str] | FeatureEncoder, hidden: int = 32):
        super().__init__()
        if isinstance(retrievers, FeatureEncoder):
            self.encoder = FeatureEncoder(retrievers.retrievers, retrievers.evidence)
        else:
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
            json.dumps(
                {
                    "retrievers": self.encoder.retrievers,
                    "evidence": self.encoder.evidence,
                    "features": self.encoder.names,
                    "hidden": self.hidden,
                }
            )
        )

    @classmethod
    def load(cls, directory: str | Path) -> FeatureSelector:
        directory = Path(directory)
        meta = json.loads((directory / "selector.json").read_text())
        model = cls(FeatureEncoder(meta["retrievers"], meta.get("evidence", ())), meta["hidden"])
        model.load_state_dict(load_file(directory / "selector.safetensors"))
        return model
