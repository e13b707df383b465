"""MD suite: EMT conserves energy at a sensible time step, drifts at a reckless one; collapses are caught."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.emt import EMT

from gfm_ase.validation.md import min_distance, run_md, starting_structure


def test_emt_nve_drift_is_small_and_grows_with_the_time_step(tmp_path):
    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    good = run_md(EMT(), atoms, timestep_fs=2.0, nve_ps=0.2, nvt_ps=0, outdir=tmp_path)
    bad = run_md(EMT(), atoms, timestep_fs=12.0, nve_ps=0.36, nvt_ps=0)
    g, b = good.summary, bad.summary
    assert g["nve_stable"] and g["stable"]
    assert abs(g["nve_drift_meV_atom_ps"]) < 0.5 and g["nve_max_excursion_meV_atom"] < 0.5
    # energy errors of velocity Verlet grow ~dt^2: a 6x larger step must show a much larger excursion
    assert b["nve_max_excursion_meV_atom"] > 10 * g["nve_max_excursion_meV_atom"]
    assert 100 < g["nve_mean_temperature_K"] < 250  # equipartition: ~T/2 from a perfect crystal
    out = json.loads((tmp_path / "summary.json").read_text())
    assert out["summary"]["nve_stable"] is True and (tmp_path / "md.png").is_file()
    assert len(out["details"]["nve"]["etot"]) == 11  # 100 steps sampled every 10, plus the start


def test_nvt_holds_the_target_temperature():
    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    res = run_md(EMT(), atoms, temperature=400.0, timestep_fs=4.0, nve_ps=0.04, nvt_ps=0.8, friction_per_fs=0.05,
                 seed=1)
    s = res.summary
    assert s["nvt_stable"] and s["nvt_temperature_ok"]
    assert abs(s["nvt_mean_temperature_K"] - 400) < 40


def test_collapse_is_reported_as_unstable():
    # two atoms 0.4 A apart in a box with fast velocities: the minimum-distance check must fire at once
    atoms = Atoms("Cu2", positions=[[0, 0, 0], [0.4, 0, 0]], cell=[8, 8, 8], pbc=True)
    res = run_md(EMT(), atoms, timestep_fs=1.0, nve_ps=0.02, nvt_ps=0.0, min_distance=0.5, sample_every=1)
    assert not res.summary["stable"] and not res.summary["nve_stable"]
    assert any("closer than" in n or "explosion" in n or "failed" in n for n in res.notes)


def test_min_distance_and_starting_structures(tmp_path):
    a = starting_structure(bulk="Si:diamond:5.43")
    assert len(a) == 64 and min_distance(a, 3.0) == pytest.approx(5.43 * np.sqrt(3) / 4, rel=1e-6)
    with pytest.raises(ValueError, match="exactly one"):
        starting_structure()
    with pytest.raises(FileNotFoundError):
        starting_structure(structure=str(tmp_path / "none.xyz"))


def test_cli_md(tmp_path, capsys):
    from gfm_ase.cli import main

    cmd = ["validate", "md", "--calculator", "emt", "--bulk", "Cu", "--repeat", "2", "2", "2", "--timestep", "2",
           "--nve-ps", "0.1", "--nvt-ps", "0.1", "-o", str(tmp_path / "out")]
    assert main(cmd) == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert s["nve_stable"] and s["n_atoms"] == 32
    capsys.readouterr()
    assert main([*cmd, "--seed", "1"]) == 2  # another run's state in the folder: one clean line, nothing run
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "md_state.json" in err and "differs in: seed" in err


def _interrupt_after(monkeypatch, n_calls: int):
    """Make EMT raise KeyboardInterrupt (not caught by the suite, like a kill) after ``n_calls`` evaluations."""
    calls = {"n": 0}
    original = EMT.calculate

    def calculate(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n_calls:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EMT, "calculate", calculate)
    return calls


@pytest.mark.parametrize("kill_at", [23, 77])  # once in the NVE phase, once in the NVT phase
def test_md_resumes_the_same_trajectory_after_an_interruption(tmp_path, monkeypatch, kill_at):
    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    kw = dict(temperature=600.0, timestep_fs=2.0, nve_ps=0.1, nvt_ps=0.1, sample_every=5, checkpoint_every=10,
              seed=3)
    ref = run_md(EMT(), atoms, outdir=tmp_path / "ref", **kw)
    with monkeypatch.context() as m:
        _interrupt_after(m, kill_at)
        with pytest.raises(KeyboardInterrupt):
            run_md(EMT(), atoms, outdir=tmp_path / "run", **kw)
    state = json.loads((tmp_path / "run" / "md_state.json").read_text())
    assert ("nvt" in state) == (kill_at > 50)  # the NVE phase is 50 steps
    res = run_md(EMT(), atoms, outdir=tmp_path / "run", **kw)
    # every sample of both phases; not bit for bit: EMT's neighbour list is rebuilt at the restart, which changes
    # its summation order (1e-16 relative), and 100 chaotic steps amplify that; a wrong restart (momenta, time,
    # thermostat noise) differs at the 1e-2 level
    for phase in ("nve", "nvt"):
        for key, values in ref.details[phase].items():
            if key == "closest_pair":  # species names
                assert res.details[phase][key] == values
            else:
                np.testing.assert_allclose(res.details[phase][key], values, rtol=1e-8, atol=1e-10, err_msg=key)
    assert res.summary.keys() == ref.summary.keys()
    assert any("resumed 1 time" in n for n in res.notes)


def test_a_finished_md_run_is_not_run_again_and_other_settings_are_refused(tmp_path, monkeypatch):
    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    first = run_md(EMT(), atoms, timestep_fs=2.0, nve_ps=0.04, nvt_ps=0.04, outdir=tmp_path)
    with monkeypatch.context() as m:
        calls = _interrupt_after(m, 0)
        again = run_md(EMT(), atoms, timestep_fs=2.0, nve_ps=0.04, nvt_ps=0.04, outdir=tmp_path)
        assert calls["n"] == 0
    assert again.details == first.details
    with pytest.raises(ValueError, match=r"differs in: nvt_ps, temperature_K"):
        run_md(EMT(), atoms, temperature=500.0, timestep_fs=2.0, nve_ps=0.04, nvt_ps=0.08, outdir=tmp_path)
    with pytest.raises(ValueError, match=r"differs in: structure_sha256"):
        run_md(EMT(), atoms.repeat((1, 1, 2)), timestep_fs=2.0, nve_ps=0.04, nvt_ps=0.04, outdir=tmp_path)


def test_a_second_run_on_the_same_folder_is_refused_while_the_first_runs(tmp_path, capsys):
    import os

    from gfm_ase.cli import main
    from gfm_ase.fileio import LockedError, exclusive_lock

    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    with exclusive_lock(tmp_path / "md.lock", "MD run"):  # what a running `gfm validate md -o tmp_path` holds
        with pytest.raises(LockedError, match=rf"in use by another MD run \(pid {os.getpid()}"):
            run_md(EMT(), atoms, timestep_fs=2.0, nve_ps=0.02, nvt_ps=0, outdir=tmp_path)
        assert not (tmp_path / "md_state.json").exists()  # refused before anything was run or written
        rc = main(["validate", "md", "--calculator", "emt", "--bulk", "Cu", "--repeat", "2", "2", "2",
                   "--nve-ps", "0.02", "--nvt-ps", "0", "-o", str(tmp_path)])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "in use by another MD run" in err
    assert run_md(EMT(), atoms, timestep_fs=2.0, nve_ps=0.02, nvt_ps=0, outdir=tmp_path).summary["stable"]


def test_closest_contacts_cover_both_phases_and_name_the_species(tmp_path):
    from gfm_ase.validation.md import closest_pair

    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    atoms[0].symbol = "Au"
    nn = atoms.cell.lengths()[0] / 2 / np.sqrt(2)  # fcc first-neighbour distance of the 2x2x2 cubic cell
    assert closest_pair(atoms, 3.0) == (pytest.approx(nn, rel=1e-9), "Au-Cu")  # Au sorts before Cu
    assert closest_pair(atoms, 1.0) == (1.0, "")
    res = run_md(EMT(), atoms, temperature=900.0, timestep_fs=4.0, nve_ps=0.08, nvt_ps=0.2, sample_every=5, seed=2)
    s, d = res.summary, res.details
    assert s["nve_min_distance_A"] == min(d["nve"]["min_distance"])
    assert s["nvt_min_distance_A"] == min(d["nvt"]["min_distance"])
    assert s["min_distance_A"] == min(s["nve_min_distance_A"], s["nvt_min_distance_A"])
    phase = "nve" if s["nve_min_distance_A"] <= s["nvt_min_distance_A"] else "nvt"
    k = int(np.argmin(d[phase]["min_distance"]))
    assert s["closest_pair"] == d[phase]["closest_pair"][k] and s["closest_pair"] in ("Au-Cu", "Cu-Cu")
    n_samples = len(d["nve"]["time_ps"]) + len(d["nvt"]["time_ps"])
    assert sum(s["closest_pair_counts"].values()) == n_samples
    assert set(s["closest_pair_counts"]) <= {"Au-Cu", "Cu-Cu"}
    assert any(n.startswith(f"closest contact over the run: {s['min_distance_A']:.2f} A") for n in res.notes)


def test_a_state_written_before_the_species_were_recorded_resumes(tmp_path, monkeypatch):
    atoms = starting_structure(bulk="Cu", repeat=(2, 2, 2))
    kw = dict(timestep_fs=2.0, nve_ps=0.1, nvt_ps=0.04, sample_every=5, checkpoint_every=10)
    with monkeypatch.context() as m:
        _interrupt_after(m, 30)
        with pytest.raises(KeyboardInterrupt):
            run_md(EMT(), atoms, outdir=tmp_path, **kw)
    path = tmp_path / "md_state.json"
    state = json.loads(path.read_text())
    del state["nve"]["samples"]["closest_pair"]
    path.write_text(json.dumps(state))
    res = run_md(EMT(), atoms, outdir=tmp_path, **kw)
    pairs = res.details["nve"]["closest_pair"]
    n_old = len(state["nve"]["samples"]["time_ps"])
    assert pairs[:n_old] == [""] * n_old and set(pairs[n_old:]) == {"Cu-Cu"}
    assert res.summary["closest_pair_counts"][""] == n_old
    # a finished run of that time is read, not run again
    state = json.loads(path.read_text())
    for phase in ("nve", "nvt"):
        del state[phase]["samples"]["closest_pair"]
    path.write_text(json.dumps(state))
    again = run_md(EMT(), atoms, outdir=tmp_path, **kw)
    assert again.summary["closest_pair_counts"] == {"": len(pairs) + len(res.details["nvt"]["closest_pair"])}
