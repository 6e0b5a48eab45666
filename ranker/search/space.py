"""The pooling search space: pooler kind x which hidden layers feed it x its main setting."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ranker.pooling import POOLERS
from retrievers.errors import InputError


@dataclass(frozen=True)
class Candidate:
    """One pooling configuration: a registered pooler, its input layers, its options."""

    pooling: str
    layers: tuple[int, ...] = (-1,)
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """A short readable id, e.g. ``ponet[-2,-1](segments=8)``."""
        layers = ",".join(str(i) for i in self.layers)
        opts = ",".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.pooling}[{layers}]" + (f"({opts})" if opts else "")

    def pooler_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``build_pooler`` / ``BiEncoder.from_pretrained``."""
        return {"layers": list(self.layers), **dict(self.options)}

    def train_keys(self) -> dict[str, Any]:
        """The ``ranker train`` config keys that select this configuration."""
        return {"pooling": self.pooling, "pooling_options": self.pooler_kwargs()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pooling": self.pooling,
            "layers": list(self.layers),
            "options": dict(self.options),
        }


def build_space(spec: Mapping[str, Any], source: str = "space") -> list[Candidate]:
    """Candidates from a config's ``space:`` mapping.

    Either ``candidates: [{pooling, layers, options}, ...]`` (explicit), or the product of
    ``pooling: [names]`` x ``layers: [[-1], [-2, -1], ...]`` x ``settings: {pooler: {key:
    [values]}}`` (a pooler's main setting; poolers without an entry get their defaults).
    """
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: expected a mapping with 'candidates' or 'pooling'")
    unknown = sorted(set(spec) - {"candidates", "pooling", "layers", "settings"})
    if unknown:
        raise InputError(f"{source}: unknown key {unknown[0]!r} (candidates, pooling, layers, settings)")
    if "candidates" in spec:
        out = []
        for i, row in enumerate(spec["candidates"]):
            if not isinstance(row, Mapping) or "pooling" not in row:
                raise InputError(f"{source}: candidates[{i}] needs a 'pooling' name")
            out.append(
                Candidate(str(row["pooling"]), tuple(row.get("layers", [-1])), dict(row.get("options", {})))
            )
    else:
        names = spec.get("pooling") or []
        layer_sets = spec.get("layers") or [[-1]]
        settings = spec.get("settings") or {}
        out = []
        for name, layers in itertools.product(names, layer_sets):
            grid = settings.get(name, {})
            keys = sorted(grid)
            for values in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
                out.append(
                    Candidate(str(name), tuple(int(i) for i in layers), dict(zip(keys, values, strict=True)))
                )
    bad = [c.pooling for c in out if c.pooling not in POOLERS]
    if bad:
        raise InputError(f"{source}: unknown pooling {bad[0]!r}; choose from {', '.join(sorted(POOLERS))}")
    if len(out) < 2:
        raise InputError(f"{source}: a search needs at least 2 configurations, got {len(out)}")
    if len({c.name for c in out}) != len(out):
        raise InputError(f"{source}: duplicate configurations")
    return out
