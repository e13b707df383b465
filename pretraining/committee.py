"""A cheap last-layer committee for one head of a trained model (``gfm committee``, ``python -m
gfm_ase.pretraining.committee``).

The head's MLP is ``scale * (w . phi(s_i) + b) + shift + ref[Z_i]`` per atom, with ``phi`` its hidden layer on the
frozen trunk features ``s_i``. For a structure the energy is linear in the last layer ``(w, b)``:

    E = E_head + scale * (Phi . dw + n * db),        Phi = sum_i phi(s_i)

so a committee member is the head with its last layer moved by ``(dw_k, db_k)``, fitted by ridge least squares of
the per-atom energy residuals ``(E_label - E_head) / n`` on a bootstrap resample of the head's training split (one
trunk pass over the data, then closed-form fits: no gradient steps). The K corrections are centred (their mean is
removed), so the members' mean is the head itself and the committee measures only how much the last layer is
determined by the data. Energies only: fitting forces would need one backward pass through the trunk per hidden
unit and structure.

The raw spread of such a committee is much smaller than the errors (the last layer is well determined by thousands
of structures); its calibration factors ``energy_scale`` and ``forces_scale`` are fitted on the head's validation
split so that the fraction of errors within one predicted sigma is that of a Gaussian (68.3 % for energies; 60.8 %
for per-atom force-error norms, chi with 3 degrees of freedom), and recorded with the committee.

The members are saved as ordinary heads (``HEAD_c0``, ``HEAD_c1``, ...; same family, elements and references as the
head, ``metrics["committee_member_of"] = HEAD``), and the head records ``metrics["committee"]`` (members, scales,
calibration numbers, cost). The model file format is unchanged (safetensors + checksummed JSON, no pickle): older
gfm-ase versions read it as a model with more heads. :mod:`gfm_ase.runtime.uncertainty` turns the committee into
``energy_std`` / ``forces_std`` (calculator) and the ``uncertainty`` column (screening).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gfm_ase.runtime.uncertainty import COMMITTEE_KEY, MEMBER_KEY, Spread, calibration_factor

if TYPE_CHECKING:
    from gfm_ase.graph.batch import AtomicGraph
    from gfm_ase.model.gfm import GFMModel
    from gfm_ase.pretraining.config import PretrainConfig
    from gfm_ase.pretraining.data import DatasetSplits, Graphs


class CommitteeError(ValueError):
    """A committee that cannot be built from the given model, config and head."""


# --- data ----------------------------------------------------------------------------------------------------------
def head_datasets(
    cfg: PretrainConfig, head: str, cutoff: float, max_neighbors: int | None, model_heads: dict[str, dict[str, Any]]
) -> list[DatasetSplits]:
    """The datasets of ``head`` in the training config, opened with the trainer's own splits and energy offsets;
    their names and training-split sizes must match what the model records (else the config is not the model's)."""
    from gfm_ase.pretraining.data import open_datasets

    names = [ds.name for ds in cfg.datasets if ds.head == head]
    if not names:
        raise CommitteeError(
            f"the config has no dataset for head {head!r} (datasets: {[(ds.name, ds.head) for ds in cfg.datasets]})"
        )
    opened = [d for d in open_datasets(cfg, cutoff, max_neighbors) if d.head == head]
    recorded = {d.get("name"): d.get("n_train") for d in model_heads[head].get("datasets") or []}
    if recorded:
        found = {d.name: len(d.train) for d in opened}
        if found != recorded:
            raise CommitteeError(
                f"head {head!r}: the config's datasets and training splits {found} differ from the "
                f"model's record {recorded}: pass the config the model was trained with"
            )
    return opened


def _subset(n: int, limit: int | None, rng: np.random.Generator) -> np.ndarray:
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, limit, replace=False))


def last_layer(model: GFMModel, head: str) -> torch.nn.Linear:
    """The last Linear layer of ``head``'s MLP (gfm_ase.model.heads.EnergyHead)."""
    from gfm_ase.model.heads import EnergyHead

    energy_head = model.heads[head]
    assert isinstance(energy_head, EnergyHead)
    last = energy_head.mlp[-1]
    assert isinstance(last, torch.nn.Linear)
    return last


# --- features --------------------------------------------------------------------------------------------------------
class LastLayerInputs:
    """Per structure: ``Phi`` (sum over atoms of the head's hidden activations), ``n`` atoms, the head's energy and
    the label, from one forward pass (the inputs of the head's last Linear layer are captured by a hook)."""

    def __init__(self, model: GFMModel, head: str, batch_atoms: int = 2048) -> None:
        self.model = model
        self.head = head
        self.batch_atoms = batch_atoms

    def __call__(self, graphs: Graphs, log: Callable[[str], object] | None = None) -> dict[str, np.ndarray]:
        from gfm_ase.graph.batch import collate
        from gfm_ase.model.outputs import predict

        captured: list[torch.Tensor] = []
        last = last_layer(self.model, self.head)
        hook = last.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
        dtype = next(self.model.parameters()).dtype
        phi: list[np.ndarray] = []
        n: list[np.ndarray] = []
        e_head: list[np.ndarray] = []
        e_label: list[np.ndarray] = []
        try:
            chunk: list[AtomicGraph] = []
            atoms = 0
            total = len(graphs)
            t0 = time.perf_counter()
            for k in range(total + 1):
                g = graphs[k] if k < total else None
                if g is not None:
                    if g.energy is None:
                        continue
                    chunk.append(g)
                    atoms += g.n_atoms
                if chunk and (g is None or atoms >= self.batch_atoms):
                    captured.clear()
                    batch = collate(chunk, dtype=dtype)
                    with torch.no_grad():
                        out = predict(self.model, batch, self.head, forces=False)
                    h = captured[-1].to(torch.float64)
                    index = batch.batch.unsqueeze(1).expand(-1, h.shape[1])
                    sums = torch.zeros(batch.num_graphs, h.shape[1], dtype=torch.float64).scatter_add_(0, index, h)
                    phi.append(sums.numpy())
                    n.append(np.array([c.n_atoms for c in chunk], dtype=np.float64))
                    e_head.append(out["energy"].to(torch.float64).numpy())
                    e_label.append(np.array([c.energy for c in chunk], dtype=np.float64))
                    chunk, atoms = [], 0
                    if log is not None and len(phi) % 50 == 0:
                        log(f"  features: {k}/{total} structures, {time.perf_counter() - t0:.0f} s")
        finally:
            hook.remove()
        if not phi:
            raise CommitteeError("no structure with an energy label in the head's data")
        return {
            "phi": np.concatenate(phi),
            "n": np.concatenate(n),
            "e_head": np.concatenate(e_head),
            "e_label": np.concatenate(e_label),
        }


# --- fit -------------------------------------------------------------------------------------------------------------
def design(data: dict[str, np.ndarray], scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-atom design matrix [B, H + 1] (Phi / n, 1) and target (E_label - E_head) / (scale n)."""
    x = np.concatenate([data["phi"] / data["n"][:, None], np.ones((len(data["n"]), 1))], axis=1)
    y = (data["e_label"] - data["e_head"]) / (scale * data["n"])
    return x, y


def fit_members(x: np.ndarray, y: np.ndarray, members: int, ridge: float, seed: int) -> np.ndarray:
    """Centred last-layer corrections [K, H + 1]: ridge fits on bootstrap resamples of the rows, minus their mean."""
    if members < 2:
        raise CommitteeError(f"a committee needs two or more members, got {members}")
    rng = np.random.default_rng(seed)
    b, p = x.shape
    lam = ridge * float(np.einsum("ij,ij->", x, x)) / p  # relative to the mean diagonal of X^T X
    deltas = []
    for _ in range(members):
        w = np.bincount(rng.integers(0, b, b), minlength=b).astype(np.float64)  # bootstrap counts
        xtw = x.T * w
        deltas.append(np.linalg.solve(xtw @ x + lam * np.eye(p), xtw @ y))
    d = np.array(deltas)
    return d - d.mean(axis=0, keepdims=True)


def member_energy_offsets(data: dict[str, np.ndarray], deltas: np.ndarray, scale: float) -> np.ndarray:
    """E_k - E_head [B, K] (eV) of the members, from the linear last layer."""
    x = np.concatenate([data["phi"], data["n"][:, None]], axis=1)
    return scale * x @ deltas.T


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if len(a) < 3:
        return None
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


# --- model -----------------------------------------------------------------------------------------------------------
def add_members(model: GFMModel, head: str, deltas: np.ndarray, names: list[str]) -> None:
    """Add the members as heads: copies of ``head`` with last layer (w + dw_k, b + db_k)."""
    cfg = model.head_config(head)
    for k, name in enumerate(names):
        if name in model.head_names:
            raise CommitteeError(f"the model already has a head {name!r}")
        member_cfg = cfg.model_copy(
            update={
                "name": name,
                "datasets": [],
                "metrics": {MEMBER_KEY: head, "member": k},
                "description": f"committee member {k} of head {head!r} (last layer refitted on a bootstrap resample of "
                "its training energies; gfm_ase.pretraining.committee)",
            }
        )
        model.add_head(member_cfg)
        model.heads[name].load_state_dict(model.heads[head].state_dict())
        last = last_layer(model, name)
        with torch.no_grad():
            d = torch.as_tensor(deltas[k], dtype=last.weight.dtype)
            last.weight.add_(d[:-1].reshape(last.weight.shape))
            last.bias.add_(d[-1:])


def copy_companions(src: Path, out: Path) -> list[str]:
    """Copy the files that travel with the source model (e.g. its head router, which binds to the original heads'
    datasets and stays valid: the members have none) into ``out``; the model's own files are rewritten."""
    import shutil

    from gfm_ase.checkpoint import JSON_NAME, WEIGHTS_NAME

    copied = []
    for f in sorted(Path(src).iterdir()):
        if f.is_file() and not f.name.startswith(".") and f.name not in (JSON_NAME, WEIGHTS_NAME):
            shutil.copy2(f, Path(out) / f.name)
            copied.append(f.name)
    return copied


def build_committee(
    model_ref: str | Path,
    config: str | Path | PretrainConfig,
    head: str,
    out: str | Path,
    *,
    members: int = 8,
    seed: int = 0,
    ridge: float = 1e-4,
    max_structures: int | None = None,
    calibration_structures: int = 200,
    force_calibration_structures: int = 50,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Fit a last-layer committee for ``head`` of ``model_ref`` and write the augmented model to ``out``.

    config: the pretraining YAML (path) the model was trained with, or its loaded ``PretrainConfig``."""
    from gfm_ase.checkpoint import load_model, read_model_json, save_model
    from gfm_ase.graph.batch import collate
    from gfm_ase.hub import resolve_model
    from gfm_ase.model.outputs import predict
    from gfm_ase.pretraining.config import load_config

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise CommitteeError(f"output {out} exists and is not empty: choose a new directory")
    t_start = time.perf_counter()
    src = resolve_model(model_ref)
    doc = read_model_json(src)
    model = load_model(src, "cpu", torch.float64).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if head not in model.head_names:
        raise CommitteeError(f"model {model_ref} has no head {head!r} (heads: {model.head_names})")
    if model.head_config(head).metrics.get(COMMITTEE_KEY) or model.head_config(head).metrics.get(MEMBER_KEY):
        raise CommitteeError(f"head {head!r} already has a committee or is a committee member")
    names = [f"{head}_c{k}" for k in range(members)]
    cfg = load_config(config) if isinstance(config, (str, Path)) else config
    heads_doc = {h["name"]: h for h in doc["config"]["heads"]}
    datasets = head_datasets(cfg, head, model.cutoff, model.max_neighbors, heads_doc)
    scale = float(model.head_config(head).scale)
    rng = np.random.default_rng(seed)

    class Joined:  # the training (or validation) splits of the head's datasets, subsampled, as one sequence
        def __init__(self, split: str, limit: int | None) -> None:
            self.parts = [(d.split(split), i) for d in datasets for i in [np.arange(len(d.split(split)))]]
            total = sum(len(i) for _, i in self.parts)
            pick = _subset(total, limit, rng)
            flat = [(p, int(i)) for p, idx in self.parts for i in idx]
            self.items = [flat[k] for k in pick]

        def __len__(self) -> int:
            return len(self.items)

        def __getitem__(self, k: int) -> AtomicGraph:
            part, i = self.items[k]
            return part[i]

    train = Joined("train", max_structures)
    val = Joined("val", calibration_structures)
    log(
        f"committee for head {head!r}: {members} members, {len(train)} training and {len(val)} validation "
        f"structures from {[d.name for d in datasets]}"
    )
    inputs = LastLayerInputs(model, head)
    t0 = time.perf_counter()
    data = inputs(train, log)
    t_features = time.perf_counter() - t0
    x, y = design(data, scale)
    t0 = time.perf_counter()
    deltas = fit_members(x, y, members, ridge, seed)
    t_fit = time.perf_counter() - t0
    log(f"features of {len(x)} structures: {t_features:.1f} s; {members} ridge fits: {t_fit:.2f} s")

    # calibration on the validation split: energies from the linear last layer, forces from the members' gradients
    t0 = time.perf_counter()
    vdata = inputs(val)
    dev = member_energy_offsets(vdata, deltas, scale)
    sigma_e = np.concatenate([np.zeros((len(dev), 1)), dev], axis=1).std(axis=1)  # [head, members], eV
    err_e = vdata["e_head"] - vdata["e_label"]
    energy_scale = calibration_factor(err_e, sigma_e, 1)
    add_members(model, head, deltas, names)
    raw = Spread(model, [head, *names], "committee")
    f_err: list[np.ndarray] = []
    f_sigma: list[np.ndarray] = []
    vgraphs = [val[k] for k in range(len(val)) if val[k].forces is not None][:force_calibration_structures]
    dtype = next(model.parameters()).dtype
    for g in vgraphs:
        batch = collate([g], dtype=dtype)
        f_pred = predict(model, batch, head, forces=True)["forces"].detach().numpy()
        f_err.append(np.linalg.norm(f_pred - g.forces, axis=1))
        f_sigma.append(raw.evaluate(model, batch, "float64")["forces_std"])
    forces_scale = None
    if f_err:
        fe, fs = np.concatenate(f_err), np.concatenate(f_sigma)
        forces_scale = calibration_factor(fe, fs, 3)
    t_cal = time.perf_counter() - t0

    per_atom_err, per_atom_sigma = np.abs(err_e) / vdata["n"], energy_scale * sigma_e / vdata["n"]
    record: dict[str, Any] = {
        "members": names,
        "method": "last-layer ridge refits on bootstrap resamples of the training energies, "
        "centred on the head (gfm_ase.pretraining.committee)",
        "energy_scale": energy_scale,
        "forces_scale": forces_scale if forces_scale is not None else 1.0,
        "seed": seed,
        "ridge": ridge,
        "n_train_structures": int(len(x)),
        "datasets": [d.name for d in datasets],
        "calibration": {
            "split": "val",
            "n_structures": int(len(vdata["n"])),
            "n_force_structures": len(f_err),
            "energy_within_1sigma": float(np.mean(per_atom_err <= per_atom_sigma)),
            "energy_spearman": spearman(per_atom_err, per_atom_sigma),
            "raw_energy_std_median_meV_atom": float(np.median(sigma_e / vdata["n"]) * 1000),
            "energy_mae_meV_atom": float(np.mean(per_atom_err) * 1000),
        },
        "seconds": {"features": round(t_features, 2), "fit": round(t_fit, 3), "calibration": round(t_cal, 2)},
    }
    if f_err:
        record["calibration"].update(
            forces_spearman=spearman(fe, fs),
            forces_mae_norm_meV_A=float(np.mean(fe) * 1000),
            raw_forces_std_median_meV_A=float(np.median(fs) * 1000),
        )
    cfg_head = model.head_config(head)
    model.update_head_config(cfg_head.model_copy(update={"metrics": {**cfg_head.metrics, COMMITTEE_KEY: record}}))
    target_dtype = getattr(torch, str(doc.get("weights_dtype", "float32")))
    model = model.to(target_dtype)
    extra = dict(doc.get("extra") or {})
    extra["committee"] = {
        "head": head,
        "source_weights_sha256": doc["weights_sha256"],
        "members": names,
        "config": Path(config).name if isinstance(config, (str, Path)) else "(in memory)",
    }
    save_model(model, out, extra=extra)
    copied = copy_companions(src, out)
    record["seconds"]["total"] = round(time.perf_counter() - t_start, 1)
    record["copied"] = copied
    log(
        f"wrote {out}: head {head!r} + {members} committee members; energy_scale {energy_scale:.3g}, "
        f"forces_scale {record['forces_scale']:.3g}; validation: {record['calibration']}"
    )
    return record


# --- command line ----------------------------------------------------------------------------------------------------
def add_arguments(p: argparse.ArgumentParser) -> None:
    from gfm_ase.cli.options import positive

    p.add_argument("model", help="model: built-in name, model directory or training output directory")
    p.add_argument(
        "--config",
        required=True,
        help="the pretraining YAML the model was trained with (its datasets "
        "and splits are the committee's training data)",
    )
    p.add_argument("--head", required=True, help="the head to give a committee")
    p.add_argument("--members", type=positive(int), default=8, help="committee members (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ridge", type=float, default=1e-4, help="ridge strength relative to the mean diagonal of X^T X")
    p.add_argument(
        "--max-structures",
        type=positive(int),
        default=None,
        help="fit on a seeded random subset of at most N training structures (default: all)",
    )
    p.add_argument(
        "--calibration-structures",
        type=positive(int),
        default=200,
        help="validation structures for the energy calibration (default 200)",
    )
    p.add_argument(
        "--force-calibration-structures",
        type=positive(int),
        default=50,
        help="of those, structures for the force calibration (default 50)",
    )
    p.add_argument("-o", "--out", required=True, help="new model directory (must not exist or be empty)")


def run(args: argparse.Namespace) -> int:
    if args.ridge <= 0:
        raise CommitteeError(f"--ridge must be > 0, got {args.ridge}")
    build_committee(
        args.model,
        args.config,
        args.head,
        args.out,
        members=args.members,
        seed=args.seed,
        ridge=args.ridge,
        max_structures=args.max_structures,
        calibration_structures=args.calibration_structures,
        force_calibration_structures=args.force_calibration_structures,
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "committee",
        help="add a cheap last-layer committee (uncertainty) to a head of a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    from gfm_ase.cli import main as gfm_main

    return gfm_main(["committee", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
