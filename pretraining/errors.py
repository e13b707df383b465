"""The error of a training run that cannot go on as asked (the message names the option, file or dataset)."""

from __future__ import annotations


class TrainingError(RuntimeError):
    pass
