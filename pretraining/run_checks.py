"""Checks made before a training run starts: the output directory (new run or resume), the datasets against the
config, and a resumed run's config against its checkpoint's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from gfm_ase.fileio import LockedError, exclusive_lock
from gfm_ase.pretraining.config import RESUMABLE_CHANGES, PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits
from gfm_ase.pretraining.distributed import DistEnv
from gfm_ase.pretraining.errors import TrainingError
from gfm_ase.pretraining.state import latest_checkpoint

LOCK_FILE = "train.lock"


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


@contextmanager
def exclusive_run(env: DistEnv, outdir: Path) -> Iterator[None]:
    """One training run per output directory: rank 0 holds ``OUTDIR/train.lock`` while the run trains, and every
    rank learns whether it got it. A second launch on the same directory (a new run or ``--resume`` while the
    first still trains) is refused on every rank with one :class:`TrainingError` line naming the holder's pid,
    instead of training and checkpointing the same steps twice. The lock dies with the process (kill -9
    included), so a resume after a crash is not blocked."""
    with ExitStack() as stack:
        refused = None
        if env.is_main:
            try:
                stack.enter_context(exclusive_lock(outdir / LOCK_FILE, "training run"))
            except LockedError as exc:
                refused = str(exc)
        refused = env.broadcast_json(refused)
        if refused:
            raise TrainingError(refused)
        yield


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
