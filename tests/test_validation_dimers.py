"""The short-range repulsion suite (validation/dimers.py): metrics on known curves, a calculator with and without a
wall, refused points, the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes

from gfm_ase.validation.dimers import curve_metrics, default_pairs, run_dimers


class PairCalc(Calculator):
    """E = V(r) of the first two atoms: a Morse-like well, optionally with a hole at short range."""

    implemented_properties = ["energy", "forces"]

    def __init__(self, hole: bool):
        super().__init__()
        self.hole = hole

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        r = atoms.get_distance(0, 1, mic=True)
        e = (1 - np.exp(-2.0 * (r - 2.0))) ** 2 - 1.0
        if self.hole:
            e -= 500.0 * np.exp(-((r - 0.6) / 0.15) ** 2)  # a deep hole near 0.6 A
        self.results = {"energy": float(e), "forces": np.zeros((len(atoms), 3))}


def test_curve_metrics_on_known_curves():
    f = np.round(np.arange(0.2, 1.31, 0.05), 6)
    wall = curve_metrics(f, 10 * (1.0 - f) ** 2, f_wall=0.7)
    assert wall["wall"] and wall["hole_eV"] == 0.0 and wall["rise_eV"] == pytest.approx(6.4)
    dip = 10 * (1.0 - f) ** 2 - 20 * np.exp(-((f - 0.4) / 0.05) ** 2)
    bad = curve_metrics(f, dip, f_wall=0.7)
    e08 = np.interp(0.8, f, dip)
    assert not bad["wall"] and bad["hole_eV"] == pytest.approx(e08 - dip.min())
    refused = np.where(f < 0.4, np.nan, 10 * (1.0 - f) ** 2)
    r = curve_metrics(f, refused, f_wall=0.7)
    assert r["wall"] and r["n_refused"] == 4 and r["f_first"] == pytest.approx(0.4)


def test_default_pairs_are_unique():
    assert default_pairs(["Si", "O"], ("O",)) == [("Si", "Si"), ("O", "Si"), ("O", "O")]


def test_suite_finds_the_hole_and_passes_the_wall(tmp_path):
    good = run_dimers(PairCalc(hole=False), pairs=[("Si", "Si")], outdir=tmp_path / "good")
    bad = run_dimers(PairCalc(hole=True), pairs=[("Si", "Si")], outdir=tmp_path / "bad")
    assert good.summary["n_wall"] == 1 and good.summary["n_hole"] == 0
    assert bad.summary["n_wall"] == 0 and bad.summary["hole_max_eV"] > 10 and bad.summary["hole_max_pair"] == "Si-Si"
    doc = json.loads((tmp_path / "bad" / "summary.json").read_text())
    assert doc["summary"]["n_hole"] == 1 and (tmp_path / "bad" / "dimers_worst.png").is_file()
    with pytest.raises(ValueError, match="f_min"):
        run_dimers(PairCalc(hole=False), pairs=[("Si", "Si")], f_min=0.8, f_wall=0.7)


def test_cli_on_a_gfm_model_with_and_without_its_geometry_check(tmp_path):
    from conftest import make_tiny_model

    from gfm_ase.checkpoint import save_model
    from gfm_ase.cli import main

    save_model(make_tiny_model(elements=("Si", "O")), tmp_path / "m")
    base = ["validate", "dimers", "--model", str(tmp_path / "m"), "--head", "a", "--elements", "Si"]
    assert main(base + ["-o", str(tmp_path / "a")]) == 0
    a = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert a["summary"]["n_pairs"] == 2  # Si-Si and O-Si
    first = {k: v["f_first"] for k, v in a["details"]["pairs"].items()}
    assert all(f >= 0.4 for f in first.values())  # the default check refuses closer pairs
    assert main(base + ["--min-distance-factor", "0", "-o", str(tmp_path / "b")]) == 0
    b = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert all(v["f_first"] == pytest.approx(0.2) for v in b["details"]["pairs"].values())
    assert main(["validate", "dimers", "--calculator", "emt", "--min-distance-factor", "0", "--elements", "Cu",
                 "-o", str(tmp_path / "c")]) == 2
