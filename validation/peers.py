"""Peer universal potentials as ASE calculators for the validation suites.

    .venv-teachers/bin/python -m gfm_ase.cli validate eos --calculator gfm_ase.validation.peers:chgnet -o OUT

The peers live in their own virtual environment, ``.venv-teachers`` (``make teachers``), which sees the main
venv's torch, ase and gfm_ase through a ``.pth`` file; the main venv does not have them. Each factory returns a
:class:`PeerCalculator`: energy and free_energy (eV), forces (eV/A) and stress (eV/A^3, ASE sign: tension positive,
Voigt order xx yy zz yz xz xy), all float64 numpy (the models compute in float32). ``calc.elements`` lists the
elements the model has parameters for, read from the model, so the suites restrict themselves to those;
``calc.metadata`` says what the model is (:data:`PEERS` plus the installed version and the elements).

Factories: :func:`chgnet` (CHGNet 0.3.0), :func:`sevennet0` (SevenNet-0, 11Jul2024), :func:`sevennet_mf0_pbe` and
:func:`sevennet_mf0_r2scan` (SevenNet-MF-0, modal "PBE" / "R2SCAN"). Without the package they raise
:class:`PeerUnavailableError`, one line that names ``make teachers``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import io
import sys
import types
import warnings
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.data import chemical_symbols

from gfm_ase.units import full_to_voigt

# What each peer is. "level_of_theory" is that of the reference data the model was fitted to.
PEERS: dict[str, dict] = {
    "chgnet": {
        "name": "CHGNet 0.3.0",
        "package": "chgnet",
        "pinned": "0.3.1",  # chgnet 0.3.1 ships the 0.3.0 weights; the 0.3.0 wheel does not
        "model": "CHGNet 0.3.0 (chgnet_0.3.0_e29f68s314m37)",
        "level_of_theory": "PBE / PBE+U (Materials Project trajectories, MPtrj), energies including the MP2020 "
        "compatibility corrections",
        "energy_caveat": "energies include MP2020 corrections (e.g. about -0.69 eV per oxide O); they are not raw "
        "PBE total energies",
        "reference": "B. Deng et al., Nat. Mach. Intell. 5, 1031 (2023)",
    },
    "sevennet0": {
        "name": "SevenNet-0",
        "package": "sevenn",
        "pinned": "0.13.0",
        "model": "SevenNet-0 (11Jul2024), sevenn name '7net-0'",
        "level_of_theory": "PBE / PBE+U (MPtrj), uncorrected energies",
        "energy_caveat": "no MP2020 corrections (the checkpoint was validated on MPtrj's uncorrected energies)",
        "reference": "Y. Park et al., J. Chem. Theory Comput. 20, 4857 (2024)",
    },
    "sevennet_mf0_pbe": {
        "name": "SevenNet-MF-0 (PBE)",
        "package": "sevenn",
        "pinned": "0.13.0",
        "model": "SevenNet-MF-0, sevenn name '7net-mf-0', modal 'PBE'",
        "modal": "PBE",
        "level_of_theory": "PBE / PBE+U (MPtrj fidelity of a multi-fidelity model also trained on MP r2SCAN), "
        "uncorrected energies",
        "energy_caveat": "no MP2020 corrections (MgO agrees with SevenNet-0 within 5 meV/atom)",
        "reference": "J. Kim et al., J. Am. Chem. Soc. 147, 1042 (2025)",
    },
    "sevennet_mf0_r2scan": {
        "name": "SevenNet-MF-0 (r2SCAN)",
        "package": "sevenn",
        "pinned": "0.13.0",
        "model": "SevenNet-MF-0, sevenn name '7net-mf-0', modal 'R2SCAN'",
        "modal": "R2SCAN",
        "level_of_theory": "r2SCAN (Materials Project r2SCAN fidelity of SevenNet-MF-0)",
        "energy_caveat": "absolute energies on the r2SCAN scale, not comparable with PBE totals",
        "reference": "J. Kim et al., J. Am. Chem. Soc. 147, 1042 (2025)",
    },
}


class PeerUnavailableError(ImportError, ValueError):
    """A peer's package is not importable in this interpreter (a ValueError too, so the CLI prints one line)."""


def _import(module: str, package: str) -> types.ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PeerUnavailableError(
            f"{package} is not importable in {sys.executable} ({exc}); the peers live in .venv-teachers: run "
            f"`make teachers` and use .venv-teachers/bin/python"
        ) from exc


def _patch_ase_for_chgnet() -> None:
    """chgnet 0.3.1 imports ExpCellFilter from ase.constraints, which ase 3.29 moved to ase.filters only."""
    import ase.constraints

    if not hasattr(ase.constraints, "ExpCellFilter"):
        import ase.filters

        setattr(ase.constraints, "ExpCellFilter", ase.filters.ExpCellFilter)


class PeerCalculator(Calculator):
    """An ASE calculator around a peer's own calculator: float64 results in ASE units, known elements only."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, inner: Calculator, metadata: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inner = inner
        self.metadata = metadata
        self.elements = list(metadata["elements"])

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.metadata['model']})"

    def calculate(
        self,
        atoms: Atoms | None = None,
        properties: Sequence[str] = ("energy",),
        system_changes: Sequence[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        assert self.atoms is not None  # Calculator.calculate stored a copy of the atoms
        unknown = sorted(set(self.atoms.get_chemical_symbols()) - set(self.elements))
        if unknown:
            raise ValueError(f"{self.metadata['name']} has no parameters for {unknown}")
        if not self.atoms.pbc.all():
            raise ValueError(f"{self.metadata['name']} is evaluated on periodic cells only (pbc={self.atoms.pbc})")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # chgnet's torch deprecation warnings on every call
            self.inner.calculate(self.atoms.copy(), ["energy", "forces", "stress"], all_changes)
        res = self.inner.results
        stress = np.asarray(res["stress"], dtype=np.float64)
        if stress.shape == (3, 3):
            stress = full_to_voigt(stress, check_symmetric=False)  # the off-diagonals averaged
        energy = float(np.asarray(res["energy"]).reshape(()))
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": np.asarray(res["forces"], dtype=np.float64).reshape(len(self.atoms), 3),
            "stress": stress.reshape(6),
        }


_Peer = TypeVar("_Peer", bound=PeerCalculator)


class CHGNet030(PeerCalculator):
    """CHGNet 0.3.0 (see :func:`chgnet`)."""


class SevenNet0(PeerCalculator):
    """SevenNet-0 (see :func:`sevennet0`)."""


class SevenNetMF0PBE(PeerCalculator):
    """SevenNet-MF-0, PBE modal (see :func:`sevennet_mf0_pbe`)."""


class SevenNetMF0R2SCAN(PeerCalculator):
    """SevenNet-MF-0, r2SCAN modal (see :func:`sevennet_mf0_r2scan`)."""


def _metadata(key: str, elements: list[str], **extra: Any) -> dict[str, Any]:
    info = dict(PEERS[key])
    info["version"] = importlib.metadata.version(info["package"])
    info["elements"] = elements
    info.update(extra)
    return info


def _by_z(numbers: Iterable[int]) -> list[str]:
    return [chemical_symbols[int(z)] for z in sorted(numbers)]


def chgnet(device: str = "cpu") -> CHGNet030:
    """CHGNet 0.3.0 on ``device`` (default CPU). Its energies include the MP2020 compatibility corrections.

    Elements: those of the atom-embedding table (its rows are atomic numbers 1..N; N = 94, H-Pu).
    """
    _import("chgnet", "chgnet")
    _patch_ase_for_chgnet()
    model_mod = _import("chgnet.model", "chgnet")
    dynamics = _import("chgnet.model.dynamics", "chgnet")
    with contextlib.redirect_stdout(io.StringIO()):  # chgnet prints its parameter count and device
        model = model_mod.CHGNet.load("0.3.0")
        inner = dynamics.CHGNetCalculator(model=model, use_device=device)
    n_z = model.atom_embedding.embedding.num_embeddings
    meta = _metadata(
        "chgnet",
        _by_z(range(1, n_z + 1)),
        device=device,
        elements_source=f"CHGNet atom embedding: {n_z} rows = Z 1..{n_z}",
    )
    return CHGNet030(inner, meta)


def _sevennet(key: str, cls: type[_Peer], name: str, modal: str | None, device: str) -> _Peer:
    calc_mod = _import("sevenn.calculator", "sevenn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no tensor-product accelerator" on CPU
        inner = calc_mod.SevenNetCalculator(name, modal=modal, device=device)
    modal_map = getattr(inner.model, "modal_map", None) or {}
    meta = _metadata(
        key,
        _by_z(inner.type_map),
        device=device,
        elements_source=f"SevenNet type map ({len(inner.type_map)} species)",
        modals=list(modal_map),
        checkpoint_sevenn_version=inner.sevennet_config.get("version"),
    )
    return cls(inner, meta)


def sevennet0(device: str = "cpu") -> SevenNet0:
    """SevenNet-0 (11Jul2024): PBE/PBE+U (MPtrj), no MP2020 corrections. Elements: the checkpoint's type map."""
    return _sevennet("sevennet0", SevenNet0, "7net-0", None, device)


def sevennet_mf0_pbe(device: str = "cpu") -> SevenNetMF0PBE:
    """SevenNet-MF-0 with modal "PBE" (its MPtrj fidelity)."""
    return _sevennet("sevennet_mf0_pbe", SevenNetMF0PBE, "7net-mf-0", "PBE", device)


def sevennet_mf0_r2scan(device: str = "cpu") -> SevenNetMF0R2SCAN:
    """SevenNet-MF-0 with modal "R2SCAN" (its MP r2SCAN fidelity)."""
    return _sevennet("sevennet_mf0_r2scan", SevenNetMF0R2SCAN, "7net-mf-0", "R2SCAN", device)


FACTORIES = {
    "chgnet": chgnet,
    "sevennet0": sevennet0,
    "sevennet_mf0_pbe": sevennet_mf0_pbe,
    "sevennet_mf0_r2scan": sevennet_mf0_r2scan,
}


def metadata(name: str) -> dict[str, Any]:
    """The full metadata dict of a peer (builds the model once to read its elements)."""
    if name not in FACTORIES:
        raise KeyError(f"unknown peer {name!r}: one of {sorted(FACTORIES)}")
    return FACTORIES[name]().metadata
