"""Low-rank bilinear interaction heads: a bi-encoder's score from its two embeddings.

Instead of ``q . d``, score a query-document pair with a low-rank bilinear fusion of the two
embeddings (MLB: Kim et al., "Hadamard Product for Low-rank Bilinear Pooling", ICLR 2017;
MFB: Yu et al., ICCV 2017), as in Cadene et al.'s ``block.bootstrap.pytorch``
(``block/models/networks/fusions/fusions.py``: ``MLB``, ``MFB``) with a one-unit output.
The documents are still encoded independently, so the head reranks a first-stage run (it
cannot be searched with an inner-product index).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from ranker.pooling.bilinear import signed_sqrt

FUSIONS = ("mlb", "mfb")
ACTIVATIONS = ("relu", "tanh", "none")
WEIGHTS_NAME = "interaction.safetensors"


class BilinearInteraction(nn.Module):
    """``score(q, d) = w . Norm(SumPool_k(act(W0 q) * act(W1 d))) + b``.

    * ``fusion="mlb"``: one factor (``factors`` must be 1), no normalization by default:
      ``w . (act(W0 q) * act(W1 d))``, a rank-``mm_dim`` bilinear form.
    * ``fusion="mfb"``: ``factors`` units summed per output unit, then (``normalize``, the
      default for MFB) signed square root and L2 normalization before the output layer.

    Args:
        fusion: ``"mlb"`` or ``"mfb"``.
        dim: Width of the query and document embeddings.
        mm_dim: Width of the joint space (block's ``mm_dim``).
        factors: MFB's ``factor`` (k); 1 for MLB.
        activ_input: ``"relu"`` (block's default), ``"tanh"`` (MLB paper) or ``"none"``.
        normalize: Signed sqrt + L2 on the joint vector (default: True for MFB, False for MLB).
    """

    def __init__(
        self,
        fusion: str,
        dim: int,
        mm_dim: int = 256,
        factors: int | None = None,
        activ_input: str = "relu",
        normalize: bool | None = None,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"interaction fusion must be one of {FUSIONS}, got {fusion!r}")
        if activ_input not in ACTIVATIONS:
            raise ValueError(f"interaction activ_input must be one of {ACTIVATIONS}, got {activ_input!r}")
        factors = (1 if fusion == "mlb" else 2) if factors is None else int(factors)
        if fusion == "mlb" and factors != 1:
            raise ValueError("interaction 'mlb' has one factor; use 'mfb' for factors > 1")
        if dim < 1 or mm_dim < 1 or factors < 1:
            raise ValueError(
                f"interaction: dim, mm_dim and factors must be >= 1, got {dim}, {mm_dim}, {factors}"
            )
        self.fusion, self.dim, self.mm_dim, self.factors = fusion, int(dim), int(mm_dim), factors
        self.activ_input = activ_input
        self.normalize = (fusion == "mfb") if normalize is None else bool(normalize)
        self.linear0 = nn.Linear(dim, mm_dim * factors)
        self.linear1 = nn.Linear(dim, mm_dim * factors)
        self.linear_out = nn.Linear(mm_dim, 1)

    def get_config(self) -> dict[str, Any]:
        """JSON-able; ``BilinearInteraction(**config)`` rebuilds the same head."""
        return {
            "fusion": self.fusion,
            "dim": self.dim,
            "mm_dim": self.mm_dim,
            "factors": self.factors,
            "activ_input": self.activ_input,
            "normalize": self.normalize,
        }

    def _project(self, q: Tensor, d: Tensor) -> tuple[Tensor, Tensor]:
        param = self.linear0.weight
        x0, x1 = self.linear0(q.to(param.dtype)), self.linear1(d.to(param.dtype))
        if self.activ_input != "none":
            x0, x1 = getattr(F, self.activ_input)(x0), getattr(F, self.activ_input)(x1)
        return x0, x1

    def _joint(self, z: Tensor) -> Tensor:
        z = z.reshape(*z.shape[:-1], self.mm_dim, self.factors).sum(-1)
        if self.normalize:
            z = F.normalize(signed_sqrt(z.float()), dim=-1).to(z.dtype)
        return self.linear_out(z).squeeze(-1)

    def forward(self, queries: Tensor, docs: Tensor) -> Tensor:
        """Scores of every query against every document: (Q, dim) x (D, dim) -> (Q, D)."""
        x0, x1 = self._project(queries, docs)
        if self.factors == 1 and not self.normalize:  # MLB: a weighted inner product
            return (x0 * self.linear_out.weight[0]) @ x1.T + self.linear_out.bias
        return self._joint(x0[:, None, :] * x1[None, :, :])

    def pairwise(self, queries: Tensor, docs: Tensor) -> Tensor:
        """Scores of row-aligned pairs: (N, dim) x (N, dim) -> (N,)."""
        x0, x1 = self._project(queries, docs)
        return self._joint(x0 * x1)

    def save(self, folder: Path) -> None:
        """Weights as ``interaction.safetensors`` in ``folder`` (the config goes with the model's)."""
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
        save_file(state, str(Path(folder) / WEIGHTS_NAME))

    @classmethod
    def load(cls, folder: Path, config: dict[str, Any]) -> BilinearInteraction:
        """Rebuild from its config and ``folder/interaction.safetensors``."""
        head = cls(**config)
        head.load_state_dict(load_file(str(Path(folder) / WEIGHTS_NAME)), strict=True)
        return head


def dot_scores(queries: Tensor, docs: Tensor) -> Tensor:
    """Row-aligned inner products (the plain bi-encoder score)."""
    return (queries.float() * docs.float()).sum(-1)


def make_interaction(fusion: str, dim: int, options: dict[str, Any] | None = None) -> BilinearInteraction:
    """A new head; an unknown option is a ``TypeError`` naming the options it takes."""
    allowed = {"mm_dim", "factors", "activ_input", "normalize"}
    unknown = sorted(set(options or {}) - allowed)
    if unknown:
        raise TypeError(f"interaction {fusion!r} takes no option(s) {unknown}; it takes {sorted(allowed)}")
    return BilinearInteraction(fusion, dim, **(options or {}))
