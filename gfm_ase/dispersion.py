"""DFT-D3 dispersion on top of a head: ``GFMCalculator(..., dispersion="d3bj")`` (extra ``d3``).

The dispersion energy, forces and stress come from simple-dftd3, the reference implementation of the D3 authors,
through its Python API (the ``dftd3`` package): periodic or molecular structures, analytic gradients and virial,
its own damping-parameter database and its default real-space cutoffs (two-body 60 Bohr, coordination number
40 Bohr). Only the wiring lives here: which functional a head stands for, the damping variant, ASE units.

Which damping parameters: those of the functional the head's labels were computed with. A head may say so in its
metadata (``dispersion_functional``, e.g. ``"pbe"``); otherwise the head's ``family`` is looked up in
:data:`FAMILY_FUNCTIONAL` (``pbe`` and ``mp2020``: PBE). Families in :data:`NO_D3` (GFN2-xTB, which carries its own
D4 dispersion, and EMT, which is no density functional) and unknown families are refused with a
:class:`DispersionError` naming the head: adding PBE-D3 to them would be silently wrong.

Variants (:data:`DAMPING`): ``d3bj`` (rational Becke-Johnson damping, two-body only, as VASP's IVDW=12 and the D3
options of the peer models), ``d3bj-atm`` (plus the Axilrod-Teller-Muto three-body term) and ``d3zero`` (zero
damping, two-body). Units: energy eV, forces eV/A, stress eV/A^3 (ASE sign: tension positive, Voigt xx yy zz yz xz
xy), computed in float64 whatever the model's precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from ase.units import Bohr, Hartree

from gfm_ase.units import to_voigt

# head family -> the functional whose D3 parameters apply (documented mapping; a head's own
# ``dispersion_functional`` metadata entry wins)
FAMILY_FUNCTIONAL = {"pbe": "pbe", "mp2020": "pbe"}
# the last element with D3 reference data in simple-dftd3 (lawrencium); beyond it the code returns no dispersion
# for the atom instead of an error (a Rf2 dimer at 3 A: 0.0 eV, a Lr2 dimer: -0.045 eV), so it is refused here
D3_MAX_Z = 103
# families that must not get a D3 term, and why
NO_D3 = {
    "xtb": "GFN2-xTB already contains its own D4 dispersion",
    "emt": "EMT is not a density functional (no D3 parameters)",
}


@dataclass(frozen=True)
class Damping:
    """One D3 variant: the dftd3 damping-parameter class and whether the three-body (ATM) term is included."""

    param_class: str
    atm: bool
    description: str


DAMPING = {
    "d3bj": Damping("RationalDampingParam", False, "D3 with Becke-Johnson (rational) damping, two-body"),
    "d3bj-atm": Damping("RationalDampingParam", True, "D3(BJ) plus the Axilrod-Teller-Muto three-body term"),
    "d3zero": Damping("ZeroDampingParam", False, "D3 with zero damping, two-body"),
}


class DispersionError(ValueError):
    """A dispersion option that cannot apply: unknown variant, a head without D3 parameters, dftd3 missing."""


def head_functional(head: Any) -> str:
    """The functional whose D3 parameters fit ``head`` (a HeadConfig or its dict); DispersionError if none."""
    meta = head.model_dump(mode="json") if hasattr(head, "model_dump") else dict(head)
    name = meta.get("name")
    explicit = meta.get("dispersion_functional")
    if explicit:
        return str(explicit).lower()
    family = str(meta.get("family") or "").lower()
    if family in FAMILY_FUNCTIONAL:
        return FAMILY_FUNCTIONAL[family]
    why = NO_D3.get(
        family,
        f"its family {family or '(none)'!r} maps to no functional with D3 parameters "
        f"(known: {sorted(FAMILY_FUNCTIONAL)})",
    )
    raise DispersionError(f"dispersion for head {name!r} ({meta.get('level_of_theory')}): {why}")


def _dftd3() -> Any:
    try:
        from dftd3 import interface
    except ImportError as exc:
        raise DispersionError(
            "dispersion needs the dftd3 package (simple-dftd3's Python API): pip install 'gfm-ase[d3]'"
        ) from exc
    return interface


def dftd3_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("dftd3")
    except Exception:  # pragma: no cover - not installed
        return None


@dataclass
class DispersionResult:
    energy: float  # eV
    forces: np.ndarray | None  # (n, 3) eV/A
    stress: np.ndarray | None  # (6,) eV/A^3, Voigt, ASE sign; None without a cell of non-zero volume
    energies: np.ndarray | None  # (n,) eV per atom, summing to energy


class D3Dispersion:
    """D3 dispersion of one variant with the damping parameters of one functional.

    method: a key of :data:`DAMPING`; functional: a functional name known to simple-dftd3 (e.g. ``"pbe"``).
    cutoffs: real-space cutoffs in Angstrom, ``{"disp2", "disp3", "cn"}`` (None: simple-dftd3's defaults).
    """

    def __init__(self, method: str, functional: str, cutoffs: dict[str, float] | None = None):
        if method not in DAMPING:
            raise DispersionError(f"unknown dispersion {method!r}; known: {sorted(DAMPING)} (or None)")
        self.method = method
        self.functional = functional
        self.damping = DAMPING[method]
        unknown = sorted(set(cutoffs or {}) - {"disp2", "disp3", "cn"})
        if unknown or (cutoffs is not None and len(cutoffs) != 3):
            raise DispersionError(f"dispersion cutoffs need exactly disp2, disp3 and cn (Angstrom), got {cutoffs}")
        self.cutoffs = dict(cutoffs) if cutoffs is not None else None
        api = _dftd3()
        try:
            self._param = getattr(api, self.damping.param_class)(method=functional, atm=self.damping.atm)
        except RuntimeError as exc:
            raise DispersionError(
                f"dispersion {method!r}: simple-dftd3 has no parameters for functional {functional!r} ({exc})"
            ) from None

    @classmethod
    def for_head(cls, method: str, head: Any) -> "D3Dispersion":
        """The variant ``method`` with the damping parameters of the head's functional."""
        if method not in DAMPING:
            raise DispersionError(f"unknown dispersion {method!r}; known: {sorted(DAMPING)} (or None)")
        return cls(method, head_functional(head))

    def describe(self) -> dict:
        """What a trajectory needs to reproduce the dispersion term."""
        out = {
            "method": self.method,
            "functional": self.functional,
            "three_body": self.damping.atm,
            "implementation": f"simple-dftd3 {dftd3_version()}",
        }
        if self.cutoffs is not None:
            out["cutoffs"] = self.cutoffs
        return out

    def compute(
        self,
        numbers: ArrayLike,
        positions: ArrayLike,
        cell: ArrayLike | None = None,
        pbc: ArrayLike | None = None,
        *,
        forces: bool = True,
        stress: bool = False,
        energies: bool = False,
    ) -> DispersionResult:
        """Dispersion of one structure (positions and cell rows in Angstrom)."""
        api = _dftd3()
        numbers = np.asarray(numbers, dtype=np.int64)
        beyond = sorted({int(z) for z in numbers if z > D3_MAX_Z})
        if beyond:
            raise DispersionError(
                f"dispersion {self.method!r}: D3 has no reference data for atomic numbers "
                f"{beyond} (simple-dftd3 covers Z 1-{D3_MAX_Z}; it would leave them out silently)"
            )
        pbc = np.zeros(3, bool) if pbc is None else np.asarray(pbc, bool).reshape(-1).repeat(3 // np.size(pbc))
        periodic = bool(pbc.any())
        lattice = np.asarray(cell, float).reshape(3, 3) / Bohr if periodic else None
        try:
            model = api.DispersionModel(
                numbers, np.asarray(positions, float) / Bohr, lattice, pbc if periodic else None
            )
            if self.cutoffs is not None:
                c = {k: v / Bohr for k, v in self.cutoffs.items()}
                model.set_realspace_cutoff(c["disp2"], c["disp3"], c["cn"])
            res = model.get_dispersion(self._param, grad=bool(forces or stress))
        except RuntimeError as exc:
            raise DispersionError(
                f"dispersion {self.method!r}: simple-dftd3 cannot evaluate this structure ({exc})"
            ) from None
        out = DispersionResult(energy=float(res["energy"]) * Hartree, forces=None, stress=None, energies=None)
        if forces:
            out.forces = -np.asarray(res["gradient"]) * (Hartree / Bohr)
        if stress and cell is not None:  # (1/V) dE/d(strain) of the box, also for an open box (LAMMPS)
            volume = abs(float(np.linalg.det(np.asarray(cell, float).reshape(3, 3))))
            if volume > 1e-6:
                sigma = np.asarray(res["virial"]) * Hartree / volume  # dE/d(strain) / V
                out.stress = to_voigt(sigma.reshape(3, 3))
        if energies:
            pairs = model.get_pairwise_dispersion(self._param)
            per_pair = np.asarray(pairs["additive pairwise energy"]) + np.asarray(pairs["non-additive pairwise energy"])
            out.energies = per_pair.sum(axis=1) * Hartree
        return out


def check_dispersion_option(dispersion: Any) -> None:
    """DispersionError for a value that is neither None nor a variant of :data:`DAMPING` (checked before a model
    is loaded)."""
    if dispersion is not None and (not isinstance(dispersion, str) or dispersion.lower() not in DAMPING):
        raise DispersionError(f"unknown dispersion {dispersion!r}; known: {sorted(DAMPING)} (or None)")


def make_dispersion(dispersion: str | None, head: Any) -> D3Dispersion | None:
    """None for ``dispersion=None``; else the D3 term for ``head`` (DispersionError for a bad option or head)."""
    if dispersion is None:
        return None
    check_dispersion_option(dispersion)
    return D3Dispersion.for_head(dispersion.lower(), head)


__all__ = [
    "D3_MAX_Z",
    "DAMPING",
    "FAMILY_FUNCTIONAL",
    "NO_D3",
    "D3Dispersion",
    "DispersionError",
    "DispersionResult",
    "check_dispersion_option",
    "head_functional",
    "make_dispersion",
]
