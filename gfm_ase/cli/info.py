"""`gfm heads [--model M] [--json]`: list a model's heads and their level-of-theory metadata."""

from __future__ import annotations

import argparse

import json


def register(sub: argparse._SubParsersAction) -> None:
    from gfm_ase.hub import default_model_help

    p = sub.add_parser("heads", help="list the heads of a model with their metadata")
    p.add_argument("--model", default=None, help=f"built-in name, model directory or URL {default_model_help()}")
    p.add_argument(
        "--json",
        action="store_true",
        help="print the full metadata as JSON, with per-head totals (n_elements, n_train, "
        "surrogate_share) and each dataset's surrogate; an entry \"auto\" describes the model's "
        "head router (features, groups, held-out accuracy) when it ships one",
    )
    p.set_defaults(func=run)


def _share(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.0f} %"


def run(args: argparse.Namespace) -> int:
    from gfm_ase.calculator import GFMCalculator
    from gfm_ase.hub import default_model

    model = args.model if args.model is not None else default_model()
    from gfm_ase.runtime.router import AUTO, router_description
    from gfm_ase.runtime.uncertainty import COMMITTEE_KEY, MEMBER_KEY

    heads = GFMCalculator.available_heads(model)
    router = router_description(model)
    if args.json:
        print(json.dumps({**heads, **({AUTO: {"name": AUTO, "router": router}} if router else {})}, indent=2))
        return 0
    print(f"model {model}: {len(heads)} head(s)")
    for name, h in heads.items():
        if (h.get("metrics") or {}).get(MEMBER_KEY):
            continue  # committee members: one line under their head
        els = h["elements"]
        print(
            f"{name:12s} {h.get('level_of_theory') or '?':34s} {h.get('code') or '?':10s} "
            f"{h['n_elements'] or 'any':>3} elements  {h['n_train']:>7,} train structures  "
            f"surrogate share {_share(h['surrogate_share']):>5s}  "
            f"{' '.join(els[:12])}{' ...' if len(els) > 12 else ''}"
        )
        committee = (h.get("metrics") or {}).get(COMMITTEE_KEY)
        if committee:
            members = committee.get("members") or []
            print(
                f"{'':12s} committee of {len(members)} members ({', '.join(members)}): uncertainty=True; "
                f"calibration x{committee.get('energy_scale', 1.0):.3g} (energy), "
                f"x{committee.get('forces_scale', 1.0):.3g} (forces)"
            )
    if router:
        held = (router.get("metrics") or {}).get("held_out") or {}
        acc = f"held-out accuracy {100 * held['accuracy']:.1f} %" if "accuracy" in held else "no held-out data"
        print(
            f"{AUTO:12s} router over {', '.join(router['heads'])} ({' + '.join(router['features'])}; {acc}); "
            f"groups {' | '.join('/'.join(g) for g in router['groups'])} resolve to their first head"
        )
    return 0
