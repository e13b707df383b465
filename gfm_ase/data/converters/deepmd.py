"""DeePMD-kit npy systems: ``type.raw``, ``type_map.raw``, ``set.*/{coord,box,energy,force,virial}.npy``.

Source units (DeePMD convention): coordinates and box in A (box rows = cell vectors, 9 numbers per frame),
energy eV, forces eV/A, ``virial`` in eV with W = -dE/d(strain) (so ASE stress = -W / V). A file ``nopbc`` in the
system folder marks non-periodic frames (no box needed). Every array is checked against the number of frames and
atoms; a mismatch (truncated or mixed-up arrays) names the file. The ``group`` is the system folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from ase.data import atomic_numbers

from gfm_ase.data.converters.base import Item, rel_id
from gfm_ase.data.record import StructureRecord
from gfm_ase.units import virial_to_stress


def is_deepmd_system(path: Path) -> bool:
    return path.is_dir() and (path / "type.raw").is_file() and any(path.glob("set.*"))


def _load(path: Path, n_frames: int | None, width: int | None) -> np.ndarray | None:
    if not path.is_file():
        return None
    try:
        a = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path.name}: cannot be read ({exc})") from None
    if width is not None:
        if a.ndim == 1 and width == 1:
            a = a.reshape(-1, 1)
        if a.ndim != 2 or a.shape[1] != width:
            raise ValueError(f"{path.name} has shape {a.shape}, expected [frames, {width}]")
    if n_frames is not None and a.shape[0] != n_frames:
        raise ValueError(f"{path.name} has {a.shape[0]} frames but coord.npy has {n_frames}")
    return a


def read_deepmd(
    path: str | Path, *, root: Path | None = None, group: str | None = None, type_map: list[str] | None = None
) -> Iterator[Item]:
    system = Path(path)
    types = np.loadtxt(system / "type.raw", dtype=np.int64, ndmin=1)
    if type_map is None:
        tm = system / "type_map.raw"
        if not tm.is_file():
            raise ValueError("no type_map.raw: pass the element names of the types (type_map=[...])")
        type_map = tm.read_text().split()
    try:
        z_of_type = np.array([atomic_numbers[s] for s in type_map])
    except KeyError as exc:
        raise ValueError(f"type_map.raw names an unknown element {exc.args[0]!r}") from None
    if types.min() < 0 or types.max() >= len(z_of_type):
        raise ValueError(f"type.raw uses type {types.max()} but type_map has {len(z_of_type)} entries")
    numbers = z_of_type[types]
    n = len(numbers)
    periodic = not (system / "nopbc").exists()
    grp = group if group is not None else system.name
    ident = rel_id(system, root)
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    for s in sets:
        coord = _load(s / "coord.npy", None, 3 * n)
        if coord is None:
            raise ValueError(f"{s.name}/coord.npy is missing")
        nf = coord.shape[0]
        box = _load(s / "box.npy", nf, 9)
        if periodic and box is None:
            raise ValueError(f"{s.name}/box.npy is missing (and no 'nopbc' file)")
        energy = _load(s / "energy.npy", nf, 1)
        force = _load(s / "force.npy", nf, 3 * n)
        virial = _load(s / "virial.npy", nf, 9)
        for k in range(nf):

            def build(k: int = k, s: Path = s) -> StructureRecord:
                pos = coord[k].astype(np.float64).reshape(n, 3)
                cell = box[k].astype(np.float64).reshape(3, 3) if (periodic and box is not None) else None
                stress = None
                if virial is not None and cell is not None:  # periodic
                    stress = virial_to_stress(virial[k].astype(np.float64), abs(np.linalg.det(cell)))
                return StructureRecord(
                    pos,
                    numbers,
                    cell,
                    np.full(3, periodic),
                    energy=None if energy is None else float(energy[k, 0]),
                    forces=None if force is None else force[k].astype(np.float64).reshape(n, 3),
                    stress=stress,
                    group=grp,
                    id=f"{ident}/{s.name}#{k}",
                )

            yield Item(f"{s.name} frame {k}", build)
