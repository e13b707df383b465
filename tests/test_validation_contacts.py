"""The contacts suite: one pair of a host pulled together along its bond, the rest fixed; E relative to the start."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from gfm_ase.validation.contacts import closest_pair_of, pulled, run_contacts


def _host():
    atoms = bulk("Cu", cubic=True).repeat((2, 2, 2))
    atoms[5].symbol = "Au"
    atoms.rattle(0.02, seed=1)
    return atoms


def test_pulled_moves_only_the_pair_symmetrically_to_the_distance_across_the_boundary():
    atoms = _host()
    i, j, d0 = closest_pair_of(atoms, "Au", "Cu")
    assert atoms.get_chemical_symbols()[i] == "Au" or atoms.get_chemical_symbols()[j] == "Au"
    out = pulled(atoms, i, j, 1.7)
    assert out.get_distance(i, j, mic=True) == pytest.approx(1.7, abs=1e-12)
    moved = np.linalg.norm(out.positions - atoms.positions, axis=1)
    assert set(np.flatnonzero(moved > 0)) == {i, j}
    assert moved[i] == pytest.approx(moved[j]) == pytest.approx((d0 - 1.7) / 2)
    # the midpoint stays (symmetric move), also for a pair that meets through the periodic boundary
    atoms.positions[0] = [0.05, 0.05, 0.05]
    atoms.positions[1] = atoms.cell[0] - [0.6, -0.05, -0.05]  # its image is 0.67 A away from atom 0
    out = pulled(atoms, 0, 1, 0.5)
    assert out.get_distance(0, 1, mic=True) == pytest.approx(0.5, abs=1e-12)


def test_emt_contacts_rise_towards_each_other_and_the_report_is_written(tmp_path):
    atoms = _host()
    res = run_contacts(EMT(), atoms, [("Cu", "Cu"), ("Au", "Cu")], distances=(3.0, 2.2, 2.0, 1.8, 1.6), outdir=tmp_path)
    for key in ("Cu-Cu", "Au-Cu"):
        c = res.details["curves"][key]
        assert c["distances_A"] == [r for r in (2.2, 2.0, 1.8, 1.6) if r < c["start_A"]]  # only closer, descending
        assert res.summary[f"{key}_monotonic"] and min(c["energy_eV"]) > 0
    e = res.details["curves"]["Cu-Cu"]["energy_eV"]
    assert e[-1] > 3 * e[0]  # EMT's wall steepens
    out = json.loads((tmp_path / "summary.json").read_text())
    assert out["summary"]["pairs"] == ["Cu-Cu", "Au-Cu"] and (tmp_path / "contacts.png").is_file()
    with pytest.raises(ValueError, match="no O-Cu pair"):
        run_contacts(EMT(), atoms, [("O", "Cu")])


def test_cli_contacts(tmp_path, capsys):
    from ase.io import write

    from gfm_ase.cli import main

    write(tmp_path / "host.extxyz", _host())
    rc = main(["validate", "contacts", "--calculator", "emt", "--structure", str(tmp_path / "host.extxyz"), "--pair",
               "Cu", "Cu", "--distances", "2.2", "1.8", "-o", str(tmp_path / "out")])
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert s["Cu-Cu_monotonic"] and s["pairs"] == ["Cu-Cu"]
    capsys.readouterr()
    rc = main(["validate", "contacts", "--calculator", "emt", "--structure", str(tmp_path / "host.extxyz"), "--pair",
               "Cu", "Xx", "-o", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "two element symbols" in err
