"""The lines a training run prints: the start banner (datasets, shares, head groups, warnings) and the one-line
summary after a validation."""

from __future__ import annotations

import numpy as np

from gfm_ase.pretraining.config import PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits
from gfm_ase.pretraining.distributed import DistEnv, HeadGroups


def banner(
    title: str,
    cfg: PretrainConfig,
    env: DistEnv,
    step: int,
    total_steps: int,
    resumed: bool,
    datasets: list[DatasetSplits],
    shares: np.ndarray,
    head_groups: HeadGroups | None,
    warnings: list[str],
) -> str:
    lines = [
        f"{title}: {'resuming at step ' + str(step) if resumed else 'starting'}; "
        f"{total_steps} steps, global batch {cfg.sampling.batch_size}, {env.world_size} "
        f"rank(s) [{env.launcher}, {env.backend or 'single process'}], device {env.device}, "
        f"precision {cfg.precision}, mode {cfg.parallel.mode}"
    ]
    for d, ds in enumerate(datasets):
        lines.append(f"  dataset {ds.name:20s} head {ds.head:12s} train {len(ds.train):7d}  share {shares[d]:.3f}")
    if head_groups is not None:
        for g, (hs, rs) in enumerate(zip(head_groups.groups, head_groups.ranks)):
            lines.append(f"  head group {g}: heads {hs} on ranks {rs}")
    warnings = list(warnings)
    if cfg.sampling.batch_size < env.world_size:
        warnings.append(
            f"global batch {cfg.sampling.batch_size} < {env.world_size} ranks: some ranks idle in every step"
        )
    lines += [f"  warning: {w}" for w in warnings]
    return "\n".join(lines)


def summary_line(step: int, total_steps: int, row: dict, rows: list[dict]) -> str:
    """``step N/M loss .. lr .. | head: E .. meV/atom, F .. meV/A | ...`` from a train row and validation rows."""
    parts = [f"step {step}/{total_steps}"]
    if "loss" in row:
        parts[0] += f" loss {row['loss']:.4g}"
    if "lr" in row:
        parts[0] += f" lr {row['lr']:.3g}"
    for r in rows:
        if r["kind"] == "head":
            e, f = r["energy_mae_meV_atom"], r["forces_mae_meV_A"]
            parts.append(f"{r['name']}: E {e:.1f} meV/atom" if e is not None else f"{r['name']}: E -")
            if f is not None:
                parts[-1] += f", F {f:.1f} meV/A"
    return " | ".join(parts)
