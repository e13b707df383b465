"""gfm_ase.pretraining.ablation: held-out errors on the scale the report says (per-element aligned mlearn sets, FitSNAP
test
splits shifted by the config's energy_offsets), uncovered elements shown as '-', not dropped.

The labels are gfm-mini's own predictions plus a known per-element energy shift, so every correct error is ~0 and
a missing alignment or offset shows up as the shift itself."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.build import bulk

SHIFT = {"Si": 0.123, "Ge": -0.071}  # eV/atom added to the labels


def _labelled(model_calc, atoms):
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms.calc = model_calc
    e = atoms.get_potential_energy() + sum(SHIFT.get(s, 0.0) for s in atoms.get_chemical_symbols())
    res = dict(energy=e, forces=atoms.get_forces(), stress=atoms.get_stress(voigt=True))
    atoms.calc = SinglePointCalculator(atoms, **res)
    return atoms


def _cells(rng, el, a, n):
    out = []
    for _ in range(n):
        at = bulk(el, "diamond", a=a * rng.uniform(0.97, 1.03), cubic=True)
        at.rattle(0.05, seed=int(rng.integers(1 << 30)))
        out.append(at)
    return out


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from gfm_ase import GFMCalculator
    from gfm_ase.data import StoreWriter

    root = tmp_path_factory.mktemp("ablation")
    calc = GFMCalculator(model="gfm-mini", head="omat", dtype="float64")
    rng = np.random.default_rng(0)
    with StoreWriter(root / "mlearn_test.h5", name="mlearn_test", level_of_theory="test", code="gfm-mini",
                     source="tests", license="CC0-1.0") as w:
        for el, a in (("Si", 5.43), ("Ge", 5.66)):
            for i, at in enumerate(_cells(rng, el, a, 4)):
                w.append_atoms(_labelled(calc, at), id=f"{el}-{i}", group=f"{el}/test")
        # Cu: an element gfm-mini's omat head does not cover; its labels never reach the model
        from ase.calculators.emt import EMT
        from ase.calculators.singlepoint import SinglePointCalculator

        for i in range(3):
            at = bulk("Cu", "fcc", a=3.61, cubic=True)
            at.rattle(0.05, seed=i)
            at.calc = EMT()
            at.calc = SinglePointCalculator(at, energy=at.get_potential_energy(), forces=at.get_forces(),
                                            stress=at.get_stress(voigt=True))
            w.append_atoms(at, id=f"Cu-{i}", group="Cu/test")
    with StoreWriter(root / "fitsnap_Si.h5", name="fitsnap_Si", level_of_theory="test", code="gfm-mini",
                     source="tests", license="CC0-1.0") as w:
        for i, at in enumerate(_cells(rng, "Si", 5.43, 20)):
            w.append_atoms(_labelled(calc, at), id=f"si-{i}", group=f"si-{i}")
    cfg = f"""
seed: 0
model:
  name: t
  trunk: {{name: painn, options: {{cutoff: 5.0, num_features: 8, num_layers: 1, num_rbf: 4}}}}
heads:
  - {{name: omat, level_of_theory: test}}
datasets:
  - name: fitsnap_Si
    path: {root / 'fitsnap_Si.h5'}
    head: omat
    split: {{fractions: [0.5, 0.2, 0.3], seed: 0, by: structure}}
    energy_offsets: {{Si: {SHIFT['Si']}}}
"""
    (root / "cfg.yaml").write_text(cfg)
    return root


def _run(root, extra=()):
    from gfm_ase.pretraining import ablation

    out = root / "report.json"
    ablation.main(["--config", str(root / "cfg.yaml"), "--mlearn-test", str(root / "mlearn_test.h5"),
                   "--model", "mini=gfm-mini", "-o", str(out), "--markdown", str(root / "report.md"), *extra])
    return json.loads(out.read_text())["models"]["mini"], (root / "report.md").read_text()


def test_ablation_errors_on_the_stated_scale(setup):
    rep, md = _run(setup)
    for el in ("Si", "Ge"):  # per-element alignment removes exactly the shift added to the labels
        r = rep["mlearn"][el]
        assert r["n_structures"] == 4 and r["n_failed"] == 0
        assert r["energy_mae_meV_atom"] < 0.05 and r["forces_mae_meV_A"] < 0.05  # float32 model vs float64 labels
    assert rep["mlearn"]["Cu"] == {"not_covered": ["Cu"], "n_structures": 3}
    fs = rep["fitsnap"]["fitsnap_Si"]  # the config's energy_offsets put the labels back on the model's scale
    assert fs["n_structures"] == 6
    assert fs["energy_mae_meV_atom"] < 0.05 and fs["forces_mae_meV_A"] < 0.05
    assert "| mlearn Cu (test, E aligned per element) | 3 | - / - |" in md
    assert "| fitsnap_Si (test split) | 6 |" in md


def test_ablation_without_offsets_shows_the_shift(setup):
    """The same labels evaluated through a config without energy_offsets: the error is the shift (the check above
    would pass trivially if offsets were ignored and the shift were zero)."""
    text = (setup / "cfg.yaml").read_text().replace(f"    energy_offsets: {{Si: {SHIFT['Si']}}}\n", "")
    (setup / "cfg_raw.yaml").write_text(text)
    from gfm_ase.pretraining import ablation

    ablation.main(["--config", str(setup / "cfg_raw.yaml"), "--mlearn-test", str(setup / "mlearn_test.h5"),
                   "--model", "mini=gfm-mini", "-o", str(setup / "raw.json")])
    fs = json.loads((setup / "raw.json").read_text())["models"]["mini"]["fitsnap"]["fitsnap_Si"]
    assert fs["energy_mae_meV_atom"] == pytest.approx(1000 * SHIFT["Si"], rel=1e-3)


def test_ablation_bad_model_argument(setup):
    from gfm_ase.pretraining import ablation

    with pytest.raises(SystemExit, match="LABEL=DIR"):
        ablation.main(["--config", str(setup / "cfg.yaml"), "--mlearn-test", str(setup / "mlearn_test.h5"),
                       "--model", "gfm-mini"])
