"""Checks made before a training run starts: the output directory (new run or resume), the datasets against the
config, and a resumed run's config against its checkpoint's."""

from __future__ import annotations

import json
from pathlib import Path

from gfm_ase.pretraining.config import RESUMABLE_CHANGES, PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits
from gfm_ase.pretraining.errors import TrainingError
from gfm_ase.pretraining.state import latest_checkpoint


def checkpoint_to_resume(outdir: Path, resume: bool) -> Path | None:
    """The checkpoint a ``resume`` run continues from (None for a new run); refuses to overwrite a run."""
    ckpt = latest_checkpoint(outdir) if outdir.exists() else None
    if resume:
        if ckpt is None:
            raise TrainingError(f"--resume: {outdir} holds no checkpoint (checkpoints/latest) to resume from")
        return ckpt
    if ckpt is not None or (outdir / "final" / "model.json").exists():
        raise TrainingError(
            f"{outdir} already holds a training run; pass --resume to continue it or "
            "choose another output directory (nothing was overwritten)"
        )
    return None


def check_datasets(datasets: list[DatasetSplits], cfg: PretrainConfig) -> None:
    """The datasets are those of the config, in its order, each with its head."""
    names = [d.name for d in datasets]
    want = [d.name for d in cfg.datasets]
    if names != want:
        raise TrainingError(f"datasets {names} do not match the config's {want}")
    for d, spec in zip(datasets, cfg.datasets):
        if d.head != spec.head:
            raise TrainingError(f"dataset {d.name!r} has head {d.head!r}, the config says {spec.head!r}")


def check_resume_config(cfg: PretrainConfig, ckpt_path: Path) -> None:
    """A resumed run uses the checkpoint's settings except those in ``RESUMABLE_CHANGES``."""
    doc = json.loads((ckpt_path / "train_state.json").read_text())
    old = doc.get("config", {})
    new = cfg.model_dump(mode="json")
    diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
    if diff:
        raise TrainingError(
            f"the config differs from the checkpoint's in {diff}; a resumed run must use the same "
            f"settings (only {list(RESUMABLE_CHANGES)} may change)"
        )
