"""phonopy finite-displacement data: ``FORCE_SETS`` with ``phonopy_disp.yaml``, or ``phonopy_params.yaml``.

Every displaced supercell with its computed forces becomes one record (forces only, unless the yaml carries
``supercell_energies``). Units follow the calculator recorded in the yaml (``phonopy.calculator``; VASP when
absent): VASP A and eV/A; Quantum ESPRESSO Bohr and Ry/Bohr; ABINIT Bohr and Hartree/Bohr; others must be given
(``length_unit``, ``force_unit``). When only ``POSCAR-unitcell`` and ``FORCE_SETS`` exist, pass the supercell
matrix (``supercell=[2, 2, 2]``) and the displaced supercells are rebuilt from the displacements in FORCE_SETS.
Uses the phonopy package (``pip install phonopy``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from gfm_ase.data.converters.base import Item, rel_id
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import BOHR, HARTREE, RYDBERG, UnitError

CALCULATOR_UNITS = {  # calculator -> (A per length unit, eV/A per force unit, eV per energy unit)
    "vasp": (1.0, 1.0, 1.0),
    "qe": (BOHR, RYDBERG / BOHR, RYDBERG),
    "abinit": (BOHR, HARTREE / BOHR, HARTREE),
    "aims": (1.0, 1.0, 1.0),
    "cp2k": (BOHR, HARTREE / BOHR, HARTREE),
}
YAML_NAMES = ("phonopy_params.yaml", "phonopy_disp.yaml", "phonopy.yaml")


def phonopy_inputs(folder: Path) -> dict | None:
    """The phonopy files of a folder, or None if it holds no displacement data with forces."""
    folder = Path(folder)
    yaml = next((folder / n for n in YAML_NAMES if (folder / n).is_file()), None)
    fs = folder / "FORCE_SETS"
    if yaml is None and not fs.is_file():
        return None
    if yaml is not None and yaml.name == "phonopy_params.yaml":
        return {"yaml": yaml, "force_sets": fs if fs.is_file() else None}
    if fs.is_file():
        unitcell = folder / "POSCAR-unitcell"
        return {"yaml": yaml, "force_sets": fs, "unitcell": unitcell if unitcell.is_file() else None}
    return None


def _calculator(yaml_path: Path | None) -> str:
    if yaml_path is None:
        return "vasp"
    import yaml

    with open(yaml_path) as fh:
        doc = yaml.safe_load(fh)
    return str((doc.get("phonopy") or {}).get("calculator", "vasp")).lower()


def read_phonopy(path, *, root: Path | None = None, group: str | None = None, supercell=None,
                 length_unit: float | None = None, force_unit: float | None = None, **_) -> Iterator[Item]:
    try:
        import phonopy
    except ImportError:  # pragma: no cover
        raise ImportError("the phonopy converter needs the phonopy package: pip install phonopy") from None
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    inp = phonopy_inputs(folder)
    if inp is None:
        raise ValueError("no FORCE_SETS or phonopy_params.yaml found")
    yaml_path, fs = inp.get("yaml"), inp.get("force_sets")
    calc = _calculator(yaml_path)
    if calc not in CALCULATOR_UNITS and (length_unit is None or force_unit is None):
        raise UnitError(f"phonopy calculator {calc!r}: units unknown; pass length_unit and force_unit")
    lu, fu, eu = CALCULATOR_UNITS.get(calc, (1.0, 1.0, 1.0))
    lu = lu if length_unit is None else length_unit
    fu = fu if force_unit is None else force_unit
    kw = dict(produce_fc=False, log_level=0, is_nac=False)
    if fs is not None:
        kw["force_sets_filename"] = str(fs)
    if yaml_path is not None:
        ph = phonopy.load(str(yaml_path), **kw)
    else:
        if supercell is None or inp.get("unitcell") is None:
            raise ValueError("FORCE_SETS without phonopy_disp.yaml: need POSCAR-unitcell and supercell=[...]")
        ph = phonopy.load(supercell_matrix=supercell, unitcell_filename=str(inp["unitcell"]), primitive_matrix="P",
                          **kw)
    forces = ph.forces
    if forces is None:
        raise ValueError("the phonopy data carries no forces")
    cells = ph.supercells_with_displacements
    try:
        energies = ph.supercell_energies
    except (AttributeError, RuntimeError):  # FORCE_SETS carry no energies
        energies = None
    if len(cells) != len(forces):
        raise ValueError(f"{len(cells)} displaced supercells but {len(forces)} force sets")
    grp = group if group is not None else folder.name
    ident = rel_id(folder, root)
    for k, (sc, f) in enumerate(zip(cells, forces)):
        def build(sc=sc, f=f, k=k):
            e = None if energies is None else float(energies[k]) * eu
            return StructureRecord(np.asarray(sc.positions) * lu, sc.numbers, np.asarray(sc.cell) * lu, True,
                                   energy=e, forces=np.asarray(f, dtype=np.float64) * fu, group=grp,
                                   id=f"{ident}#disp-{k + 1:03d}")
        yield Item(f"displacement {k + 1}", build)
