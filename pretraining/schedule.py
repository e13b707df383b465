"""Learning-rate schedule: linear warmup from 0, then cosine decay to ``min_lr`` at the last step.

A pure function of the step, so the "scheduler state" of a checkpoint is the step number itself.
"""

from __future__ import annotations

import math


def learning_rate(step: int, total_steps: int, lr: float, min_lr: float, warmup_steps: int) -> float:
    """LR used for optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    decay_steps = max(total_steps - warmup_steps, 1)
    t = min(max(step - warmup_steps, 0) / decay_steps, 1.0)
    return min_lr + 0.5 * (lr - min_lr) * (1.0 + math.cos(math.pi * t))
