"""mlearn / maml JSON: a list of ``{"structure": <pymatgen dict>, "outputs": {...}, "group", "tag", ...}``.

Source units (Zuo et al. 2020 data, from VASP via pymatgen): energy eV (total per cell), forces eV/A,
``outputs.virial_stress`` in **kbar**, **compression positive** (VASP sign), component order
**xx yy zz xy xz yz** (pinned on the sheared "Elastic" cells of the data: an xy shear shows at index 3, xz at 4,
yz at 5). Converted to ASE: ``stress = -0.1 GPa/kbar * value``, reordered to xx yy zz yz xz xy.

Files written by maml (``pool_from``/``convert_docs`` style) hold the stress as ``outputs.stress`` instead: also
**kbar**, **compression positive**, but in VASP's OUTCAR order **xx yy zz xy yz zx**. Converted to ASE the same
way: ``stress = -0.1 GPa/kbar * value`` (eV/A^3, tension positive), reordered to xx yy zz yz xz xy. When a record
has both, ``virial_stress`` is used. ``stress_unit`` overrides kbar for either key. Any other key of ``outputs``
is a label this reader does not convert: it is counted and reported (``gfm data convert`` summary, a warning),
never dropped silently.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from numpy.typing import ArrayLike

from gfm_ase.data.converters.base import Item, rel_id, want
from gfm_ase.data.converters.pymatgen_dict import structure_from_dict
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import stress_factor, stress_to_ase, to_voigt, voigt_to_full

# position k of mlearn's 6-vector holds tensor component MLEARN_ORDER[k]
MLEARN_ORDER = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
CONVERTED_OUTPUTS = {"energy", "forces", "virial_stress", "stress"}


def mlearn_stress_to_ase(v: ArrayLike, unit: str = "kbar") -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (6,):
        raise ValueError(f"virial_stress must have 6 components, got shape {v.shape}")
    full = voigt_to_full(v, MLEARN_ORDER)
    full *= -stress_factor(unit)  # kbar, compression positive -> eV/A^3, tension positive
    return to_voigt(full)


def maml_stress_to_ase(v: ArrayLike, unit: str = "kbar") -> np.ndarray:
    """maml ``outputs.stress``: kbar, compression positive, order xx yy zz xy yz zx -> ASE Voigt, eV/A^3, tension +."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (6,):
        raise ValueError(f"outputs.stress must have 6 components, got shape {v.shape}")
    return stress_to_ase(v, unit, sign="compression", order="vasp")


def read_mlearn(path: str | Path, *, root: Path | None = None, stress_unit: str = "kbar") -> Iterator[Item]:
    path = Path(path)
    with open(path) as fh:
        data = json.load(fh)
    if not isinstance(data, list):
        raise ValueError("mlearn JSON must be a list of records")
    ident = rel_id(path, root)
    for k, entry in enumerate(data):

        def build(entry: Any = entry, k: int = k) -> StructureRecord:
            numbers, positions, cell, pbc = structure_from_dict(want(entry, "structure"))
            out = want(entry, "outputs")
            n_decl = entry.get("num_atoms")
            if n_decl is not None and int(n_decl) != len(numbers):
                raise ValueError(f"num_atoms={n_decl} but the structure has {len(numbers)} sites")
            stress = out.get("virial_stress")
            if stress is not None:
                stress = mlearn_stress_to_ase(stress, stress_unit)
            elif out.get("stress") is not None:
                stress = maml_stress_to_ase(out["stress"], stress_unit)
            element = entry.get("element") or ""
            group = entry.get("group") or ""
            return StructureRecord(
                positions,
                numbers,
                cell,
                pbc,
                energy=out.get("energy"),
                forces=out.get("forces"),
                stress=stress,
                group=f"{element}/{group}" if element else group,
                id=f"{ident}#{k}",
            )

        out = entry.get("outputs") if isinstance(entry, dict) else None
        dropped = (
            tuple(sorted(key for key, v in out.items() if key not in CONVERTED_OUTPUTS and v is not None))
            if isinstance(out, dict)
            else ()
        )
        yield Item(f"record {k}", build, dropped)
