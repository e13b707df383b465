"""The trunk contract (gfm_ase.model.registry): a minimal TensorNet-like trunk registered here, outside the
package, runs through the model, the runtime, the calculator and screening without any change to them.

The trunk keeps per-atom Cartesian vector and rank-2 tensor features built from edge vectors, reads invariants
(norms) of them for the heads, returns the equivariant features beside the scalars (TrunkFeatures), and uses the
batch index (needs_batch) for a per-structure mean, so that batching structures together must not mix them.
"""
import math

import numpy as np
import pytest
import torch
from ase.build import bulk
from pydantic import ValidationError
from torch import nn

from gfm_ase.calculator import GFMCalculator
from gfm_ase.config import HeadConfig, ModelConfig, StrictModel, TrunkConfig
from gfm_ase.elements import MAX_Z
from gfm_ase.model import GFMModel, TrunkFeatures, available_trunks, register_trunk
from gfm_ase.runtime import InferenceRuntime
from gfm_ase.screening import Screener


class ToyTensorOptions(StrictModel):
    cutoff: float = 4.0
    num_features: int = 8
    num_rbf: int = 4


@register_trunk("toy-tensor", ToyTensorOptions)
class ToyTensorTrunk(nn.Module):
    needs_batch = True

    def __init__(self, opts: ToyTensorOptions):
        super().__init__()
        f = opts.num_features
        self.cutoff, self.max_neighbors, self.num_features = opts.cutoff, None, f
        self.register_buffer("centers", torch.linspace(0.5, opts.cutoff, opts.num_rbf))
        self.embed = nn.Embedding(MAX_Z, f)
        self.radial = nn.Linear(opts.num_rbf, f)
        self.mix = nn.Sequential(nn.Linear(3 * f, f), nn.SiLU(), nn.Linear(f, f))

    def forward(self, numbers, edge_index, edge_vec, *, batch, num_graphs):
        i, j = edge_index[0], edge_index[1]
        r = edge_vec.norm(dim=-1, keepdim=True)
        envelope = 0.5 * (torch.cos(math.pi * r / self.cutoff) + 1.0)
        w = self.radial(torch.exp(-(r - self.centers) ** 2) * envelope) * self.embed(numbers)[j]  # [E, F]
        u = edge_vec / r
        n, f = numbers.shape[0], self.num_features
        vec = torch.zeros(n, 3, f, dtype=w.dtype).index_add(0, i, u[:, :, None] * w[:, None, :])
        ten = torch.zeros(n, 3, 3, f, dtype=w.dtype).index_add(
            0, i, (u[:, :, None] * u[:, None, :])[..., None] * w[:, None, None, :])
        s0 = torch.zeros(n, f, dtype=w.dtype).index_add(0, i, w)
        s = self.mix(torch.cat([s0, (vec ** 2).sum(1), (ten ** 2).sum((1, 2))], dim=-1))
        count = torch.zeros(num_graphs, dtype=w.dtype).index_add(0, batch, torch.ones_like(s[:, 0]))
        mean = torch.zeros(num_graphs, f, dtype=w.dtype).index_add(0, batch, s) / count[:, None]
        return TrunkFeatures(scalars=s - 0.5 * mean[batch], equivariant={"vectors": vec, "tensors": ten})


def toy_model(seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(name="toy", trunk=TrunkConfig(name="toy-tensor", options={"num_features": 8}),
                      heads=[HeadConfig(name="a", hidden=[8])])
    model = GFMModel(cfg).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def cell(seed=0):
    atoms = bulk("Cu", "fcc", a=3.6) * (2, 1, 1)
    atoms.rattle(0.1, seed=seed)
    return atoms


def test_registered_outside_the_package_and_options_validated_when_read():
    assert "toy-tensor" in available_trunks() and "painn" in available_trunks()
    with pytest.raises(ValidationError) as err:
        TrunkConfig(name="toy-tensor", options={"num_featurs": 8})
    assert err.value.errors()[0]["loc"] == ("options", "num_featurs")
    with pytest.raises(ValueError, match="already registered"):
        register_trunk("toy-tensor", ToyTensorOptions)(type("Other", (nn.Module,), {}))


def test_forces_and_stress_are_derivatives_and_energy_is_invariant():
    calc = GFMCalculator(model=toy_model(), head="a", device="cpu", dtype="float64")
    atoms = cell()
    atoms.calc = calc
    e0, forces, stress = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces).max() > 1e-3
    h = 1e-5
    for a, k in [(0, 0), (1, 2)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[a, k] += h
        minus.positions[a, k] -= h
        fd = -(calc.predict(plus)["energy"] - calc.predict(minus)["energy"]) / (2 * h)
        assert fd == pytest.approx(forces[a, k], abs=1e-6)
    eps = np.zeros((3, 3))
    eps[0, 1] = eps[1, 0] = h
    plus, minus = atoms.copy(), atoms.copy()
    plus.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    minus.set_cell(atoms.cell.array @ (np.eye(3) - eps), scale_atoms=True)
    fd = (calc.predict(plus)["energy"] - calc.predict(minus)["energy"]) / (2 * 2 * h) / atoms.get_volume()
    assert fd == pytest.approx(stress[5], abs=1e-7)
    rot = atoms.copy()
    rot.rotate(37, "x", rotate_cell=True)
    rot.rotate(71, "z", rotate_cell=True)
    res = calc.predict(rot)
    assert res["energy"] == pytest.approx(e0, abs=1e-9)
    r = np.linalg.solve(atoms.cell.array, rot.cell.array)  # rotation: rot.cell = atoms.cell @ r
    np.testing.assert_allclose(res["forces"], forces @ r, atol=1e-8)


def test_batch_index_keeps_structures_apart_in_runtime_and_screening():
    model = toy_model()
    structures = [cell(0), cell(1) * (1, 2, 1), cell(2)]
    rt = InferenceRuntime(model, "a", device="cpu", dtype="float64", copy_model=True)
    single = [float(rt.evaluate(rt.batch_from_atoms([a]), forces=False)["energy"][0]) for a in structures]
    together = rt.evaluate(rt.batch_from_atoms(structures), forces=False)["energy"].numpy()
    np.testing.assert_allclose(together, single, rtol=1e-12)
    block = Screener(model, "a", device="cpu", dtype="float64", uncertainty=False).evaluate(structures)
    np.testing.assert_allclose(block["energy"], single, rtol=1e-12)
