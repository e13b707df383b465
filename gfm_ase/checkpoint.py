"""Model checkpoints without pickle: ``model.json`` (config + metadata + checksums) and ``model.safetensors``.

The JSON records the sha256 of the weights file and of its own canonical content; both are verified on load, so a
corrupt or edited checkpoint fails with :class:`CheckpointError` instead of loading silently.

The JSON holds no paths of the machine that wrote it: :func:`portable_document` rewrites every absolute path in the
heads' dataset provenance and in ``extra`` (training config, fine-tuning history) before it is written, keeping the
part from a ``work_data/`` component on (``work_data/stores/emt.h5``), else the file name. Tools that look for
those datasets again (fine-tuning replay, the forgetting report) search data folders by file name.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import posixpath
import re
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


WEIGHT_DTYPES = {"float32", "float64", "bfloat16", "float16"}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(doc: dict) -> bytes:
    body = {k: v for k, v in doc.items() if k != "json_sha256"}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


# an absolute POSIX path inside free text (a recorded command line, a source description): it starts at the
# beginning of the string or after whitespace, a quote, '=', '(', ',' or '['; "eV/atom", "PBE/def2-SVP" and URLs
# ("https://...": the slash follows ':' or '/') are not paths
_ABSOLUTE_IN_TEXT = re.compile(r"(?<![^\s'\"=(,\[])/[^\s'\"),\]]+")


def portable_path(path: str) -> str:
    """An absolute path without the machine-specific part: from its last ``work_data`` component on, else the file
    name (``/home/me/proj/work_data/stores/emt.h5`` -> ``work_data/stores/emt.h5``, ``/tmp/x/cu.h5`` ->
    ``cu.h5``). Relative paths are returned unchanged."""
    if not path.startswith("/"):
        return path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if "work_data" in parts:
        i = len(parts) - 1 - parts[::-1].index("work_data")
        return "/".join(parts[i:])
    return parts[-1] if parts else "."


def portable_text(text: str) -> str:
    """``text`` with every absolute path in it replaced by :func:`portable_path`."""
    return _ABSOLUTE_IN_TEXT.sub(lambda m: portable_path(m.group(0)), text)


def _portable(obj: Any) -> Any:
    if isinstance(obj, str):
        return portable_text(obj)
    if isinstance(obj, dict):
        base = obj.get("base_dir")
        if isinstance(base, str) and base.startswith("/") and isinstance(obj.get("datasets"), list):
            # a recorded pretraining config: its relative dataset paths are relative to base_dir (a machine path);
            # join them first so that they stay right, then drop base_dir (paths are then relative to the cwd)
            obj = {
                **obj,
                "base_dir": None,
                "datasets": [
                    {**d, "path": posixpath.normpath(posixpath.join(base, d["path"]))}
                    if isinstance(d, dict)
                    and isinstance(d.get("path"), str)
                    and not d["path"].startswith(("/", "~", "$"))
                    else d
                    for d in obj["datasets"]
                ],
            }
        return {k: _portable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_portable(v) for v in obj]
    return obj


def portable_document(doc: dict) -> dict:
    """A copy of a model document (``model.json`` content) without machine paths in the heads' dataset provenance
    (``config.heads[].datasets``: store paths, the stores' recorded commands and sources) and in ``extra``.
    Other fields (names, descriptions, metrics) are left as they are. ``json_sha256`` is not updated."""
    out = dict(doc)
    if isinstance(doc.get("config"), dict):
        config = dict(doc["config"])
        config["heads"] = [
            {**h, "datasets": _portable(h.get("datasets", []))} if isinstance(h, dict) else h
            for h in config.get("heads", [])
        ]
        out["config"] = config
    if "extra" in doc:
        out["extra"] = _portable(doc["extra"])
    return out


def make_portable(directory: str | os.PathLike) -> bool:
    """Rewrite ``directory/model.json`` through :func:`portable_document` (checksum recomputed, weights untouched).
    The file must pass its own checks first. Returns whether anything changed."""
    doc = read_model_json(directory)
    new = portable_document(doc)
    new["json_sha256"] = hashlib.sha256(_canonical(new)).hexdigest()
    if new == doc:
        return False
    atomic_write_bytes(Path(directory) / JSON_NAME, json.dumps(new, indent=2, sort_keys=True).encode())
    return True


def save_model(model: GFMModel, directory: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write ``directory/model.safetensors`` and ``directory/model.json`` (each atomically, weights first).

    Absolute paths in the heads' dataset provenance and in ``extra`` are written in portable form
    (:func:`portable_document`)."""
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
    doc = portable_document(doc)
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
        found = doc.get("format") if isinstance(doc, dict) else None
        raise CheckpointError(f"{path} is not a gfm-ase model file (format={found!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has format_version {doc.get('format_version')!r}; this gfm-ase reads version {FORMAT_VERSION}"
        )
    expected = doc.get("json_sha256")
    if expected != hashlib.sha256(_canonical(doc)).hexdigest():
        raise CheckpointError(f"{path} failed its checksum: the metadata was modified or corrupted")
    missing = [k for k in ("config", "weights_sha256") if k not in doc]
    if missing:
        raise CheckpointError(f"{path} lacks {missing}: not a complete gfm-ase model file")
    return doc


def load_model(
    directory: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> GFMModel:
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
            "the file is corrupt or was modified"
        )
    try:
        config = ModelConfig(**doc["config"])
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise CheckpointError(f"{directory / JSON_NAME} holds an invalid model config: {problems}") from exc
    weights_dtype = doc.get("weights_dtype", "float32")
    if weights_dtype not in WEIGHT_DTYPES:
        raise CheckpointError(
            f"{directory / JSON_NAME}: unknown weights_dtype {weights_dtype!r} (known: {sorted(WEIGHT_DTYPES)})"
        )
    try:
        model = GFMModel(config).to(getattr(torch, doc.get("weights_dtype", "float32")))  # load without rounding
    except (ValueError, KeyError, TypeError) as exc:  # e.g. a trunk name no registry knows
        raise CheckpointError(f"{directory / JSON_NAME}: cannot build the model it describes: {exc}") from exc
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"cannot read {weights}: {exc}") from exc
    expected = model.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} in the weights vs {tuple(expected[k].shape)} from the config"
        for k, v in state.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if wrong:  # torch would raise a RuntimeError with one line per tensor
        raise CheckpointError(
            f"{directory / JSON_NAME} and {weights.name} disagree: {len(wrong)} tensor shape(s) "
            f"differ (first: {wrong[0]}); the architecture in model.json was edited or the "
            "weights belong to another model"
        )
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{directory / JSON_NAME} and {weights.name} disagree: {len(missing)} tensor(s) the "
            f"config needs are missing (first: {missing[:3]}), {len(unexpected)} unexpected "
            f"(first: {unexpected[:3]}); the architecture in model.json was edited or the weights "
            "belong to another model"
        )
    model.to(device=device, dtype=dtype or getattr(torch, doc.get("weights_dtype", "float32")))
    model.eval()
    return model
