"""ANI-1x / SPICE / Transition1x-style HDF5: groups of conformers of one molecule (or reaction).

Any HDF5 group holding an atomic-numbers dataset ``[n]`` and a coordinates dataset ``[M, n, 3]`` is a set of
``M`` conformers; datasets of energies ``[M]`` and forces (or gradients) ``[M, n, 3]`` label them. The layout and
units are those of a named preset (auto-detected from the dataset names, or ``preset=...``):

========  ===============  ===================  ===========================  ===============================
preset    coordinates       energy               forces                       units
========  ===============  ===================  ===========================  ===============================
ani1x     ``coordinates``  ``wb97x_dz.energy``  ``wb97x_dz.forces``          A, Hartree, Hartree/A
spice     ``conformations`` ``dft_total_energy`` ``dft_total_gradient`` (-F) Bohr, Hartree, Hartree/Bohr
t1x       ``positions``    ``wB97x_6-31G(d).energy`` ``wB97x_6-31G(d).forces`` A, eV, eV/A
========  ===============  ===================  ===========================  ===============================

Custom layouts: ``preset="custom"`` with ``coord_key``, ``energy_key``, ``forces_key`` (or ``gradient_key``) and
``length_unit``, ``energy_unit`` (names from :mod:`gfm_ase.units`). Molecules are non-periodic. SPICE total
charge is the rounded sum of the per-atom ``mbis_charges`` when present. ``group`` = the HDF5 group path.
As in the ANI-1x release, a label that is NaN for a whole conformer means "not computed" and is stored as missing;
a partly-NaN force array is an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable, Iterator

import h5py
import numpy as np

from gfm_ase.data.converters.base import Item, rel_id
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import UnitError, energy_factor, length_factor

PRESETS: dict[str, dict[str, str | None]] = {
    "ani1x": dict(
        numbers_key="atomic_numbers",
        coord_key="coordinates",
        energy_key="wb97x_dz.energy",
        forces_key="wb97x_dz.forces",
        gradient_key=None,
        length_unit="Angstrom",
        energy_unit="Hartree",
        level_of_theory="wB97X/6-31G(d)",
    ),
    "spice": dict(
        numbers_key="atomic_numbers",
        coord_key="conformations",
        energy_key="dft_total_energy",
        forces_key=None,
        gradient_key="dft_total_gradient",
        length_unit="Bohr",
        energy_unit="Hartree",
        level_of_theory="wB97M-D3(BJ)/def2-TZVPPD",
    ),
    "t1x": dict(
        numbers_key="atomic_numbers",
        coord_key="positions",
        energy_key="wB97x_6-31G(d).energy",
        forces_key="wB97x_6-31G(d).forces",
        gradient_key=None,
        length_unit="Angstrom",
        energy_unit="eV",
        level_of_theory="wB97x/6-31G(d)",
    ),
}
NUMBERS_KEYS = ("atomic_numbers", "species")


def _conformer_groups(f: h5py.File, numbers_key: str | None, coord_keys: Iterable[str]) -> list[tuple[str, h5py.Group]]:
    found = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Group):
            nk = numbers_key if numbers_key else next((k for k in NUMBERS_KEYS if k in obj), None)
            if nk and nk in obj and any(k in obj for k in coord_keys):
                found.append((name, obj))

    f.visititems(visit)
    return found


def detect_preset(f: h5py.File) -> str:
    for name, grp in _conformer_groups(f, None, ("coordinates", "conformations", "positions")):
        keys = set(grp.keys())
        for preset, p in PRESETS.items():
            if p["coord_key"] in keys and (p["energy_key"] in keys):
                return preset
        raise UnitError(
            f"group {name!r} has datasets {sorted(keys)} that match no preset "
            f"({', '.join(PRESETS)}); use preset='custom' with explicit keys and units"
        )
    raise ValueError("no group with atomic numbers and coordinates found")


def read_ani_h5(
    path: str | Path,
    *,
    root: Path | None = None,
    preset: str | None = None,
    numbers_key: str | None = None,
    coord_key: str | None = None,
    energy_key: str | None = None,
    forces_key: str | None = None,
    gradient_key: str | None = None,
    length_unit: str | None = None,
    energy_unit: str | None = None,
) -> Iterator[Item]:
    options = dict(
        numbers_key=numbers_key,
        coord_key=coord_key,
        energy_key=energy_key,
        forces_key=forces_key,
        gradient_key=gradient_key,
        length_unit=length_unit,
        energy_unit=energy_unit,
    )
    path = Path(path)
    ident = rel_id(path, root)
    with h5py.File(path, "r") as f:
        preset = preset or detect_preset(f)
        if preset == "custom":
            p: dict[str, str | None] = dict(
                numbers_key=None,
                coord_key=None,
                energy_key=None,
                forces_key=None,
                gradient_key=None,
                length_unit=None,
                energy_unit=None,
            )
        elif preset in PRESETS:
            p = dict(PRESETS[preset])
        else:
            raise ValueError(f"unknown preset {preset!r}; known: {', '.join(PRESETS)}, custom")
        p.update({k: v for k, v in options.items() if v is not None})
        if p["coord_key"] is None or p["length_unit"] is None or p["energy_unit"] is None:
            raise UnitError("custom HDF5 layout needs coord_key, length_unit and energy_unit")
        lf, ef = length_factor(p["length_unit"]), energy_factor(p["energy_unit"])
        groups = _conformer_groups(f, p["numbers_key"], (p["coord_key"],))
        if not groups:
            raise ValueError(f"no group with {p['coord_key']!r} and atomic numbers found")
        for name, g in groups:
            nk = p["numbers_key"] or next(k for k in NUMBERS_KEYS if k in g)
            numbers = g[nk][()]
            coords = g[p["coord_key"]][()]
            if coords.ndim == 2:
                coords = coords[None]
            n_conf = coords.shape[0]

            def column(key: str | None, shape_tail: tuple[int, ...]) -> np.ndarray | None:
                if not key or key not in g:
                    return None
                a = g[key][()]
                if a.shape[0] != n_conf or a.shape[1:] != shape_tail:
                    raise ValueError(
                        f"group {name!r}: {key} has shape {a.shape}, expected "
                        f"{(n_conf,) + shape_tail} ({n_conf} conformers of {len(numbers)} atoms)"
                    )
                return a

            n = len(numbers)
            if coords.shape[1:] != (n, 3):
                raise ValueError(f"group {name!r}: {p['coord_key']} has shape {coords.shape} for {n} atoms")
            energy = column(p["energy_key"], ())
            forces = column(p["forces_key"], (n, 3))
            if forces is not None:
                forces = forces * (ef / lf)
            else:
                grad = column(p["gradient_key"], (n, 3))
                forces = None if grad is None else -grad * (ef / lf)
            charge = None
            if "mbis_charges" in g:
                charge = float(np.rint(np.asarray(g["mbis_charges"][0]).sum()))
            for k in range(n_conf):

                def build(
                    k: int = k,
                    numbers: np.ndarray = numbers,
                    coords: np.ndarray = coords,
                    energy: np.ndarray | None = energy,
                    forces: np.ndarray | None = forces,
                    name: str = name,
                    charge: float | None = charge,
                ) -> StructureRecord:
                    e = None if energy is None or np.isnan(energy[k]) else float(energy[k]) * ef
                    fk = None if forces is None or np.isnan(forces[k]).all() else forces[k]
                    return StructureRecord(
                        coords[k] * lf,
                        numbers,
                        None,
                        np.zeros(3, dtype=bool),
                        energy=e,
                        forces=fk,
                        charge=charge,
                        group=name,
                        id=f"{ident}:{name}#{k}",
                    )

                yield Item(f"{name} conformer {k}", build)
