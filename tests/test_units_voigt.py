"""gfm_ase.units.to_voigt / voigt_to_full: the one 3x3 <-> 6-vector conversion, on numpy arrays and torch tensors.

The expected values are written out by hand (Voigt order xx yy zz yz xz xy), independent of gfm_ase.units' tables.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from gfm_ase.units import VASP_ORDER, UnitError, full_to_voigt, to_voigt, voigt_to_full

# deliberately not symmetric: to_voigt takes the diagonal and the upper triangle as they are
M = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
M_VOIGT = [1.0, 5.0, 9.0, 6.0, 3.0, 2.0]  # xx yy zz yz(1,2) xz(0,2) xy(0,1)


def test_to_voigt_picks_the_upper_triangle_in_voigt_order_for_numpy_and_torch():
    np.testing.assert_array_equal(to_voigt(M), M_VOIGT)
    t = torch.tensor(M, dtype=torch.float32, requires_grad=True)
    v = to_voigt(t)
    assert isinstance(v, torch.Tensor) and v.dtype == torch.float32
    np.testing.assert_array_equal(v.detach().numpy(), M_VOIGT)
    v.sum().backward()  # differentiable: the gradient lands on the six picked entries
    np.testing.assert_array_equal(t.grad.numpy(), [[1, 1, 1], [0, 1, 1], [0, 0, 1]])
    batch = np.stack([M, 2 * M])
    np.testing.assert_array_equal(to_voigt(batch), [M_VOIGT, [2 * x for x in M_VOIGT]])


def test_full_to_voigt_averages_the_off_diagonals_and_checks_symmetry():
    np.testing.assert_array_equal(full_to_voigt(M, check_symmetric=False), [1.0, 5.0, 9.0, 7.0, 5.0, 3.0])
    with pytest.raises(UnitError, match="not symmetric"):
        full_to_voigt(M)


def test_voigt_to_full_places_each_component_twice_for_numpy_and_torch():
    v = [11.0, 22.0, 33.0, 23.0, 13.0, 12.0]  # xx yy zz yz xz xy
    expected = [[11.0, 12.0, 13.0], [12.0, 22.0, 23.0], [13.0, 23.0, 33.0]]
    np.testing.assert_array_equal(voigt_to_full(v), expected)
    full = voigt_to_full(torch.tensor([v, v], dtype=torch.float64))
    assert isinstance(full, torch.Tensor) and full.shape == (2, 3, 3) and full.dtype == torch.float64
    np.testing.assert_array_equal(full.numpy(), [expected, expected])
    vasp = [11.0, 22.0, 33.0, 12.0, 23.0, 13.0]  # VASP: xx yy zz xy yz zx
    np.testing.assert_array_equal(voigt_to_full(vasp, VASP_ORDER), expected)
    np.testing.assert_array_equal(to_voigt(voigt_to_full(v)), v)


def test_wrong_shapes_are_unit_errors():
    with pytest.raises(UnitError, match="3, 3"):
        to_voigt(np.zeros((3, 2)))
    with pytest.raises(UnitError, match="6 components"):
        voigt_to_full(torch.zeros(5))


def test_no_other_module_writes_the_voigt_order_out():
    """The index order lives in gfm_ase.units only (tests keep their own hand-written references)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    patterns = ("[0, 1, 2, 1, 0, 0]", "(0, 1, 2, 1, 0, 0)", "[0, 4, 8, 5, 2, 1]", "full_3x3_to_voigt_6_stress",
                "voigt_6_to_full_3x3")
    found = [f"{path.relative_to(repo)}: {p}"
             for folder in ("gfm_ase", "validation", "pretraining", "finetune_zoo", "benchmarks")
             for path in sorted((repo / folder).rglob("*.py")) if path != repo / "gfm_ase" / "units.py"
             for p in patterns if p in path.read_text()]
    assert found == []
