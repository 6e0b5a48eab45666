"""Supernets over pooling configurations and the balanced mixture that trains them.

A :class:`Supernet` is one backbone shared by one pooler per configuration; a training step
samples one configuration and updates the backbone and that configuration's pooler. The
:class:`Mixture` holds K supernets and the (configuration x supernet) reward matrix of the
Balanced Mixture of SuperNets (see :mod:`ranker.search.balance`): each step samples a
configuration uniformly, a supernet from the balanced ``p(m | a)``, trains that pair on a
batch, scores it on a held-out batch (MRR of the positive) and updates the pair's reward.
Configurations that hurt each other end up in different supernets; K = 1 is the single
shared supernet.
"""

from __future__ import annotations

import copy
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn

from ranker.encoders.backbone import Backbone
from ranker.encoders.encoder import Encoder
from ranker.models import BiEncoder
from ranker.pooling import build_pooler
from ranker.pooling.base import Pooler
from ranker.search.balance import balanced_assignment, ema
from ranker.search.space import Candidate
from ranker.training.data import Batch
from ranker.training.losses import make_loss
from ranker.training.optim import make_optimizer
from ranker.training.scorers import BiEncoderModule, BiScorer
from retrievers.progress import bars_disabled

logger = logging.getLogger(__name__)


class Supernet(nn.Module):
    """One backbone and one pooler per candidate; :meth:`model` is the bi-encoder of one."""

    def __init__(self, backbone: Backbone, candidates: Sequence[Candidate], max_length: int, normalize: bool):
        super().__init__()
        self.backbone = backbone
        self.max_length, self.normalize = max_length, normalize
        self.poolers = nn.ModuleList(
            build_pooler(
                c.pooling,
                hidden_size=backbone.hidden_size,
                num_layers=backbone.num_layers,
                num_heads=backbone.num_heads,
                **c.pooler_kwargs(),
            )
            for c in candidates
        )

    def model(self, index: int) -> BiEncoder:
        """The bi-encoder of candidate ``index`` (sharing this supernet's weights)."""
        encoder = Encoder(
            self.backbone,
            cast(Pooler, self.poolers[index]),
            max_length=self.max_length,
            normalize=self.normalize,
        )
        return BiEncoder(encoder)


def reward(scorer: BiScorer, batch: Batch) -> float:
    """Mean reciprocal rank of each query's positive among the batch's documents (no grad)."""
    with torch.no_grad():
        scores = scorer(batch)
    logits = scores.logits.float()
    positive = logits.gather(1, scores.target.unsqueeze(1))
    rank = (logits > positive).sum(1) + 1
    return float((1.0 / rank.float()).mean())


@dataclass
class Settings:
    """What a mixture's training needs from the run's configuration."""

    lr: float
    weight_decay: float
    scale: float
    loss: str
    max_grad_norm: float
    temperature: float = 5.0
    decay: float = 0.9
    threshold: float = 1e-3
    seed: int = 0
    head_lr: float = 0.0  # the poolers' own parameters (0: lr)
    bf16: bool = False  # bf16 autocast of the training and reward passes


class Mixture:
    """K supernets over ``candidates`` trained with the balanced assignment.

    Args:
        backbone: The pretrained backbone (deep-copied into each supernet).
        candidates: The search space.
        supernets: K.
        settings: Optimization and assignment settings.
        device: Where to train.
    """

    def __init__(
        self,
        backbone: Backbone,
        candidates: Sequence[Candidate],
        supernets: int,
        settings: Settings,
        max_length: int,
        normalize: bool,
        device: torch.device,
    ):
        if supernets < 1:
            raise ValueError(f"supernets must be >= 1, got {supernets}")
        self.candidates, self.settings, self.device = list(candidates), settings, device
        self.nets: list[Supernet] = []
        for m in range(supernets):
            torch.manual_seed(settings.seed * 1000 + m)
            net = Supernet(copy.deepcopy(backbone), self.candidates, max_length, normalize)
            self.nets.append(net.to(device).train())
        self.optimizers = [
            make_optimizer(n, settings.lr, settings.weight_decay, settings.head_lr) for n in self.nets
        ]
        self.loss = make_loss(settings.loss)
        self.weights = torch.ones(len(self.candidates), supernets)  # the paper starts W at 1
        self.counts = torch.zeros(len(self.candidates), supernets, dtype=torch.long)
        self.rng = random.Random(settings.seed)

    def _autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.settings.bf16)

    def assignment(self) -> torch.Tensor:
        """Balanced ``p(supernet | candidate)`` (A, K)."""
        s = self.settings
        return balanced_assignment(self.weights, s.temperature, s.threshold)

    def step(self, batch: Batch, dev_batch: Batch) -> tuple[int, int, float, float]:
        """One training step; returns (candidate, supernet, training loss, reward)."""
        a = self.rng.randrange(len(self.candidates))
        probs = self.assignment()[a].tolist()
        m = self.rng.choices(range(len(self.nets)), weights=probs)[0]
        net, opt = self.nets[m], self.optimizers[m]
        scorer = BiScorer(BiEncoderModule(net.model(a)), self.device, self.settings.scale)
        net.train()
        with self._autocast():
            loss = self.loss(scorer(batch))
        if loss.requires_grad:  # else a parameter-free pooler on a frozen backbone: nothing trains
            loss.backward()
            if self.settings.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), self.settings.max_grad_norm)
            opt.step()
            opt.zero_grad(set_to_none=True)
        net.eval()
        with self._autocast():
            value = reward(scorer, dev_batch)
        net.train()
        self.weights[a, m] = ema(float(self.weights[a, m]), value, self.settings.decay)
        self.counts[a, m] += 1
        return a, m, float(loss.detach()), value

    def train(self, steps: int, batches: Callable[[int], Batch], dev_batches: Callable[[int], Batch]) -> None:
        """``steps`` steps over ``batches(i)``, rewards on ``dev_batches(i)``."""
        from tqdm.auto import tqdm

        for i in tqdm(
            range(steps), desc=f"supernets x{len(self.nets)}", unit="step", disable=bars_disabled()
        ):
            self.step(batches(i), dev_batches(i))

    def assigned(self) -> list[int]:
        """Each candidate's supernet: the most probable under the balanced assignment."""
        return self.assignment().argmax(1).tolist()

    def scores(self, evaluate: Callable[[BiEncoder], float]) -> list[float]:
        """``evaluate`` (a dev-split score) of every candidate with its assigned supernet."""
        out = []
        for a, m in enumerate(self.assigned()):
            net = self.nets[m].eval()
            out.append(float(evaluate(net.model(a))))
        return out
