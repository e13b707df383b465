"""GFMModel: a shared trunk plus one energy head per level of theory."""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

from gfm_ase.config import HeadConfig, ModelConfig
from gfm_ase.graph.batch import GraphBatch
from gfm_ase.model.fidelity import FidelityEmbedding
from gfm_ase.model.heads import EnergyHead
from gfm_ase.model.outputs import predict
from gfm_ase.model.registry import build_trunk, run_trunk, trunk_options
from gfm_ase.model.repulsion import build_repulsion


class GFMModel(nn.Module):
    """Trunk + heads. Use :func:`gfm_ase.model.outputs.predict` for energies, forces and stress."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        # record every trunk option (defaults included), so a saved model never depends on today's defaults
        opts = trunk_options(config.trunk.name, config.trunk.options).model_dump(mode="json")
        config = config.model_copy(update={"trunk": config.trunk.model_copy(update={"options": opts})})
        self.config = config
        self.trunk = build_trunk(config.trunk.name, opts)
        self.heads = nn.ModuleDict({h.name: EnergyHead(h, self.num_features) for h in config.heads})
        self.repulsion = build_repulsion(config.repulsion)  # no parameters; None for models without a pair term
        self.fidelity: FidelityEmbedding | None = None
        if config.fidelities:
            if not getattr(self.trunk, "accepts_condition", False):
                raise ValueError(
                    f"trunk {config.trunk.name!r} takes no per-atom condition (accepts_condition), so this model "
                    f"cannot have fidelities {config.fidelities}"
                )
            self.fidelity = FidelityEmbedding(config.fidelities, self.num_features)

    # --- metadata -------------------------------------------------------------------------------------------
    # the trunk contract's attributes (gfm_ase.model.registry); nn.Module does not type them
    @property
    def cutoff(self) -> float:
        return float(getattr(self.trunk, "cutoff"))

    @property
    def max_neighbors(self) -> int | None:
        return getattr(self.trunk, "max_neighbors")

    @property
    def num_features(self) -> int:
        return int(getattr(self.trunk, "num_features"))

    def head_module(self, name: str) -> EnergyHead:
        """The head module ``name``."""
        return cast(EnergyHead, self.heads[name])

    @property
    def head_names(self) -> list[str]:
        return [h.name for h in self.config.heads]

    def head_index(self, name: str) -> int:
        try:
            return self.head_names.index(name)
        except ValueError:
            raise KeyError(f"unknown head {name!r}; this model has heads {self.head_names}") from None

    def resolve_head(self, head: str | None) -> str:
        """The head to evaluate: ``head`` if it exists; None is allowed only for single-head models."""
        names = self.head_names
        if head is None:
            if len(names) != 1:
                raise ValueError(f"this model has {len(names)} heads; choose one with head=...: {names}")
            return names[0]
        if head not in names:
            raise ValueError(f"unknown head {head!r}; available heads: {names}")
        return head

    def inference_mode_(self) -> "GFMModel":
        """eval() and no parameter gradients (forces and stress still come from input gradients)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    def head_config(self, name: str) -> HeadConfig:
        return self.config.head(name)

    def add_head(self, cfg: HeadConfig) -> EnergyHead:
        """Add a new head (fine-tuning); the config and the module list stay in sync."""
        if cfg.name in self.heads:
            raise ValueError(f"head {cfg.name!r} already exists")
        if cfg.fidelity is not None and cfg.fidelity not in self.config.fidelities:
            raise ValueError(
                f"head {cfg.name!r}: fidelity {cfg.fidelity!r} is not one of the model's {self.config.fidelities}"
            )
        self.config = self.config.model_copy(update={"heads": [*self.config.heads, cfg]})
        p = next(self.parameters())
        head = EnergyHead(cfg, self.num_features).to(device=p.device)
        head.mlp.to(dtype=p.dtype)
        self.heads[cfg.name] = head
        return head

    def update_head_config(self, cfg: HeadConfig) -> None:
        heads = [cfg if h.name == cfg.name else h for h in self.config.heads]
        self.config = self.config.model_copy(update={"heads": heads})
        self.head_module(cfg.name).set_constants(cfg)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # --- forward --------------------------------------------------------------------------------------------
    def features(
        self,
        numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vec: torch.Tensor,
        batch: torch.Tensor | None = None,
        num_graphs: int | None = None,
        condition: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Invariant per-atom features [N, F] (the trunk contract: :mod:`gfm_ase.model.registry`); ``condition``:
        the fidelity embedding's per-atom vectors (:func:`gfm_ase.model.fidelity.fidelity_condition`)."""
        return run_trunk(self.trunk, numbers, edge_index, edge_vec, batch, num_graphs, condition=condition)

    def atomic_energies(self, s: torch.Tensor, numbers: torch.Tensor, atom_head: torch.Tensor) -> torch.Tensor:
        """Per-atom energies [N] where atom a uses head ``atom_head[a]`` (index into :attr:`head_names`)."""
        present = torch.unique(atom_head).tolist() if atom_head.numel() else []
        if len(present) == 1:
            return self.heads[self.head_names[present[0]]](s, numbers)
        out = torch.zeros(
            numbers.shape[0], dtype=self.head_module(self.head_names[0]).reference.dtype, device=numbers.device
        )
        for k in present:
            mask = atom_head == k
            out[mask] = self.heads[self.head_names[k]](s[mask], numbers[mask])
        return out

    def all_head_energies(self, s: torch.Tensor, numbers: torch.Tensor, heads: list[str]) -> torch.Tensor:
        """Per-atom energies [N, H] of several heads from one trunk pass."""
        return torch.stack([self.heads[h](s, numbers) for h in heads], dim=-1)

    def forward(self, batch: GraphBatch, head: str | None = None, **kwargs: Any) -> dict[str, torch.Tensor]:
        """``model(batch, head=..., forces=..., stress=...)``; see :func:`gfm_ase.model.outputs.predict`."""
        return predict(self, batch, head, **kwargs)
