"""gfm-ase pretraining: the multi-dataset, multi-head, distributed trainer (``gfm pretrain CONFIG -o OUTDIR``).

>>> from pretraining import load_config, Trainer
>>> Trainer(load_config("pretraining/configs/example-tiny.yaml"), "runs/tiny").fit()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gfm_ase.pretraining.config import ConfigError, PretrainConfig, load_config

if TYPE_CHECKING:
    from gfm_ase.pretraining.trainer import Trainer


def __getattr__(name: str) -> Any:  # the trainer pulls in torch; keep `import pretraining` light
    if name == "Trainer":
        from gfm_ase.pretraining.trainer import Trainer

        return Trainer
    raise AttributeError(name)


__all__ = ["ConfigError", "PretrainConfig", "Trainer", "load_config"]
