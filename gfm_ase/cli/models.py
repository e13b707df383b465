"""`gfm models [--json]`: the built-in, registered and cached models with their sha256 and model card."""

from __future__ import annotations

import argparse

import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "models",
        help="list the built-in, registered (downloadable by name) and cached models",
        description="List the models --model / GFMCalculator(model=...) accept by name: the built-in models (with "
        "the sha256 of their weights and their model card), the models of the registry "
        "(gfm_ase/model_registry.json plus the files in $GFM_ASE_REGISTRY: URL and archive sha256; "
        "downloaded on first use into $GFM_ASE_CACHE, default ~/.cache/gfm-ase, and verified), and the "
        "other models in the cache (from URLs with #sha256=).",
    )
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gfm_ase.registry import list_models

    rows = list_models()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        sha = r.get("weights_sha256") or ""
        if r["kind"] == "builtin":
            extra = f"heads {' '.join(r['heads'])}" + ("  (default)" if r["default"] else "")
        elif r["kind"] == "registry":
            extra = f"{'cached' if r['cached'] else 'not downloaded'}  {r['url']}  archive {r['archive_sha256'][:12]}"
        else:
            extra = f"archive {r['archive_sha256'][:12]}"
        print(
            f"{str(r['name']):16s} {r['kind']:8s} weights {sha[:12] or '?':12s}  card {r.get('card') or '-'}  {extra}"
        )
    if not any(r["kind"] == "registry" for r in rows):
        print("(the model registry lists no downloadable model; add one with $GFM_ASE_REGISTRY)")
    return 0
