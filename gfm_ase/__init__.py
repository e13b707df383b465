"""gfm-ase: multi-task atomistic graph foundation models with an ASE calculator."""

from typing import Any

from gfm_ase import _source_checkout

__version__ = "0.1.0"

_source_checkout.install()  # gfm_ase.pretraining/.finetune_zoo/.validation from a never-installed checkout


def __getattr__(name: str) -> Any:  # lazy: importing gfm_ase must not pull in torch-heavy modules until used
    if name == "GFMCalculator":
        from gfm_ase.calculator import GFMCalculator

        return GFMCalculator
    if name in ("relax", "RelaxResult"):
        from gfm_ase import relaxation

        return getattr(relaxation, name)
    raise AttributeError(name)


__all__ = ["GFMCalculator", "RelaxResult", "__version__", "relax"]
