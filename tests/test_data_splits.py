"""Splits (deterministic, group-pure) and reference energies (fitted on the training split only)."""
from __future__ import annotations

import numpy as np
import pytest

from gfm_ase.data import Store, StoreWriter, StructureRecord, fit_reference_energies, split_indices
from gfm_ase.data.references import reference_energy_of


def test_structure_split_partition_and_determinism():
    s = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    allidx = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(allidx.tolist()) == list(range(101))
    assert [len(s[k]) for k in ("train", "val", "test")] == [81, 10, 10]
    s2 = split_indices(101, (0.8, 0.1, 0.1), seed=3)
    for k in s:
        np.testing.assert_array_equal(s[k], s2[k])
    s3 = split_indices(101, (0.8, 0.1, 0.1), seed=4)
    assert not np.array_equal(s["test"], s3["test"])
    with pytest.raises(ValueError, match="sum"):
        split_indices(10, (0.5, 0.1, 0.1))
    with pytest.raises(ValueError, match="by must"):
        split_indices(10, by="trajectory-ish")


def test_group_split_never_leaks():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 30, size=40)
    groups = np.repeat([f"traj{k}" for k in range(40)], sizes).tolist() + [""] * 15  # 15 untagged structures
    s = split_indices(groups, (0.7, 0.15, 0.15), seed=1, by="group")
    n = len(groups)
    allidx = np.concatenate([s["train"], s["val"], s["test"]])
    assert sorted(allidx.tolist()) == list(range(n))
    garr = np.array(groups, dtype=object)
    seen = {}
    for name, idx in s.items():
        for g in set(garr[idx]) - {""}:
            assert g not in seen, f"group {g} in {seen.get(g)} and {name}"
            seen[g] = name
        assert len(idx) > 0
    # sizes follow the fractions as well as group granularity allows
    assert abs(len(s["train"]) / n - 0.7) < 0.08
    s2 = split_indices(groups, (0.7, 0.15, 0.15), seed=1, by="group")
    np.testing.assert_array_equal(s["val"], s2["val"])


def _store_with_known_refs(path, refs, n=60, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    zs = [1, 8, 29]
    with StoreWriter(path, name="refs") as w:
        for k in range(n):
            nat = int(rng.integers(2, 10))
            numbers = rng.choice(zs, size=nat)
            e = sum(refs[z] for z in numbers) + noise * rng.normal()
            w.append(StructureRecord(rng.uniform(0, 8, (nat, 3)), numbers, energy=e if k != 5 else None))
    return Store(path)


def test_reference_energies_recovered_exactly(tmp_path):
    refs = {1: -13.6, 8: -430.0, 29: -1650.5}
    store = _store_with_known_refs(tmp_path / "r.h5", refs)
    fit, res = fit_reference_energies(store, np.arange(40), return_residuals=True)
    assert fit == pytest.approx({"H": -13.6, "O": -430.0, "Cu": -1650.5}, abs=1e-8)
    assert np.abs(res).max() < 1e-8
    r0 = store[0]
    assert reference_energy_of(r0.numbers, fit) == pytest.approx(r0.energy, abs=1e-8)
    with pytest.raises(KeyError, match="Fe"):
        reference_energy_of([26], fit)


def test_reference_energies_use_only_given_indices(tmp_path):
    """Corrupting the energies outside the training split must not change the fit."""
    refs = {1: -1.0, 8: -5.0, 29: -3.0}
    store = _store_with_known_refs(tmp_path / "r.h5", refs, noise=0.05)
    split = split_indices(store, (0.6, 0.2, 0.2), seed=0)
    fit_train = fit_reference_energies(store, split["train"])
    fit_all = fit_reference_energies(store)
    # rewrite the store with test energies shifted hugely
    shifted = tmp_path / "shifted.h5"
    test = set(split["test"].tolist())
    with StoreWriter(shifted, name="refs") as w:
        for i in range(len(store)):
            r = store[i]
            if i in test and r.energy is not None:
                r.energy += 100.0
            w.append(r)
    s2 = Store(shifted)
    assert fit_reference_energies(s2, split["train"]) == pytest.approx(fit_train, abs=1e-10)
    assert fit_reference_energies(s2) != pytest.approx(fit_all, abs=1e-3)


def test_collinear_composition_warns(tmp_path):
    with StoreWriter(tmp_path / "w.h5") as w:
        for k in range(5):
            w.append(StructureRecord(np.random.default_rng(k).uniform(0, 5, (3 * (k + 1), 3)),
                                     [8, 1, 1] * (k + 1), energy=-14.0 * (k + 1)))
    with pytest.warns(UserWarning, match="rank"):
        fit = fit_reference_energies(Store(tmp_path / "w.h5"))
    assert fit["O"] + 2 * fit["H"] == pytest.approx(-14.0)


def test_group_split_few_unequal_groups():
    """mlearn-like: 4 groups of very different size; the big ones go to train, every split gets a group."""
    groups = ["AIMD"] * 120 + ["Elastic"] * 62 + ["Vacancy"] * 24 + ["Surface"] * 11
    s = split_indices(groups, (0.8, 0.1, 0.1), seed=0, by="group")
    assert [len(s[k]) for k in ("train", "val", "test")] in ([182, 24, 11], [182, 11, 24])
