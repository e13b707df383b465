"""Shared helpers of the fine-tuning tests (not a test module): a tiny pretrained two-head model made in seconds
with the pretraining trainer, and small task stores labelled with levels of theory it never saw."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain_helpers import make_data, tiny_config

# Cu Morse potential (Girifalco & Weizer 1959: D = 0.3429 eV, alpha = 1.3588 / A, r0 = 2.866 A); ASE's
# MorsePotential takes rho0 = alpha * r0 and cuts off smoothly between rcut1 and rcut2 (in units of r0)
MORSE_CU = dict(epsilon=0.3429, r0=2.866, rho0=1.3588 * 2.866, rcut1=1.6, rcut2=2.0)


def _cells(rng, symbol: str, a0: float, n: int):
    from ase.build import bulk

    out = []
    for _ in range(n):
        atoms = bulk(symbol, "fcc", a=a0 * rng.uniform(0.97, 1.04), cubic=True)
        if rng.uniform() < 0.5:
            atoms = atoms.repeat((2, 1, 1))
        strain = np.eye(3) + rng.normal(0.0, 0.02, (3, 3))
        atoms.set_cell(atoms.cell.array @ (0.5 * (strain + strain.T)), scale_atoms=True)
        atoms.rattle(stdev=rng.uniform(0.03, 0.12), seed=int(rng.integers(1 << 31)))
        out.append(atoms)
    return out


def write_task_store(path: Path, kind: str, n: int, seed: int = 0) -> Path:
    """``morse_cu``: Cu cells with a Morse potential (a level of theory the tiny model never saw);
    ``ag_emt``: Ag cells with EMT (an element the tiny model never saw, at its emt head's level of theory)."""
    from ase.calculators.emt import EMT
    from ase.calculators.morse import MorsePotential
    from ase.calculators.singlepoint import SinglePointCalculator

    from gfm_ase.data import StoreWriter

    rng = np.random.default_rng([seed, 77])
    if kind == "morse_cu":
        cells, calc, lot = _cells(rng, "Cu", 3.61, n), MorsePotential(**MORSE_CU), "Morse (Cu, Girifalco-Weizer)"
    elif kind == "ag_emt":
        cells, calc, lot = _cells(rng, "Ag", 4.09, n), EMT(), "EMT"
    else:
        raise KeyError(kind)
    with StoreWriter(path, name=kind, level_of_theory=lot, code="ASE", source="tests", license="CC0-1.0") as w:
        for i, atoms in enumerate(cells):
            atoms.calc = calc
            res = dict(energy=atoms.get_potential_energy(), forces=atoms.get_forces(),
                       stress=atoms.get_stress(voigt=True))
            atoms.calc = SinglePointCalculator(atoms, **res)
            w.append_atoms(atoms, id=f"{kind}-{i}", group=f"{kind}-{i}")
    return path


def make_pretrained(root: Path, steps: int = 60) -> dict[str, Path]:
    """Pretrain the example config's model (heads emt: Cu/Au/CuAu, lj: Cu) on the reduced tiny corpus."""
    from gfm_ase.pretraining.trainer import Trainer

    root = Path(root)
    data = make_data(root / "data", scale=0.25)
    cfg = tiny_config(data, sampling__steps_per_epoch=steps, sampling__epochs=1, sampling__batch_size=6,
                      logging__every_steps=steps, checkpoint__every_steps=steps, validation__every_steps=steps,
                      model__trunk__options={"cutoff": 4.0, "num_features": 16, "num_layers": 2, "num_rbf": 8},
                      heads__0__hidden=[16], heads__1__hidden=[16])
    Trainer(cfg, root / "pre").fit()
    return {"data": data, "model": root / "pre", "morse": write_task_store(root / "morse_cu.h5", "morse_cu", 40),
            "ag": write_task_store(root / "ag_emt.h5", "ag_emt", 24)}


def tensors(model_dir: Path) -> dict:
    from safetensors.torch import load_file

    from gfm_ase.hub import resolve_model

    return load_file(str(resolve_model(str(model_dir)) / "model.safetensors"))


def shared_pretrained(tmp_path_factory) -> dict[str, Path]:
    """One tiny pretrained model per test session (per xdist worker), whichever test module asks first."""
    root = tmp_path_factory.getbasetemp() / "finetune_pretrained"
    done = root / "done"
    if not done.exists():
        import shutil

        shutil.rmtree(root, ignore_errors=True)
        make_pretrained(root)
        done.write_text("ok")
    return {"data": root / "data", "model": root / "pre", "morse": root / "morse_cu.h5", "ag": root / "ag_emt.h5"}
