"""Converters on the real datasets in ../shared/data (skipped when absent): signs and component order checked
against physics (shear strain -> same-signed shear stress in the same Voigt slot; compressed cells -> negative
ASE stress), counts against PROVENANCE.md."""
from __future__ import annotations

import numpy as np
import pytest

from gfm_ase.data import Store
from gfm_ase.data.converters import convert

pytestmark = pytest.mark.shared


def test_mlearn_elastic_shear_order_and_sign(shared_data, tmp_path):
    n, _ = convert([shared_data / "mlearn" / "Mo" / "training.json"], tmp_path / "mo.h5")
    assert n == 194  # PROVENANCE.md
    store = Store(tmp_path / "mo.h5")
    checked = 0
    for i in range(len(store)):
        r = store[i]
        off = r.cell - np.diag(np.diag(r.cell))
        if r.group != "Mo/Elastic" or np.abs(off).max() < 1e-3:
            continue
        strain = 0.5 * (off + off.T) / np.diag(r.cell).mean()
        shear_strain = np.array([strain[1, 2], strain[0, 2], strain[0, 1]])  # Voigt slots 3, 4, 5
        k = int(np.argmax(np.abs(shear_strain)))
        assert int(np.argmax(np.abs(r.stress[3:]))) == k, (i, shear_strain, r.stress)
        assert np.sign(r.stress[3 + k]) == np.sign(shear_strain[k])  # C44 > 0, ASE tension-positive
        checked += 1
    assert checked >= 20


def test_fitsnap_ta_compressed_cells_are_compressive(shared_data, tmp_path):
    n, _ = convert([shared_data / "fitsnap_Ta_JCP2014" / "JSON" / "Volume_BCC"], tmp_path / "ta.h5")
    assert n == 21
    store = Store(tmp_path / "ta.h5")
    vol = np.array([abs(np.linalg.det(store[i].cell)) / store[i].n_atoms for i in range(n)])
    pressure = -store.stresses[:, :3].mean(axis=1)  # ASE: negative stress = compression
    smallest, largest = np.argmin(vol), np.argmax(vol)
    assert pressure[smallest] > 0 > pressure[largest]
    rank = lambda x: np.argsort(np.argsort(x))  # noqa: E731
    assert np.corrcoef(rank(vol), rank(pressure))[0, 1] < -0.9  # pressure falls as the volume grows


def test_fitsnap_ta_xyz_duplicate_matches_json(shared_data, tmp_path):
    """The extxyz copy stores stress in bar, compression positive: with those units it equals the JSON."""
    convert([shared_data / "fitsnap_Ta_JCP2014" / "JSON" / "Volume_FCC"], tmp_path / "j.h5")
    convert([shared_data / "fitsnap_Ta_JCP2014" / "XYZ" / "Volume_FCC.xyz"], tmp_path / "x.h5",
            options=dict(stress_unit="bar", stress_sign="compression"))
    j, x = Store(tmp_path / "j.h5"), Store(tmp_path / "x.h5")
    assert len(j) == len(x) == 31
    ej = {round(j[i].energy, 6): j[i] for i in range(len(j))}
    for i in range(len(x)):
        rj = ej[round(x[i].energy, 6)]
        np.testing.assert_allclose(x[i].stress, rj.stress, rtol=1e-6, atol=1e-9)


def test_deepmd_water_counts(shared_data, tmp_path):
    n, _ = convert([shared_data / "deepmd_water" / "se_e2_a_data"], tmp_path / "w.h5")
    store = Store(tmp_path / "w.h5")
    assert n == 400 and set(store.n_atoms.tolist()) == {192} and store.elements == ["H", "O"]
    assert store.label_counts()["stress"] == 0
