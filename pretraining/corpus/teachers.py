"""Teacher models: universal potentials whose weights ship in their PyPI wheels, used as surrogate label sources.

They live in the separate ``.venv-teachers`` (``make teachers``), never in the project's core dependencies. Each
entry records the level of theory the teacher was trained to reproduce and the word *surrogate*, which travels into
the generated manifest, the store attributes and the head metadata of every model trained on its labels.

Energies: CHGNet 0.3.0 was trained on MPtrj energies *with* the MP2020 compatibility corrections (anion and
GGA+U corrections; 16-atom Mg8O8 is 5.4 eV lower than SevenNet-0's uncorrected value), SevenNet-0 on the
uncorrected MPtrj energies. The corrections are (almost) linear in composition, so per-element reference energies
absorb most of the difference, but the two are different label sets and are kept as separate datasets.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Teacher:
    name: str
    level_of_theory: str
    surrogate: str
    code: str
    factory: Callable[[], object]
    head_hint: str


def _shim_ase_for_chgnet() -> None:
    """chgnet 0.3.x imports ExpCellFilter from ase.constraints, which ase >= 3.27 moved to ase.filters."""
    import ase.constraints
    import ase.filters

    if not hasattr(ase.constraints, "ExpCellFilter"):
        ase.constraints.ExpCellFilter = ase.filters.ExpCellFilter


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(f"teacher package {module!r} is not installed in this interpreter "
                           f"({exc}); run `make teachers` and use .venv-teachers/bin/python") from None


def _chgnet():
    _shim_ase_for_chgnet()
    _need("chgnet")
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator

    return CHGNetCalculator(CHGNet.load(model_name="0.3.0"), use_device="cpu")


def _sevennet(name: str, modal: str | None = None):
    def make():
        _need("sevenn")
        from sevenn.calculator import SevenNetCalculator

        kw = {"modal": modal} if modal else {}
        return SevenNetCalculator(name, device="cpu", **kw)

    return make


MPTRJ = "PBE/PBE+U (Materials Project / MPtrj settings, VASP)"
TEACHERS = {
    "chgnet": Teacher("chgnet", MPTRJ + ", MP2020-corrected energies", "CHGNet 0.3.0",
                      "chgnet 0.3.1 wheel (model 0.3.0)", _chgnet, "omat"),
    "sevennet0": Teacher("sevennet0", MPTRJ + ", uncorrected energies", "SevenNet-0 (11Jul2024)",
                         "sevenn 0.13.0", _sevennet("7net-0"), "omat"),
    "sevennet_mf0_r2scan": Teacher("sevennet_mf0_r2scan", "r2SCAN (Materials Project r2SCAN settings, VASP)",
                                   "SevenNet-MF-0, R2SCAN modal", "sevenn 0.13.0",
                                   _sevennet("7net-mf-0", "R2SCAN"), "r2scan"),
}


def get_teacher(name: str) -> Teacher:
    try:
        return TEACHERS[name]
    except KeyError:
        raise ValueError(f"unknown teacher {name!r}; known: {sorted(TEACHERS)}") from None
