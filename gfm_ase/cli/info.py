"""`gfm heads [--model M] [--json]`: list a model's heads and their level-of-theory metadata."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("heads", help="list the heads of a model with their metadata")
    p.add_argument("--model", default=None, help="built-in name, model directory or URL (default: gfm-mini)")
    p.add_argument("--json", action="store_true", help="print the full metadata as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from gfm_ase.calculator import GFMCalculator

    heads = GFMCalculator.available_heads(args.model)
    if args.json:
        print(json.dumps(heads, indent=2))
        return 0
    for name, h in heads.items():
        els = h.get("elements") or ["any"]
        print(f"{name:12s} {h.get('level_of_theory', '?'):32s} {h.get('code', '?'):12s} "
              f"{len(els)} elements: {' '.join(els[:20])}{' ...' if len(els) > 20 else ''}")
    return 0
