"""Where models come from: built-in names, local directories, or URLs cached with sha256 verification."""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from gfm_ase.checkpoint import JSON_NAME, CheckpointError

BUILTIN_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "gfm-mini"


def builtin_models() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / JSON_NAME).is_file()) if BUILTIN_DIR.is_dir() else []


def cache_dir() -> Path:
    return Path(os.environ.get("GFM_ASE_CACHE", Path.home() / ".cache" / "gfm-ase"))


def _fetch_url(url: str) -> Path:
    """``https://.../model.tar.gz#sha256=<hex>``: download once into the cache, verify, unpack."""
    base, _, frag = url.partition("#")
    if not frag.startswith("sha256="):
        raise CheckpointError(f"a model URL must end with '#sha256=<hex digest>' so the download can be verified: {url}")
    digest = frag.split("=", 1)[1].lower()
    target = cache_dir() / digest
    if (target / JSON_NAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        archive = Path(tmp) / "model.tar.gz"
        h = hashlib.sha256()
        with urllib.request.urlopen(base) as r, open(archive, "wb") as f:  # noqa: S310 (user-given URL)
            for chunk in iter(lambda: r.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != digest:
            raise CheckpointError(f"download of {base} has sha256 {h.hexdigest()}, expected {digest}")
        out = Path(tmp) / "unpacked"
        with tarfile.open(archive) as tf:
            tf.extractall(out, filter="data")
        found = [p.parent for p in out.rglob(JSON_NAME)]
        if len(found) != 1:
            raise CheckpointError(f"{base} must contain exactly one {JSON_NAME}, found {len(found)}")
        shutil.move(str(found[0]), str(target))
    return target


def resolve_model(model: str | os.PathLike | None) -> Path:
    """Return the directory that holds ``model.json`` for a built-in name, a path or a URL.

    A training output directory is accepted too: its ``final/`` model is used.
    """
    if model is None:
        model = DEFAULT_MODEL
    s = str(model)
    if s.startswith(("http://", "https://", "file://")):
        return _fetch_url(s)
    p = Path(s).expanduser()
    if p.is_dir():
        if (p / JSON_NAME).is_file():
            return p
        if (p / "final" / JSON_NAME).is_file():
            return p / "final"
        raise CheckpointError(f"{p} holds no {JSON_NAME} (nor final/{JSON_NAME})")
    if (BUILTIN_DIR / s / JSON_NAME).is_file():
        return BUILTIN_DIR / s
    raise CheckpointError(
        f"unknown model {s!r}: not a directory with {JSON_NAME} and not a built-in model "
        f"(built-in: {builtin_models() or 'none installed'})")
