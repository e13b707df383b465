"""Warm start: begin a pretraining run from a trained model's weights (``model.init_from``).

Used to continue a model with a changed objective (a pair term added, more data, a label filter) without paying
for the steps it already took. The architecture must be the same (trunk name and every option, head names and
sizes); the heads keep the trained model's reference energies, scale and shift, since the learned weights are only
meaningful with the constants they were trained under. Elements a head newly covers get the fitted reference
energies of this run's data. Every mismatch is an error naming the option, raised before any training step.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from gfm_ase.config import HeadConfig
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.registry import trunk_options

if TYPE_CHECKING:
    from gfm_ase.pretraining.config import PretrainConfig


class WarmStartError(ValueError):
    """``model.init_from`` names a model that cannot start this run."""


def load_init_model(cfg: PretrainConfig) -> GFMModel:
    """Load ``cfg.model.init_from`` (built-in name, directory, or URL; a relative directory that exists next to
    the config file is taken from there, like dataset paths; sha-verified) and check it fits ``cfg``."""
    from gfm_ase.checkpoint import load_model
    from gfm_ase.hub import resolve_model

    src = cfg.model.init_from
    assert src is not None  # called only when model.init_from is set
    path = Path(os.path.expanduser(os.path.expandvars(src)))
    base = cfg.base_dir
    local = "://" not in src and not path.is_absolute() and base is not None
    if local and base is not None and (Path(base) / path).exists():  # a run directory next to the config
        src = str((Path(base) / path).resolve())
    try:
        model = load_model(resolve_model(src))
    except Exception as exc:  # hub and checkpoint errors carry their own one-line message
        raise WarmStartError(f"model.init_from {src!r}: {exc}") from None
    mine = trunk_options(cfg.model.trunk.name, cfg.model.trunk.options).model_dump(mode="json")
    if model.config.trunk.name != cfg.model.trunk.name or model.config.trunk.options != mine:
        diff = sorted(
            k for k in set(mine) | set(model.config.trunk.options) if mine.get(k) != model.config.trunk.options.get(k)
        )
        raise WarmStartError(
            f"model.init_from {src!r}: its trunk differs from model.trunk "
            f"({model.config.trunk.name} vs {cfg.model.trunk.name}; options {diff})"
        )
    if model.config.fidelities and model.config.fidelities != cfg.model.fidelities:
        raise WarmStartError(
            f"model.init_from {src!r} has fidelities {model.config.fidelities}, model.fidelities says "
            f"{cfg.model.fidelities} (a model without fidelities may gain them: their vectors start at zero)"
        )
    for h in cfg.heads:
        if h.name not in model.heads:
            raise WarmStartError(f"model.init_from {src!r} has no head {h.name!r} (heads: {model.head_names})")
        if list(model.head_config(h.name).hidden) != list(h.hidden):
            raise WarmStartError(
                f"model.init_from {src!r}: head {h.name!r} has hidden "
                f"{model.head_config(h.name).hidden}, the config says {h.hidden}"
            )
    extra = sorted(set(model.head_names) - {h.name for h in cfg.heads})
    if extra:
        raise WarmStartError(f"model.init_from {src!r} has heads {extra} that the config does not train")
    return model


def warm_start_heads(init: GFMModel, heads: list[HeadConfig]) -> list[HeadConfig]:
    """This run's head configs with the trained model's constants (references of new elements: fitted here)."""
    out = []
    for h in heads:
        old = init.head_config(h.name)
        refs = {**h.reference_energies, **old.reference_energies}
        out.append(
            h.model_copy(
                update={
                    "reference_energies": refs,
                    "scale": old.scale,
                    "shift": old.shift,
                    "metrics": {**h.metrics, "warm_start": {"from": init.config.name}},
                }
            )
        )
    return out
