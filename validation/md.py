"""MD suite: NVE energy conservation and stability, then an NVT temperature check.

NVE (velocity Verlet) from Maxwell-Boltzmann velocities at ``temperature``: the drift is the slope of a linear
fit of the total energy per atom against time (meV/atom/ps), plus the largest excursion from the start. The run
is stable when no two atoms come closer than ``min_distance``, energies stay finite and the temperature stays
below ``explode_factor`` x its target. NVT (Langevin) at the same temperature: the mean temperature over the
second half of the run should match the target within ``t_tolerance`` (relative).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
from ase import Atoms, units

from gfm_ase.fileio import atomic_write_bytes, exclusive_lock
from gfm_ase.validation.calculators import CalculatorLike, as_calculator, describe
from gfm_ase.validation.output import SuiteResult, pyplot, save_figure

if TYPE_CHECKING:
    from ase.md.md import MolecularDynamics


def starting_structure(
    structure: str | None = None, bulk: str | None = None, repeat: list[int] | tuple[int, ...] | None = None
) -> Atoms:
    """First frame of a file, or ``ase.build.bulk`` from 'Cu' / 'Si:diamond:5.43'; optionally repeated."""
    if (structure is None) == (bulk is None):
        raise ValueError("give exactly one of structure (a file) or bulk (an element, e.g. 'Cu')")
    if structure is not None:
        from ase.io import read

        if not Path(structure).exists():
            raise FileNotFoundError(f"{structure} does not exist")
        atoms = cast(Atoms, read(structure, index=0))
    else:
        from ase.build import bulk as build_bulk

        assert bulk is not None  # exactly one of structure and bulk (checked above)
        parts = bulk.split(":")
        kw: dict[str, Any] = {}
        if len(parts) > 1 and parts[1]:
            kw["crystalstructure"] = parts[1]
        if len(parts) > 2 and parts[2]:
            kw["a"] = float(parts[2])
        atoms = build_bulk(parts[0], cubic=kw.get("crystalstructure") not in ("hcp", "wurtzite"), **kw)
        if repeat is None:
            repeat = [max(1, int(np.ceil(9.0 / L))) for L in atoms.cell.lengths()]
    if repeat is not None:
        atoms = atoms.repeat(tuple(int(r) for r in repeat))
    atoms.calc = None
    return atoms


def min_distance(atoms: Atoms, cutoff: float) -> float:
    """Shortest interatomic distance (A), or ``cutoff`` when no pair is closer than that."""
    from ase.neighborlist import neighbor_list

    d = neighbor_list("d", atoms, cutoff)
    return float(d.min()) if len(d) else float(cutoff)


def closest_pair(atoms: Atoms, cutoff: float) -> tuple[float, str]:
    """Shortest interatomic distance (A) and its species pair (``"O-O"``, sorted), or ``(cutoff, "")`` when no pair
    is closer than ``cutoff``."""
    from ase.neighborlist import neighbor_list

    i, j, d = neighbor_list("ijd", atoms, cutoff)
    if not len(d):
        return float(cutoff), ""
    k = int(np.argmin(d))
    symbols = atoms.get_chemical_symbols()
    return float(d[k]), "-".join(sorted((symbols[i[k]], symbols[j[k]])))


def contact_summary(nve: dict[str, np.ndarray], nvt: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """Closest contacts: over the whole run (``min_distance_A``, its species ``closest_pair``), per phase, and how
    often each species pair was a sample's closest one (``closest_pair_counts``, most frequent first). A pair that
    should not bond (O-O in an oxide) showing up here is what the stability criterion alone does not catch."""
    phases = [("nve", nve)] + ([("nvt", nvt)] if nvt is not None else [])
    out: dict[str, Any] = {}
    best, best_pair = np.inf, ""
    counts: dict[str, int] = {}
    for name, ph in phases:
        d = np.asarray(ph["min_distance"], dtype=float)
        pairs = [str(p) for p in ph["closest_pair"]]
        k = int(np.argmin(d))
        out[f"{name}_min_distance_A"] = float(d[k])
        if d[k] < best:
            best, best_pair = float(d[k]), pairs[k]
        for p in pairs:
            counts[p] = counts.get(p, 0) + 1
    out["min_distance_A"] = best
    out["closest_pair"] = best_pair
    out["closest_pair_counts"] = dict(sorted(counts.items(), key=lambda kv: -kv[1]))
    return out


STATE_FILE = "md_state.json"
LOCK_FILE = "md.lock"


class MDCheckpoint:
    """The run's resumable state in ``outdir/md_state.json``, written atomically at sample points.

    It holds what a restart needs to continue the same trajectory: the phase (``nve``, ``nvt``, ``done``), the
    steps done and samples taken in each phase, positions and momenta, and the Langevin generator's state. A
    fingerprint (settings, starting structure, calculator description) guards against resuming a different run:
    a mismatch is refused with the differing keys named. Steps after the last checkpoint are run again on
    resume; none is counted twice.
    """

    def __init__(self, path: Path | None, fingerprint: dict[str, Any]) -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.state: dict[str, Any] | None = None
        if path is not None and path.is_file():
            state = json.loads(path.read_text())
            old = state.get("fingerprint", {})
            differ = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            if differ:
                raise ValueError(
                    f"{path}: an MD state written for a different run (differs in: {', '.join(differ)}); "
                    "use a new output folder or delete it"
                )
            state["resumes"] = int(state.get("resumes", 0)) + 1
            self.state = state

    def save(self, **state: Any) -> None:
        if self.path is None:
            return
        resumes = self.state.get("resumes", 0) if self.state else 0
        self.state = {"version": 1, "fingerprint": self.fingerprint, "resumes": resumes, **state}
        atomic_write_bytes(self.path, json.dumps(self.state).encode())


SAMPLE_KEYS = ("time_ps", "epot", "ekin", "temperature", "min_distance", "closest_pair")


def saved_samples(phase_state: dict | None) -> dict[str, list[Any]]:
    """The samples of a saved phase (empty lists without one). A state written before the closest pair was
    recorded has no species: its samples get ``""``."""
    if not phase_state:
        return {k: [] for k in SAMPLE_KEYS}
    old = phase_state["samples"]
    n_old = len(old["time_ps"])
    return {k: list(old.get(k, [""] * n_old)) for k in SAMPLE_KEYS}


def _fingerprint(atoms: Atoms, calc: CalculatorLike, settings: dict[str, Any]) -> dict[str, Any]:
    h = hashlib.sha256()
    for arr in (
        atoms.numbers.astype(np.int64),
        atoms.positions.astype(np.float64),
        atoms.cell.array.astype(np.float64),
        atoms.pbc.astype(np.int8),
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    return {**settings, "structure_sha256": h.hexdigest(), "calculator": describe(calc)}


def _set_dynamics_state(atoms: Atoms, dyn: MolecularDynamics, phase_state: dict[str, Any]) -> None:
    atoms.set_positions(np.asarray(phase_state["positions"], dtype=np.float64), apply_constraint=False)
    atoms.set_momenta(np.asarray(phase_state["momenta"], dtype=np.float64), apply_constraint=False)
    dyn.nsteps = int(phase_state["done"])
    if phase_state.get("rng") is not None:  # a Langevin run: its generator (VelocityVerlet has none)
        rng: np.random.Generator = getattr(dyn, "rng")
        rng.bit_generator.state = phase_state["rng"]


def _run(
    dyn: MolecularDynamics,
    atoms: Atoms,
    n_steps: int,
    every: int,
    min_dist: float,
    t_max: float,
    *,
    resume: dict[str, Any] | None = None,
    checkpoint: Callable[[dict[str, Any]], None] | None = None,
    checkpoint_every: int = 100,
) -> tuple[dict[str, np.ndarray], int, str | None]:
    """Run ``n_steps`` and sample every ``every``; stop early on a collapse or an explosion.

    ``resume`` (a phase state from :class:`MDCheckpoint`) continues a run; ``checkpoint(phase_state)`` is called
    at the first sample point of every ``checkpoint_every`` steps and at the end."""
    n = len(atoms)
    samples = saved_samples(resume)
    problem: str | None = resume.get("problem") if resume else None
    done = int(resume["done"]) if resume else 0

    def sample() -> None:
        epot = atoms.get_potential_energy() / n
        ekin = atoms.get_kinetic_energy() / n
        samples["time_ps"].append(dyn.get_time() / (1000 * units.fs))
        samples["epot"].append(epot)
        samples["ekin"].append(ekin)
        samples["temperature"].append(atoms.get_temperature())
        d, pair = closest_pair(atoms, max(2 * min_dist, 3.0))
        samples["min_distance"].append(d)
        samples["closest_pair"].append(pair)

    def save(finished: bool) -> None:
        if checkpoint is not None:
            rng = getattr(dyn, "rng", None)
            checkpoint(
                {
                    "samples": samples,
                    "done": done,
                    "problem": problem,
                    "finished": finished,
                    "positions": atoms.get_positions().tolist(),
                    "momenta": atoms.get_momenta().tolist(),
                    "rng": rng.bit_generator.state if rng is not None else None,
                }
            )

    if resume is None:
        sample()
    last_saved = done
    while done < n_steps and problem is None:
        k = min(every, n_steps - done)
        try:
            dyn.run(k)
        except Exception as exc:  # a calculator refusing the geometry (overlapping atoms) is an instability
            problem = f"calculator failed at step {done + k}: {type(exc).__name__}: {exc}"
            break
        done += k
        sample()
        if not np.isfinite([samples["epot"][-1], samples["ekin"][-1]]).all():
            problem = f"non-finite energy at step {done}"
        elif samples["min_distance"][-1] < min_dist:
            problem = f"atoms closer than {min_dist} A at step {done} ({samples['min_distance'][-1]:.3f} A)"
        elif samples["temperature"][-1] > t_max:
            problem = f"temperature {samples['temperature'][-1]:.0f} K > {t_max:.0f} K at step {done} (explosion)"
        if problem is None and done - last_saved >= checkpoint_every and done < n_steps:
            save(False)
            last_saved = done
    save(True)
    return {k: np.asarray(v) for k, v in samples.items()}, done, problem


def _phase(
    dyn: Any,
    atoms: Atoms,
    n_steps: int,
    state: dict | None,
    save: Callable[[dict], None],
    every: int,
    min_dist: float,
    t_max: float,
    checkpoint_every: int,
) -> tuple[dict[str, np.ndarray], int, str | None]:
    """One phase (NVE or NVT): read back when its saved state says it finished, else run, continuing from the saved
    state (positions, momenta, step count, thermostat generator) when there is one."""
    if state is not None and state["finished"]:
        return {k: np.asarray(v) for k, v in saved_samples(state).items()}, int(state["done"]), state["problem"]
    if state is not None:
        _set_dynamics_state(atoms, dyn, state)
    return _run(
        dyn, atoms, n_steps, every, min_dist, t_max, resume=state, checkpoint=save, checkpoint_every=checkpoint_every
    )


def run_md(
    calc: CalculatorLike,
    atoms: Atoms,
    *,
    temperature: float = 300.0,
    timestep_fs: float = 1.0,
    nve_ps: float = 1.0,
    nvt_ps: float = 1.0,
    min_distance: float = 0.5,
    explode_factor: float = 10.0,
    t_tolerance: float = 0.1,
    friction_per_fs: float = 0.01,
    sample_every: int = 10,
    seed: int = 0,
    checkpoint_every: int = 100,
    outdir: str | os.PathLike | None = None,
) -> SuiteResult:
    """NVE drift/stability and NVT temperature check for ``atoms`` with ``calc``.

    With ``outdir`` the run is resumable: its state goes to ``outdir/md_state.json`` every ``checkpoint_every``
    steps, and a later call with the same settings, structure and calculator continues from there (a killed
    run loses at most ``checkpoint_every`` steps; the trajectory is the one an uninterrupted run would give, up to
    the calculator's own reproducibility)."""
    from ase.md.langevin import Langevin
    from ase.md import velocitydistribution as vd
    from ase.md.verlet import VelocityVerlet

    calc = as_calculator(calc)
    if temperature <= 0 or timestep_fs <= 0 or nve_ps <= 0:
        raise ValueError("temperature, timestep and NVE length must be positive")
    if checkpoint_every < 1 or sample_every < 1:
        raise ValueError("checkpoint_every and sample_every must be >= 1 step")
    settings = {
        "temperature_K": temperature,
        "timestep_fs": timestep_fs,
        "nve_ps": nve_ps,
        "nvt_ps": nvt_ps,
        "min_distance": min_distance,
        "explode_factor": explode_factor,
        "friction_per_fs": friction_per_fs,
        "sample_every": sample_every,
        "seed": seed,
    }
    lock: AbstractContextManager[None] = (
        exclusive_lock(Path(outdir) / LOCK_FILE, "MD run") if outdir is not None else nullcontext()
    )
    with lock:  # one run per folder: a second one would redo the same steps
        ckpt = MDCheckpoint(
            Path(outdir) / STATE_FILE if outdir is not None else None, _fingerprint(atoms, calc, settings)
        )
        saved = ckpt.state or {}
        rng = np.random.default_rng(seed)
        a = atoms.copy()
        a.calc = calc
        if not saved:
            # Maxwell-Boltzmann momenta (ASE >= 3.29 names it thermalize_momenta)
            getattr(vd, "thermalize_momenta", vd.MaxwellBoltzmannDistribution)(a, temperature_K=temperature, rng=rng)
            vd.Stationary(a)
            if not a.pbc.any():
                vd.ZeroRotation(a)
        dt = timestep_fs * units.fs
        t_max = explode_factor * max(temperature, 1.0)
        n_nve = max(1, int(round(nve_ps * 1000 / timestep_fs)))
        nve_state = saved.get("nve")
        nve_dyn = VelocityVerlet(a, timestep=dt)
        nve, done, problem = _phase(
            nve_dyn,
            a,
            n_nve,
            nve_state,
            lambda st: ckpt.save(nve=st),
            sample_every,
            min_distance,
            t_max,
            checkpoint_every,
        )
        nve_state = ckpt.state["nve"] if ckpt.path is not None and ckpt.state is not None else None
        etot = nve["epot"] + nve["ekin"]
        t = nve["time_ps"]
        drift = float(np.polyfit(t, etot, 1)[0] * 1000) if len(t) > 2 else None
        summary = {
            "n_atoms": len(a),
            "temperature_K": temperature,
            "timestep_fs": timestep_fs,
            "nve_ps": float(done * timestep_fs / 1000),
            "nve_stable": problem is None,
            "nve_drift_meV_atom_ps": drift,
            "nve_max_excursion_meV_atom": float(np.abs(etot - etot[0]).max() * 1000),
            "nve_std_meV_atom": float(etot.std() * 1000),
            "nve_mean_temperature_K": float(nve["temperature"].mean()),
        }
        notes = [f"stability: no pair closer than {min_distance} A, finite energies, T < {t_max:.0f} K"]
        if problem:
            notes.append(f"NVE: {problem}")
        nvt = None
        if nvt_ps > 0 and problem is None:
            n_nvt = max(2, int(round(nvt_ps * 1000 / timestep_fs)))
            from ase.constraints import FixCom

            nvt_state = saved.get("nvt")
            if nvt_state is None and nve_state is not None:  # NVT starts where NVE ended (also after a resume)
                _set_dynamics_state(a, nve_dyn, nve_state)
            a.set_constraint(FixCom())
            dyn = Langevin(
                a,
                timestep=dt,
                temperature_K=temperature,
                friction=friction_per_fs / units.fs,
                fixcm=False,
                rng=np.random.default_rng(seed + 1),
            )
            nvt, done_nvt, problem_nvt = _phase(
                dyn,
                a,
                n_nvt,
                nvt_state,
                lambda st: ckpt.save(nve=nve_state, nvt=st),
                sample_every,
                min_distance,
                t_max,
                checkpoint_every,
            )
            half = nvt["temperature"][len(nvt["temperature"]) // 2 :]
            t_mean = float(half.mean())
            n_dof = 3 * len(a) - 3  # centre of mass fixed
            summary.update(
                {
                    "nvt_ps": float(done_nvt * timestep_fs / 1000),
                    "nvt_stable": problem_nvt is None,
                    "nvt_mean_temperature_K": t_mean,
                    "nvt_temperature_err_pct": 100 * (t_mean / temperature - 1),
                    "nvt_temperature_ok": problem_nvt is None and abs(t_mean / temperature - 1) <= t_tolerance,
                    "nvt_expected_std_K": float(temperature * np.sqrt(2.0 / n_dof)),
                }
            )
            notes.append(
                f"NVT: Langevin, friction {friction_per_fs}/fs; mean T over the second half must be within "
                f"{100 * t_tolerance:.0f}% of the target (instantaneous T fluctuates by ~T sqrt(2/N_dof))"
            )
            if problem_nvt:
                notes.append(f"NVT: {problem_nvt}")
            if nvt_ps * 1000 < 5.0 / friction_per_fs:
                notes.append(
                    f"NVT run ({nvt_ps} ps) is shorter than 5 thermostat times (5/friction = "
                    f"{5.0 / friction_per_fs / 1000:.2g} ps): the temperature may not have equilibrated"
                )
        summary["stable"] = bool(summary["nve_stable"] and summary.get("nvt_stable", True))
        contacts = contact_summary(nve, nvt)
        summary.update(contacts)
        notes.append(
            f"closest contact over the run: {contacts['min_distance_A']:.2f} A ({contacts['closest_pair'] or '?'}); "
            "the closest pair of each sample, by species: "
            + ", ".join(f"{k or '?'} {v}" for k, v in contacts["closest_pair_counts"].items())
        )
        if ckpt.state and ckpt.state.get("resumes"):
            notes.append(f"resumed {ckpt.state['resumes']} time(s) from {STATE_FILE}")
        details = {
            "nve": {k: v.tolist() for k, v in nve.items()} | {"etot": etot.tolist()},
            "nvt": {k: v.tolist() for k, v in nvt.items()} if nvt is not None else None,
        }
        result = SuiteResult(
            "md",
            describe(calc),
            summary,
            details,
            notes=notes,
            sections=[
                f"Structure: {a.get_chemical_formula()} ({len(a)} atoms), {'periodic' if a.pbc.any() else 'molecule'}",
                "",
            ],
        )
        if outdir is not None:
            outdir = Path(outdir)
            outdir.mkdir(parents=True, exist_ok=True)
            result.plots.append(plot_md(nve, etot, nvt, temperature, outdir / "md.png"))
            result.write(outdir)
        return result


def plot_md(
    nve: dict[str, np.ndarray],
    etot: np.ndarray,
    nvt: dict[str, np.ndarray] | None,
    temperature: float,
    path: Path,
) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3 if nvt is not None else 2, figsize=(11 if nvt is not None else 7.5, 3.2))
    t = nve["time_ps"]
    axes[0].plot(t, 1000 * (etot - etot[0]), label="E_tot")
    axes[0].plot(t, 1000 * (nve["epot"] - nve["epot"][0]), lw=0.7, alpha=0.6, label="E_pot")
    axes[0].set_xlabel("t (ps)")
    axes[0].set_ylabel("ΔE (meV/atom)")
    axes[0].set_title("NVE", fontsize=9)
    axes[0].legend(fontsize=7)
    axes[1].plot(t, nve["temperature"], label="NVE")
    axes[1].set_xlabel("t (ps)")
    axes[1].set_ylabel("T (K)")
    if nvt is not None:
        axes[2].plot(nvt["time_ps"], nvt["temperature"], color="tab:orange")
        axes[2].axhline(temperature, color="k", ls="--", lw=0.8)
        axes[2].set_xlabel("t (ps)")
        axes[2].set_ylabel("T (K)")
        axes[2].set_title("NVT (Langevin)", fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)
