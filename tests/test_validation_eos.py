"""Birch-Murnaghan fit, the Delta gauge and the EOS suite, on cases with known answers."""
from __future__ import annotations

import json

import numpy as np
import pytest
from ase.calculators.emt import EMT
from ase.units import GPa
from scipy.optimize import brentq

from gfm_ase.validation.delta import delta_mev
from gfm_ase.validation.eos import reference_params, reference_structure, run_eos
from gfm_ase.validation.eos_fit import EOSParams, birch_murnaghan, fit_birch_murnaghan


def _delta_by_polynomial(a: EOSParams, b: EOSParams) -> float:
    """Independent Delta: BM curves as cubics in x = V^(-2/3), their difference squared integrated term by term
    (integral of V^(-2k/3) dV = V^(1-2k/3) / (1-2k/3)), as in the original calcDelta script."""

    def coeffs(p):  # E(V) = sum_k c_k V^(-2k/3), minimum at zero
        b0 = p.b0 * GPa
        v23 = p.v0 ** (2.0 / 3.0)
        pre = 9.0 * p.v0 * b0 / 16.0
        # eta = v23 * x; E = pre [ (eta-1)^3 B' + (eta-1)^2 (6-4 eta) ]
        poly_eta = np.polynomial.Polynomial([-1, 1]) ** 3 * p.b1 + np.polynomial.Polynomial([-1, 1]) ** 2 * \
            np.polynomial.Polynomial([6, -4])
        return np.array([pre * c * v23 ** k for k, c in enumerate(poly_eta.coef)])

    d = np.polynomial.Polynomial(coeffs(a) - coeffs(b))
    sq = (d * d).coef  # coefficients of V^(-2k/3), k = 0..6
    vm = 0.5 * (a.v0 + b.v0)
    vi, vf = 0.94 * vm, 1.06 * vm
    powers = 1.0 - 2.0 * np.arange(len(sq)) / 3.0
    integral = np.sum(sq * (vf ** powers - vi ** powers) / powers)
    return 1000.0 * np.sqrt(integral / (vf - vi))


def test_delta_of_identical_curves_is_zero():
    p = EOSParams(16.5, 78.0, 4.6)
    assert delta_mev(p, p) == 0.0


@pytest.mark.parametrize("seed", range(5))
def test_delta_matches_the_term_by_term_integral(seed):
    rng = np.random.default_rng(seed)
    a = EOSParams(rng.uniform(10, 40), rng.uniform(20, 300), rng.uniform(3.5, 6))
    b = EOSParams(a.v0 * rng.uniform(0.95, 1.05), a.b0 * rng.uniform(0.8, 1.2), a.b1 + rng.uniform(-0.5, 0.5))
    assert delta_mev(a, b) == pytest.approx(_delta_by_polynomial(a, b), rel=1e-9)
    assert delta_mev(a, b) == pytest.approx(delta_mev(b, a), rel=1e-12)  # symmetric


def test_delta_scales_linearly_with_bulk_modulus_and_ignores_e0():
    a, b = EOSParams(16.0, 80.0, 4.5), EOSParams(16.4, 76.0, 4.9)
    scaled = delta_mev(EOSParams(16.0, 160.0, 4.5), EOSParams(16.4, 152.0, 4.9))
    assert scaled == pytest.approx(2 * delta_mev(a, b), rel=1e-12)
    assert delta_mev(EOSParams(16.0, 80.0, 4.5, e0=-3.0), b) == delta_mev(a, b)
    with pytest.raises(ValueError):
        delta_mev(EOSParams(16.0, -1.0, 4.5), b)


def test_bm_fit_recovers_exact_parameters():
    v = np.linspace(0.94, 1.06, 7) * 20.0
    e = birch_murnaghan(v, -3.7, 20.1, 90 * GPa, 4.3)
    fit = fit_birch_murnaghan(v, e)
    assert fit.params.v0 == pytest.approx(20.1, rel=1e-9)
    assert fit.params.b0 == pytest.approx(90.0, rel=1e-8)
    assert fit.params.b1 == pytest.approx(4.3, rel=1e-7)
    assert fit.params.e0 == pytest.approx(-3.7, abs=1e-10)
    assert fit.rms_residual < 1e-10 and not fit.extrapolated
    assert fit.params.pressure_gpa(20.1) == pytest.approx(0.0, abs=1e-8)


def test_bm_fit_rejects_bad_input():
    v = np.linspace(18, 22, 7)
    with pytest.raises(ValueError, match="at least 5"):
        fit_birch_murnaghan(v[:4], v[:4])
    with pytest.raises(ValueError, match="no minimum"):
        fit_birch_murnaghan(v, -v)  # monotonic: no minimum
    with pytest.raises(ValueError, match="finite"):
        fit_birch_murnaghan(v, np.where(v > 20, np.nan, v))


def _emt_equilibrium(element):
    """EMT's own V0 (zero pressure from its analytic stress) and B0 = -V dP/dV by central differences."""
    base = reference_structure(element)
    n = len(base)

    def pressure(v):
        a = base.copy()
        a.set_cell(a.cell.array * (v * n / a.get_volume()) ** (1 / 3), scale_atoms=True)
        a.calc = EMT()
        return -a.get_stress(voigt=True)[:3].mean()

    v_ref = reference_params(element).v0
    v0 = brentq(pressure, 0.85 * v_ref, 1.1 * v_ref, xtol=1e-12)
    h = 1e-3 * v0
    return v0, -v0 * (pressure(v0 + h) - pressure(v0 - h)) / (2 * h) / GPa


def test_eos_suite_recovers_emts_own_v0_and_b0(tmp_path):
    res = run_eos(EMT(), ["Cu", "Al"], outdir=tmp_path)
    for el in ("Cu", "Al"):
        row = res.details["elements"][el]
        v0, b0 = _emt_equilibrium(el)
        assert row["v0"] == pytest.approx(v0, rel=2e-4)
        assert row["b0"] == pytest.approx(b0, rel=5e-3)
        # Delta against WIEN2k is the Delta of EMT's fitted curve: recompute it from the row
        assert row["delta_meV"] == pytest.approx(delta_mev(EOSParams(row["v0"], row["b0"], row["b1"]),
                                                           reference_params(el)), rel=1e-12)
        assert row["delta_meV"] > 1  # EMT is not PBE
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["suite"] == "eos" and s["summary"]["n_elements"] == 2
    assert s["summary"]["delta_mean_meV"] == pytest.approx(
        np.mean([res.details["elements"][e]["delta_meV"] for e in ("Cu", "Al")]))
    assert (tmp_path / "eos_curves.png").stat().st_size > 1000 and (tmp_path / "report.md").is_file()


def test_eos_suite_defaults_to_covered_elements_and_reports_failures():
    class Picky(EMT):
        elements = ["Cu", "Au"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=()):
            if "Au" in atoms.get_chemical_symbols():
                raise ValueError("refuses Au")
            super().calculate(atoms, properties, system_changes)

    res = run_eos(Picky())
    assert sorted(res.details["elements"]) == ["Cu"]
    assert "refuses Au" in res.details["failed"]["Au"]
    assert res.summary["n_failed"] == 1
    with pytest.raises(ValueError, match="not in ase.collections.dcdft"):
        run_eos(EMT(), ["Xx"])


class _BMCalculator(EMT):
    """E(V) = N * BM(V/N) of given per-atom parameters, for any structure (forces zero): a known EOS."""

    def __init__(self, params_for):
        super().__init__()
        self.params_for = params_for  # element -> EOSParams or None (monotonic energy)

    def calculate(self, atoms=None, properties=("energy",), system_changes=()):
        el = atoms.get_chemical_symbols()[0]
        n, v = len(atoms), atoms.get_volume() / len(atoms)
        p = self.params_for(el)
        e = -v if p is None else float(birch_murnaghan(v, 0.0, p.v0, p.b0 * GPa, p.b1))
        self.results = {"energy": n * e, "free_energy": n * e, "forces": np.zeros((n, 3))}


@pytest.mark.parametrize("factor", [1.25, 0.8, 1.05])
def test_eos_suite_finds_a_minimum_outside_the_window_instead_of_dropping_the_element(factor):
    ref = reference_params("Al")
    truth = EOSParams(factor * ref.v0, 0.7 * ref.b0, 4.2)
    res = run_eos(_BMCalculator(lambda el: truth), ["Al"])
    row = res.details["elements"]["Al"]
    assert res.summary["n_elements"] == 1 and res.summary["n_failed"] == 0
    assert row["v0"] == pytest.approx(truth.v0, rel=1e-6) and row["b0"] == pytest.approx(truth.b0, rel=1e-5)
    assert row["delta_meV"] == pytest.approx(delta_mev(truth, ref), rel=1e-6)
    assert row["v0_err_pct"] == pytest.approx(100 * (factor - 1), rel=1e-5)
    if factor == 1.05:  # inside the window: sampled around the reference V0, as the Delta protocol does
        assert row["recentred_at"] is None and res.summary["n_recentred"] == 0
    else:
        assert row["recentred_at"] == pytest.approx(factor, rel=0.07)
        assert min(row["volumes"]) < truth.v0 < max(row["volumes"]) and not row["extrapolated"]
        assert res.summary["n_recentred"] == 1 and any("resampled" in n and "Al" in n for n in res.notes)
    assert res.summary["n_v0_off"] == (abs(factor - 1) > 0.05)


def test_eos_suite_reports_an_energy_without_minimum_as_failed():
    res = run_eos(_BMCalculator(lambda el: None if el == "Na" else reference_params(el)), ["Na", "Cu"])
    assert list(res.details["elements"]) == ["Cu"] and res.details["elements"]["Cu"]["delta_meV"] < 1e-6
    msg = res.details["failed"]["Na"]
    assert "no E(V) minimum within 0.5-2.0" in msg and "larger volumes" in msg


def test_compare_table_counts_resampled_elements_and_volume_errors(tmp_path):
    from gfm_ase.validation.suites.eos import compare_table

    ref = {el: reference_params(el) for el in ("Al", "Cu")}
    off = _BMCalculator(lambda el: EOSParams(1.2 * ref[el].v0, ref[el].b0, ref[el].b1) if el == "Al" else ref[el])
    runs = {}
    for name, calc in (("off", off), ("exact", _BMCalculator(lambda el: ref[el]))):
        run_eos(calc, ["Al", "Cu"], outdir=tmp_path / name)
        runs[name] = json.loads((tmp_path / name / "summary.json").read_text())
    text = "\n".join(compare_table(runs))
    assert "| of them resampled around the calculator's own minimum (outside 0.94-1.06 x V0) | 1 | 0 |" in text
    assert "| elements with V0 more than 5 % from WIEN2k | 1: Al | 0 |" in text
    assert "| mean abs V0 error over the common elements (%) | 10.0 | 0.0 |" in text
