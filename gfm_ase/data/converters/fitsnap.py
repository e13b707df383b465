"""FitSNAP JSON: a comment line, then ``{"Dataset": {"Data": [...], "EnergyStyle", "StressStyle", ...}}``.

Each file declares its units in ``*Style`` fields; they are read, never assumed. Known styles: energy
``electronvolt``; positions/lattice ``angstrom``; forces ``electronvoltperangstrom``; stress ``bar`` or ``kB``
(kbar), both **compression positive** (pressure-tensor sign as VASP and LAMMPS print it: the Ta EOS cells with
a = 3.4 A carry +4e6 bar; InP "12 GPa" EOS cells +112 kB). Stress is a 3x3 tensor (no order ambiguity).
``Lattice`` rows are the cell vectors. Fe files also carry ``Spins`` ("total x y z": moment magnitude and
direction per atom); the magnitude is stored as ``magmoms``. The ``group`` is the folder the file sits in
(FitSNAP's training groups).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from ase.data import atomic_numbers

from gfm_ase.data.converters.base import Item, rel_id, want
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import UnitError, stress_to_ase

ENERGY_STYLES = {"electronvolt": "eV", "ev": "eV", "kcal/mol": "kcal/mol", "hartree": "Hartree"}
LENGTH_STYLES = {"angstrom": 1.0}
FORCE_STYLES = {"electronvoltperangstrom": 1.0}
STRESS_STYLES = {"bar": "bar", "kb": "kbar", "kbar": "kbar", "gpa": "GPa"}


def load_fitsnap_json(path: Path) -> dict:
    text = Path(path).read_text()
    start = text.find("{")
    head = text[:start]
    if start < 0 or any(line.strip() and not line.lstrip().startswith("#") for line in head.splitlines()):
        raise ValueError("not a FitSNAP JSON file (expected comment lines, then a JSON object)")
    doc = json.loads(text[start:])
    if "Dataset" not in doc:
        raise ValueError("FitSNAP JSON has no 'Dataset' object")
    return doc["Dataset"]


def _style(ds: dict, key: str, table: dict[str, Any], default: str | None) -> Any:
    value = ds.get(key, default)
    if value is None:
        raise UnitError(f"{key} is missing (units unknown)")
    try:
        return table[str(value).lower()]
    except KeyError:
        raise UnitError(f"unknown {key} {value!r}; known: {', '.join(table)}") from None


def read_fitsnap(path: str | Path, *, root: Path | None = None, group: str | None = None) -> Iterator[Item]:
    from gfm_ase.units import energy_factor

    path = Path(path)
    ds = load_fitsnap_json(path)
    e_fac = energy_factor(_style(ds, "EnergyStyle", ENERGY_STYLES, None))
    _style(ds, "PositionsStyle", LENGTH_STYLES, "angstrom")
    _style(ds, "LatticeStyle", LENGTH_STYLES, "angstrom")
    _style(ds, "ForcesStyle", FORCE_STYLES, "electronvoltperangstrom")
    stress_unit = (
        _style(ds, "StressStyle", STRESS_STYLES, None) if any("Stress" in r for r in ds.get("Data", [])) else None
    )
    if ds.get("AtomTypeStyle", "chemicalsymbol") != "chemicalsymbol":
        raise UnitError(f"unknown AtomTypeStyle {ds.get('AtomTypeStyle')!r}")
    spins_style = ds.get("SpinsStyle")
    grp = group if group is not None else path.parent.name
    ident = rel_id(path, root)
    for k, r in enumerate(want(ds, "Data", "Dataset")):

        def build(r: Any = r, k: int = k) -> StructureRecord:
            types = want(r, "AtomTypes")
            try:
                numbers = [atomic_numbers[t] for t in types]
            except KeyError as exc:
                raise ValueError(f"unknown element {exc.args[0]!r} in AtomTypes") from None
            n_decl = r.get("NumAtoms")
            positions = np.asarray(want(r, "Positions"), dtype=np.float64)
            if n_decl is not None and (int(n_decl) != len(numbers) or len(positions) != int(n_decl)):
                raise ValueError(f"NumAtoms={n_decl} but {len(numbers)} AtomTypes and {len(positions)} Positions")
            stress = r.get("Stress")
            if stress is not None:
                assert stress_unit is not None  # read when any record has a stress
                stress = stress_to_ase(stress, stress_unit, sign="compression")
            energy = r.get("Energy")
            magmoms = None
            if r.get("Spins") is not None:
                if spins_style not in (None, "total x y z"):
                    raise UnitError(f"unknown SpinsStyle {spins_style!r}")
                sp = np.asarray(r["Spins"], dtype=np.float64)
                magmoms = sp[:, 0] if sp.ndim == 2 else sp
            return StructureRecord(
                positions,
                np.asarray(numbers),
                want(r, "Lattice"),
                np.ones(3, dtype=bool),
                energy=None if energy is None else float(energy) * e_fac,
                forces=r.get("Forces"),
                stress=stress,
                magmoms=magmoms,
                group=grp,
                id=f"{ident}#{k}",
            )

        yield Item(f"record {k}", build)
