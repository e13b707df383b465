"""The inference runtime (gfm_ase.runtime) against an independent evaluation of the shipped gfm-mini model.

The reference below builds edge vectors from positions, cell and strain by hand and takes forces and stress by
autograd of the raw trunk + head; it shares nothing with gfm_ase.model.outputs.predict or the runtime except the
weights and the neighbor list.
"""
import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from gfm_ase.calculator import GFMCalculator
from gfm_ase.checkpoint import load_model
from gfm_ase.graph.batch import collate, graph_from_atoms
from gfm_ase.hub import resolve_model
from gfm_ase.model.outputs import predict
from gfm_ase.runtime import InferenceRuntime, resolve_device
from gfm_ase.screening import Screener


def structures():
    si = bulk("Si", "diamond", a=5.43, cubic=True)
    si.rattle(0.05, seed=1)
    si.set_cell(si.cell.array @ np.array([[1.01, 0.02, 0.0], [0.0, 0.99, 0.01], [0.0, 0.0, 1.0]]),
                scale_atoms=True)
    lige = bulk("Li", "bcc", a=3.5, cubic=True) * (2, 1, 1)
    lige.numbers[1] = 32
    lige.rattle(0.05, seed=2)
    ch4 = molecule("CH4")
    ch4.rattle(0.02, seed=3)
    return [("omat", si), ("omat", lige), ("gfn2", ch4)]


def reference(model, atoms: Atoms, head: str) -> dict:
    """Energy, per-atom energies, forces and (periodic cells) Voigt stress by hand: trunk + head + autograd."""
    g = graph_from_atoms(atoms, model.cutoff, max_neighbors=model.max_neighbors)
    numbers = torch.as_tensor(g.numbers)
    edge_index = torch.as_tensor(g.edge_index)
    pos = torch.tensor(atoms.positions, dtype=torch.float64, requires_grad=True)
    cell = torch.tensor(atoms.cell.array, dtype=torch.float64)
    eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    sym = 0.5 * (eps + eps.T)
    pos_s, cell_s = pos + pos @ sym, cell + cell @ sym
    vec = pos_s[edge_index[1]] - pos_s[edge_index[0]] + torch.as_tensor(g.shifts) @ cell_s
    e_atom = model.heads[head](model.trunk(numbers, edge_index, vec), numbers)
    energy = e_atom.sum()
    g_pos, g_eps = torch.autograd.grad(energy, [pos, eps])
    out = {"energy": energy.item(), "energies": e_atom.detach().numpy(), "forces": -g_pos.numpy()}
    if atoms.pbc.all():
        full = g_eps.numpy() / abs(np.linalg.det(atoms.cell.array))
        out["stress"] = full[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]
    return out


@pytest.fixture(scope="module")
def mini64():
    return load_model(resolve_model("gfm-mini"), dtype=torch.float64).inference_mode_()


@pytest.mark.parametrize("k", range(3))
def test_calculator_matches_independent_reference_float64(mini64, k):
    head, atoms = structures()[k]
    ref = reference(mini64, atoms, head)
    calc = GFMCalculator(model="gfm-mini", head=head, dtype="float64", device="cpu")
    res = calc.predict(atoms)
    assert set(ref) <= set(res)
    for key, want in ref.items():
        np.testing.assert_allclose(res[key], want, rtol=1e-11, atol=1e-11, err_msg=key)


def test_runtime_is_bitwise_the_direct_predict_path():
    """Calculator and runtime give exactly what ``predict`` on the collated graph gives (the pre-runtime path)."""
    for dtype, torch_dtype in (("float64", torch.float64), ("float32", torch.float32)):
        model = load_model(resolve_model("gfm-mini"), dtype=torch_dtype).inference_mode_()
        for head, atoms in structures():
            rt = InferenceRuntime("gfm-mini", head, device="cpu", dtype=dtype)
            calc = GFMCalculator(model="gfm-mini", head=head, dtype=dtype, device="cpu")
            res = calc.predict(atoms)
            stress = bool(atoms.pbc.all())
            batch = collate([graph_from_atoms(atoms, model.cutoff)], dtype=torch_dtype)
            direct = predict(model, batch, head, forces=True, stress=stress, precision=dtype)
            via_rt = rt.evaluate(rt.batch_from_atoms([atoms]), forces=True, stress=stress)
            for key in ("energy", "energies", "forces") + (("stress",) if stress else ()):
                want = direct[key].detach().double().numpy()
                assert np.array_equal(via_rt[key].detach().double().numpy(), want), (dtype, head, key)
                got = np.asarray(res[key])
                assert np.array_equal(got, want[0] if key in ("energy", "stress") else want), (dtype, head, key)


def test_screener_matches_independent_reference(mini64):
    periodic = [(h, a) for h, a in structures() if h == "omat"]
    sc = Screener("gfm-mini", "omat", device="cpu", dtype="float64", properties=["forces", "stress", "energies"],
                  uncertainty=False)
    block = sc.evaluate([a for _, a in periodic])
    offsets = np.cumsum([0] + [len(a) for _, a in periodic])
    for k, (head, atoms) in enumerate(periodic):
        ref = reference(mini64, atoms, head)
        atoms_rows = slice(offsets[k], offsets[k + 1])
        np.testing.assert_allclose(block["energy"][k], ref["energy"], rtol=1e-11)
        np.testing.assert_allclose(block["stress"][k], ref["stress"], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(block["forces"][atoms_rows], ref["forces"], rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(block["energies"][atoms_rows], ref["energies"], rtol=1e-11, atol=1e-11)


def test_runtime_head_device_dtype_and_coverage():
    rt = InferenceRuntime("gfm-mini", "omat", device="cpu", dtype="bfloat16")
    assert rt.model_dtype == torch.float32 and rt.precision == "bfloat16"
    assert next(rt.model.parameters()).dtype == torch.float32
    assert rt.coverage_error([14, 32]) is None
    msg = rt.coverage_error([14, 11, 17])
    assert "['Na', 'Cl']" in msg and "'omat'" in msg
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        InferenceRuntime("gfm-mini", "omat", device="cpu", dtype="float16")
    with pytest.raises(ValueError, match="unknown head 'nope'"):
        InferenceRuntime("gfm-mini", "nope", device="cpu")


def test_in_memory_model_copy_and_identity(mini64):
    before = {k: v.clone() for k, v in mini64.state_dict().items()}
    rt = InferenceRuntime(mini64, "omat", device="cpu", dtype="float32", copy_model=True, identify=True)
    assert rt.model is not mini64 and next(mini64.parameters()).dtype == torch.float64
    assert all(torch.equal(before[k], v) for k, v in mini64.state_dict().items())
    assert rt.model_id["source"] == "in-memory" and len(rt.model_id["sha256"]) == 64
    same = InferenceRuntime(mini64, "omat", device="cpu", dtype="float64")
    assert same.model is mini64 and same.model_id is None
