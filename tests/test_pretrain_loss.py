"""Loss terms, their global normalisation (the basis of exact distributed gradients), and finite gradients when
molecules and stressed crystals share a batch."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from conftest import make_tiny_model
from gfm_ase.graph.batch import collate, graph_from_atoms
from gfm_ase.model.outputs import predict
from gfm_ase.pretraining.config import LossSpec
from gfm_ase.pretraining.loss import LossCounts, compute_loss, elementwise, label_counts


def test_elementwise_losses():
    err = torch.tensor([-2.0, -0.05, 0.0, 0.5])
    assert torch.equal(elementwise("mse", err, 0.1), err**2)
    assert torch.equal(elementwise("mae", err, 0.1), err.abs())
    h = elementwise("huber", err, 0.1)
    np.testing.assert_allclose(h.numpy(), [0.1 * (2.0 - 0.05), 0.5 * 0.05**2, 0.0, 0.1 * (0.5 - 0.05)], rtol=1e-6)


def _graphs():
    rng = np.random.default_rng(0)
    out = []
    for k in range(4):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.rattle(0.05, seed=k)
        g = graph_from_atoms(a, 4.0)
        g.energy = -10.0 + rng.normal()
        g.forces = rng.normal(0, 0.3, (4, 3))
        g.stress = rng.normal(0, 0.01, 6)
        g.head = k % 2
        out.append(g)
    out[1].forces = None  # missing labels are masked, not zeros
    out[2].energy = None
    out[3].stress = None
    return out


def _manual(pred, batch, spec, scale):
    """Straightforward re-implementation for the check."""
    pred = {k: v.detach() for k, v in pred.items()}
    tot = 0.0
    e = 0.0
    ne = 0
    for b in range(batch.num_graphs):
        if torch.isfinite(batch.energy[b]):
            err = (pred["energy"][b] - batch.energy[b]) / batch.n_atoms[b] / scale[batch.head[b]]
            e += float(batch.weight[b] * elementwise(spec.kind, err, spec.huber_delta))
            ne += 1
    f = 0.0
    nf = 0
    for a in range(batch.num_atoms):
        for c in range(3):
            if torch.isfinite(batch.forces[a, c]):
                err = (pred["forces"][a, c] - batch.forces[a, c]) / scale[batch.head[batch.batch[a]]]
                f += float(batch.weight[batch.batch[a]] * elementwise(spec.kind, err, spec.huber_delta))
                nf += 1
    tot = spec.energy_weight * e / ne + spec.forces_weight * f / nf
    return tot


@pytest.mark.parametrize("kind", ["mse", "mae", "huber"])
def test_loss_matches_a_direct_computation_and_masks_missing_labels(kind):
    model = make_tiny_model()
    graphs = _graphs()
    graphs[0].weight = 3.0  # per-dataset loss weights arrive as structure weights
    batch = collate(graphs)
    spec = LossSpec(kind=kind, huber_delta=0.05, energy_weight=2.0, forces_weight=3.0, stress_weight=0.0)
    pred = predict(model, batch, None, forces=True)
    scale = torch.tensor([0.5, 2.0], dtype=torch.float64)
    counts = label_counts(batch, use_stress=False)
    assert counts.energy == 3 and counts.forces == 3 * 4 * 3
    loss, terms = compute_loss(pred, batch, scale[batch.head], counts, spec)
    assert float(loss.detach()) == pytest.approx(_manual(pred, batch, spec, scale), rel=1e-10)
    assert set(terms) == {"energy", "forces"}


def test_split_batches_with_global_counts_sum_to_the_whole_batch_loss_and_gradient():
    model = make_tiny_model()
    graphs = _graphs()
    spec = LossSpec(kind="huber", huber_delta=0.05, stress_weight=1.0)
    scale = torch.tensor([0.5, 2.0], dtype=torch.float64)

    def run(gs, counts):
        model.zero_grad()
        b = collate(gs)
        pred = predict(model, b, None, forces=True, stress=True, create_graph=True)
        loss, _ = compute_loss(pred, b, scale[b.head], counts, spec)
        loss.backward()
        return float(loss.detach()), [torch.zeros_like(p) if p.grad is None else p.grad.clone()
                                      for p in model.parameters()]

    whole = collate(graphs)
    counts = label_counts(whole, use_stress=True)
    l_all, g_all = run(graphs, counts)
    l_a, g_a = run(graphs[:1], counts)  # two "ranks" with unequal shares, normalised by the global counts
    l_b, g_b = run(graphs[1:], counts)
    assert l_a + l_b == pytest.approx(l_all, rel=1e-12)
    for x, y, z in zip(g_a, g_b, g_all):
        torch.testing.assert_close(x + y, z, rtol=1e-10, atol=1e-14)


def test_molecules_in_a_stress_batch_keep_gradients_finite_and_predictions_unchanged():
    """predict gives a molecule (zero-volume cell) a NaN stress without poisoning the batch's gradients."""
    model = make_tiny_model()
    cu = bulk("Cu", "fcc", a=3.6, cubic=True)
    crystal = graph_from_atoms(cu, 4.0)
    crystal.energy, crystal.forces, crystal.stress = -12.0, np.zeros((4, 3)), np.full(6, 0.01)
    mol = molecule("H2O")
    mol.cell = np.zeros((3, 3))
    water = graph_from_atoms(mol, 4.0)
    water.energy, water.forces = -14.0, np.zeros((3, 3))
    batch = collate([crystal, water])
    spec = LossSpec(stress_weight=1.0)
    counts = label_counts(batch, use_stress=True)

    model.zero_grad()
    pred = predict(model, batch, None, forces=True, stress=True, create_graph=True)
    loss, _ = compute_loss(pred, batch, torch.ones(2, dtype=torch.float64), counts, spec)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert torch.isfinite(loss)
    assert torch.isnan(pred["stress"][1]).all()  # undefined, and says so
    alone = predict(model, collate([crystal]), None, forces=True, stress=True)
    torch.testing.assert_close(pred["stress"][0], alone["stress"][0])
    ref = predict(model, batch, None, forces=True)
    torch.testing.assert_close(pred["energy"], ref["energy"])
    torch.testing.assert_close(pred["forces"], ref["forces"])


def test_counts_round_trip():
    c = LossCounts(3, 36, 6)
    assert LossCounts.from_tensor(c.as_tensor()) == c
