"""Exponential moving average of the trainable weights (kept in the weights' own dtype, on their device)."""
from __future__ import annotations

import torch


class EMA:
    """``shadow = d * shadow + (1 - d) * param`` after every optimizer step, keyed by parameter name.

    With ``warmup`` the decay is ``min(decay, (1 + t) / (10 + t))`` (t = number of updates so far), so the average
    is not dominated by the random initialisation early in training.
    """

    def __init__(self, named_params, decay: float, warmup: bool = True):
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().clone() for n, p in named_params}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, named_params) -> None:
        d = self.current_decay()
        for n, p in named_params:
            self.shadow[n].mul_(d).add_(p.detach(), alpha=1.0 - d)
        self.num_updates += 1

    @torch.no_grad()
    def swap(self, named_params) -> None:
        """Exchange the live weights and the averages (call twice to undo)."""
        for n, p in named_params:
            tmp = p.detach().clone()
            p.copy_(self.shadow[n])
            self.shadow[n].copy_(tmp)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            raise KeyError(f"EMA state lacks {missing[:5]}")
        with torch.no_grad():
            for n in self.shadow:
                self.shadow[n].copy_(tensors[n])
        self.num_updates = int(num_updates)
