"""Anything ``ase.io`` reads: extxyz, ASE trajectories, ASE databases, vasprun.xml, OUTCAR, pw.x output, ...

Source units: ASE's (eV, A, eV/A, stress eV/A^3 tension-positive, Voigt) - what ``ase.io`` hands back. Some files
carry labels in other units that ASE cannot know about (the FitSNAP extxyz files store stress in bar with
compression positive under the key ``stress``); say so with ``stress_unit``/``stress_sign``. Energies stored under
another key (``info`` or an ASE-db ``data`` entry, e.g. QM9's ``energy_U0`` in Hartree) are read with
``energy_key`` and ``energy_unit``.

Labels a frame holds that this reader does not convert (calculator results such as ``dipole``, ``charges`` or
per-atom ``energies``; ``info`` keys such as ``virial`` or ``REF_energy``; per-atom arrays such as ``REF_forces``)
are counted and reported by the driver, never dropped silently. A frame's ``info['id']`` (ASE db: ``data['id']``),
as ``gfm data export`` writes it, becomes the record id; without one the id is the file and frame.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms

from gfm_ase.data.converters.base import Item, rel_id
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import energy_factor, stress_to_ase

_BY_NAME = (  # (predicate on the file name, ase format)
    (lambda n: n.startswith("vasprun") and ".xml" in n, "vasp-xml"),
    (lambda n: n.startswith("OUTCAR"), "vasp-out"),
)


def ase_format_for(path: Path) -> str | None:
    name = path.name
    for pred, fmt in _BY_NAME:
        if pred(name):
            return fmt
    if path.suffix == ".out":
        with open(path, "rb") as fh:
            if b"Program PWSCF" in fh.read(1 << 16):
                return "espresso-out"
    return None


# calculator results that are converted or are another form of a converted label
_CONVERTED_RESULTS = {"energy", "free_energy", "forces", "stress", "magmoms", "magmom"}
# info / db keys and per-atom arrays that hold labels under names this reader does not read
_LABEL_INFO_KEYS = {
    "virial",
    "virials",
    "REF_energy",
    "REF_virial",
    "REF_stress",
    "dft_energy",
    "DFT_energy",
    "dft_virial",
    "DFT_virial",
    "dipole",
    "energy",
    "free_energy",
    "stress",
}
_LABEL_ARRAYS = {"REF_forces", "dft_forces", "DFT_forces", "force", "forces_dft"}


def unconverted_labels(atoms: Atoms, extra: dict, energy_key: str) -> tuple:
    """Names of labels ``atoms`` (and an ASE-db row's ``extra``) holds that :func:`_labels_from` leaves out."""
    res = atoms.calc.results if atoms.calc is not None else {}
    out = {k for k, v in res.items() if k not in _CONVERTED_RESULTS and k != energy_key and v is not None}
    used = {energy_key, "stress"} | ({"energy", "free_energy"} if "energy" in res else set())
    for d in (atoms.info, extra):
        out |= {k for k in d if k in _LABEL_INFO_KEYS and k not in used}
    out |= {k for k in atoms.arrays if k in _LABEL_ARRAYS}
    return tuple(sorted(out))


def _labels_from(
    atoms: Atoms, extra: dict, energy_key: str, energy_unit: str, stress_unit: str, stress_sign: str
) -> tuple[float | None, Any, np.ndarray | None, Any]:
    res = dict(atoms.calc.results) if atoms.calc is not None else {}
    energy = res.get(energy_key)
    if energy is None:
        energy = atoms.info.get(energy_key, extra.get(energy_key))
    if energy is not None:
        energy = float(np.asarray(energy, dtype=np.float64).reshape(())) * energy_factor(energy_unit)
    forces = res.get("forces")
    if forces is None:
        forces = atoms.arrays.get("forces")
    stress = res.get("stress")
    if stress is None:
        stress = atoms.info.get("stress")
    if stress is not None:
        stress = stress_to_ase(np.asarray(stress, dtype=np.float64), stress_unit, sign=stress_sign)
    magmoms = res.get("magmoms")
    return energy, forces, stress, magmoms


def _source_id(d: dict, default: str) -> str:
    """The record id a frame carries (``info['id']``, ASE-db ``data['id']``: what ``gfm data export`` writes), else
    ``default`` (file and frame)."""
    value = d.get("id")
    return str(value) if isinstance(value, str) and value else default


def read_ase(
    path: str | Path,
    *,
    root: Path | None = None,
    index: str = ":",
    format: str | None = None,
    energy_key: str = "energy",
    energy_unit: str = "eV",
    stress_unit: str = "eV/A^3",
    stress_sign: str = "tension",
    group: str | None = None,
) -> Iterator[Item]:
    """Read every frame of ``path`` with ``ase.io`` (ASE databases row by row, keeping ``data``/key-value pairs)."""
    import ase.io

    path = Path(path)
    fmt = format or ase_format_for(path)
    ident = rel_id(path, root)
    grp = group if group is not None else path.stem
    if path.suffix in (".db",) and fmt in (None, "db"):
        import ase.db

        with ase.db.connect(str(path)) as db:
            rows = list(db.select())
        for row in rows:

            def build_row(row: Any = row) -> StructureRecord:
                atoms = row.toatoms()
                extra = {**row.key_value_pairs, **(row.data or {})}
                e, f, s, m = _labels_from(atoms, extra, energy_key, energy_unit, stress_unit, stress_sign)
                return StructureRecord(
                    atoms.positions,
                    atoms.numbers,
                    atoms.cell.array,
                    atoms.pbc,
                    energy=e,
                    forces=f,
                    stress=s,
                    magmoms=m,
                    charge=extra.get("charge"),
                    spin=extra.get("spin"),
                    group=str(extra.get("group", grp)),
                    id=_source_id(extra, f"{ident}#id={row.id}"),
                )

            try:
                dropped = unconverted_labels(row.toatoms(), {**row.key_value_pairs, **(row.data or {})}, energy_key)
            except Exception:  # noqa: BLE001 - a broken row is reported by build()
                dropped = ()
            yield Item(f"row id={row.id}", build_row, dropped)
        return
    frames = ase.io.read(str(path), index=index, format=fmt)
    if not isinstance(frames, list):
        frames = [frames]
    for k, atoms in enumerate(frames):

        def build(atoms: Atoms = atoms, k: int = k) -> StructureRecord:
            e, f, s, m = _labels_from(atoms, {}, energy_key, energy_unit, stress_unit, stress_sign)
            return StructureRecord(
                atoms.positions,
                atoms.numbers,
                atoms.cell.array,
                atoms.pbc,
                energy=e,
                forces=f,
                stress=s,
                magmoms=m,
                charge=atoms.info.get("charge"),
                spin=atoms.info.get("spin"),
                group=str(atoms.info.get("group", grp)),
                id=_source_id(atoms.info, f"{ident}#{k}"),
            )

        yield Item(f"frame {k}", build, unconverted_labels(atoms, {}, energy_key))
