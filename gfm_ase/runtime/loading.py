"""Model resolution and loading for inference: a built-in name, a model or training output directory, a URL with
``#sha256=``, or an in-memory :class:`~gfm_ase.model.GFMModel`."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gfm_ase.checkpoint import load_model, read_model_json
from gfm_ase.hub import resolve_model
from gfm_ase.model.gfm import GFMModel


@dataclass
class LoadedModel:
    model: GFMModel  # on the requested device and dtype, in inference mode
    path: Path | None  # the model directory; None for an in-memory model
    model_id: dict | None  # {"source", "sha256"} when asked for (resume checks); None otherwise


def model_fingerprint(model: GFMModel) -> str:
    """sha256 over the config and the weights of an in-memory model."""
    h = hashlib.sha256(json.dumps(model.config.model_dump(mode="json"), sort_keys=True).encode())
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())
    return h.hexdigest()


def model_document(model: str | Path | None) -> dict:
    """The verified ``model.json`` document (config, head metadata, checksums) of a built-in name, directory or
    URL, without loading the weights."""
    return read_model_json(resolve_model(model))


def load(
    model: str | Path | GFMModel | None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    *,
    copy_model: bool = False,
    identify: bool = False,
) -> LoadedModel:
    """Resolve and load ``model`` onto ``device`` in ``dtype`` (None: as stored), in inference mode.

    An in-memory model is moved in place, or first deep-copied with ``copy_model`` (the caller's model is then
    never modified). ``identify`` also returns the model's identity: the files' sha256 for a model directory, a
    fingerprint of config and weights (before any cast) for an in-memory model.
    """
    if isinstance(model, GFMModel):
        model_id = {"source": "in-memory", "sha256": model_fingerprint(model)} if identify else None
        net = copy.deepcopy(model) if copy_model else model
        net = net.to(device=device, dtype=dtype)
        path = None
    else:
        path = resolve_model(model)
        net = load_model(path, device=device, dtype=dtype)
        model_id = None
        if identify:
            doc = read_model_json(path)
            model_id = {"source": str(path), "sha256": f"{doc['weights_sha256']}:{doc['json_sha256']}"}
    net.inference_mode_()
    return LoadedModel(net, path, model_id)


__all__ = ["LoadedModel", "load", "model_document", "model_fingerprint"]
