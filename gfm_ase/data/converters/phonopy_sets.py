"""phonopy finite-displacement data: ``FORCE_SETS`` with ``phonopy_disp.yaml``, or ``phonopy_params.yaml``.

Every displaced supercell with its computed forces becomes one record (forces only, unless the yaml carries
``supercell_energies``). Units follow the calculator recorded in the yaml (``phonopy.calculator``; VASP when
absent), as phonopy defines them: VASP A and eV/A; Quantum ESPRESSO Bohr and Ry/Bohr; ABINIT Bohr and eV/A;
CP2K A and Hartree/Bohr; ... (``length_unit``/``force_unit`` factors override). When only ``POSCAR-unitcell`` and
``FORCE_SETS`` exist, pass the supercell
matrix (``supercell=[2, 2, 2]``) and the displaced supercells are rebuilt from the displacements in FORCE_SETS.
Uses the phonopy package (``pip install phonopy``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np

from gfm_ase.data.converters.base import Item, rel_id
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import BOHR, HARTREE, RYDBERG, UnitError

LENGTH_NAMES = {"angstrom": 1.0, "au": BOHR}
ENERGY_NAMES = {"ev": 1.0, "ry": RYDBERG, "mry": 1e-3 * RYDBERG, "hartree": HARTREE}


def calculator_units(calc: str) -> tuple[float, float, float]:
    """(A per length unit, eV/A per force unit, eV per energy unit) of a phonopy calculator interface, from
    phonopy's own table (e.g. VASP: A, eV/A; QE: Bohr, Ry/Bohr; ABINIT: Bohr, eV/A; CP2K: A, Hartree/Bohr)."""
    from phonopy.interface.calculator import get_calculator_physical_units

    try:
        u = get_calculator_physical_units(calc)
        length, force = u.length_unit, u.force_unit
    except Exception as exc:  # noqa: BLE001 - phonopy raises various errors for unknown interfaces
        raise UnitError(f"phonopy calculator {calc!r}: units unknown ({exc})") from None
    e_name, _, l_name = force.partition("/")
    try:
        lu = LENGTH_NAMES[length.lower()]
        eu = ENERGY_NAMES[e_name.lower()]
        fu = eu / LENGTH_NAMES[l_name.lower()]
    except KeyError:
        raise UnitError(f"phonopy calculator {calc!r}: unsupported units {length!r}, {force!r}") from None
    return lu, fu, eu


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


def read_phonopy(
    path: str | Path,
    *,
    root: Path | None = None,
    group: str | None = None,
    supercell: Any = None,
    length_unit: float | None = None,
    force_unit: float | None = None,
) -> Iterator[Item]:
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
    lu, fu, eu = calculator_units(calc)
    lu = lu if length_unit is None else length_unit
    fu = fu if force_unit is None else force_unit
    kw: dict[str, Any] = dict(produce_fc=False, log_level=0, is_nac=False)
    if fs is not None:
        kw["force_sets_filename"] = str(fs)
    if yaml_path is not None:
        ph = phonopy.load(str(yaml_path), **kw)
    else:
        if supercell is None or inp.get("unitcell") is None:
            raise ValueError("FORCE_SETS without phonopy_disp.yaml: need POSCAR-unitcell and supercell=[...]")
        ph = phonopy.load(
            supercell_matrix=supercell, unitcell_filename=str(inp["unitcell"]), primitive_matrix="P", **kw
        )
    forces = ph.forces
    if forces is None:
        raise ValueError("the phonopy data carries no forces")
    cells = ph.supercells_with_displacements
    if cells is None:
        raise ValueError("the phonopy data carries no displaced supercells")
    try:
        energies = ph.supercell_energies
    except (AttributeError, RuntimeError):  # FORCE_SETS carry no energies
        energies = None
    if len(cells) != len(forces):
        raise ValueError(f"{len(cells)} displaced supercells but {len(forces)} force sets")
    grp = group if group is not None else folder.name
    ident = rel_id(folder, root)
    for k, (sc, f) in enumerate(zip(cells, forces)):

        def build(sc: Any = sc, f: Any = f, k: int = k) -> StructureRecord:
            e = None if energies is None else float(energies[k]) * eu
            return StructureRecord(
                np.asarray(sc.positions) * lu,
                sc.numbers,
                np.asarray(sc.cell) * lu,
                np.ones(3, dtype=bool),
                energy=e,
                forces=np.asarray(f, dtype=np.float64) * fu,
                group=grp,
                id=f"{ident}#disp-{k + 1:03d}",
            )

        yield Item(f"displacement {k + 1}", build)
