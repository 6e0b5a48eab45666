"""Optimizer and learning-rate schedule of the trainer."""

from __future__ import annotations

import torch
from torch import nn


def is_head(name: str) -> bool:
    """Whether a parameter belongs to a head (pooler, interaction, classifier), not the backbone
    (LoRA adapters live in the backbone)."""
    return "backbone" not in name.split(".")


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, head_lr: float = 0.0
) -> torch.optim.AdamW:
    """AdamW; biases and LayerNorm weights get no weight decay (as the CET code does).

    ``head_lr`` > 0 gives the parameters outside the backbone (a trainable pooler's, an
    interaction head's) their own learning rate: they start from random initialisation, the
    backbone from pre-trained weights. The schedule scales both alike."""
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            no_decay = param.ndim < 2 or "LayerNorm" in name or "norm" in name.lower()
            groups.setdefault((head_lr > 0 and is_head(name), no_decay), []).append(param)
    return torch.optim.AdamW(
        [
            {
                "params": groups.get((head, no_decay), []),
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr": head_lr if head else lr,
            }
            for head in (False, True)
            for no_decay in (False, True)
            if groups.get((head, no_decay)) or not head
        ],
        lr=lr,
    )


def linear_schedule(
    optimizer: torch.optim.Optimizer, warmup: int, total: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup`` steps, then linear decay to 0 at ``total``: transformers'
    ``get_linear_schedule_with_warmup``, counted one step ahead so that the first optimizer step
    already learns (``lr / (warmup + 1)``, where transformers' own count would start at 0 and
    waste it); step ``s`` gets ``lr * (s + 1) / (warmup + 1)`` during warm-up and
    ``lr * (total - s) / (total - warmup)`` after, as the toolkit has always trained."""
    from transformers import get_linear_schedule_with_warmup

    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])
    return get_linear_schedule_with_warmup(optimizer, warmup + 1, total + 1, last_epoch=0)
