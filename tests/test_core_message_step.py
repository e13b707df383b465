"""The lean PaiNN message step (gfm_ase/model/message.py) equals the plain one: energies, forces, stress and the
parameter gradients of a force/stress loss (double backward, as in training), in float64 to rounding; in bf16 to
bf16 rounding. And it keeps no per-edge [E, F]-sized tensor for the backward pass, which is its point."""
import numpy as np
import pytest
import torch
from ase.build import bulk
from conftest import make_tiny_model

from gfm_ase.graph import collate, graph_from_atoms
from gfm_ase.model import predict
from gfm_ase.model.message import MESSAGE_STEPS, message_step
from gfm_ase.model.outputs import edge_vectors


def _cell():
    atoms = bulk("Si", "diamond", a=5.43, cubic=True) * (2, 1, 1)
    atoms.numbers[[1, 6, 11]] = [6, 32, 6]
    atoms.rattle(0.05, seed=4)
    return atoms


def _model(layers=3, dtype=torch.float64):
    return make_tiny_model(seed=5, dtype=dtype, layers=layers, heads=("a",))


def _outputs(model, batch, step, chunk, create_graph=False, precision=None):
    model.trunk.message_step, model.trunk.edge_chunk = step, chunk
    if create_graph:
        batch.positions = batch.positions.detach().requires_grad_(True)
    out = predict(model, batch, "a", forces=True, stress=True, create_graph=create_graph, precision=precision)
    res = {k: out[k] for k in ("energy", "forces", "stress")}
    if create_graph:  # a training loss on forces and stress: its parameter gradients need the double backward;
        # and a Hessian-vector product (second derivatives in positions: the radial basis' second derivative)
        loss = (out["forces"] ** 2).sum() + 10.0 * (out["stress"] ** 2).sum() + out["energy"].sum()
        direction = torch.linspace(-1.0, 1.0, out["forces"].numel(), dtype=out["forces"].dtype).reshape(-1, 3)
        res["hessian_vector"] = torch.autograd.grad((out["forces"] * direction).sum(), batch.positions,
                                                    retain_graph=True)[0]
        params = [p for p in model.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        res["param_grads"] = torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                        for g, p in zip(grads, params)])
    return {k: v.detach().double().numpy() for k, v in res.items()}


def _assert_same(a, b, rtol):
    for k in b:
        scale = np.abs(b[k]).max()
        assert scale > 1e-6, k  # non-trivial values
        np.testing.assert_allclose(a[k], b[k], rtol=0, atol=rtol * scale, err_msg=k)


@pytest.mark.parametrize("chunk", [None, 37])  # one chunk, and many chunks with a partial last one
def test_lean_step_equals_plain_float64_with_double_backward(chunk):
    model = _model()
    batch = collate([graph_from_atoms(_cell(), model.cutoff)], dtype=torch.float64)
    assert chunk is None or batch.num_edges > 3 * chunk
    plain = _outputs(model, batch, "plain", None, create_graph=True)
    lean = _outputs(model, batch, "lean", chunk, create_graph=True)
    _assert_same(lean, plain, 1e-10)
    inference = _outputs(model.inference_mode_(), batch, "lean", chunk)  # chunked backward, frozen parameters
    _assert_same(inference, {k: plain[k] for k in inference}, 1e-10)


def test_lean_step_in_bfloat16_has_bfloat16_errors():
    model = _model(dtype=torch.float32).inference_mode_()
    batch = collate([graph_from_atoms(_cell(), model.cutoff)], dtype=torch.float32)
    ref = _outputs(model, batch, "plain", None)  # float32
    for step, chunk in (("plain", None), ("lean", 29)):
        out = _outputs(model, batch, step, chunk, precision="bfloat16")
        for k in ref:
            # RMS error within 2 % of the RMS value (a few bf16 roundings, 2^-8 each); measured 0.02-0.7 %, lean and
            # plain alike (they differ in summation order, and the lean step rounds its filter products from float32)
            rms = np.sqrt(np.mean(ref[k] ** 2))
            assert np.sqrt(np.mean((out[k] - ref[k]) ** 2)) <= 0.02 * rms, (step, k)


def _saved_per_edge_elements(model, batch, step):
    """The largest tensor (elements) the trunk keeps for its backward pass."""
    model.trunk.message_step = step
    pos = batch.positions.clone().requires_grad_(True)
    vec = edge_vectors(batch, pos, batch.cell)
    largest = [0]

    def pack(t):
        largest[0] = max(largest[0], t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model.trunk(batch.numbers, batch.edge_index, vec)
    return largest[0]


def test_lean_step_keeps_no_per_edge_feature_tensors():
    model = _model(layers=2).inference_mode_()
    batch = collate([graph_from_atoms(_cell(), model.cutoff)], dtype=torch.float64)
    e, f = batch.num_edges, model.trunk.num_features
    assert model.trunk.options.num_rbf + 1 < f  # the radial basis [E, R + 1] is what a lean step may keep
    assert _saved_per_edge_elements(model, batch, "plain") >= 3 * e * f  # plain keeps [E, 3F] / [E, 3, F]
    assert _saved_per_edge_elements(model, batch, "lean") < e * f


def test_unknown_message_step_is_an_error():
    assert {"plain", "lean"} <= set(MESSAGE_STEPS)
    with pytest.raises(ValueError, match="unknown PaiNN message step 'fast'.*lean"):
        message_step("fast")
