"""What produced a calculator's numbers: model name, weights sha256, head, precision, dispersion (part of the
runtime: it reads the model's files and the registry, which the consumers do not import themselves).

:func:`model_provenance` identifies the model the inference runtime loaded, without machine paths: a built-in
model by its name, a model from the download cache by its registry name (or its config name), a user directory
by the model's config name; always with the ``weights_sha256`` and ``json_sha256`` of its files (an in-memory
model: a fingerprint of config and weights, :func:`gfm_ase.runtime.loading.model_fingerprint`). The calculator
stores it, with the options that change its numbers, in ``calc.parameters`` (so in ``calc.todict()``, ASE
trajectories and databases).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _under(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except (ValueError, OSError):
        return False


def model_provenance(model: Any, path: Path | None) -> dict[str, Any]:
    """{model, model_source, weights_sha256, json_sha256} of a loaded model (``path``: its directory, None for an
    in-memory model)."""
    from gfm_ase.hub import BUILTIN_DIR, cache_dir

    if path is None:
        from gfm_ase.runtime.loading import model_fingerprint

        return {
            "model": model.config.name or "in-memory",
            "model_source": "in-memory",
            "weights_sha256": None,
            "model_fingerprint": model_fingerprint(model),
        }
    from gfm_ase.checkpoint import read_model_json

    doc = read_model_json(path)
    name = doc.get("config", {}).get("name")
    if _under(path, BUILTIN_DIR):
        source, name = "builtin", path.name
    elif _under(path, cache_dir()):
        from gfm_ase.registry import registry_name_of

        source = "registry"
        name = registry_name_of(path) or name
    else:
        source = "directory"
    return {
        "model": name,
        "model_source": source,
        "weights_sha256": doc.get("weights_sha256"),
        "json_sha256": doc.get("json_sha256"),
    }


def package_version() -> str:
    try:
        from importlib.metadata import version

        return version("gfm-ase")
    except Exception:  # pragma: no cover - running from a source tree without metadata
        return "unknown"


__all__ = ["model_provenance", "package_version"]
