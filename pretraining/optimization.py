"""AdamW, the learning-rate schedule, global-norm clipping and the EMA of the weights, as the trainer uses them."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from gfm_ase.pretraining.config import EMASpec, OptimSpec
from gfm_ase.pretraining.ema import EMA
from gfm_ase.pretraining.schedule import learning_rate


def default_param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups of the trainable parameters: weight decay on matrices (embeddings excepted), none on the rest;
    a group's ``lr_scale`` multiplies the scheduled LR."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for n, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 and "embedding" not in n else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def make_optimizer(groups: list[dict], spec: OptimSpec) -> torch.optim.AdamW:
    return torch.optim.AdamW(groups, lr=spec.lr, betas=spec.betas, eps=spec.eps)


def make_ema(model: torch.nn.Module, spec: EMASpec, masks: dict[str, torch.Tensor]) -> EMA | None:
    """The EMA of the trainable weights (None when ``ema.enabled`` is off)."""
    return EMA(model.named_parameters(), spec.decay, spec.warmup, masks=masks) if spec.enabled else None


def scheduled_lr(spec: OptimSpec, step: int, total_steps: int) -> float:
    """The LR of optimizer step ``step`` (0-based): warmup, then cosine decay (gfm_ase.pretraining.schedule)."""
    return learning_rate(step, total_steps, spec.lr, spec.min_lr, spec.warmup_steps)


def grad_sq_norm(params: Iterable[torch.nn.Parameter]) -> float:
    """Sum of the squared gradient entries of ``params`` (float64; parameters without gradient count 0)."""
    g = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
    return float(torch.stack(g).sum()) if g else 0.0


def step_is_finite(loss: float, grad_norm: float) -> bool:
    """A step whose loss or global gradient norm is not finite must change nothing (see Trainer.optimizer_step)."""
    return math.isfinite(grad_norm) and math.isfinite(loss)


def clip_gradients(params: Iterable[torch.nn.Parameter], grad_norm: float, clip: float | None) -> None:
    """Scale every gradient by ``clip / (norm + 1e-6)`` when the global norm ``grad_norm`` exceeds ``clip``."""
    if clip is not None and grad_norm > clip:
        coef = clip / (grad_norm + 1e-6)
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)


def set_learning_rates(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Each group trains at ``lr`` times its ``lr_scale``."""
    for g in optimizer.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
