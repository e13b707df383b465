"""Expected-count parsing of pretraining/corpus/ingest_shared.py (the PROVENANCE.md checks), without the shared data."""
from __future__ import annotations

import pytest

from gfm_ase.pretraining.corpus.ingest_shared import expect_configs, expect_phonopy, expect_phonopy_counts

PHONOPY_PROV = """\
| example | DFT code and functional | DFT data present | supercell atoms × displacements | other |
|---|---|---|---|---|
| NaCl | VASP, PBE | FORCE_SETS | 64 × 2 | BORN |
| NaCl-gruneisen | VASP | FORCE_SETS at 3 volumes | 64 × 2 each | BORN |
| Si-QHA | VASP 4.6.35, PBE | vasprun_xmls.tar.lzma: 11 volumes × 1 disp (64 atoms) + e-v.dat | – | yaml |
| Cu-QHA | VASP 5.4.4, PBEsol | vasprun.xmls.tar.lzma: 11 unit-cell E–V calculations + e-v.dat | – | yaml |
| Al-QHA | VASP 5.2.11, PBE | e-v.dat (11 volumes) only | – | yaml |
"""


def test_phonopy_expected_counts_from_the_provenance_table():
    cells = expect_phonopy(PHONOPY_PROV)
    assert expect_phonopy_counts("NaCl", cells["NaCl"]) == (2, 128)
    assert expect_phonopy_counts("NaCl-gruneisen", cells["NaCl-gruneisen"]) == (6, 384)
    assert expect_phonopy_counts("Si-QHA", cells["Si-QHA"]) == (11, 704)
    assert expect_phonopy_counts("Cu-QHA", cells["Cu-QHA"]) == (11, None)
    assert expect_phonopy_counts("Al-QHA", cells["Al-QHA"]) == (None, None)


@pytest.mark.parametrize("example", ["Si-QHA", "Cu-QHA"])
def test_qha_provenance_without_counts_is_a_clear_error(example):
    # these used to fail with "'NoneType' object has no attribute 'group'"
    with pytest.raises(ValueError, match=example):
        expect_phonopy_counts(example, "vasprun files, count not stated")


def test_fitsnap_counts_and_a_provenance_without_them():
    assert expect_configs("Contents: 1894 configurations, 118,214 atoms, elements In and P") == (1894, 118214)
    with pytest.raises(ValueError, match="configurations"):
        expect_configs("Contents: some configurations of In and P")
