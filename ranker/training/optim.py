"""Optimizer and learning-rate schedule of the trainer."""

from __future__ import annotations

import torch
from torch import nn


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; biases and LayerNorm weights get no weight decay (as the CET code does)."""
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "LayerNorm" in name or "norm" in name.lower() else decay).append(
                param
            )
    return torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
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
