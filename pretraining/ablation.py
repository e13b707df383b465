"""The paper's claim, measured: held-out real-DFT errors of models trained on real DFT only, on surrogate labels only,
and on everything (``pretraining/configs/ablation/``), side by side.

    python -m gfm_ase.pretraining.ablation --config pretraining/configs/ablation/real-dft.yaml \\
        --mlearn-test work_data/stores/mlearn_test.h5 \\
        --model "(a) real DFT only=work_data/runs/ablation-real-dft" \\
        --model "(b) surrogate only=work_data/runs/ablation-surrogate" \\
        --model "(c) everything=work_data/runs/ablation-all" \\
        -o docs/models/ablation.json --markdown docs/models/ablation.md

Held-out real DFT, none of it in any model's training data:

* the mlearn test splits (Zuo et al. 2020) of Ge, Li, Mo, Si (elements the real-DFT training sets contain) and Cu,
  Ni (elements only the surrogate corpus contains), with a least-squares per-element energy offset fitted on the
  test structures themselves (the DFT settings differ from every training scale; the offset removes a constant per
  element and nothing else), forces as they are;
* the test splits of the FitSNAP Ta, InP and Fe sets, recomputed exactly as the trainer made them from ``--config``
  (whose datasets must carry the same split settings as the training configs), energies shifted by the config's
  ``energy_offsets`` (the scale all three models were trained or taught on), forces and stresses as they are.

Energies per atom (meV/atom), forces per Cartesian component (meV/A), stress per Voigt component (meV/A^3, ASE sign).
A model whose head does not cover an element gets ``-`` there (counted, not hidden).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel
    from gfm_ase.pretraining.config import PretrainConfig

HEAD = "omat"


def _fitsnap_rows(model: GFMModel, cfg: PretrainConfig, head: str) -> dict[str, dict[str, Any]]:
    from gfm_ase.pretraining.data import open_datasets
    from gfm_ase.pretraining.evaluate import evaluate_graphs

    covered = set(model.head_config(head).elements)
    out: dict[str, dict[str, Any]] = {}
    for d in open_datasets(cfg, model.cutoff, model.max_neighbors):
        if not d.name.startswith("fitsnap"):
            continue
        graphs = d.split("test")
        missing = sorted(set(d.elements) - covered)
        if missing:
            out[d.name] = {"not_covered": missing, "n_structures": len(graphs)}
            continue
        out[d.name] = evaluate_graphs(model, graphs, head)
    return out


def _mlearn_rows(model: GFMModel, store_path: Path, head: str) -> dict[str, dict[str, Any]]:
    from gfm_ase import GFMCalculator
    from gfm_ase.data import Store
    from gfm_ase.units import GPA
    from gfm_ase.validation.errors import run_errors

    store = Store(store_path)
    groups = np.asarray(store.groups, dtype=str)
    calc = GFMCalculator(model=model, head=head)
    covered = set(model.head_config(head).elements)
    out: dict[str, dict[str, Any]] = {}
    for el in sorted({g.split("/")[0] for g in groups}):
        idx = np.flatnonzero(np.char.startswith(groups, el + "/"))
        if el not in covered:
            out[el] = {"not_covered": [el], "n_structures": len(idx)}
            continue
        res = run_errors(calc, [store[int(i)] for i in idx], name=f"mlearn {el}", align="per-element")
        s = res.summary
        out[el] = {
            "energy_mae_meV_atom": s["energy_mae_meV_atom"],
            "forces_mae_meV_A": s["forces_mae_meV_A"],
            "stress_mae_meV_A3": None if s["stress_mae_GPa"] is None else 1000 * GPA * s["stress_mae_GPa"],
            "n_structures": s["n_structures"],
            "n_failed": s["n_failed"],
        }
    return out


def at_fidelity(model: GFMModel, head: str, fidelity: str) -> GFMModel:
    """``model`` with ``head`` evaluating at another of the model's fidelities (in place): the fidelity embedding's
    diagnostic, e.g. the `omat` head of a model trained on real DFT and a surrogate, asked as the surrogate."""
    if fidelity not in model.config.fidelities:
        raise ValueError(f"head {head!r}: fidelity {fidelity!r} is not one of the model's {model.config.fidelities}")
    model.update_head_config(model.head_config(head).model_copy(update={"fidelity": fidelity}))
    return model


def _cell(r: dict | None, key: str) -> str:
    if r is None:
        return "n/a"
    if "not_covered" in r:
        return "-"
    v = r.get(key)
    return "n/a" if v is None else f"{v:.1f}"


def markdown(report: dict) -> str:
    names = list(report["models"])
    lines = [
        "Held-out real DFT (energy MAE meV/atom / force MAE meV/A; FitSNAP also stress MAE meV/A^3). "
        "`-`: element not covered by the model's head.",
        "",
        "| held-out set | structures | " + " | ".join(names) + " |",
        "|---|---:|" + "---:|" * len(names),
    ]
    first = report["models"][names[0]]
    for el in first["mlearn"]:
        n = first["mlearn"][el]["n_structures"]
        cells = []
        for m in names:
            r = report["models"][m]["mlearn"].get(el)
            cells.append(f"{_cell(r, 'energy_mae_meV_atom')} / {_cell(r, 'forces_mae_meV_A')}")
        lines.append(f"| mlearn {el} (test, E aligned per element) | {n} | " + " | ".join(cells) + " |")
    for ds in first["fitsnap"]:
        n = first["fitsnap"][ds]["n_structures"]
        cells = []
        for m in names:
            r = report["models"][m]["fitsnap"].get(ds)
            cells.append(
                f"{_cell(r, 'energy_mae_meV_atom')} / {_cell(r, 'forces_mae_meV_A')} / {_cell(r, 'stress_mae_meV_A3')}"
            )
        lines.append(f"| {ds} (test split) | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, help="a config whose datasets define the FitSNAP test splits")
    ap.add_argument("--mlearn-test", required=True, type=Path)
    ap.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="LABEL=DIR[@HEAD[:FIDELITY]]",
        help="a model to evaluate, repeatable (training OUTDIR, model directory or built-in name), "
        "optionally with the head to evaluate (default --head) and, for a model with fidelities, the fidelity "
        "to evaluate it at (default: the head's own)",
    )
    ap.add_argument("--head", default=HEAD, help="head evaluated where a --model names none")
    ap.add_argument("-o", "--output", type=Path)
    ap.add_argument("--markdown", type=Path)
    args = ap.parse_args(argv)

    import torch

    from gfm_ase.checkpoint import load_model
    from gfm_ase.hub import resolve_model
    from gfm_ase.pretraining.config import load_config

    torch.set_num_threads(1)
    cfg = load_config(args.config)
    report: dict[str, Any] = {"config": str(args.config), "head": args.head, "models": {}}
    for item in args.model:
        label, sep, where = item.partition("=")
        where, _, head = where.partition("@")
        head, _, fidelity = head.partition(":")
        head = head or args.head
        if not sep or not label or not where:
            raise SystemExit(f"error: --model {item!r}: expected LABEL=DIR or LABEL=DIR@HEAD")
        t0 = time.perf_counter()
        path = resolve_model(where)
        model = load_model(path)
        if head not in model.head_names:
            raise SystemExit(f"error: --model {item!r}: no head {head!r} (heads: {model.head_names})")
        if fidelity:
            try:
                at_fidelity(model, head, fidelity)
            except ValueError as exc:
                raise SystemExit(f"error: --model {item!r}: {exc}") from None
        report["models"][label] = {
            "model": where,
            "head": head,
            **({"fidelity": fidelity} if fidelity else {}),
            "fitsnap": _fitsnap_rows(model, cfg, head),
            "mlearn": _mlearn_rows(model, args.mlearn_test, head),
            "wall_s": time.perf_counter() - t0,
        }
        print(f"{label}: done in {report['models'][label]['wall_s']:.0f} s", flush=True)
    md = markdown(report)
    print(md)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(report, indent=2))
    if args.markdown:
        args.markdown.write_text(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
