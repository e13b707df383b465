"""Models downloadable by name: the model registry, and the list of built-in, registered and cached models.

The registry is a JSON document (``gfm_ase/model_registry.json`` in the package; files named in the environment
variable ``GFM_ASE_REGISTRY``, separated by ``os.pathsep``, are read after it and may add or replace entries)::

    {"format": "gfm-ase-model-registry", "version": 1,
     "models": {"NAME": {"url": "https://.../NAME.tar.gz", "sha256": "<64 hex digits of the archive>",
                         "description": "...", "card": "URL or repository path of the model card"}}}

``GFMCalculator(model="NAME")`` / ``--model NAME`` of a registered name downloads the archive once into the cache
(:func:`gfm_ase.hub.cache_dir`: ``$GFM_ASE_CACHE``, default ``~/.cache/gfm-ase``) through
:func:`gfm_ase.hub.fetch_url`: into a temporary folder inside the cache, sha256-checked before anything is
unpacked, moved into ``<cache>/<sha256>/`` only when complete (a mismatch or an interrupted download leaves
nothing behind), then loaded with the checksums of its own ``model.json``. Built-in names win over registry names.
The shipped registry lists no model yet: none is published outside the package.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REGISTRY_FILE = Path(__file__).parent / "model_registry.json"
REGISTRY_ENV = "GFM_ASE_REGISTRY"
REGISTRY_FORMAT = "gfm-ase-model-registry"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_KEYS = {"url", "sha256", "description", "card"}
# repository paths of the built-in models' cards
CARD_DIR = "docs/models"


class RegistryError(ValueError):
    """A registry file that cannot be read, or a name it does not hold."""


@dataclass(frozen=True)
class RegistryEntry:
    name: str
    url: str
    sha256: str
    description: str = ""
    card: str | None = None
    source: str = "package"  # "package" or the registry file's name (never its directory)

    @property
    def fetch_url(self) -> str:
        return f"{self.url}#sha256={self.sha256}"


def registry_files() -> list[Path]:
    extra = [Path(p).expanduser() for p in os.environ.get(REGISTRY_ENV, "").split(os.pathsep) if p.strip()]
    return [REGISTRY_FILE] + extra


def _read(path: Path) -> dict[str, RegistryEntry]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise RegistryError(f"model registry {path} does not exist (set by ${REGISTRY_ENV}?)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise RegistryError(f"model registry {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != REGISTRY_FORMAT or not isinstance(doc.get("models"), dict):
        raise RegistryError(
            f"model registry {path}: expected {{'format': {REGISTRY_FORMAT!r}, 'version': 1, 'models': {{...}}}}"
        )
    if doc.get("version") != 1:
        raise RegistryError(f"model registry {path}: unsupported version {doc.get('version')!r} (this gfm-ase reads 1)")
    source = "package" if path == REGISTRY_FILE else path.name
    out = {}
    for name, entry in doc["models"].items():
        where = f"model registry {path}, model {name!r}"
        if not isinstance(entry, dict):
            raise RegistryError(f"{where}: expected an object with url and sha256")
        unknown = sorted(set(entry) - _ENTRY_KEYS)
        if unknown:
            raise RegistryError(f"{where}: unknown key(s) {unknown} (known: {sorted(_ENTRY_KEYS)})")
        url, digest = entry.get("url"), str(entry.get("sha256", "")).lower()
        if not isinstance(url, str) or not url.startswith(("https://", "http://", "file://")):
            raise RegistryError(f"{where}: url must be an http(s):// or file:// URL, got {url!r}")
        if not _HEX64.match(digest):
            raise RegistryError(f"{where}: sha256 must be 64 hex digits, got {entry.get('sha256')!r}")
        out[name] = RegistryEntry(name, url, digest, str(entry.get("description") or ""), entry.get("card"), source)
    return out


def load_registry() -> dict[str, RegistryEntry]:
    """{name: entry} of the package's registry and the files in ``$GFM_ASE_REGISTRY`` (later files win)."""
    entries: dict[str, RegistryEntry] = {}
    for path in registry_files():
        entries.update(_read(path))
    return entries


def fetch(name: str) -> Path:
    """The cached directory of registered model ``name``, downloaded and verified first when absent."""
    from gfm_ase.hub import fetch_url

    entries = load_registry()
    if name not in entries:
        raise RegistryError(f"model {name!r} is not in the model registry (registered: {sorted(entries) or 'none'})")
    return fetch_url(entries[name].fetch_url)


def registry_name_of(path: Path) -> str | None:
    """The registry name of a cached model directory ``<cache>/<sha256>``, if a registry entry has that digest."""
    digest = Path(path).name
    try:
        entries = load_registry()
    except RegistryError:
        return None
    names = [e.name for e in entries.values() if e.sha256 == digest]
    return names[0] if names else None


def _card(name: str) -> str | None:
    from gfm_ase.hub import BUILTIN_DIR

    repo = BUILTIN_DIR.parent.parent
    rel = f"{CARD_DIR}/{name}.md"
    return rel if (repo / rel).is_file() else None


def list_models() -> list[dict[str, Any]]:
    """Rows of every built-in, registered and cached model: name, kind, weights sha256, card, and for the
    registered ones url, archive sha256 and whether they are in the cache. No machine paths."""
    from gfm_ase.checkpoint import read_model_json
    from gfm_ase.hub import BUILTIN_DIR, JSON_NAME, builtin_models, cache_dir, default_model

    rows: list[dict[str, Any]] = []
    default = default_model()
    for name in builtin_models():
        doc = json.loads((BUILTIN_DIR / name / JSON_NAME).read_text())
        rows.append(
            {
                "name": name,
                "kind": "builtin",
                "default": name == default,
                "weights_sha256": doc.get("weights_sha256"),
                "json_sha256": doc.get("json_sha256"),
                "heads": [h["name"] for h in doc.get("config", {}).get("heads", [])],
                "card": _card(name),
            }
        )
    entries = load_registry()
    cache = cache_dir()
    by_digest = {e.sha256: e for e in entries.values()}
    for e in entries.values():
        cached = (cache / e.sha256 / JSON_NAME).is_file()
        row: dict[str, Any] = {
            "name": e.name,
            "kind": "registry",
            "url": e.url,
            "archive_sha256": e.sha256,
            "cached": cached,
            "card": e.card,
            "description": e.description,
            "registry": e.source,
        }
        if cached:
            doc = read_model_json(cache / e.sha256)
            row["weights_sha256"] = doc.get("weights_sha256")
        rows.append(row)
    if cache.is_dir():
        for d in sorted(cache.iterdir()):
            if d.name in by_digest or not (d / JSON_NAME).is_file():
                continue
            try:
                doc = json.loads((d / JSON_NAME).read_text())
            except (OSError, json.JSONDecodeError):
                continue
            rows.append(
                {
                    "name": doc.get("config", {}).get("name"),
                    "kind": "cached",
                    "archive_sha256": d.name,
                    "weights_sha256": doc.get("weights_sha256"),
                    "card": None,
                }
            )
    return rows


__all__ = [
    "REGISTRY_ENV",
    "REGISTRY_FILE",
    "RegistryEntry",
    "RegistryError",
    "fetch",
    "list_models",
    "load_registry",
    "registry_name_of",
]
