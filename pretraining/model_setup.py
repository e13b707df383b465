"""The model a run trains: every head's constants fitted on its training data (or kept from a warm start), the
heads a rank keeps, the gradient masks of partly frozen parameters, and the heads' loss normalisation."""

from __future__ import annotations

import numpy as np
import torch

from gfm_ase.config import ModelConfig
from gfm_ase.model.gfm import GFMModel
from gfm_ase.pretraining.config import PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits, fit_head_constants, head_configs
from gfm_ase.pretraining.distributed import DistEnv
from gfm_ase.pretraining.warm_start import warm_start_heads


def fitted_model_config(
    cfg: PretrainConfig,
    env: DistEnv,
    datasets: list[DatasetSplits],
    probs: np.ndarray,
    init_model: GFMModel | None = None,
) -> tuple[ModelConfig, list[str]]:
    """The model's config with every head's constants fitted on its training data (on rank 0, broadcast, so every
    rank builds the same model), and the fits' warnings. With ``init_model`` (a warm start) its heads' reference
    energies, scale and shift are kept."""
    consts = None
    if env.is_main:
        consts = {
            h.name: fit_head_constants(
                datasets, h.name, cfg.head_init.scale, cfg.head_init.shift, cfg.head_init.max_structures, cfg.seed
            )
            for h in cfg.heads
        }
    consts = env.broadcast_json(consts)
    warnings = [w for c in consts.values() for w in c.get("warnings", [])]
    heads = head_configs(cfg, datasets, consts, {d.name: float(p) for d, p in zip(datasets, probs)})
    if init_model is not None:
        heads = warm_start_heads(init_model, heads)
    config = ModelConfig(
        name=cfg.model.name,
        trunk=cfg.model.trunk,
        repulsion=cfg.model.repulsion,
        fidelities=cfg.model.fidelities,
        heads=heads,
    )
    return config, warnings


def restrict_heads(model: GFMModel, keep: list[str]) -> GFMModel:
    """Drop every head not in ``keep`` (in place); the config follows."""
    for name in list(model.heads.keys()):
        if name not in keep:
            del model.heads[name]
    model.config = model.config.model_copy(update={"heads": [h for h in model.config.heads if h.name in keep]})
    return model


def install_gradient_masks(
    model: GFMModel, masks: dict[str, torch.Tensor], device: torch.device, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Multiply the gradients of the parameters named in ``masks`` ({name: 0/1 tensor}) by their mask (entries
    where it is 0 never change); returns the masks on the training device and dtype."""
    named = dict(model.named_parameters())
    out = {}
    for n, mask in masks.items():
        m = mask.to(device=device, dtype=dtype)
        out[n] = m
        named[n].register_hook(lambda g, m=m: g * m)
    return out


def head_scales(model: GFMModel, heads: list[str], device: torch.device) -> torch.Tensor:
    """The heads' fitted scales (float64), indexed like ``heads``: the loss divides each head's errors by them."""
    return torch.tensor([float(model.head_config(h).scale) for h in heads], dtype=torch.float64, device=device)
