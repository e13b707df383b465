"""Converters from the formats DFT datasets ship in to the gfm-ase store.

``convert(sources, out, format="auto", ...)`` walks files and folders, detects each source's format, and writes one
store atomically. Each reader module states its source units and sign conventions.

=============  ==================================================================================
format         reader
=============  ==================================================================================
ase            :mod:`.ase_formats` (extxyz, traj, ASE db, vasprun.xml, OUTCAR, pw.x output, ...)
mlearn-json    :mod:`.mlearn` (pymatgen-dict JSON with ``structure`` + ``outputs``; kbar, compression +)
fitsnap-json   :mod:`.fitsnap` (comment line + ``Dataset.Data``; bar or kB, compression +)
deepmd         :mod:`.deepmd` (npy systems; virial in eV)
phonopy        :mod:`.phonopy_sets` (FORCE_SETS + phonopy_disp.yaml, phonopy_params.yaml)
mptrj          :mod:`.mptrj` (material -> frame JSON; kbar, compression +)
aselmdb        :mod:`.aselmdb` (fairchem ASE-LMDB)
ani-h5         :mod:`.ani_h5` (ANI-1x / SPICE / Transition1x HDF5; Hartree, Bohr presets)
=============  ==================================================================================
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

import h5py
from ase.io.formats import UnknownFileTypeError

from gfm_ase.data.converters.base import ConversionError, Item, SkipReport
from gfm_ase.data.converters.options import validate_options
from gfm_ase.data.record import RecordError, StructureRecord
from gfm_ase.data.store import FORMAT as STORE_FORMAT
from gfm_ase.data.store import StoreWriter
from gfm_ase.units import UnitError

# one source (file or folder) or several
SourceArg = Union[str, Path, Iterable[Union[str, Path]]]


# format -> (reader module, reader function). A new format: its reader module (stating the source units), one row
# here, its options in :mod:`.options` (OPTIONS) and, when it can be recognised, a rule in :func:`detect_format`.
READERS: dict[str, tuple[str, str]] = {
    "ase": ("gfm_ase.data.converters.ase_formats", "read_ase"),
    "mlearn-json": ("gfm_ase.data.converters.mlearn", "read_mlearn"),
    "fitsnap-json": ("gfm_ase.data.converters.fitsnap", "read_fitsnap"),
    "deepmd": ("gfm_ase.data.converters.deepmd", "read_deepmd"),
    "phonopy": ("gfm_ase.data.converters.phonopy_sets", "read_phonopy"),
    "mptrj": ("gfm_ase.data.converters.mptrj", "read_mptrj"),
    "aselmdb": ("gfm_ase.data.converters.aselmdb", "read_aselmdb"),
    "ani-h5": ("gfm_ase.data.converters.ani_h5", "read_ani_h5"),
}
FORMATS = tuple(READERS)


def _reader(name: str) -> Callable[..., Iterator[Item]]:
    # imported lazily so that a missing optional dependency only affects its own format
    if name not in READERS:
        raise ValueError(f"unknown format {name!r}; known: {', '.join(FORMATS)}")
    module, function = READERS[name]
    return getattr(importlib.import_module(module), function)


ASE_SUFFIXES = {".xyz", ".extxyz", ".traj", ".db", ".cif", ".xsf", ".pdb"}
IGNORED_NAMES = {"LICENSE", "MANIFEST.sha256", "README", "BORN"}


def _sniff_json(path: Path) -> str | None:
    with open(path, "rb") as fh:
        head = fh.read(1 << 16).decode("utf-8", errors="replace")
    stripped = head.lstrip()
    if stripped.startswith("#") or ('"Dataset"' in head and stripped.startswith("{") and '"Data"' in head):
        return "fitsnap-json"
    if stripped.startswith("["):
        if '"structure"' in head and '"outputs"' in head:
            return "mlearn-json"
        return None
    if stripped.startswith("{"):
        # MPtrj: {"mp-1": {"mp-1-0-0": {"structure": ..., "uncorrected_total_energy" / "force" ...
        if '"structure"' in head and any(
            k in head for k in ('"uncorrected_total_energy"', '"force"', '"corrected_total_energy"', '"mp_id"')
        ):
            return "mptrj"
    return None


def detect_format(path: str | os.PathLike[str]) -> str | None:
    """The format of one file or folder unit, or None if it is not a recognised dataset source."""
    from gfm_ase.data.converters.ase_formats import ase_format_for
    from gfm_ase.data.converters.deepmd import is_deepmd_system
    from gfm_ase.data.converters.phonopy_sets import phonopy_inputs

    path = Path(path)
    if path.is_dir():
        if is_deepmd_system(path):
            return "deepmd"
        if phonopy_inputs(path) is not None:
            return "phonopy"
        return None
    name, suffix = path.name, path.suffix.lower()
    if name in ("FORCE_SETS", "phonopy_params.yaml"):
        return "phonopy"
    if suffix in (".aselmdb", ".lmdb"):
        return "aselmdb"
    if suffix in (".h5", ".hdf5"):
        try:
            f = h5py.File(path, "r")
        except OSError as exc:
            raise ConversionError(path, None, f"not a readable HDF5 file ({exc})") from None
        with f:
            fmt = f.attrs.get("format")
            if (fmt.decode() if isinstance(fmt, bytes) else fmt) == STORE_FORMAT:
                raise ValueError(f"{path} is already a gfm-ase store")
        return "ani-h5"
    if suffix == ".json":
        return _sniff_json(path)
    if suffix in ASE_SUFFIXES or ase_format_for(path) is not None:
        return "ase"
    return None


def iter_sources(sources: Iterable, fmt: str = "auto") -> Iterator[tuple[Path, str, Path]]:
    """(path, format, root) units to read. Folders are walked; a deepmd system or phonopy folder is one unit.

    With an explicit format every file of a walked folder is read with it; with "auto", unrecognised files in
    folders are ignored (named explicitly, they are an error).
    """
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise ConversionError(src, None, "no such file or folder")
        if src.is_file():
            f = fmt if fmt != "auto" else detect_format(src)
            if f is None:
                raise ConversionError(src, None, "cannot detect the format; pass --format")
            yield src, f, src.parent.parent if src.parent.parent != src.parent else src.parent
            continue
        root = src.parent if detect_format(src) is not None else src
        stack = [src]
        while stack:
            d = stack.pop()
            unit = detect_format(d) if fmt in ("auto", "deepmd", "phonopy") else None
            if unit is not None and (fmt == "auto" or fmt == unit):
                yield d, unit, root
                continue
            for p in sorted(d.iterdir(), reverse=True):
                if p.is_dir():
                    stack.append(p)
            for p in sorted(d.iterdir()):
                if not p.is_file() or p.name.startswith(".") or p.name in IGNORED_NAMES or p.suffix == ".md":
                    continue
                if fmt == "auto":
                    f = detect_format(p)
                    if f is not None and f != "phonopy":
                        yield p, f, root
                elif fmt not in ("deepmd", "phonopy"):
                    yield p, fmt, root


RECORD_ERRORS = (RecordError, UnitError, ValueError, KeyError, TypeError, IndexError)
FILE_ERRORS = (
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    OSError,
    UnitError,
    json.JSONDecodeError,
    EOFError,
    UnknownFileTypeError,
)


def _warn_unconverted(report: SkipReport) -> None:
    if report.unconverted:
        warnings.warn(
            "labels present in the source files were not converted: "
            + ", ".join(f"{k} in {v} structures" for k, v in sorted(report.unconverted.items())),
            stacklevel=3,
        )


def iter_records(
    sources: SourceArg,
    fmt: str = "auto",
    *,
    skip_bad: bool = False,
    report: SkipReport | None = None,
    options: dict | None = None,
) -> Iterator[StructureRecord]:
    """Yield StructureRecords from all sources; raise :class:`ConversionError` naming file and record on bad
    input, or (``skip_bad``) add it to ``report`` and go on.

    ``options`` are checked against the options the format declares (:mod:`.options`) before anything is read
    (with ``fmt="auto"``: before the first file of each detected format); unknown names and invalid values are a
    ConversionError. ``report`` counts the labels of the records yielded and the labels the sources held that were
    not converted (also given as a warning at the end).
    """
    sources = [sources] if isinstance(sources, (str, Path)) else list(sources)
    options = dict(options or {})
    report = report if report is not None else SkipReport()
    checked: dict[str, dict] = {}
    if fmt != "auto":
        checked[fmt] = validate_options(fmt, options, ", ".join(str(s) for s in sources))
    for path, f, root in iter_sources(sources, fmt):
        if f not in checked:
            checked[f] = validate_options(f, options, path)
        reader = _reader(f)
        report.formats.add(f)
        report.n_files += 1
        it = reader(path, root=root, **checked[f])
        while True:
            try:
                item = next(it)
            except StopIteration:
                break
            except ImportError:
                raise
            except FILE_ERRORS as exc:
                msg = str(exc) if type(exc) in (UnitError, ValueError) else f"{type(exc).__name__}: {exc}"
                if fmt != "auto":
                    try:
                        detected = detect_format(path)
                    except (ConversionError, ValueError, OSError):
                        detected = None
                    if detected is not None and detected != f:
                        msg += (
                            f" (read as --format {f}; the file looks like {detected}: try --format {detected} or auto)"
                        )
                err = ConversionError(path, None, msg)
                if not skip_bad:
                    raise err from exc
                report.add(err)
                break
            try:
                rec = item.build()
            except RECORD_ERRORS as exc:
                msg = str(exc) if type(exc) in (RecordError, UnitError, ValueError) else f"{type(exc).__name__}: {exc}"
                err = ConversionError(path, item.where, msg)
                if not skip_bad:
                    raise err from exc
                report.add(err)
                continue
            report.count(rec, item.unconverted)
            yield rec
    _warn_unconverted(report)


def convert(
    sources: SourceArg,
    out: str | os.PathLike[str],
    fmt: str = "auto",
    *,
    name: str | None = None,
    level_of_theory: str = "",
    code: str = "",
    source: str = "",
    license: str = "",
    skip_bad: bool = False,
    mode: str = "w",
    options: dict | None = None,
    progress: bool = False,
    command: str | None = None,
    **attrs: Any,
) -> tuple[int, SkipReport]:
    """Convert ``sources`` into the store ``out`` (atomically). Returns (records written, skip report)."""
    report = SkipReport()
    sources = [Path(s) for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    if fmt != "auto":  # before the output file is touched
        validate_options(fmt, options, ", ".join(str(s) for s in sources))
    n = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(unit=" structures", desc=f"converting into {Path(out).name}")
    with StoreWriter(
        out,
        name=name,
        level_of_theory=level_of_theory,
        code=code,
        source=source or " ".join(str(s) for s in sources),
        license=license,
        mode=mode,
        command=command,
        **attrs,
    ) as w:
        for rec in iter_records(sources, fmt, skip_bad=skip_bad, report=report, options=options):
            w.append(rec)
            n += 1
            if bar is not None:
                bar.update(1)
        if n == 0 and mode == "w":
            raise ConversionError(
                ", ".join(str(s) for s in sources),
                None,
                "no structures found" + (f" ({len(report)} skipped as bad)" if len(report) else ""),
            )
        w.extra_attrs(
            n_skipped=len(report),
            source_formats=sorted(report.formats),
            n_source_files=report.n_files,
            **({"unconverted_labels": dict(report.unconverted)} if report.unconverted else {}),
        )
    if bar is not None:
        bar.close()
    return n, report


__all__ = [
    "ConversionError",
    "FORMATS",
    "validate_options",
    "SkipReport",
    "convert",
    "detect_format",
    "iter_records",
    "iter_sources",
]
