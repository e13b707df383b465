"""Registries stay consistent: every converter format has a reader and declared options, every trunk an options
model; the lookups name the valid choices."""
import pytest

from gfm_ase.data.converters import FORMATS, READERS, _reader
from gfm_ase.data.converters.options import OPTIONS
from gfm_ase.model.registry import available_trunks, trunk_options_class


def test_every_format_has_a_reader_and_options():
    assert set(READERS) == set(OPTIONS) == set(FORMATS)
    for fmt in FORMATS:
        assert callable(_reader(fmt)), fmt
    with pytest.raises(ValueError, match="unknown format 'xyz2'; known: ase, "):
        _reader("xyz2")


def test_trunk_lookup():
    assert "painn" in available_trunks()
    assert "num_features" in trunk_options_class("painn").model_fields
    with pytest.raises(ValueError, match=r"unknown trunk 'mace'; available: \['painn'"):
        trunk_options_class("mace")
