"""Per-dataset energy offsets (DatasetSpec.energy_offsets): a dataset computed with other settings joins a head's
energy scale; labels, fitted head constants and graphs all see the shifted energies."""
from __future__ import annotations

import numpy as np
import pytest
from pretrain_helpers import make_data, tiny_config

from gfm_ase.data import Store, StoreWriter
from gfm_ase.pretraining.config import ConfigError
from gfm_ase.pretraining.data import fit_head_constants, open_datasets


def _shifted_copy(src, dst, per_atom: dict[str, float]):
    """A copy of store ``src`` whose energies are raised by ``per_atom[element]`` for every atom."""
    from ase.data import chemical_symbols

    store = Store(src)
    with StoreWriter(dst, name="au_shifted", level_of_theory="EMT, other settings") as w:
        for i in range(len(store)):
            rec = store[i]
            rec.energy = rec.energy + sum(per_atom[chemical_symbols[int(z)]] for z in rec.numbers)
            w.append(rec)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = make_data(tmp_path_factory.mktemp("tiny"))
    _shifted_copy(d / "au_bulk.h5", d / "au_shifted.h5", {"Au": 0.5})
    return d


def _cfg(data, offsets):
    cfg = tiny_config(data, **{"datasets.1.path": str(data / "au_shifted.h5")})
    if offsets is not None:
        cfg.datasets[1].energy_offsets = offsets
    return cfg


def test_offsets_restore_the_head_scale(data):
    ref = tiny_config(data)
    base = fit_head_constants(open_datasets(ref, 4.0), "emt")["reference_energies"]
    fixed = fit_head_constants(open_datasets(_cfg(data, {"Au": 0.5}), 4.0), "emt")["reference_energies"]
    broken = fit_head_constants(open_datasets(_cfg(data, None), 4.0), "emt")["reference_energies"]
    for el in base:
        assert fixed[el] == pytest.approx(base[el], abs=1e-8)
    assert abs(broken["Au"] - base["Au"]) > 0.05  # without the offset the shift leaks into the references


def test_graph_energies_are_shifted_and_recorded(data):
    plain = open_datasets(tiny_config(data), 4.0)[1]
    shifted = open_datasets(_cfg(data, {"Au": 0.5}), 4.0)[1]
    for k in range(3):
        assert shifted.train[k].energy == pytest.approx(plain.train[k].energy, abs=1e-9)
        np.testing.assert_array_equal(shifted.train[k].forces, plain.train[k].forces)
    assert shifted.provenance["energy_offsets_eV_per_atom"] == {"Au": 0.5}


def test_offsets_must_cover_every_element_and_be_elements(data):
    with pytest.raises(ValueError, match="lacks elements"):
        open_datasets(_cfg(data, {"Cu": 0.1}), 4.0)
    with pytest.raises(ConfigError, match="energy_offsets"):
        tiny_config(data, **{"datasets.1.energy_offsets": {"Xx": 1.0}})


def test_exclude_covered_by_drops_structures_where_another_dataset_has_the_chemistry(data):
    from ase.data import atomic_numbers

    mixed = data / "mixed.h5"  # the Cu-Au alloys plus the pure-Cu cells of cu_bulk
    with StoreWriter(mixed, name="mixed", level_of_theory="EMT") as w:
        for name in ("cuau_alloy", "cu_bulk"):
            src = Store(data / f"{name}.h5")
            for k in range(len(src)):
                w.append(src[k])
    cfg = tiny_config(data, **{"datasets.2.path": str(mixed)})
    base = open_datasets(cfg, 4.0)
    cfg.datasets[2].exclude_covered_by = ["cu_bulk"]
    ex = open_datasets(cfg, 4.0)
    store = Store(mixed)
    cu_only = {k for k in range(len(store)) if set(store[k].numbers.tolist()) == {atomic_numbers["Cu"]}}
    assert len(cu_only) == len(Store(data / "cu_bulk.h5")) > 0
    every = ("train", "val", "test")
    kept = set(np.concatenate([ex[2].split_indices[s] for s in every]).tolist())
    before = set(np.concatenate([base[2].split_indices[s] for s in every]).tolist())
    assert kept == before - cu_only and len(kept) == len(Store(data / "cuau_alloy.h5"))
    assert ex[2].provenance["excluded_covered_by"] == {"datasets": ["cu_bulk"], "n_structures": len(cu_only)}
    # a threshold: the element set {Cu} is dropped only where cu_bulk holds at least that many pure-Cu cells
    n_cu = len(Store(data / "cu_bulk.h5"))
    cfg.datasets[2].exclude_min_structures = n_cu
    same = open_datasets(cfg, 4.0)
    assert set(np.concatenate([same[2].split_indices[s] for s in every]).tolist()) == kept
    assert same[2].provenance["excluded_covered_by"]["min_structures"] == n_cu
    cfg.datasets[2].exclude_min_structures = n_cu + 1  # too few covering cells: nothing is dropped
    none = open_datasets(cfg, 4.0)
    assert set(np.concatenate([none[2].split_indices[s] for s in every]).tolist()) == before
    assert none[2].provenance["excluded_covered_by"]["n_structures"] == 0
    with pytest.raises(ConfigError, match="exclude_covered_by"):
        tiny_config(data, **{"datasets.2.exclude_covered_by": ["nope"]})
