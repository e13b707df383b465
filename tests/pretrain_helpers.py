"""Shared helpers of the pretraining tests (not a test module): tiny EMT data and configs pointing at it."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "pretraining" / "configs" / "example-tiny.yaml"
DATASETS = ("cu_bulk", "au_bulk", "cuau_alloy", "cu_lj")


def make_data(directory: Path, scale: float = 0.25) -> Path:
    from gfm_ase.pretraining.corpus.make_tiny import make_tiny

    make_tiny(directory, seed=0, scale=scale)
    return directory


def overrides_for(data_dir: Path, **extra) -> dict:
    """Dotted overrides of the example config: dataset paths into ``data_dir`` plus ``extra``
    (keys use ``__`` for dots: sampling__epochs=2)."""
    out = {f"datasets.{i}.path": str(Path(data_dir) / f"{name}.h5") for i, name in enumerate(DATASETS)}
    out["logging.progress"] = False
    for k, v in extra.items():
        out[k.replace("__", ".")] = v
    return out


def tiny_config(data_dir: Path, **extra):
    from gfm_ase.pretraining.config import load_config

    return load_config(EXAMPLE, overrides_for(data_dir, **extra))


def set_args(overrides: dict) -> list[str]:
    """``--set key=value`` arguments for the CLI (values in YAML/JSON syntax)."""
    import json

    args = []
    for k, v in overrides.items():
        args += ["--set", f"{k}={json.dumps(v)}"]
    return args


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["MKL_NUM_THREADS"] = "1"
    for k in list(env):  # never inherit a launcher's rank variables
        if k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") or k.startswith("PMI"):
            env.pop(k)
    return env


def cli(*args) -> list[str]:
    return [sys.executable, "-m", "gfm_ase.cli", *args]
