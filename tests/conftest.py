"""Shared fixtures. Tests that need ../shared/data use the `shared_data` fixture and skip cleanly without it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GFM_SHARED", REPO.parent / "shared")) / "data"

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


def make_tiny_config(heads=("a", "b"), cutoff=4.0, features=16, layers=2, elements=(), **head_kw):
    from gfm_ase.config import HeadConfig, ModelConfig, TrunkConfig

    return ModelConfig(
        name="tiny",
        trunk=TrunkConfig(name="painn", options=dict(cutoff=cutoff, num_features=features, num_layers=layers,
                                                     num_rbf=8)),
        heads=[HeadConfig(name=h, hidden=[16], elements=list(elements), **head_kw) for h in heads],
    )


def make_tiny_model(seed=0, dtype=torch.float64, **kw):
    from gfm_ase.model import GFMModel

    torch.manual_seed(seed)
    model = GFMModel(make_tiny_config(**kw)).to(dtype)
    # untrained heads output ~0; give the last layer weight so tests see non-trivial energies and forces
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


@pytest.fixture
def tiny_model():
    return make_tiny_model()


def make_fidelity_model(seed: int = 0, dtype=torch.float64):
    """A tiny model with two fidelities (``dft``, ``surrogate``) and heads ``a`` (at ``dft``), ``b`` (at
    ``surrogate``) and ``c`` (none); random weights and fidelity vectors large enough to matter."""
    from gfm_ase.config import HeadConfig
    from gfm_ase.model import GFMModel

    base = make_tiny_config(heads=("a",))  # its heads are replaced below
    heads = [
        HeadConfig(name="a", hidden=[16], fidelity="dft"),
        HeadConfig(name="b", hidden=[16], fidelity="surrogate"),
        HeadConfig(name="c", hidden=[16]),
    ]
    cfg = base.model_copy(update={"heads": heads, "fidelities": ["dft", "surrogate"]})
    torch.manual_seed(seed)
    model = GFMModel(type(cfg)(**cfg.model_dump())).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        model.fidelity.embedding.weight[0].zero_()  # row 0 ("no fidelity") is zero by construction
        model.fidelity.embedding.weight[1:].mul_(5.0)  # vectors large enough to matter
    return model.eval()
