"""Where models come from: built-in names, local directories, or URLs cached with sha256 verification.

Built-in models live in ``gfm_ase/models/<name>/``. Besides the checksums inside ``model.json`` (which anyone editing
the file can recompute), the sha256 of both files of every built-in model is recorded here, in
:data:`BUILTIN_SHA256`, and checked whenever a built-in model is resolved by name. After replacing a built-in model,
print the new table with ``python -m gfm_ase.hub --print-builtin-sha256`` and paste it below.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

# gfm_ase.checkpoint (torch) is imported only where needed: the CLI's help texts ask for default_model() without
# loading torch. These two names equal gfm_ase.checkpoint's (tests/test_builtin_models.py checks).
JSON_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"

BUILTIN_DIR = Path(__file__).parent / "models"
# the default model: the first of these that is installed (gfm-base once its weights are in gfm_ase/models/)
DEFAULT_PREFERENCE = ("gfm-base", "gfm-mini")
BUILTIN_FILES = (JSON_NAME, WEIGHTS_NAME)

# sha256 of the files of every built-in model (python -m gfm_ase.hub --print-builtin-sha256)
BUILTIN_SHA256 = {
    "gfm-base": {
        "model.json": "cb55c9890454833564a96d46340e62205b84393508d5aa2fe581b929d37f55cf",
        "model.safetensors": "a628cacfc786cb7cdd530a348d172590b7518598ee180b7ac2bb6a3ee3b42003",
    },
    "gfm-mini": {
        "model.json": "93c033d91fb98b57662445d6737346af6d025b517e90e2b2a10fb976dd49d831",
        "model.safetensors": "34dafa627949ca7df7c65375c6b79fe9a4ba2166ecef8e2fe149d660b02c80a1",
    },
}


def builtin_models() -> list[str]:
    return sorted(p.name for p in BUILTIN_DIR.iterdir() if (p / JSON_NAME).is_file()) if BUILTIN_DIR.is_dir() else []


def default_model() -> str:
    """Name of the default model: ``gfm-base`` when its files are installed, else ``gfm-mini``."""
    for name in DEFAULT_PREFERENCE:
        if (BUILTIN_DIR / name / JSON_NAME).is_file():
            return name
    return DEFAULT_PREFERENCE[-1]


def default_model_help() -> str:
    """The "(default: ...)" phrase of command-line help texts, naming the current default model."""
    return f"(default: the built-in default model, currently {default_model()})"


def __getattr__(name: str) -> str:
    # DEFAULT_MODEL stays importable but is decided when asked for, like default_model()
    if name == "DEFAULT_MODEL":
        return default_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def builtin_sha256(directory: str | os.PathLike) -> dict[str, str]:
    """{file name: sha256} of the files of the built-in model in ``directory``."""
    from gfm_ase.checkpoint import sha256_file

    return {f: sha256_file(Path(directory) / f) for f in BUILTIN_FILES if (Path(directory) / f).is_file()}


def verify_builtin(name: str, directory: str | os.PathLike | None = None) -> Path:
    """Check the files of built-in model ``name`` against :data:`BUILTIN_SHA256`; returns its directory."""
    from gfm_ase.checkpoint import CheckpointError

    directory = Path(directory) if directory is not None else BUILTIN_DIR / name
    expected = BUILTIN_SHA256.get(name)
    if expected is None:
        raise CheckpointError(
            f"built-in model {name!r} has no recorded sha256 in gfm_ase/hub.py BUILTIN_SHA256 "
            "(maintainers: python -m gfm_ase.hub --print-builtin-sha256)"
        )
    got = builtin_sha256(directory)
    for f in BUILTIN_FILES:
        if f not in got:
            raise CheckpointError(f"built-in model {name!r}: {directory / f} is missing")
        if got[f] != expected.get(f):
            raise CheckpointError(
                f"built-in model {name!r}: {directory / f} has sha256 {got[f][:12]}..., the package records "
                f"{str(expected.get(f))[:12]}...: the installed file was modified or corrupted"
            )
    return directory


def cache_dir() -> Path:
    return Path(os.environ.get("GFM_ASE_CACHE", Path.home() / ".cache" / "gfm-ase"))


def fetch_url(url: str) -> Path:
    """``https://.../model.tar.gz#sha256=<hex>`` (or ``file://``): download once into the cache, verify, unpack.

    Atomic: the archive is written and unpacked inside a temporary folder of the cache and moved to
    ``<cache>/<sha256>/`` only after its sha256 matched and it held exactly one model; a failure leaves nothing.
    """
    from gfm_ase.checkpoint import CheckpointError

    base, _, frag = url.partition("#")
    if not frag.startswith("sha256="):
        raise CheckpointError(
            f"a model URL must end with '#sha256=<hex digest>' so the download can be verified: {url}"
        )
    digest = frag.split("=", 1)[1].lower()
    target = cache_dir() / digest
    if (target / JSON_NAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".download-") as tmp:
        archive = Path(tmp) / "model.tar.gz"
        h = hashlib.sha256()
        try:
            with urllib.request.urlopen(base) as r, open(archive, "wb") as f:  # noqa: S310 (user-given URL)
                for chunk in iter(lambda: r.read(1 << 20), b""):
                    h.update(chunk)
                    f.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot download model {base}: {exc}") from None
        if h.hexdigest() != digest:
            raise CheckpointError(
                f"download of {base} has sha256 {h.hexdigest()}, expected {digest}: refused (nothing was kept)"
            )
        out = Path(tmp) / "unpacked"
        try:
            with tarfile.open(archive) as tf:
                tf.extractall(out, filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise CheckpointError(f"{base} is not a readable model archive (.tar.gz): {exc}") from None
        found = [p.parent for p in out.rglob(JSON_NAME)]
        if len(found) != 1:
            raise CheckpointError(f"{base} must contain exactly one {JSON_NAME}, found {len(found)}")
        if target.exists():  # an incomplete leftover without model.json
            shutil.rmtree(target)
        os.replace(found[0], target)
    return target


_fetch_url = fetch_url  # the old private name


def resolve_model(model: str | os.PathLike | None) -> Path:
    """Return the directory that holds ``model.json`` for a built-in name, a path, a URL or a registered name
    (:mod:`gfm_ase.registry`: downloaded once into the cache, sha256-verified).

    A training output directory is accepted too: its ``final/`` model is used. None means :func:`default_model`.
    A built-in model's files are checked against :data:`BUILTIN_SHA256`.
    """
    from gfm_ase.checkpoint import CheckpointError

    if model is None:
        model = default_model()
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
        return verify_builtin(s)
    from gfm_ase.registry import load_registry

    registered = load_registry()
    if s in registered:
        return fetch_url(registered[s].fetch_url)
    raise CheckpointError(
        f"unknown model {s!r}: not a directory with {JSON_NAME}, not a built-in model "
        f"(built-in: {builtin_models() or 'none installed'}) and not in the model registry "
        f"(registered: {sorted(registered) or 'none'}; gfm models lists them)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m gfm_ase.hub", description="maintainer tools for built-in models")
    ap.add_argument(
        "--print-builtin-sha256",
        action="store_true",
        help="print the BUILTIN_SHA256 table of the installed built-in models (to paste into hub.py)",
    )
    ap.add_argument(
        "--make-portable",
        metavar="DIR",
        nargs="+",
        default=[],
        help="rewrite DIR/model.json without machine paths (gfm_ase.checkpoint.make_portable)",
    )
    args = ap.parse_args(argv)
    if not (args.print_builtin_sha256 or args.make_portable):
        ap.print_help()
        return 2
    from gfm_ase.checkpoint import make_portable

    for d in args.make_portable:
        print(f"{d}: {'rewritten' if make_portable(d) else 'already portable'}")
    if args.print_builtin_sha256:
        lines = ["BUILTIN_SHA256 = {"]
        for name in builtin_models():
            lines.append(f"    {json.dumps(name)}: {{")
            files = builtin_sha256(BUILTIN_DIR / name)
            lines += [f"        {json.dumps(f)}: {json.dumps(h)}," for f, h in files.items()]
            lines.append("    },")
        print("\n".join(lines + ["}"]))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
