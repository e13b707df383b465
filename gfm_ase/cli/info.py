"""`gfm heads [--model M] [--json]`: list a model's heads and their level-of-theory metadata."""
from __future__ import annotations

import json


def register(sub) -> None:
    from gfm_ase.hub import default_model_help

    p = sub.add_parser("heads", help="list the heads of a model with their metadata")
    p.add_argument("--model", default=None,
                   help=f"built-in name, model directory or URL {default_model_help()}")
    p.add_argument("--json", action="store_true",
                   help="print the full metadata as JSON, with per-head totals (n_elements, n_train, "
                        "surrogate_share) and each dataset's surrogate")
    p.set_defaults(func=run)


def _share(x) -> str:
    return "?" if x is None else f"{100 * x:.0f} %"


def run(args) -> int:
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.hub import default_model

    model = args.model if args.model is not None else default_model()
    heads = GFMCalculator.available_heads(model)
    if args.json:
        print(json.dumps(heads, indent=2))
        return 0
    print(f"model {model}: {len(heads)} head(s)")
    for name, h in heads.items():
        els = h["elements"]
        print(f"{name:12s} {h.get('level_of_theory') or '?':34s} {h.get('code') or '?':10s} "
              f"{h['n_elements'] or 'any':>3} elements  {h['n_train']:>7,} train structures  "
              f"surrogate share {_share(h['surrogate_share']):>5s}  "
              f"{' '.join(els[:12])}{' ...' if len(els) > 12 else ''}")
    return 0
