"""Properties the shipped gfm-base must keep (not its accuracy numbers, which live in docs/models/gfm-base.md)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def calc():
    from gfm_ase import GFMCalculator

    return GFMCalculator(model="gfm-base", head="omat", dtype="float32", device="cpu", min_distance_factor=0)


# (pair, f_wall): the wall must rise monotonically below f_wall x the covalent-radius sum. 0.7 x is below every
# single bond; group-5 dimers are multiply bonded and shorter (Nb2: r_e = 2.078 A = 0.63 x, James et al., J. Chem.
# Phys. 99, 8504 (1993)), so Ta-Ta is checked below 0.6 x (the Ta2 minimum of v3, v4 and v5: about 0.65 x = 2.2 A).
WALL_PAIRS = [(("O", "O"), 0.7), (("Cu", "O"), 0.7), (("Ni", "O"), 0.7), (("Li", "Zr"), 0.7), (("As", "As"), 0.7),
              (("Ta", "Ta"), 0.6)]


@pytest.mark.parametrize(("pair", "f_wall"), WALL_PAIRS)
def test_repulsive_wall_at_short_range(calc, pair, f_wall):
    """v0 had none (O-O, Cu-O, Ni-O lower at 0.3 than at 0.8 x the covalent sum; two 1000 K MD runs collapsed);
    the ZBL term trained in gives a wall: E rises monotonically as the atoms approach below ``f_wall``."""
    from gfm_ase.validation.dimers import curve_metrics, dimer_curve

    factors = np.round(np.arange(0.2, 1.31, 0.05), 6)
    curve = dimer_curve(calc, *pair, factors)
    m = curve_metrics(factors, np.array(curve["energies"]), f_wall=f_wall)
    assert m["wall"], curve["energies"]
    assert m["rise_eV"] > 5.0


def test_shipped_model_carries_the_pair_term_committee_and_router():
    from gfm_ase.checkpoint import load_model
    from gfm_ase.hub import resolve_model

    path = resolve_model("gfm-base")
    model = load_model(path)
    assert model.config.repulsion is not None and model.config.repulsion.kind == "zbl"
    assert (path / "router.json").is_file()
    members = (model.head_config("omat").metrics.get("committee") or {}).get("members") or []
    assert len(members) >= 2 and all(m in model.head_names for m in members)
    # v5: the fidelity embedding; `omat` answers at the real-DFT fidelity, its committee members too
    assert list(model.config.fidelities) == ["dft", "sevennet0"]
    assert all(model.head_config(h).fidelity == "dft" for h in ["omat", *members])


def test_oxygen_pair_inside_an_oxide_is_a_wall(calc):
    """v1's O-O repulsion inside oxides was ~2.5x too soft (O-O pulled from 2.99 to 1.5 A in the
    (Co,Cu,Mg,Ni,Zn)O rocksalt, a composition none of the training data holds: 3.8 eV, against 9.5 / 8.8 eV with
    CHGNet 0.3.0 / SevenNet-0), and its 1,000 K MD formed O-O pairs at 1.2-1.3 A. v2 trained on anion-anion
    contacts (pretraining/corpus/generate_contacts.py): the pair must cost at least two thirds of the teachers'
    energy at 1.5 A and rise monotonically to 1.3 A."""
    from gfm_ase.validation.contacts import run_contacts
    from gfm_ase.validation.novel_compositions import build_all

    res = run_contacts(calc, build_all()["heo_rocksalt"], [("O", "O")], distances=[2.5, 2.0, 1.75, 1.5, 1.3])
    curve = res.details["curves"]["O-O"]
    e = dict(zip(curve["distances_A"], curve["energy_eV"]))
    assert res.summary["O-O_monotonic"], curve
    assert e[1.5] > 6.0, e


# common elemental solids users relax (metals of every block, two semiconductors): PBE ground-state structures of
# ase.collections.dcdft, the equilibrium volume compared with WIEN2k's
COMMON_ELEMENTS = ["Na", "Mg", "Al", "K", "Ca", "Ti", "V", "Cr", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo", "Pd",
                   "Ag", "Sn", "W", "Pt", "Au", "Pb", "Si", "Ge"]
# v2's worst (V0 err %): Na +25, Al +17, S +33, O +23, Sb +19, Zr +11, Hf -10, Mn +10
FIXED_IN_V3 = ["Na", "Al", "S", "O", "Sb", "Zr", "Hf", "Mn"]
# The omat head learns PBE from its teacher, SevenNet-0, where no real DFT covers an element. For solid O2 and
# alpha-Mn both teachers are themselves more than 5 % from WIEN2k's V0 (measured with `gfm validate eos
# --calculator gfm_ase.validation.peers:sevennet0|chgnet`, docs/models/gfm-base-validation.md: O +6.3 / +6.6 %,
# Mn -5.8 / -6.4 %), so for these two the head is held to 5 % of the teacher's V0 instead (v3's O at -4.6 % was
# within 5 % of WIEN2k only by erring the other way: 10.9 points from its teacher).
TEACHER_V0_ERR_PCT = {"O": 6.3, "Mn": -5.8}


def test_equilibrium_volumes_of_elements(calc):
    """v1 and v2 put the E(V) minimum of 27 of the 68 Delta elements more than 5 % in volume from PBE's (a relaxed
    lattice constant several per cent off). v3-v5 trained on elemental crystals over 0.8-1.3 x the teacher's V0
    (pretraining/corpus/generate_elemental.py; v5 also the ground-state structure types): v2's worst elements are
    within 5 % of WIEN2k's V0 (of the teacher's, for O and Mn: see TEACHER_V0_ERR_PCT), and the mean error over
    common elemental solids is below 3 % (v5 2.2, v4 2.3, v3 2.9, v2 4.9, v1 4.5; the teachers 0.7-0.8). Still off
    with v5, see the model card: K +32, Ca -5.2, N -7.9 %."""
    from gfm_ase.validation.eos import run_eos

    res = run_eos(calc, sorted(set(COMMON_ELEMENTS) | set(FIXED_IN_V3)))
    assert res.summary["n_failed"] == 0, res.details["failed"]
    err = {el: r["v0_err_pct"] for el, r in res.details["elements"].items()}
    off = {el: round(err[el], 1) for el in FIXED_IN_V3 if abs(err[el] - TEACHER_V0_ERR_PCT.get(el, 0.0)) > 5.0}
    assert not off, off
    assert np.mean([abs(err[el]) for el in COMMON_ELEMENTS]) < 3.0, {el: round(err[el], 1) for el in COMMON_ELEMENTS}
