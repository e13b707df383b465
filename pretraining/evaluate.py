"""Held-out errors of a trained model, per dataset and head, plus the mlearn test sets beside GAP and MTP.

    python -m gfm_ase.pretraining.evaluate pretraining/configs/gfm-mini.yaml runs/gfm-mini \
        --mlearn-test work_data/stores/mlearn_test.h5 -o docs/models/gfm-mini-eval.json --markdown OUT.md

The test split of every dataset is recomputed exactly as the trainer made it (same config, same split seeds).
Energies are compared per atom (meV/atom), forces per Cartesian component (meV/A), stress per Voigt component
(meV/A^3, ASE sign). Published mlearn numbers: Zuo et al., J. Phys. Chem. A 124, 731 (2020), test-set MAE as
transcribed in ../shared/README.md (ACEpotentials.jl); they are quoted, not recomputed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gfm_ase.checkpoint import load_model
from gfm_ase.hub import resolve_model

if TYPE_CHECKING:
    from gfm_ase.model.gfm import GFMModel
    from gfm_ase.pretraining.data import Graphs

# Zuo et al. 2020 test-set energy MAE (meV/atom) as listed in ../shared/README.md
PUBLISHED_ENERGY_MAE = {
    "GAP": {"Ni": 0.42, "Cu": 0.46, "Li": 0.49, "Mo": 2.24, "Si": 2.91, "Ge": 2.06},
    "MTP": {"Ni": 0.48, "Cu": 0.41, "Li": 0.49, "Mo": 2.83, "Si": 2.21, "Ge": 1.79},
}
UNITS = {"energy": "meV_atom", "forces": "meV_A", "stress": "meV_A3"}
PUBLISHED_FORCE_NOTE = "GAP/MTP force MAE: about 10-20 meV/A for Ni/Cu/Li and 50-90 meV/A for Mo/Si/Ge"


def evaluate_graphs(model: GFMModel, graphs: Graphs, head: str, batch_size: int = 16) -> dict[str, Any]:
    """Errors of ``model``'s ``head`` on a sequence of labelled AtomicGraphs: the trainer's own metrics
    (:mod:`gfm_ase.pretraining.metrics`), so these numbers are computed exactly as the logged val/test metrics."""
    from gfm_ase.pretraining import metrics

    p = next(model.parameters())
    precision = "float64" if p.dtype == torch.float64 else "float32"
    acc = metrics.evaluate_graphs(
        model,
        graphs,
        np.arange(len(graphs)),
        model.head_index(head),
        batch_size=batch_size,
        dtype=p.dtype,
        device=p.device,
        precision=precision,
        stress=True,
    )
    res: dict[str, Any] = metrics.summarize(acc)
    res["n_structures"] = len(graphs)
    return res


def mlearn_per_element(
    model: GFMModel,
    store_path: Path,
    head: str,
    cutoff: float,
    max_neighbors: int | None = None,
    offsets: dict[str, float] | None = None,
) -> dict[str, dict[str, Any]]:
    """Errors per element of the mlearn test sets. ``offsets`` (eV/atom per element, a dataset's
    ``energy_offsets``) are subtracted from the DFT energies first, i.e. the labels are put on the energy scale the
    model was trained to (the same shift the trainer applied to that dataset's training split)."""
    from gfm_ase.data import GraphDataset, Store
    from gfm_ase.pretraining.data import OffsetEnergies

    store = Store(store_path)
    covered = set(model.head_config(head).elements)
    groups = np.asarray(store.groups, dtype=str)
    out: dict[str, dict[str, Any]] = {}
    for el in sorted({g.split("/")[0] for g in groups}):
        if el not in covered:
            continue
        idx = np.flatnonzero(np.char.startswith(groups, el + "/"))
        graphs: Graphs = GraphDataset(
            store,
            cutoff,
            indices=idx,
            max_neighbors=max_neighbors,
        )
        if offsets is not None:
            if el not in offsets:
                continue
            graphs = OffsetEnergies(graphs, offsets)
        r = evaluate_graphs(model, graphs, head)
        r["published_energy_mae"] = {k: v.get(el) for k, v in PUBLISHED_ENERGY_MAE.items()}
        out[el] = r
    return out


def markdown(report: dict[str, Any]) -> str:
    who = report.get("model_name") or "model"
    lines = [
        "| dataset | head | test structures | energy MAE (meV/atom) | energy RMSE | force MAE (meV/A) | "
        "force RMSE | stress MAE (meV/A^3) |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def f(r: dict[str, Any], k: str, m: str) -> str:
        v = r.get(f"{k}_{m}_{UNITS[k]}")
        return "-" if v is None else f"{v:.1f}"

    for name, r in report["datasets"].items():
        lines.append(
            f"| {name} | {r['head']} | {r['n_structures']} | {f(r, 'energy', 'mae')} | "
            f"{f(r, 'energy', 'rmse')} | {f(r, 'forces', 'mae')} | {f(r, 'forces', 'rmse')} | "
            f"{f(r, 'stress', 'mae')} |"
        )
    if report.get("mlearn"):
        shifted = report.get("mlearn_offsets_from")
        scale = (
            f", DFT energies shifted by the `energy_offsets` of dataset `{shifted}` (the model's energy scale)"
            if shifted
            else ", raw DFT energies"
        )
        head = report.get("mlearn_head", "omat")
        lines += [
            "",
            f"mlearn test sets (Zuo et al. 2020 splits), head `{head}`{scale}:",
            "",
            f"| element | structures | {who} energy MAE (meV/atom) | GAP | MTP | {who} force MAE (meV/A) |",
            "|---|---|---|---|---|---|",
        ]
        for el, r in report["mlearn"].items():
            p = r["published_energy_mae"]
            lines.append(
                f"| {el} | {r['n_structures']} | {f(r, 'energy', 'mae')} | {p['GAP']} | {p['MTP']} | "
                f"{f(r, 'forces', 'mae')} |"
            )
        lines.append(f"\n{PUBLISHED_FORCE_NOTE}.")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", help="the pretraining YAML the model was trained with")
    ap.add_argument("model", help="model directory, training OUTDIR or built-in name")
    ap.add_argument("--split", default="test", choices=["test", "val"])
    ap.add_argument("--mlearn-test", default=None, help="store with the mlearn test sets (groups 'El/kind')")
    ap.add_argument("--mlearn-head", default="omat")
    ap.add_argument(
        "--mlearn-offsets-from",
        default=None,
        metavar="DATASET",
        help="subtract this configured dataset's energy_offsets from the mlearn DFT energies (compare on "
        "the energy scale the model was trained to; elements without an offset are skipped)",
    )
    ap.add_argument("--max-structures", type=int, default=None, help="cap per dataset (seeded subset)")
    ap.add_argument("-o", "--output", default=None, help="write the report as JSON here")
    ap.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = ap.parse_args(argv)

    from gfm_ase.pretraining.config import load_config
    from gfm_ase.pretraining.data import open_datasets

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg = load_config(args.config)
    model = load_model(resolve_model(args.model))
    datasets = open_datasets(cfg, model.cutoff, model.max_neighbors)
    offsets = None
    if args.mlearn_offsets_from is not None:
        spec = {d.name: d for d in cfg.datasets}.get(args.mlearn_offsets_from)
        if spec is None:
            raise SystemExit(
                f"error: --mlearn-offsets-from: no dataset {args.mlearn_offsets_from!r} in "
                f"{args.config} (datasets: {', '.join(d.name for d in cfg.datasets)})"
            )
        if not spec.energy_offsets:
            raise SystemExit(f"error: --mlearn-offsets-from: dataset {spec.name!r} has no energy_offsets")
        offsets = dict(spec.energy_offsets)
    where = args.model if "/" not in args.model else Path(args.model).name  # no machine paths in reports
    report: dict[str, Any] = {
        "model": where,
        "model_name": model.config.name,
        "config": str(args.config),
        "split": args.split,
        "datasets": {},
        "mlearn": {},
        "mlearn_head": args.mlearn_head,
        "mlearn_offsets_from": args.mlearn_offsets_from,
    }
    for d in datasets:
        graphs = d.split(args.split)
        if len(graphs) == 0:
            continue
        if args.max_structures and len(graphs) > args.max_structures:
            sel = np.random.default_rng(0).permutation(len(graphs))[: args.max_structures]
            graphs = [graphs[int(k)] for k in np.sort(sel)]
        r = evaluate_graphs(model, graphs, d.head)
        r["head"] = d.head
        report["datasets"][d.name] = r
        print(
            f"{d.name:16s} {d.head:6s} n={r['n_structures']:5d} "
            + "  ".join(
                f"{k} MAE {r[f'{k}_mae_{u}']:.1f} {u}" for k, u in UNITS.items() if r.get(f"{k}_mae_{u}") is not None
            ),
            flush=True,
        )
    if args.mlearn_test:
        report["mlearn"] = mlearn_per_element(
            model, Path(args.mlearn_test), args.mlearn_head, model.cutoff, model.max_neighbors, offsets=offsets
        )
        for el, r in report["mlearn"].items():
            print(
                f"mlearn {el}: energy MAE {r['energy_mae_meV_atom']:.2f} meV/atom (GAP "
                f"{r['published_energy_mae']['GAP']}, MTP {r['published_energy_mae']['MTP']}), force MAE "
                f"{r['forces_mae_meV_A']:.0f} meV/A",
                flush=True,
            )
    report["wall_s"] = time.perf_counter() - t0
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(report, indent=2))
    if args.markdown:
        Path(args.markdown).write_text(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
