"""GFN2-xTB helpers shared by the xTB and PySCF generators: calculator, relaxation, Hessian, normal-mode sampling,
Langevin snapshots.  All quantities in ASE units (eV, A, fs via ase.units)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

XTB_SETTINGS: dict[str, Any] = dict(method="GFN2-xTB", accuracy=1.0, electronic_temperature=300.0, max_iterations=250)
XTB_LEVEL = "GFN2-xTB (tblite; Fermi smearing 300 K; neutral singlet molecules)"


def xtb_calc() -> Calculator:
    from tblite.ase import TBLite

    return TBLite(verbosity=0, **XTB_SETTINGS)


def covalent_clash(atoms: Atoms, factor: float = 0.55) -> bool:
    """True if two atoms (no pbc) are closer than ``factor`` x the sum of their covalent radii."""
    from ase.data import covalent_radii

    if len(atoms) < 2:
        return False
    r = covalent_radii[atoms.numbers]
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=-1)
    lim = factor * (r[:, None] + r[None])
    iu = np.triu_indices(len(atoms), 1)
    return bool(np.any(d[iu] < lim[iu]))


def relax(atoms: Atoms, calc: Calculator, fmax: float = 0.03, steps: int = 200) -> tuple[Atoms, bool]:
    """BFGS relaxation (positions only) with ``calc``; returns (relaxed copy, converged)."""
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calc
    opt = BFGS(work, logfile=None)
    converged = bool(opt.run(fmax=fmax, steps=steps))
    return work, converged


def hessian(atoms: Atoms, calc: Calculator, delta: float = 0.005) -> np.ndarray:
    """Cartesian Hessian (eV/A^2, [3N, 3N]) by central differences of the forces, symmetrised."""
    work = atoms.copy()
    work.calc = calc
    n = len(work)
    h = np.zeros((3 * n, 3 * n))
    x0 = work.positions.copy()
    for i in range(n):
        for a in range(3):
            cols = []
            for sgn in (1, -1):
                x = x0.copy()
                x[i, a] += sgn * delta
                work.positions = x
                cols.append(-work.get_forces().reshape(-1))
            h[:, 3 * i + a] = (cols[0] - cols[1]) / (2 * delta)
    work.positions = x0
    return 0.5 * (h + h.T)


def n_rigid_modes(atoms: Atoms) -> int:
    if len(atoms) == 1:
        return 3
    inertia = np.sort(atoms.get_moments_of_inertia())
    return 5 if inertia[0] < 1e-3 * max(inertia[-1], 1e-12) else 6


def normal_mode_sample(
    atoms: Atoms, hess: np.ndarray, temperature_K: float, rng: np.random.Generator, k_min: float = 1.0
) -> Atoms:
    """Classical thermal sample of the harmonic model: x = x0 + sum_i sqrt(kT / max(k_i, k_min)) z_i v_i over the
    vibrational eigenvectors v_i of the Cartesian Hessian (rigid translations/rotations excluded); z_i ~ N(0, 1)."""
    from ase.units import kB

    w, v = np.linalg.eigh(hess)
    order = np.argsort(np.abs(w))
    vib = order[n_rigid_modes(atoms) :]
    k = np.maximum(w[vib], k_min)
    amp = np.sqrt(kB * temperature_K / k) * rng.standard_normal(len(vib))
    disp = (v[:, vib] * amp).sum(axis=1).reshape(-1, 3)
    out = atoms.copy()
    out.positions = atoms.positions + disp
    return out


def md_snapshots(
    atoms: Atoms,
    calc: Calculator,
    temperature_K: float,
    rng: np.random.Generator,
    n_snap: int,
    every: int,
    timestep_fs: float = 0.5,
) -> list[Atoms]:
    """Langevin MD (friction 0.01/fs) from ``atoms``; returns ``n_snap`` snapshots taken every ``every`` steps."""
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary, ZeroRotation

    work = atoms.copy()
    work.calc = calc
    MaxwellBoltzmannDistribution(work, temperature_K=temperature_K, rng=rng)
    Stationary(work)
    if not np.all(work.pbc):
        ZeroRotation(work)
    dyn = Langevin(
        work,
        timestep=timestep_fs * units.fs,
        temperature_K=temperature_K,
        friction=0.01 / units.fs,
        rng=rng,
        fixcm=True,
    )
    snaps = []
    for _ in range(n_snap):
        dyn.run(every)
        s = work.copy()
        s.calc = None
        snaps.append(s)
    return snaps
