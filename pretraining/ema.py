"""Exponential moving average of the trainable weights (kept in the weights' own dtype, on their device)."""

from __future__ import annotations

from collections.abc import Iterable

import torch


class EMA:
    """``shadow = d * shadow + (1 - d) * param`` after every optimizer step, keyed by parameter name.

    With ``warmup`` the decay is ``min(decay, (1 + t) / (10 + t))`` (t = number of updates so far), so the average
    is not dominated by the random initialisation early in training.

    Parameters that do not require gradients when the EMA is created (frozen in fine-tuning) are not averaged: their
    shadow is an exact copy, so swapping leaves them bit-for-bit unchanged. ``masks`` ({name: 0/1 tensor}) restrict
    the average of a partly frozen parameter to the entries where the mask is 1; the others stay exact copies.
    """

    def __init__(
        self,
        named_params: Iterable[tuple[str, torch.Tensor]],
        decay: float,
        warmup: bool = True,
        masks: dict[str, torch.Tensor] | None = None,
    ) -> None:
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        params = list(named_params)
        self.shadow: dict[str, torch.Tensor] = {n: p.detach().clone() for n, p in params}
        self.tracked = {n for n, p in params if p.requires_grad}
        self.masks = {n: m.to(dtype=torch.bool) for n, m in (masks or {}).items()}

    def current_decay(self) -> float:
        if self.warmup:
            return min(self.decay, (1.0 + self.num_updates) / (10.0 + self.num_updates))
        return self.decay

    @torch.no_grad()
    def update(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> None:
        d = self.current_decay()
        for n, p in named_params:
            if n not in self.tracked:
                continue
            mask = self.masks.get(n)
            if mask is None:
                self.shadow[n].mul_(d).add_(p.detach(), alpha=1.0 - d)
            else:
                avg = self.shadow[n] * d + p.detach() * (1.0 - d)
                self.shadow[n].copy_(torch.where(mask.to(avg.device), avg, self.shadow[n]))
        self.num_updates += 1

    @torch.no_grad()
    def swap(self, named_params: Iterable[tuple[str, torch.Tensor]]) -> None:
        """Exchange the live weights and the averages (call twice to undo)."""
        for n, p in named_params:
            tmp = p.detach().clone()
            p.copy_(self.shadow[n])
            self.shadow[n].copy_(tmp)

    def load(self, tensors: dict[str, torch.Tensor], num_updates: int) -> None:
        missing = sorted(set(self.shadow) - set(tensors))
        if missing:
            raise KeyError(f"EMA state lacks {missing[:5]}")
        with torch.no_grad():
            for n in self.shadow:
                self.shadow[n].copy_(tensors[n])
        self.num_updates = int(num_updates)
