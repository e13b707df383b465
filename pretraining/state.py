"""Resumable training checkpoints, without pickle.

``OUTDIR/checkpoints/step_00001000/`` holds

* ``model.json`` + ``model.safetensors``: the full model (every head, live weights) in the core format, loadable by
  ``GFMCalculator``;
* ``train_state.safetensors``: optimizer moments (``optim.exp_avg.<param>``, ``optim.exp_avg_sq.<param>``), EMA
  weights (``ema.<param>``) and per-rank torch RNG states (``rng.torch.<rank>``, ``rng.cuda.<rank>``);
* ``train_state.json``: step, optimizer step count and hyper-parameters, EMA update count, sampler state, the run's
  config and the sha256 of ``train_state.safetensors``.

A checkpoint directory is assembled under a temporary name and renamed into place, then ``checkpoints/latest``
(a one-line text file naming it) is replaced atomically, so a crash at any moment leaves the previous checkpoint
intact and ``latest`` always names a complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors.torch import load_file, save_file

from gfm_ase.checkpoint import CheckpointError, read_model_json, save_model, sha256_file
from gfm_ase.fileio import atomic_write_bytes

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel

STATE_FORMAT = "gfm-ase-train-state"
STATE_VERSION = 1
LATEST = "latest"


def checkpoint_root(outdir: str | os.PathLike) -> Path:
    return Path(outdir) / "checkpoints"


def _step_name(step: int) -> str:
    return f"step_{step:08d}"


def write_checkpoint(
    outdir: str | os.PathLike, step: int, model: GFMModel, tensors: dict[str, torch.Tensor], meta: dict, keep: int = 3
) -> Path:
    """Write a complete checkpoint for ``step`` and point ``latest`` at it; prune to the last ``keep``."""
    root = checkpoint_root(outdir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / _step_name(step)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        save_model(model, tmp, extra={"training_step": step})
        st_path = tmp / "train_state.safetensors"
        save_file(
            {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()},
            str(st_path),
            metadata={"format": STATE_FORMAT},
        )
        doc = {
            "format": STATE_FORMAT,
            "format_version": STATE_VERSION,
            "step": step,
            "tensors_sha256": sha256_file(st_path),
            **meta,
        }
        doc["json_sha256"] = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        atomic_write_bytes(tmp / "train_state.json", json.dumps(doc, indent=1, sort_keys=True).encode())
        _fsync_dir(tmp)
        if final.exists():  # a re-run of the same step (after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    atomic_write_bytes(root / LATEST, (final.name + "\n").encode())
    _prune(root, keep)
    return final


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _prune(root: Path, keep: int) -> None:
    steps = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))
    for p in steps[:-keep]:
        shutil.rmtree(p, ignore_errors=True)
    for p in root.iterdir():  # leftovers of a crash while writing
        if p.is_dir() and p.name.startswith(".step_") and p.name.endswith(".tmp"):
            shutil.rmtree(p, ignore_errors=True)


def latest_checkpoint(outdir: str | os.PathLike) -> Path | None:
    root = checkpoint_root(outdir)
    f = root / LATEST
    if not f.is_file():
        return None
    name = f.read_text().strip()
    path = root / name
    if not path.is_dir():
        raise CheckpointError(f"{f} names {name}, which does not exist")
    return path


def read_checkpoint(
    path: str | os.PathLike,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, Any]]:
    """(model weights, training tensors, meta) of a checkpoint directory, with every checksum verified.

    The weights are read as stored (tensors only, no model is built), so a float64 run resumes bit-exactly."""
    path = Path(path)
    jpath = path / "train_state.json"
    if not jpath.is_file():
        raise CheckpointError(f"{path} is not a training checkpoint (no train_state.json)")
    try:
        doc = json.loads(jpath.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{jpath} is corrupt: {exc}") from exc
    if doc.get("format") != STATE_FORMAT or doc.get("format_version") != STATE_VERSION:
        raise CheckpointError(f"{jpath}: unknown format {doc.get('format')!r} v{doc.get('format_version')!r}")
    expected = doc.pop("json_sha256", None)
    if expected != hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest():
        raise CheckpointError(f"{jpath} failed its checksum")
    tpath = path / "train_state.safetensors"
    if not tpath.is_file() or sha256_file(tpath) != doc["tensors_sha256"]:
        raise CheckpointError(f"{tpath} is missing or failed its sha256 check")
    tensors = load_file(str(tpath))
    mdoc = read_model_json(path)
    wpath = path / mdoc.get("weights_file", "model.safetensors")
    if not wpath.is_file() or sha256_file(wpath) != mdoc["weights_sha256"]:
        raise CheckpointError(f"{wpath} is missing or failed its sha256 check")
    weights = load_file(str(wpath))
    return weights, tensors, doc
