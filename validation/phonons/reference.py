"""Phonon references: a folder of phonopy inputs and DFT outputs, read into one object per structure.

Recognised, in any combination (files may be compressed or packed in tar archives):

- structure + supercell: ``phonopy_params.yaml`` / ``phonopy.yaml`` / ``phonopy_disp.yaml`` (any calculator's
  units, converted to A and eV), or a unit cell file (``POSCAR-unitcell``, ``UPOSCAR``, ``POSCAR``, a pw.x input)
  with the supercell matrix given or inferred (n_supercell / n_unitcell = k^3 -> k x k x k);
- displacements: the phonopy yaml, ``FORCE_SETS`` (type 1 or 2), or an old-style ``disp.yaml``;
- forces: ``FORCE_SETS``, forces inside ``phonopy_params.yaml``, or force calculations (vasprun.xml, OUTCAR,
  pw.x output, extended XYZ) matched to the displaced supercells by geometry;
- force constants only: ``FORCE_CONSTANTS`` / ``force_constants.hdf5``;
- ``BORN`` (Born charges and dielectric tensor, applied to reference and calculator alike).

Several ``POSCAR-<tag>`` unit cells with one displacement set (a quasi-harmonic series) give one reference per
cell; a folder with no phonon files but phonon subfolders gives one reference per subfolder.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import numpy as np
import numpy.typing as npt
from ase import Atoms

from gfm_ase.validation.phonons import phonopy_io as pio
from gfm_ase.validation.phonons.files import FileEntry, list_files
from gfm_ase.validation.phonons.forcefiles import read_force_calculations
from gfm_ase.validation.phonons.matching import identify
from gfm_ase.validation.phonons.qha import EVReference, ThermalReference, qha_references

if TYPE_CHECKING:
    from phonopy import Phonopy
    from phonopy.structure.cells import Primitive

PHONOPY_YAMLS = ("phonopy_params.yaml", "phonopy.yaml", "phonopy_disp.yaml")
NOT_STRUCTURE_YAMLS = ("thermal_properties", "band", "mesh", "total_dos", "qpoints", "irreps", "gruneisen")
UNITCELL_NAMES = ("POSCAR-unitcell", "UPOSCAR", "POSCAR", "CONTCAR", "unitcell.in", "POSCAR.vasp")
DISPLACED_SUPERCELL = re.compile(r"^(POSCAR|supercell)-\d{3,}(\.in)?$|^SPOSCAR$|^supercell(\.in)?$")


# phonopy's primitive-matrix keywords: 'auto' (its symmetry search) or a centring letter
PrimitiveLetter: TypeAlias = Literal["auto", "P", "F", "I", "A", "C", "R"]


class ReferenceError(ValueError):
    """A reference folder that cannot be read (the message says what is missing or inconsistent)."""


@dataclass
class PhononReference:
    """One reference structure with its displacements and DFT forces (or force constants), in A / eV / amu."""

    name: str
    folder: Path
    unitcell: Atoms
    supercell_matrix: np.ndarray
    primitive_matrix: np.ndarray | PrimitiveLetter
    dataset: dict[str, Any] | None = None  # with forces (eV/A)
    force_constants: np.ndarray | None = None  # full [N, N, 3, 3] eV/A^2 when given instead of forces
    nac: dict[str, np.ndarray] | None = None  # {"born": [n_prim, 3, 3], "dielectric": [3, 3]}
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    born_file: FileEntry | None = None  # BORN, parsed on first use (it needs the primitive cell's symmetry)

    @property
    def has_nac(self) -> bool:
        return self.nac is not None or self.born_file is not None

    def phonopy(self, unitcell: Atoms | None = None, nac: bool = True) -> Phonopy:
        """A fresh phonopy.Phonopy (eV/A units) for this reference's (or the given) unit cell, without forces."""
        from phonopy import Phonopy

        with warnings.catch_warnings():  # phonopy announces that 'auto' differs from its v3 default; we chose it
            warnings.filterwarnings("ignore", message=".*primitive_matrix defaulted.*")
            ph = Phonopy(
                pio.to_phonopy_atoms(self.unitcell if unitcell is None else unitcell),
                supercell_matrix=self.supercell_matrix,
                primitive_matrix=self.primitive_matrix,
            )
        if nac and self.has_nac:
            if self.nac is None:
                assert self.born_file is not None  # has_nac without nac: the BORN file is there
                self.nac = _read_born(self.born_file, ph.primitive)
            ph.nac_params = {"born": self.nac["born"], "dielectric": self.nac["dielectric"], "factor": nac_factor()}
        return ph

    def supercell(self) -> Atoms:
        """The undisplaced supercell in phonopy's atom order (cheap: no symmetry search)."""
        from phonopy.structure.cells import get_supercell

        return pio.to_ase_atoms(get_supercell(pio.to_phonopy_atoms(self.unitcell), self.supercell_matrix))

    @property
    def n_supercell_atoms(self) -> int:
        return int(round(len(self.unitcell) * abs(np.linalg.det(self.supercell_matrix))))


# what load_references returns: displacement references and the quasi-harmonic ones (qha.py)
AnyReference: TypeAlias = PhononReference | ThermalReference | EVReference


def nac_factor() -> float:
    """phonopy's NAC unit factor for eV and A (e^2/(4 pi eps0) in eV A, ~14.40)."""
    from phonopy.interface.calculator import get_calculator_physical_units

    return float(get_calculator_physical_units(None).nac_factor)


# --------------------------------------------------------------------------------------------------------------
def load_references(
    path: str | os.PathLike,
    supercell_matrix: npt.ArrayLike | None = None,
    primitive_matrix: str | npt.ArrayLike | None = None,
) -> list[AnyReference]:
    """Every reference in ``path`` (a folder, or a phonopy yaml file inside one): PhononReference objects, plus
    ThermalReference / EVReference (gfm_ase.validation.phonons.qha) for quasi-harmonic folders.

    supercell_matrix / primitive_matrix override what the folder says (3 ints, 3x3, or for the primitive
    matrix also "auto", "F", "I", ...).
    """
    path = Path(path)
    if not path.exists():
        raise ReferenceError(f"reference {path} does not exist")
    smat = _as_supercell_matrix(supercell_matrix) if supercell_matrix is not None else None
    pmat = _as_primitive_matrix(primitive_matrix) if primitive_matrix is not None else None
    if path.is_file():
        return _load_folder(path.parent, path.parent.name, smat, pmat, yaml_name=path.name) or []
    refs = _load_folder(path, path.name, smat, pmat)
    if refs is not None:
        return refs
    refs = []
    problems: list[str] = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir()):
        try:
            found = _load_folder(sub, f"{path.name}/{sub.name}", smat, pmat)
        except ReferenceError as exc:
            problems.append(f"{sub.name}: {exc}")
            continue
        refs.extend(found or [])
    if not refs:
        detail = (
            ("; ".join(problems))
            if problems
            else (
                "expected a phonopy yaml (phonopy_disp.yaml, phonopy.yaml, phonopy_params.yaml) or disp.yaml, "
                "FORCE_SETS or FORCE_CONSTANTS with a unit cell (POSCAR-unitcell, POSCAR, pw.x input), "
                "or subfolders holding them"
            )
        )
        raise ReferenceError(f"no phonon reference found in {path}: {detail}")
    for r in refs:
        r.notes.extend(f"skipped sibling {p}" for p in problems)
    return refs


def _as_supercell_matrix(m: npt.ArrayLike) -> np.ndarray:
    a = np.array(m, dtype=float)
    if a.shape == (3,):
        a = np.diag(a)
    if a.shape != (3, 3) or not np.allclose(a, np.round(a)) or abs(np.linalg.det(a)) < 0.5:
        raise ReferenceError(f"supercell matrix must be 3 integers or a non-singular integer 3x3, got {m!r}")
    return np.round(a).astype(int)


def _as_primitive_matrix(m: str | npt.ArrayLike) -> np.ndarray | PrimitiveLetter:
    if isinstance(m, str):
        if m in ("auto", "P", "F", "I", "A", "C", "R"):
            return cast(PrimitiveLetter, m)
        m = [float(eval_fraction(x)) for x in m.replace(",", " ").split()]
    a = np.array(m, dtype=float)
    if a.shape == (9,):
        a = a.reshape(3, 3)
    if a.shape != (3, 3) or abs(np.linalg.det(a)) < 1e-6:
        raise ReferenceError(f"primitive matrix must be 'auto', a centring letter or a non-singular 3x3, got {m!r}")
    return a


def eval_fraction(s: str) -> float:
    if "/" in s:
        num, den = s.split("/")
        return float(num) / float(den)
    return float(s)


# --------------------------------------------------------------------------------------------------------------
@dataclass
class _Parsed:
    unitcells: list[tuple[str, Atoms]] = field(default_factory=list)
    supercell_matrix: np.ndarray | None = None
    primitive_matrix: np.ndarray | PrimitiveLetter | None = None
    dataset: dict[str, Any] | None = None
    natom: int | None = None
    fc_entry: FileEntry | None = None
    nac: dict[str, np.ndarray] | None = None
    length: float = 1.0  # file length unit -> A
    force: float = 1.0  # file force unit -> eV/A
    sources: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _find(entries: list[FileEntry], stem: str) -> FileEntry | None:
    for e in entries:
        if e.stem == stem:
            return e
    return None


def _phonopy_yaml(entries: list[FileEntry], yaml_name: str | None) -> FileEntry | None:
    if yaml_name is not None:
        e = _find(entries, yaml_name) or next((e for e in entries if e.name == yaml_name), None)
        if e is None:
            raise ReferenceError(f"{yaml_name} not found")
        return e
    for n in PHONOPY_YAMLS:
        e = _find(entries, n)
        if e is not None:
            return e
    for e in entries:
        if e.stem.endswith(".yaml") and not e.stem.startswith(NOT_STRUCTURE_YAMLS) and e.stem != "disp.yaml":
            head = e.text()[:20000]
            if re.search(r"^phonopy:", head, re.M) and re.search(r"^(unit_cell|supercell):", head, re.M):
                return e
    return None


def _read_phonopy_yaml(e: FileEntry, parsed: _Parsed) -> None:
    from phonopy.interface.phonopy_yaml import read_phonopy_yaml

    try:
        d = read_phonopy_yaml(io.StringIO(e.text()))
    except Exception as exc:
        raise ReferenceError(f"{e.name}: not a readable phonopy yaml: {type(exc).__name__}: {exc}") from exc
    units = d.physical_units
    parsed.length = float(units.distance_to_A) if units is not None else 1.0
    parsed.force = float(units.force_to_eVperA) if units is not None else 1.0
    if d.calculator:
        parsed.notes.append(
            f"{e.name}: {d.calculator} units converted (length x{parsed.length:.6g} -> A, "
            f"force x{parsed.force:.6g} -> eV/A)"
        )
    if d.unitcell is None:
        raise ReferenceError(f"{e.name} has no unit_cell")
    parsed.unitcells = [(e.name, pio.to_ase_atoms(d.unitcell, parsed.length))]
    parsed.supercell_matrix = None if d.supercell_matrix is None else np.asarray(d.supercell_matrix, dtype=int)
    parsed.primitive_matrix = None if d.primitive_matrix is None else np.asarray(d.primitive_matrix, dtype=float)
    if d.dataset:
        parsed.dataset = pio.scaled_dataset(d.dataset, parsed.length, parsed.force)
        parsed.natom = len(d.supercell) if d.supercell is not None else None
    if d.nac_params:
        parsed.nac = {"born": np.asarray(d.nac_params["born"]), "dielectric": np.asarray(d.nac_params["dielectric"])}
    if d.force_constants is not None:
        parsed.notes.append(f"{e.name}: holds force constants")
    parsed.sources.append(e.name)


def _read_disp_yaml(e: FileEntry, parsed: _Parsed) -> None:
    """Old phonopy ``disp.yaml``: natom and 1-based displaced atoms (A), sometimes the supercell lattice."""
    import yaml

    try:
        doc = yaml.safe_load(e.text())
        natom = int(doc["natom"])
        first_atoms = [
            {"number": int(d["atom"]) - 1, "displacement": np.asarray(d["displacement"], dtype=float)}
            for d in doc["displacements"]
        ]
    except Exception as exc:
        raise ReferenceError(f"{e.name}: not a phonopy disp.yaml ({type(exc).__name__}: {exc})") from exc
    parsed.dataset = {"natom": natom, "first_atoms": first_atoms}
    parsed.natom = natom
    parsed.sources.append(e.name)


def _read_force_sets(e: FileEntry, parsed: _Parsed) -> None:
    from phonopy.file_IO import parse_FORCE_SETS_from_strings

    try:
        raw = parse_FORCE_SETS_from_strings(e.text(), natom=parsed.natom)
    except Exception as exc:
        raise ReferenceError(f"{e.name}: not a readable FORCE_SETS ({type(exc).__name__}: {exc})") from exc
    if not raw or not pio.has_forces(raw):
        raise ReferenceError(f"{e.name}: FORCE_SETS without forces")
    ds = pio.scaled_dataset(raw, parsed.length, parsed.force)
    natom = ds.get("natom") or (len(ds["forces"][0]) if "forces" in ds else None)
    if parsed.dataset is not None:  # check it agrees with the displacements we already have
        assert natom is not None  # FORCE_SETS with forces: type 1 states natom, type 2 has the force arrays
        old = pio.displacement_patterns(parsed.dataset, natom)
        new = pio.displacement_patterns(ds, natom)
        if len(old) != len(new) or any(np.abs(a - b).max() > 1e-5 for a, b in zip(old, new)):
            raise ReferenceError(
                f"{e.name} does not hold the displacements of {parsed.sources[-1]} "
                f"({len(new)} vs {len(old)} displaced supercells)"
            )
    parsed.dataset = ds
    parsed.natom = natom
    parsed.sources.append(e.name)


def _read_born(e: FileEntry, primitive: Primitive) -> dict[str, np.ndarray]:
    from phonopy.file_IO import parse_BORN_from_strings

    try:
        nac = parse_BORN_from_strings(e.text(), primitive)
    except Exception as exc:
        raise ReferenceError(f"{e.name}: not a readable BORN file ({type(exc).__name__}: {exc})") from exc
    # the file's first line is a unit factor for its own code; we work in eV/A, whose factor phonopy supplies
    return {"born": np.asarray(nac["born"], dtype=float), "dielectric": np.asarray(nac["dielectric"], dtype=float)}


def _unitcell_files(entries: list[FileEntry]) -> list[tuple[str, Atoms]]:
    """Unit cells: one canonical file, or several POSCAR-<tag> (a volume series); displaced supercells skipped."""
    from ase.io import read

    def load(e: FileEntry, fmt: str) -> Atoms:
        try:
            return cast(Atoms, read(io.StringIO(e.text()), format=fmt))
        except Exception as exc:
            raise ReferenceError(f"{e.name}: cannot read as {fmt}: {type(exc).__name__}: {exc}") from exc

    for n in UNITCELL_NAMES:
        e = _find(entries, n)
        if e is not None:
            return [(e.name, load(e, "espresso-in" if n.endswith(".in") else "vasp"))]
    series = [e for e in entries if e.stem.startswith("POSCAR-") and not DISPLACED_SUPERCELL.match(e.stem)]
    if series:
        return [(e.name, load(e, "vasp")) for e in sorted(series, key=lambda e: _tag_key(e.stem))]
    pw_inputs = [
        e
        for e in entries
        if e.stem.endswith(".in")
        and not DISPLACED_SUPERCELL.match(e.stem)
        and "ATOMIC_POSITIONS" in e.text()
        and "&system" in e.text().lower()
    ]
    return [(e.name, load(e, "espresso-in")) for e in pw_inputs]


def _tag_key(stem: str) -> tuple[int, float, str]:
    tag = stem.split("-", 1)[1]
    try:
        return (0, float(tag), tag)
    except ValueError:
        return (1, 0.0, tag)


def _infer_supercell(natom_super: int | None, natom_unit: int, where: str) -> np.ndarray:
    if natom_super is None:
        raise ReferenceError(f"{where}: the supercell size is unknown; pass the supercell matrix (--supercell)")
    ratio = natom_super / natom_unit
    k = round(ratio ** (1 / 3))
    if abs(ratio - round(ratio)) > 1e-9 or k**3 != round(ratio):
        raise ReferenceError(
            f"{where}: supercell has {natom_super} atoms, unit cell {natom_unit}: not a k x k x k "
            "supercell; pass the supercell matrix (--supercell)"
        )
    return np.diag([k, k, k])


def _load_folder(
    folder: Path,
    name: str,
    smat: np.ndarray | None,
    pmat: np.ndarray | PrimitiveLetter | None,
    yaml_name: str | None = None,
) -> list[AnyReference] | None:
    entries = list_files(folder, archives=False)
    parsed = _Parsed()
    y = _phonopy_yaml(entries, yaml_name)
    if y is not None:
        _read_phonopy_yaml(y, parsed)
    disp = _find(entries, "disp.yaml")
    if disp is not None and parsed.dataset is None:
        _read_disp_yaml(disp, parsed)
    fs = _find(entries, "FORCE_SETS")
    if fs is not None:
        _read_force_sets(fs, parsed)
    fc = _find(entries, "FORCE_CONSTANTS") or _find(entries, "force_constants.hdf5")
    if fc is not None and not pio.has_forces(parsed.dataset):
        parsed.fc_entry = fc
    if y is None and parsed.dataset is None and parsed.fc_entry is None:
        return _qha_only(folder, name, entries, smat)  # None: not a phonon folder (perhaps a parent of some)
    if not parsed.unitcells:
        parsed.unitcells = _unitcell_files(entries)
        if not parsed.unitcells:
            raise ReferenceError(
                f"{folder}: displacements/forces found but no unit cell (expected a phonopy yaml, "
                "POSCAR-unitcell, POSCAR or a pw.x input)"
            )
        if y is None and fs is not None:
            parsed.notes.append("no phonopy yaml: VASP units (A, eV/A) assumed for FORCE_SETS")
    if smat is not None:
        parsed.supercell_matrix = smat
    if pmat is not None:
        parsed.primitive_matrix = pmat
    if parsed.supercell_matrix is None:
        natom_super = parsed.natom
        parsed.supercell_matrix = _infer_supercell(natom_super, len(parsed.unitcells[0][1]), str(folder))
        parsed.notes.append(
            f"supercell matrix inferred from the atom count: "
            f"{np.diag(parsed.supercell_matrix).tolist()} (override with --supercell)"
        )
    if parsed.primitive_matrix is None:
        parsed.primitive_matrix = "auto"

    refs: list[PhononReference] = []
    for cell_name, unitcell in parsed.unitcells:
        ref_name = name if len(parsed.unitcells) == 1 else f"{name}/{cell_name}"
        sources = parsed.sources + ([cell_name] if cell_name not in parsed.sources else [])
        refs.append(
            PhononReference(
                ref_name,
                folder,
                unitcell,
                parsed.supercell_matrix,
                parsed.primitive_matrix,
                dataset=parsed.dataset,
                nac=parsed.nac,
                sources=sources,
                notes=list(parsed.notes),
            )
        )
    for r in refs:
        if r.n_supercell_atoms != (parsed.natom or r.n_supercell_atoms):
            raise ReferenceError(
                f"{r.name}: supercell {r.supercell_matrix.tolist()} of {len(r.unitcell)} atoms has "
                f"{r.n_supercell_atoms} atoms but the displacements are for {parsed.natom}"
            )
    born = _find(entries, "BORN")
    if parsed.fc_entry is not None:
        for r in refs:
            r.force_constants = _read_force_constants(parsed.fc_entry, r, parsed.length, parsed.force)
            r.sources.append(parsed.fc_entry.name)
    elif not pio.has_forces(parsed.dataset):
        _attach_forces_from_calculations(folder, refs, parsed)
    if born is not None and parsed.nac is None:
        for r in refs:
            r.born_file = born
            r.sources.append(born.name)
    return [*refs, *qha_references(folder, name, entries, parsed.unitcells, with_thermal=False)]


def _qha_only(folder: Path, name: str, entries: list[FileEntry], smat: np.ndarray | None) -> list[AnyReference] | None:
    """Thermal-properties / E(V) references of a quasi-harmonic folder without forces, or None."""
    stems = [e.stem for e in entries]
    if not any(s.startswith("thermal_properties.yaml-") or s == "e-v.dat" for s in stems):
        return None
    cells = _unitcell_files(entries)
    try:
        refs = qha_references(folder, name, entries, cells, supercell_matrix=smat)
    except ValueError as exc:
        raise ReferenceError(str(exc)) from exc
    if not refs:
        raise ReferenceError(
            f"{folder}: thermal_properties.yaml-<tag> / e-v.dat found but no matching POSCAR-<tag> "
            "unit cells (e-v.dat needs at least 5 cells whose volumes it lists)"
        )
    return list(refs)


def _read_force_constants(e: FileEntry, ref: PhononReference, length: float, force: float) -> np.ndarray:
    from phonopy.file_IO import parse_FORCE_CONSTANTS, read_force_constants_hdf5
    from phonopy.harmonic.force_constants import compact_fc_to_full_fc

    ph = ref.phonopy(nac=False)
    suffix = ".hdf5" if e.stem.endswith(".hdf5") else ""
    with tempfile.TemporaryDirectory() as tmp:
        p = Path(tmp) / f"fc{suffix}"
        p.write_bytes(e.read_bytes())
        try:
            if suffix:  # without return_physical_unit: the array alone
                fc = cast(np.ndarray, read_force_constants_hdf5(p, p2s_map=ph.primitive.p2s_map))
            else:
                fc = parse_FORCE_CONSTANTS(p, p2s_map=ph.primitive.p2s_map)
        except Exception as exc:
            raise ReferenceError(f"{e.name}: cannot read force constants ({type(exc).__name__}: {exc})") from exc
    n = len(ph.supercell)
    if fc.shape[0] != n:
        if fc.shape[0] != len(ph.primitive) or fc.shape[1] != n:
            raise ReferenceError(f"{e.name}: force constants of shape {fc.shape} do not fit a supercell of {n} atoms")
        fc = compact_fc_to_full_fc(ph.primitive, fc)
    return np.asarray(fc, dtype=float) * (force / length)


def _attach_forces_from_calculations(folder: Path, refs: list[PhononReference], parsed: _Parsed) -> None:
    """Match force files (vasprun.xml, pw.x output, ... also inside archives) to each reference's supercells."""
    if parsed.dataset is None:
        raise ReferenceError(f"{folder}: no displacements (phonopy yaml, disp.yaml or FORCE_SETS)")
    entries = list_files(folder, archives=True)
    calcs, problems = read_force_calculations(entries)
    if not calcs:
        raise ReferenceError(
            f"{folder}: displacements but no forces (no FORCE_SETS, and no vasprun.xml, OUTCAR or "
            "pw.x output with forces)" + (f"; unreadable: {problems}" if problems else "")
        )
    complete = []
    for r in refs:
        perfect = r.supercell()
        patterns = pio.displacement_patterns(parsed.dataset, len(perfect))
        forces: list[np.ndarray | None] = [None] * len(patterns)
        used: list[tuple[int, str]] = []
        for c in calcs:
            m = identify(perfect, patterns, c.atoms)
            if m is None:
                continue
            if m.index is None:
                r.notes.append(
                    f"{c.name}: the undisplaced supercell (max |F| = {np.abs(c.forces).max():.2e} eV/A); not subtracted"
                )
                continue
            if forces[m.index] is not None:
                raise ReferenceError(
                    f"{r.name}: two force files for displacement {m.index + 1}: "
                    f"{used[[u[0] for u in used].index(m.index)][1]} and {c.name}"
                )
            forces[m.index] = c.forces[m.permutation]
            used.append((m.index, c.name))
        missing = [i + 1 for i, f in enumerate(forces) if f is None]
        if missing:
            if len(refs) == 1:
                raise ReferenceError(
                    f"{r.name}: no force file for displacement(s) {missing} of {len(patterns)} "
                    f"(read {len(calcs)} force calculations: {[c.name for c in calcs]})"
                )
            r.notes.append(f"no force file for displacement(s) {missing}; skipped")
            continue
        # like `phonopy -f`: remove each supercell's drift (net force), which breaks translational invariance
        found = [f for f in forces if f is not None]  # all of them (none is missing)
        drift = max(float(np.linalg.norm(f.mean(axis=0))) for f in found)
        centred = [f - f.mean(axis=0) for f in found]
        r.notes.append(f"forces read from {len(used)} calculation(s); max drift {drift:.2e} eV/A subtracted")
        r.dataset = pio.with_forces(parsed.dataset, centred)
        r.sources.extend(name for _, name in sorted(used))
        complete.append(r)
    if not complete:
        raise ReferenceError(f"{folder}: no unit cell has forces for all its displacements")
    refs[:] = complete
