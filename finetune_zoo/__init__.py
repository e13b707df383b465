"""Fine-tuning of pretrained gfm-ase models and the fine-tuning zoo.

>>> from finetune_zoo import FinetuneConfig, finetune
>>> finetune("gfm-mini", "water.h5", outdir="runs/water",
...          config=FinetuneConfig(head="water", strategy="full", baseline="scratch"))

``gfm finetune --help`` and ``gfm finetune-zoo --help`` are the command-line forms; finetune_zoo/README.md has the
strategies, the output layout, how held-out data is found, and the zoo's results.
"""

from __future__ import annotations

from typing import Any

from gfm_ase.finetune_zoo.config import STRATEGIES, FinetuneConfig


def __getattr__(name: str) -> Any:  # keep `import finetune_zoo` light (no torch until needed)
    if name in ("finetune", "FinetuneError"):
        import importlib

        return getattr(importlib.import_module("gfm_ase.finetune_zoo.finetuning"), name)
    raise AttributeError(name)


__all__ = ["STRATEGIES", "FinetuneConfig", "FinetuneError", "finetune"]
