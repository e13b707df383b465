"""Model checkpoints without pickle: ``model.json`` (config + metadata + checksums) and ``model.safetensors``.

The JSON records the sha256 of the weights file and of its own canonical content; both are verified on load, so a
corrupt or edited checkpoint fails with :class:`CheckpointError` instead of loading silently.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from safetensors.torch import load_file, save_file

from gfm_ase.config import ModelConfig
from gfm_ase.fileio import atomic_write_bytes, publish
from gfm_ase.model.gfm import GFMModel

FORMAT = "gfm-ase-model"
FORMAT_VERSION = 1
JSON_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, corrupt, tampered with or of an unknown format."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "json_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def save_model(model: GFMModel, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/model.json`` (each atomically, weights first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".weights.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata={"format": FORMAT})
        digest = sha256_file(tmp)
        publish(tmp, directory / WEIGHTS_NAME)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    from gfm_ase import __version__

    doc = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "gfm_ase_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "config": model.config.model_dump(mode="json"),
        "num_parameters": model.num_parameters(),
        "weights_file": WEIGHTS_NAME,
        "weights_sha256": digest,
        "weights_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "extra": extra or {},
    }
    doc["json_sha256"] = hashlib.sha256(_canonical(doc)).hexdigest()
    atomic_write_bytes(directory / JSON_NAME, json.dumps(doc, indent=2, sort_keys=True).encode())
    return directory


def read_model_json(directory: str | os.PathLike) -> dict:
    """Read and verify ``model.json`` (format, version, its own checksum). Does not touch the weights."""
    path = Path(directory) / JSON_NAME
    if not path.is_file():
        raise CheckpointError(f"{path} not found: not a gfm-ase model directory")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gfm-ase model file (format={doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {doc.get('format_version')!r}; this gfm-ase reads version {FORMAT_VERSION}")
    expected = doc.get("json_sha256")
    if expected != hashlib.sha256(_canonical(doc)).hexdigest():
        raise CheckpointError(f"{path} failed its checksum: the metadata was modified or corrupted")
    return doc


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu",
               dtype: torch.dtype | None = None) -> GFMModel:
    """Load and verify a model directory written by :func:`save_model` (no pickle involved)."""
    directory = Path(directory)
    doc = read_model_json(directory)
    weights = directory / doc.get("weights_file", WEIGHTS_NAME)
    if not weights.is_file():
        raise CheckpointError(f"weights file {weights} is missing")
    digest = sha256_file(weights)
    if digest != doc["weights_sha256"]:
        raise CheckpointError(
            f"{weights} failed its sha256 check (expected {doc['weights_sha256'][:12]}..., got {digest[:12]}...): "
            "the file is corrupt or was modified")
    try:
        config = ModelConfig(**doc["config"])
    except ValidationError as exc:
        raise CheckpointError(f"{directory / JSON_NAME} holds an invalid model config: {exc}") from exc
    model = GFMModel(config).to(getattr(torch, doc.get("weights_dtype", "float32")))  # load without rounding
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {weights}: {exc}") from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(f"{weights} does not match the config: missing {missing}, unexpected {unexpected}")
    model.to(device=device, dtype=dtype or getattr(torch, doc.get("weights_dtype", "float32")))
    model.eval()
    return model
