"""The optimized PaiNN trunk equals a plain transcription of the PaiNN equations (Schuett et al. 2021).

The trunk folds the envelope into the filter GEMM, skips the first layer's v_j * dv_v term (v is zero there) and
uses index_select/index_add; this test keeps such rewrites honest: same scalar and vector features, same forces.
"""
import numpy as np
import pytest
import torch
from ase.build import bulk
from conftest import make_tiny_model

from gfm_ase.graph import collate, graph_from_atoms
from gfm_ase.model.outputs import edge_vectors


def _reference_trunk(trunk, numbers, edge_index, edge_vec):
    """PaiNN as written in the paper, with this package's filter/envelope and smooth norm; no shortcuts."""
    r = torch.linalg.norm(edge_vec, dim=-1)
    unit = edge_vec / r[:, None]
    filt_in = trunk.rbf(r)
    env = trunk.envelope(r)[:, None]
    i, j = edge_index
    s = trunk.embedding(numbers).to(edge_vec.dtype)
    v = torch.zeros(s.shape[0], 3, s.shape[1], dtype=s.dtype)
    f = trunk.num_features
    for msg, upd in zip(trunk.messages, trunk.updates):
        x = msg.phi(s)[j] * msg.filter(filt_in) * env
        dv_v, ds, dv_r = x[:, :f], x[:, f:2 * f], x[:, 2 * f:]
        dv = v[j] * dv_v[:, None, :] + unit[:, :, None] * dv_r[:, None, :]
        s = s + torch.zeros_like(s).index_add(0, i, ds)
        v = v + torch.zeros_like(v).index_add(0, i, dv)
        u, w = upd.uv(v), upd.vv(v)
        w_norm = torch.sqrt((w * w).sum(1) + 1.0) - 1.0
        a = upd.mlp(torch.cat([s, w_norm], -1))
        a_vv, a_sv, a_ss = a[:, :f], a[:, f:2 * f], a[:, 2 * f:]
        v = v + u * a_vv[:, None, :]
        s = s + a_ss + a_sv * (u * w).sum(1)
    return s, v


@pytest.mark.parametrize("step,chunk", [("plain", None), ("lean", None), ("lean", 23)])  # gfm_ase/model/message.py
def test_trunk_equals_reference_painn_with_gradients(step, chunk):
    model = make_tiny_model(seed=3)
    trunk = model.trunk
    trunk.message_step, trunk.edge_chunk = step, chunk
    assert len(trunk.messages) >= 2  # the first-layer shortcut and the general layer are both exercised
    atoms = bulk("Si", "diamond", a=5.43) * (2, 1, 1)
    atoms.numbers[1] = 6
    atoms.rattle(0.05, seed=2)
    batch = collate([graph_from_atoms(atoms, model.cutoff)], dtype=torch.float64)
    pos = batch.positions.clone().requires_grad_(True)
    vec = edge_vectors(batch, pos, batch.cell)
    s, v = trunk(batch.numbers, batch.edge_index, vec, return_vectors=True)
    s_ref, v_ref = _reference_trunk(trunk, batch.numbers, batch.edge_index, vec)
    assert float(v.abs().max()) > 1e-3  # non-trivial vector features
    np.testing.assert_allclose(s.detach().numpy(), s_ref.detach().numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(v.detach().numpy(), v_ref.detach().numpy(), rtol=0, atol=1e-10)
    # gradients through both, of a functional that touches s and v
    g = torch.autograd.grad((s ** 2).sum() + (v ** 2).sum(), pos, retain_graph=True)[0]
    g_ref = torch.autograd.grad((s_ref ** 2).sum() + (v_ref ** 2).sum(), pos)[0]
    np.testing.assert_allclose(g.numpy(), g_ref.numpy(), rtol=0, atol=1e-9)
