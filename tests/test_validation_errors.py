"""Errors suite: labels from the same calculator give zero; known label errors give the known MAE; store input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from gfm_ase.validation.errors import load_structures, run_errors


def _labelled(seed=0):
    out = []
    for i, el in enumerate(["Cu", "Al", "Cu", "Ni", "Au"]):
        a = bulk(el, cubic=True).repeat((2, 1, 1))
        a.rattle(0.05, seed=seed + i)
        a.info["group"] = "bulk-a" if i % 2 else "bulk-b"
        a.calc = EMT()
        labels = dict(energy=a.get_potential_energy(), forces=a.get_forces(), stress=a.get_stress())
        a.calc = SinglePointCalculator(a, **labels)
        out.append(a)
    m = molecule("CO")  # a molecule: no stress
    m.calc = EMT()
    e, f = m.get_potential_energy(), m.get_forces()
    m.calc = SinglePointCalculator(m, energy=e, forces=f)
    m.info["group"] = "molecule"
    return out + [m]


def test_labels_from_the_same_calculator_give_zero(tmp_path):
    res = run_errors(EMT(), _labelled(), outdir=tmp_path)
    s = res.summary
    assert s["n_structures"] == 6 and s["n_failed"] == 0
    for k in ("energy_mae_meV_atom", "energy_rmse_meV_atom", "forces_mae_meV_A", "stress_mae_GPa"):
        assert s[k] == pytest.approx(0.0, abs=1e-9), k
    assert set(res.details["per_group"]) == {"bulk-a", "bulk-b", "molecule"}
    assert set(res.details["per_element"]) == {"Al", "Au", "C", "Cu", "Ni", "O"}
    out = json.loads((tmp_path / "summary.json").read_text())
    assert out["summary"]["forces_mae_meV_A"] == 0.0
    assert (tmp_path / "parity.png").stat().st_size > 1000


def test_known_label_errors_give_known_metrics():
    structures = _labelled()
    a = structures[0]  # Cu8: +0.08 eV on the energy, +0.01 eV/A on every x force component
    a.calc.results["energy"] += 0.08
    a.calc.results["forces"][:, 0] += 0.01
    b = structures[1]  # Al8: stress xx off by 1 GPa (ASE units)
    b.calc.results["stress"][0] += 1.0 * 0.0062415091
    res = run_errors(EMT(), structures)
    s = res.summary
    n_e = 6
    assert s["energy_mae_meV_atom"] == pytest.approx(80.0 / len(a) / n_e)
    assert s["energy_rmse_meV_atom"] == pytest.approx(np.sqrt((80.0 / len(a)) ** 2 / n_e))
    n_comp = 3 * sum(len(x) for x in structures)
    assert s["forces_mae_meV_A"] == pytest.approx(10.0 * len(a) / n_comp)
    assert s["stress_mae_GPa"] == pytest.approx(1.0 / (6 * 5), rel=1e-6)  # 5 periodic structures x 6 components
    cu = res.details["per_element"]["Cu"]
    assert cu["forces_meV_A"]["mae"] == pytest.approx(10.0 * len(a) / (3 * (len(a) + len(structures[2]))))
    assert res.details["per_element"]["Al"]["forces_meV_A"]["mae"] == pytest.approx(0.0, abs=1e-12)


def test_per_element_alignment_removes_a_reference_energy_shift():
    structures = _labelled()
    shift = {"Cu": -1.5, "Al": 0.7, "Ni": 0.2, "Au": -0.4, "C": 3.0, "O": -2.0}  # eV/atom, another "level of theory"
    for a in structures:
        a.calc.results["energy"] += sum(shift[s] for s in a.get_chemical_symbols())
    raw = run_errors(EMT(), structures)
    aligned = run_errors(EMT(), structures, align="per-element")
    assert raw.summary["energy_mae_meV_atom"] > 100
    assert aligned.summary["energy_mae_meV_atom"] == pytest.approx(0.0, abs=1e-6)
    assert any("offset" in n for n in aligned.notes)


def test_unlabelled_or_refused_structures_are_reported():
    structures = _labelled()[:2]
    plain = bulk("Cu")
    structures.append(plain)
    res = run_errors(EMT(), structures)
    assert res.summary["n_failed"] == 1 and "no labels" in res.details["failed"][0]["reason"]
    with pytest.raises(ValueError, match="no structures"):
        run_errors(EMT(), [])


def test_extxyz_and_store_inputs(tmp_path):
    from gfm_ase.data import StoreWriter

    structures = _labelled()
    write(tmp_path / "set.extxyz", structures)
    frames, name = load_structures(tmp_path / "set.extxyz")
    assert len(frames) == 6 and name == "set.extxyz"
    # extxyz keeps 8 decimals of the positions: the recomputed forces differ at the 1e-5 meV/A level
    assert run_errors(EMT(), frames).summary["forces_mae_meV_A"] == pytest.approx(0.0, abs=1e-3)
    with StoreWriter(tmp_path / "tiny.h5", name="tiny", level_of_theory="EMT", code="ase") as w:
        for a in structures:
            w.append_atoms(a, group=a.info["group"])
    frames, name = load_structures(tmp_path / "tiny.h5")
    assert name == "tiny" and len(frames) == 6
    res = run_errors(EMT(), frames, name=name)
    assert res.summary["energy_mae_meV_atom"] == pytest.approx(0.0, abs=1e-9)
    assert res.summary["stress_mae_GPa"] == pytest.approx(0.0, abs=1e-9)
    assert set(res.details["per_group"]) == {"bulk-a", "bulk-b", "molecule"}
    frames, name = load_structures(tmp_path / "tiny.h5", split="train", split_seed=0)
    assert 1 <= len(frames) < 6 and "train split" in name
    with pytest.raises(ValueError, match="store"):
        load_structures(tmp_path / "set.extxyz", split="test")


def test_cli_errors(tmp_path):
    from gfm_ase.cli import main

    write(tmp_path / "set.extxyz", _labelled())
    rc = main(
        [
            "validate",
            "errors",
            "--calculator",
            "emt",
            "--data",
            str(tmp_path / "set.extxyz"),
            "-o",
            str(tmp_path / "out"),
        ]
    )
    assert rc == 0
    s = json.loads((tmp_path / "out" / "summary.json").read_text())["summary"]
    assert s["forces_mae_meV_A"] == pytest.approx(0.0, abs=1e-3)
    assert (
        main(
            [
                "validate",
                "errors",
                "--calculator",
                "emt",
                "--data",
                str(tmp_path / "missing.xyz"),
                "-o",
                str(tmp_path / "o2"),
            ]
        )
        == 2
    )


def test_store_labels_are_read_from_the_records_not_through_atoms(tmp_path, monkeypatch):
    """A store (or its records) is evaluated with the labels of its records: no SinglePointCalculator is built and
    read back, and the numbers are those of the same structures given as labelled Atoms (a subset too)."""
    from ase.calculators import singlepoint

    from gfm_ase.data import Store, StoreWriter

    structures = _labelled()
    structures[0].calc.results["energy"] += 0.08  # known label errors, so the comparison is not of zeros
    structures[1].calc.results["stress"][0] += 0.01
    with StoreWriter(tmp_path / "tiny.h5", name="tiny", level_of_theory="EMT", code="ase") as w:
        for a in structures:
            w.append_atoms(a, group=a.info["group"])
    store = Store(tmp_path / "tiny.h5")
    as_atoms = [store.to_atoms(i) for i in range(len(store))]
    want = run_errors(EMT(), as_atoms)
    want_subset = run_errors(EMT(), as_atoms, max_structures=4, seed=3)

    def refuse(*args, **kwargs):
        raise AssertionError("labels went through a SinglePointCalculator")

    monkeypatch.setattr(singlepoint.SinglePointCalculator, "__init__", refuse)
    records, _ = load_structures(tmp_path / "tiny.h5")
    for given in (records, store):
        got = run_errors(EMT(), given)
        assert got.summary | {"dataset": None} == want.summary | {"dataset": None}
        assert got.details["per_group"] == want.details["per_group"] and got.summary["energy_mae_meV_atom"] > 0
    assert run_errors(EMT(), store, max_structures=4, seed=3).details == want_subset.details


class _Compressed(EMT):
    """EMT with its energy surface scaled by ``factor`` (energies, forces and stress): a softened potential."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def calculate(self, *args, **kwargs):
        super().calculate(*args, **kwargs)
        for k in ("energy", "free_energy", "forces", "stress", "energies"):
            if k in self.results:
                self.results[k] = self.results[k] * self.factor


@pytest.mark.parametrize("align", ["none", "per-element"])
def test_slopes_measure_a_compressed_energy_surface(align, tmp_path):
    from gfm_ase.validation.suites.errors import compare_slopes

    structures = _labelled()
    for k, strain in enumerate((0.97, 1.0, 1.04)):  # pure Cu over a range of energies
        a = bulk("Cu", cubic=True).repeat((2, 1, 1))
        a.set_cell(a.cell * strain, scale_atoms=True)
        a.rattle(0.1, seed=10 + k)
        a.calc = EMT()
        a.calc = SinglePointCalculator(a, energy=a.get_potential_energy(), forces=a.get_forces())
        structures.append(a)
    soft = run_errors(_Compressed(0.9), structures, align=align, outdir=tmp_path)
    exact = run_errors(EMT(), structures, align=align)
    assert soft.summary["forces_slope"] == pytest.approx(0.9, abs=1e-9)
    assert exact.summary["forces_slope"] == pytest.approx(1.0, abs=1e-9)
    cu = soft.details["per_element"]["Cu"]
    assert cu["forces_slope"] == pytest.approx(0.9, abs=1e-9)
    assert cu["energy_slope_elemental"] == pytest.approx(0.9, abs=1e-9)  # 5 Cu-only structures
    assert exact.details["per_element"]["Cu"]["energy_slope_elemental"] == pytest.approx(1.0, abs=1e-9)
    assert soft.details["per_element"]["Al"]["energy_slope_elemental"] is None  # one Al structure: no slope
    if align == "none":  # per-atom energies of different elements: the plain slope is the scale factor
        assert soft.summary["energy_slope"] == pytest.approx(0.9, abs=1e-9)
    report = (tmp_path / "report.md").read_text()
    assert "F slope" in report and "0.9" in report
    runs = {"soft": json.loads((tmp_path / "summary.json").read_text())}
    rows = compare_slopes(runs)
    assert any(r.startswith("| Cu |") and "0.900 / 0.900" in r for r in rows)


def test_compare_overall_row_per_calculator():
    from gfm_ase.validation.suites.errors import compare_overall

    structures = _labelled()
    runs = {
        n: {"summary": run_errors(c, structures).summary} for n, c in (("exact", EMT()), ("soft", _Compressed(0.9)))
    }
    rows = compare_overall(runs)
    assert rows[2].startswith("| exact | 6 | 0.0 | 0.0 |") and rows[3].startswith("| soft | 6 |")
    assert float(rows[3].split("|")[3]) > 0  # the softened calculator's energy MAE
