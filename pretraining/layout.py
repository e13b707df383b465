"""Which rank holds which heads and samples which datasets: data parallel (every rank every head) or multi-task
parallel (ranks split into head groups, each group sampling only its heads' datasets)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gfm_ase.pretraining.config import PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits
from gfm_ase.pretraining.distributed import DistEnv, HeadGroups
from gfm_ase.pretraining.errors import TrainingError
from gfm_ase.pretraining.sampler import Layout, allocate_group_sizes


@dataclass
class RunLayout:
    """``layout``: the sampler's split of each step over ranks; ``head_groups``: None in data-parallel mode;
    ``local_heads``: the heads this rank holds."""

    layout: Layout
    head_groups: HeadGroups | None
    local_heads: list[str]


def plan_layout(
    cfg: PretrainConfig, env: DistEnv, datasets: list[DatasetSplits], probs: np.ndarray, model_heads: list[str]
) -> RunLayout:
    """The run's layout. ``probs``: the datasets' sampling probabilities (they size the head groups when
    ``parallel.group_sizes`` is not given); ``model_heads``: every head of the model (in data-parallel mode each
    rank keeps them all, heads without data included, as in fine-tuning)."""
    if cfg.parallel.mode != "multitask":
        return RunLayout(Layout.data_parallel(env.world_size), None, list(model_heads))
    groups = cfg.parallel.head_groups or [[h.name] for h in cfg.heads]
    g_datasets = [[i for i, d in enumerate(datasets) if d.head in g] for g in groups]
    if cfg.parallel.group_sizes is not None:
        g_sizes = list(cfg.parallel.group_sizes)
    else:
        try:
            g_sizes = allocate_group_sizes([probs[ds].sum() for ds in g_datasets], env.world_size)
        except ValueError as exc:
            raise TrainingError(f"parallel.mode multitask: {exc}") from None
    head_groups = HeadGroups(env, groups, g_sizes)
    return RunLayout(Layout.multitask(g_datasets, g_sizes), head_groups, head_groups.my_heads)
