"""Shared machinery of the corpus generators: seeded shards, atomic extended-XYZ writes, manifest, resume.

Layout of one generated data set (``work_data/generated/<name>/``)::

    manifest.json               method, settings, seed, units, package versions, per-shard counts
    <subset>_<shard:04d>.extxyz  labelled structures (energy, forces, stress where fully periodic)

A shard is a deterministic function of ``(seed, shard index, settings)``: it draws its random numbers from
``numpy.random.default_rng([seed, shard])`` only, so shards can be generated in any order, resumed after a crash,
and regenerated bit-for-bit.  A shard is finished when all of its subset files exist; every file is written to a
temporary name and renamed, so a killed run never leaves a half-written shard that looks finished.

Labels are in ASE units and sign conventions: energy eV, forces eV/A, stress eV/A^3 (positive = tension, i.e.
``stress = (1/V) dE/d(strain)``), stored through ``SinglePointCalculator`` so ``ase.io.read`` returns them as
``atoms.get_potential_energy()`` etc.  Stress is only stored for structures periodic in all three directions.
Per-structure metadata lives in ``atoms.info``: ``config_type`` (how it was made), ``group`` (structures derived
from the same parent share a group, so ``split_indices(..., by="group")`` keeps relatives on one side), and for
molecules ``charge`` and ``multiplicity``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

import numpy as np

if TYPE_CHECKING:
    from ase import Atoms
    from ase.calculators.calculator import Calculator

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ROOT = REPO / "work_data" / "generated"
MANIFEST = "manifest.json"
FORMAT_VERSION = 1
UNITS = {
    "energy": "eV",
    "forces": "eV/A",
    "stress": "eV/A^3, Voigt xx yy zz yz xz xy, tension-positive (ASE)",
    "positions": "A",
}


class ManifestMismatch(RuntimeError):
    """The output folder holds shards made with other settings; resuming would mix incompatible data."""


def package_versions(names: Iterable[str]) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


def shard_rng(seed: int, shard: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(shard)])


def shard_path(out: Path, subset: str, shard: int) -> Path:
    return Path(out) / f"{subset}_{shard:04d}.extxyz"


def atomic_write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_frames(path: Path, frames: list[Atoms]) -> None:
    """Write labelled Atoms (SinglePointCalculator attached) to ``path`` as extended XYZ, atomically."""
    import io

    import ase.io

    buf = io.StringIO()
    if frames:
        ase.io.write(buf, frames, format="extxyz")
    atomic_write_text(path, buf.getvalue())


def attach_labels(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None = None) -> Atoms:
    """Return a copy of ``atoms`` carrying the labels in a SinglePointCalculator (stress only if 3D-periodic)."""
    from ase.calculators.singlepoint import SinglePointCalculator

    out = atoms.copy()
    out.info = {k: v for k, v in atoms.info.items() if isinstance(v, (str, int, float, bool, np.integer, np.floating))}
    out.set_constraint()
    kw: dict[str, Any] = dict(energy=float(energy), forces=np.asarray(forces, dtype=float).copy())
    if stress is not None and bool(np.all(out.pbc)):
        s = np.asarray(stress, dtype=float).reshape(-1)
        if s.shape != (6,):
            raise ValueError(f"stress must be Voigt-6, got shape {s.shape}")
        kw["stress"] = s
    out.calc = SinglePointCalculator(out, **kw)
    return out


def label_with(atoms: Atoms, calc: Calculator, stress: bool = True) -> Atoms:
    """Evaluate ``calc`` on ``atoms``; return a labelled copy, or raise the calculator's exception."""
    work = atoms.copy()
    work.calc = calc
    e = work.get_potential_energy()
    f = work.get_forces()
    s = work.get_stress() if (stress and bool(np.all(work.pbc))) else None
    if not (np.isfinite(e) and np.all(np.isfinite(f)) and (s is None or np.all(np.isfinite(s)))):
        raise FloatingPointError("non-finite label")
    return attach_labels(atoms, e, f, s)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.floating):
        return float(x)
    if isinstance(x, np.ndarray):
        return x.tolist()
    return x


def settings_hash(settings: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(_jsonable(settings), sort_keys=True).encode()).hexdigest()[:16]


def count_frames(path: Path) -> int:
    n = 0
    with open(path) as fh:
        while True:
            line = fh.readline()
            if not line:
                return n
            if not line.strip():
                continue
            nat = int(line)
            fh.readline()
            for _ in range(nat):
                fh.readline()
            n += 1


def run_shards(
    *,
    name: str,
    out: Path,
    seed: int,
    shards: Iterable[int],
    subsets: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    make_shard: Callable[[int, np.random.Generator], tuple[Mapping[str, list[Atoms]], Mapping[str, int]]],
    packages: Iterable[str] = ("ase", "numpy"),
    description: str = "",
    max_minutes: float | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Generate (or resume) the shards of one data set and keep ``manifest.json`` current.

    ``make_shard(shard, rng) -> ({subset: [labelled Atoms]}, stats)``; ``stats`` is a dict of counters (e.g.
    ``{"failed": 2}``).  ``subsets`` maps subset name -> metadata (level_of_theory, code, ...).  Shards whose files
    all exist are skipped.  With ``max_minutes`` no new shard starts after that much wall time, though every call
    finishes at least one (the manifest then says ``complete: false``; rerun to continue).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    shards = list(shards)
    settings = _jsonable(dict(settings))
    digest = settings_hash({"settings": settings, "seed": seed, "subsets": subsets, "format": FORMAT_VERSION})
    mpath = out / MANIFEST
    manifest = None
    if mpath.exists():
        manifest = json.loads(mpath.read_text())
        if manifest.get("settings_hash") != digest:
            raise ManifestMismatch(
                f"{out} holds '{manifest.get('name')}' shards made with other settings or seed "
                f"(hash {manifest.get('settings_hash')} != {digest}); choose another --out or delete that folder"
            )
    if manifest is None:
        manifest = {
            "name": name,
            "format_version": FORMAT_VERSION,
            "description": description,
            "seed": int(seed),
            "settings": settings,
            "settings_hash": digest,
            "units": UNITS,
            "subsets": _jsonable(dict(subsets)),
            "shards": {},
        }
    manifest["packages"] = package_versions(packages)
    manifest["planned_shards"] = shards

    def save(complete: bool) -> None:
        done = manifest["shards"]
        totals = {s: sum(v["counts"].get(s, 0) for v in done.values()) for s in subsets}
        stats: dict[str, int] = {}
        for v in done.values():
            for k, c in v.get("stats", {}).items():
                stats[k] = stats.get(k, 0) + int(c)
        elems = sorted({e for v in done.values() for e in v.get("elements", [])})
        manifest.update(
            totals=totals,
            stats=stats,
            elements=elems,
            complete=complete,
            n_shards_done=len(done),
            updated=time.strftime("%Y-%m-%dT%H:%M:%S"),
        )
        atomic_write_text(mpath, json.dumps(_jsonable(manifest), indent=1) + "\n")

    t_start = time.perf_counter()
    stopped = False
    computed = 0  # every invocation finishes at least one shard, so a short budget still makes progress
    for k in shards:
        paths = {s: shard_path(out, s, k) for s in subsets}
        if all(p.exists() for p in paths.values()):
            if str(k) not in manifest["shards"]:  # files present but manifest lost: recount, keep going
                manifest["shards"][str(k)] = {
                    "counts": {s: count_frames(p) for s, p in paths.items()},
                    "stats": {},
                    "elements": [],
                    "seconds": None,
                    "recounted": True,
                }
            log(f"[{name}] shard {k}: already finished, skipped")
            continue
        if computed and max_minutes is not None and (time.perf_counter() - t_start) > 60 * max_minutes:
            log(f"[{name}] time budget of {max_minutes} min reached before shard {k}; rerun to continue")
            stopped = True
            break
        t0 = time.perf_counter()
        frames, stats = make_shard(k, shard_rng(seed, k))
        missing = set(subsets) - set(frames)
        if missing:
            raise RuntimeError(f"make_shard returned no frames list for subsets {sorted(missing)}")
        for s in subsets:  # subset files are written in the declared order; the shard counts once all exist
            write_frames(paths[s], frames[s])
        elems = sorted({sym for fr in frames.values() for a in fr for sym in a.get_chemical_symbols()})
        manifest["shards"][str(k)] = {
            "counts": {s: len(frames[s]) for s in subsets},
            "stats": dict(stats),
            "elements": elems,
            "seconds": round(time.perf_counter() - t0, 3),
            "files": {s: paths[s].name for s in subsets},
        }
        computed += 1
        save(complete=False)
        log(
            f"[{name}] shard {k}: "
            + ", ".join(f"{s}={len(frames[s])}" for s in subsets)
            + (f" {dict(stats)}" if stats else "")
            + f" in {time.perf_counter() - t0:.1f}s"
        )
    save(complete=(not stopped) and all(str(k) in manifest["shards"] for k in shards))
    return manifest


def base_parser(description: str, name: str, n_shards: int) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--out", type=Path, default=DEFAULT_ROOT / name, help="output folder (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--shards", type=int, default=n_shards, help="number of shards (default: %(default)s)")
    p.add_argument(
        "--max-minutes", type=float, default=None, help="start no new shard after this many minutes (resume later)"
    )
    return p


def log_to_stderr(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, file=sys.stderr, flush=True)
