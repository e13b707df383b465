"""Train the head router of ``head="auto"`` (:mod:`gfm_ase.runtime.router`) on a pretraining config's datasets and
write it next to a model's weights (``router.safetensors`` + ``router.json``).

    gfm pretrain-router pretraining/configs/gfm-mini.yaml --model gfm_ase/models/gfm-mini --errors 40
    python -m gfm_ase.pretraining.router ...   (the same)

The splits are the trainer's (:func:`gfm_ase.pretraining.data.open_datasets`: same seeds, ``max_structures`` and
``exclude_covered_by``): the router is fitted on the training splits only and evaluated on the validation and test
splits. Each head weighs the same in the loss (structures within a head uniformly), so a large dataset does not
swallow a small head. Heads the fitted router cannot tell apart on its own training data (in-sample confusion of a
pair above ``--merge-threshold``, e.g. the same generated cells labelled by two teachers) are grouped; a group
resolves to its first head in the model's order (or ``--prefer``'s).

``--errors N`` also evaluates the model on N held-out structures per dataset with the routed head and with the
dataset's own head (energy per atom and force component MAE, labels as the trainer saw them, i.e. after
``energy_offsets``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gfm_ase.elements import MAX_Z
from gfm_ase.runtime.router import (
    ACTIVATIONS,
    FEATURES,
    ROUTER_FORMAT,
    ROUTER_FORMAT_VERSION,
    ROUTER_JSON,
    ROUTER_WEIGHTS,
    HeadRouter,
    RouterError,
    check_features,
    feature_matrix,
    head_datasets,
    json_checksum,
)

if TYPE_CHECKING:
    from gfm_ase.graph.batch import AtomicGraph
    from gfm_ase.pretraining.config import PretrainConfig
    from gfm_ase.pretraining.data import DatasetSplits, Graphs

DEFAULT_FEATURES = ("composition", "periodic")  # size and density: no measurable gain (docs/router.md)
HELD_OUT = ("val", "test")


# ------------------------------------------------------------------------------------------------------- data
def dataset_arrays(d: DatasetSplits, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(element counts [n, MAX_Z], pbc [n, 3], cell [n, 3, 3]) of one split of a :class:`DatasetSplits`."""
    if d.store is None:  # in-memory graphs (no split indices)
        split_graphs = d.split(split)
        graphs = [split_graphs[k] for k in range(len(split_graphs))]
        counts = np.zeros((len(graphs), MAX_Z), dtype=np.int64)
        for r, g in enumerate(graphs):
            counts[r] = np.bincount(np.asarray(g.numbers), minlength=MAX_Z)[:MAX_Z]
        return (
            counts,
            np.array([np.asarray(g.pbc, bool) for g in graphs]).reshape(-1, 3),
            np.array([np.asarray(g.cell, float) for g in graphs]).reshape(-1, 3, 3),
        )
    assert d.split_indices is not None  # open_datasets sets them with the store
    idx = np.asarray(d.split_indices[split], dtype=np.int64)
    _, counts = d.store.composition(idx, elements=np.arange(MAX_Z))
    return counts, np.asarray(d.store.pbcs, bool)[idx].reshape(-1, 3), np.asarray(d.store.cells)[idx].reshape(-1, 3, 3)


def open_splits(
    config: str | Path | PretrainConfig, overrides: dict[str, Any] | None = None
) -> tuple[PretrainConfig, list[DatasetSplits]]:
    """The config (a path or a loaded :class:`~gfm_ase.pretraining.config.PretrainConfig`) and its datasets."""
    from gfm_ase.pretraining.config import load_config
    from gfm_ase.pretraining.data import open_datasets

    cfg = load_config(config, overrides or {}) if isinstance(config, (str, Path)) else config
    return cfg, open_datasets(cfg, cutoff=float(cfg.model.trunk.options.get("cutoff", 5.0)))


# ------------------------------------------------------------------------------------------------------ fitting
def fit_classifier(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    hidden: Sequence[int] = (),
    activation: str = "tanh",
    weight_decay: float = 1e-4,
    steps: int = 300,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """A softmax classifier (linear, or an MLP with ``hidden`` layers) on standardised descriptors, classes weighed
    equally, fitted full-batch with L-BFGS. Returns its tensors (``mean``, ``std``, ``layers.i.weight/bias``)."""
    torch.manual_seed(seed)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std[std < 1e-8] = 1.0
    xt = torch.as_tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    w = torch.as_tensor(np.where(counts > 0, 1.0 / np.maximum(counts, 1), 0.0)[y] / (counts > 0).sum())
    sizes = [x.shape[1], *hidden, n_classes]
    layers = [torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes[:-1], sizes[1:])]
    act = {"tanh": torch.tanh, "relu": torch.relu}[activation]
    params = [p for lay in layers for p in lay.parameters()]

    def forward(h: torch.Tensor) -> torch.Tensor:
        for i, lay in enumerate(layers):
            h = lay(h)
            if i < len(layers) - 1:
                h = act(h)
        return h

    opt = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (torch.nn.functional.cross_entropy(forward(xt), yt, reduction="none") * w).sum()
        loss = loss + weight_decay * sum((lay.weight**2).sum() for lay in layers)
        loss.backward()
        return loss

    opt.step(closure)
    out: dict[str, np.ndarray] = {"mean": mean, "std": std}
    for i, lay in enumerate(layers):
        out[f"layers.{i}.weight"] = lay.weight.detach().numpy().copy()
        out[f"layers.{i}.bias"] = lay.bias.detach().numpy().copy()
    return out


def merge_groups(confusion: np.ndarray, heads: list[str], order: list[str], threshold: float) -> list[list[str]]:
    """Groups of heads whose pairwise confusion (rate of i taken for j plus j for i, rows normalised) exceeds
    ``threshold``, merged transitively; each group and the list of groups follow ``order``."""
    parent = list(range(len(heads)))

    def find(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    for i in range(len(heads)):
        for j in range(i + 1, len(heads)):
            if rates[i, j] + rates[j, i] > threshold:
                parent[find(j)] = find(i)
    rank = {h: k for k, h in enumerate(order)}
    groups: dict[int, list[str]] = {}
    for i, h in enumerate(heads):
        groups.setdefault(find(i), []).append(h)
    out = [sorted(g, key=lambda h: rank[h]) for g in groups.values()]
    return sorted(out, key=lambda g: rank[g[0]])


def confusion_matrix(y: np.ndarray, pred: np.ndarray, n: int) -> np.ndarray:
    c = np.zeros((n, n), dtype=np.int64)
    np.add.at(c, (y, pred), 1)
    return c


# ------------------------------------------------------------------------------------------------------ training
def train_router(
    config_path: str | Path | PretrainConfig,
    model_dir: str | Path,
    *,
    features: Sequence[str] = DEFAULT_FEATURES,
    hidden: Sequence[int] = (),
    activation: str = "tanh",
    weight_decay: float = 1e-4,
    merge_threshold: float = 0.5,
    prefer: list[str] | None = None,
    errors: int = 0,
    overrides: dict[str, Any] | None = None,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Fit, evaluate and write the router of ``model_dir``; returns the written ``router.json`` document.

    ``config_path``: the pretraining config the model was trained with, a path or a loaded ``PretrainConfig`` (the
    trainer can call this at the end of a run with its own config and final model directory)."""
    from gfm_ase.checkpoint import read_model_json

    model_dir = Path(model_dir)
    features = check_features(list(features))
    if activation not in ACTIVATIONS:
        raise RouterError(f"unknown activation {activation!r}; known: {list(ACTIVATIONS)}")
    model_doc = read_model_json(model_dir)
    model_heads = [h["name"] for h in model_doc["config"]["heads"]]
    cfg, datasets = open_splits(config_path, overrides)
    heads = [h for h in model_heads if any(d.head == h for d in datasets)]
    missing = sorted({d.head for d in datasets} - set(model_heads))
    if missing:
        raise RouterError(f"config {config_path} trains heads {missing} that model {model_dir} does not have")
    bound = head_datasets(model_doc["config"]["heads"])
    cfg_sets = {h: sorted(d.name for d in datasets if d.head == h) for h in heads}
    if any(bound[h] != cfg_sets[h] for h in heads):
        raise RouterError(
            f"the model's heads were trained on { ({h: bound[h] for h in heads}) }, config "
            f"{config_path} has {cfg_sets}: use the config the model was trained with"
        )
    order = list(prefer or []) + [h for h in heads if h not in (prefer or [])]
    unknown = sorted(set(order) - set(heads))
    if unknown:
        raise RouterError(f"--prefer names head(s) {unknown} the router does not know; heads: {heads}")
    cls = {h: k for k, h in enumerate(heads)}

    def stack(split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        names: list[str] = []
        nums: list[np.ndarray] = []
        for d in datasets:
            counts, pbc, cell = dataset_arrays(d, split)
            if not len(counts):
                continue
            xs.append(feature_matrix(features, counts, pbc, cell))
            ys.append(np.full(len(counts), cls[d.head]))
            names += [d.name] * len(counts)
            nums.append(counts)
        return np.concatenate(xs), np.concatenate(ys), np.array(names), np.concatenate(nums)

    x, y, _, _ = stack("train")
    log(f"router: {len(y)} training structures, {x.shape[1]} descriptors, heads {heads}")
    tensors = fit_classifier(x, y, len(heads), hidden=tuple(hidden), activation=activation, weight_decay=weight_decay)
    doc: dict[str, Any] = {
        "format": ROUTER_FORMAT,
        "format_version": ROUTER_FORMAT_VERSION,
        "heads": heads,
        "features": features,
        "hidden": list(hidden),
        "activation": activation,
        "n_layers": len(hidden) + 1,
        "groups": [[h] for h in heads],
    }
    router = HeadRouter(doc, tensors, {})
    train_conf = confusion_matrix(y, router.probabilities(x).argmax(axis=1), len(heads))
    groups = merge_groups(train_conf, heads, order, merge_threshold)
    doc["groups"] = groups
    router = _router_for(model_doc, doc, tensors)

    metrics: dict[str, Any] = {"train_confusion": _named(train_conf, heads), "held_out": {}}
    hx, hy, hnames, hcounts = _held_out(stack)
    if len(hy):
        metrics["held_out"] = evaluate_routing(router, hx, hy, hnames, hcounts, heads)
        for name, row in metrics["held_out"]["datasets"].items():
            log(
                f"  {name:20s} {row['n']:6d} held out  head {row['head']:8s} accuracy {row['accuracy']:.3f}  "
                f"group accuracy {row['group_accuracy']:.3f}  routed to {row['routed_to']}"
            )
    if errors:
        metrics["errors"] = auto_errors(model_dir, model_doc, router, datasets, errors, log=log)
    doc.update(
        {
            "model": {
                "name": model_doc["config"].get("name"),
                "head_datasets": {h: bound[h] for h in heads},
                "weights_sha256": model_doc["weights_sha256"],
            },
            "training": {
                "config": Path(config_path).name if isinstance(config_path, (str, Path)) else cfg.model.name,
                "n_train": int(len(y)),
                "weight_decay": weight_decay,
                "merge_threshold": merge_threshold,
                "prefer": list(prefer or []),
                "class_weighting": "each head weighs the same",
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
            "metrics": metrics,
        }
    )
    write_router(model_dir, doc, tensors)
    log(f"router: wrote {model_dir / ROUTER_JSON} and {ROUTER_WEIGHTS} (groups {groups})")
    return doc


def _held_out(
    stack: Callable[[str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, ...]:
    parts = []
    for split in HELD_OUT:
        try:
            parts.append(stack(split))
        except ValueError:  # np.concatenate of nothing: no dataset has this split
            continue
    if not parts:
        return np.zeros((0, 0)), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=str), np.zeros((0, MAX_Z))
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(4))


def _router_for(model_doc: dict, doc: dict, tensors: dict) -> HeadRouter:
    from ase.data import atomic_numbers

    elements = {h["name"]: {atomic_numbers[e] for e in h.get("elements") or []} for h in model_doc["config"]["heads"]}
    return HeadRouter(doc, tensors, elements)


def _named(conf: np.ndarray, heads: list[str]) -> dict:
    return {h: {g: int(conf[i, j]) for j, g in enumerate(heads) if conf[i, j]} for i, h in enumerate(heads)}


def evaluate_routing(
    router: HeadRouter, x: np.ndarray, y: np.ndarray, names: np.ndarray, counts: np.ndarray, heads: list[str]
) -> dict[str, Any]:
    """Per dataset: accuracy of the full decision rule (the dataset's own head chosen), group accuracy (a head of
    its group chosen), the classifier's plain argmax accuracy, and where its structures were routed."""
    p = router.probabilities(x)
    group_of = {h: tuple(g) for g in router.groups for h in g}
    chosen = [router.decide(p[k], set(np.flatnonzero(counts[k]).tolist())).head for k in range(len(y))]
    out: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(names.tolist()):
        sel = np.flatnonzero(names == name)
        head = heads[int(y[sel[0]])]
        got = [chosen[k] for k in sel]
        routed = {h: got.count(h) for h in heads if got.count(h)}
        out[name] = {
            "head": head,
            "n": int(len(sel)),
            "accuracy": float(np.mean([g == head for g in got])),
            "group_accuracy": float(np.mean([group_of[g] == group_of[head] for g in got])),
            "argmax_accuracy": float(np.mean(p[sel].argmax(axis=1) == y[sel])),
            "routed_to": routed,
        }
    n = sum(r["n"] for r in out.values())
    return {
        "datasets": out,
        "n": n,
        "accuracy": sum(r["accuracy"] * r["n"] for r in out.values()) / max(n, 1),
        "group_accuracy": sum(r["group_accuracy"] * r["n"] for r in out.values()) / max(n, 1),
    }


# -------------------------------------------------------------------------------------------- errors of auto
def auto_errors(
    model_dir: Path,
    model_doc: dict,
    router: HeadRouter,
    datasets: list[DatasetSplits],
    n_per_dataset: int,
    *,
    seed: int = 0,
    log: Callable[[str], object] = print,
) -> dict[str, Any]:
    """Energy (meV/atom) and force (meV/A) MAE of the routed head and of the dataset's own head on a seeded sample
    of each dataset's held-out structures (labels as the trainer saw them)."""
    from dataclasses import replace

    from gfm_ase.checkpoint import load_model
    from gfm_ase.graph.batch import collate
    from gfm_ase.model.outputs import predict

    model = load_model(model_dir, dtype=torch.float64)
    model.inference_mode_()
    rng = np.random.default_rng([seed, 23])
    out: dict[str, Any] = {
        "model_weights_sha256": model_doc["weights_sha256"],
        "n_per_dataset": n_per_dataset,
        "datasets": {},
    }
    for d in datasets:
        graphs = [g for s in HELD_OUT for g in _sample(d.split(s), n_per_dataset, rng)][:n_per_dataset]
        graphs = [g for g in graphs if g.energy is not None][:n_per_dataset]
        if not graphs:
            continue
        acc: dict[str, list[float]] = {"auto": [0.0, 0, 0.0, 0], "own": [0.0, 0, 0.0, 0]}  # E sum, n, F sum, n
        n_other = 0
        for g in graphs:
            own = d.head
            assert g.energy is not None  # graphs without an energy were left out above
            auto = router.route(
                np.asarray(g.numbers),
                np.asarray(g.pbc, bool),
                np.asarray(g.cell, float),
            ).head
            n_other += auto != own
            picks = {"own": own, "auto": auto}
            batch = collate([replace(g, head=model.head_index(picks[k])) for k in ("own", "auto")], dtype=torch.float64)
            res = predict(model, batch, None, forces=g.forces is not None)
            n_at = len(g.numbers)
            for j, k in enumerate(("own", "auto")):
                acc[k][0] += abs(float(res["energy"][j].detach()) - float(g.energy)) / n_at
                acc[k][1] += 1
                if g.forces is not None:
                    f = res["forces"][j * n_at : (j + 1) * n_at].detach().numpy()
                    ok = np.isfinite(np.asarray(g.forces))
                    acc[k][2] += float(np.abs(f - np.asarray(g.forces))[ok].sum())
                    acc[k][3] += int(ok.sum())
        row: dict[str, Any] = {"head": d.head, "n": len(graphs), "n_routed_elsewhere": int(n_other)}
        for k, (e, ne, fs, nf) in acc.items():
            row[f"{k}_energy_mae_meV_atom"] = 1000 * e / ne
            row[f"{k}_forces_mae_meV_A"] = 1000 * fs / nf if nf else None
        out["datasets"][d.name] = row
        log(
            f"  {d.name:20s} n={row['n']:3d} routed elsewhere {n_other:3d}  E MAE own/auto "
            f"{row['own_energy_mae_meV_atom']:.1f}/{row['auto_energy_mae_meV_atom']:.1f} meV/atom  F MAE own/auto "
            f"{_fmt(row['own_forces_mae_meV_A'])}/{_fmt(row['auto_forces_mae_meV_A'])} meV/A"
        )
    return out


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _sample(graphs: Graphs, n: int, rng: np.random.Generator) -> list[AtomicGraph]:
    idx = np.sort(rng.permutation(len(graphs))[:n]) if len(graphs) > n else np.arange(len(graphs))
    return [graphs[int(k)] for k in idx]


# ------------------------------------------------------------------------------------------------------ report
def markdown(doc: dict) -> str:
    """The held-out routing table and the auto-vs-own-head error table of a ``router.json`` document."""
    m = doc.get("metrics") or {}
    held = m.get("held_out") or {}
    lines = [
        f"Router of {doc['model']['name']} (weights {doc['model']['weights_sha256'][:12]}): features "
        f"{' + '.join(doc['features'])}, {'linear' if not doc['hidden'] else 'MLP ' + str(doc['hidden'])}, "
        f"groups {' | '.join('/'.join(g) for g in doc['groups'])}.",
        "",
    ]
    if held:
        lines += [
            f"Held-out (val + test splits): accuracy {held['accuracy']:.3f}, group accuracy "
            f"{held['group_accuracy']:.3f} over {held['n']:,} structures.",
            "",
            "| dataset | head | held-out structures | accuracy | group accuracy | argmax | routed to |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for name, r in held["datasets"].items():
            routed = ", ".join(f"{h} {n}" for h, n in sorted(r["routed_to"].items(), key=lambda x: -x[1]))
            lines.append(
                f"| `{name}` | `{r['head']}` | {r['n']:,} | {r['accuracy']:.3f} | {r['group_accuracy']:.3f} "
                f"| {r['argmax_accuracy']:.3f} | {routed} |"
            )
    errors = m.get("errors")
    if errors:
        lines += [
            "",
            f"Errors of `auto` vs the dataset's own head ({errors['n_per_dataset']} held-out structures per "
            "dataset; energy MAE per atom, force MAE per component):",
            "",
            "| dataset | head | n | routed elsewhere | E own | E auto (meV/atom) | F own | F auto (meV/A) |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for name, r in errors["datasets"].items():
            lines.append(
                f"| `{name}` | `{r['head']}` | {r['n']} | {r['n_routed_elsewhere']} | "
                f"{_fmt(r['own_energy_mae_meV_atom'])} | {_fmt(r['auto_energy_mae_meV_atom'])} | "
                f"{_fmt(r['own_forces_mae_meV_A'])} | {_fmt(r['auto_forces_mae_meV_A'])} |"
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------------- writing
def write_router(model_dir: Path, doc: dict, tensors: dict[str, np.ndarray]) -> None:
    """``router.safetensors`` then ``router.json`` (with the weights' and its own sha256), each atomically."""
    import hashlib
    import os
    import tempfile

    from safetensors.numpy import save_file

    from gfm_ase.fileio import atomic_write_bytes, publish

    fd, tmp = tempfile.mkstemp(dir=model_dir, prefix=".router.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(
            {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()},
            tmp,
            metadata={"format": ROUTER_FORMAT},
        )
        digest = hashlib.sha256(Path(tmp).read_bytes()).hexdigest()
        publish(tmp, model_dir / ROUTER_WEIGHTS)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    doc["weights_file"] = ROUTER_WEIGHTS
    doc["weights_sha256"] = digest
    doc["json_sha256"] = json_checksum(doc)
    atomic_write_bytes(model_dir / ROUTER_JSON, json.dumps(doc, indent=2, sort_keys=True).encode())


# ----------------------------------------------------------------------------------------------------------- CLI
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="the pretraining YAML config the model was trained with")
    p.add_argument("--model", required=True, help="model directory (router files are written into it)")
    p.add_argument(
        "--features",
        default=",".join(DEFAULT_FEATURES),
        help=f"comma-separated descriptors from {list(FEATURES)} (default: %(default)s)",
    )
    p.add_argument("--hidden", default="", help="hidden layer sizes of an MLP, e.g. 32 or 64,32 (default: linear)")
    p.add_argument("--activation", default="tanh", choices=sorted(ACTIVATIONS))
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument(
        "--merge-threshold",
        type=float,
        default=0.5,
        help="group two heads when their in-sample confusion rates sum above this (default: %(default)s)",
    )
    p.add_argument("--prefer", default="", help="comma-separated head order within groups (default: model order)")
    p.add_argument(
        "--errors",
        type=int,
        default=0,
        metavar="N",
        help="also measure energy/force MAE of the routed vs the own head on N held-out structures per "
        "dataset (loads the model)",
    )
    p.add_argument("--markdown", metavar="FILE", help="also write the measured tables as Markdown to FILE")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "pretrain-router",
        help="train the head router of head='auto' and write it next to a model",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gfm_ase.checkpoint import CheckpointError
    from gfm_ase.cli.errors import report
    from gfm_ase.data import StoreError
    from gfm_ase.pretraining.config import ConfigError

    try:
        hidden = tuple(int(v) for v in args.hidden.split(",") if v.strip())
        doc = train_router(
            args.config,
            args.model,
            features=[f.strip() for f in args.features.split(",") if f.strip()],
            hidden=hidden,
            activation=args.activation,
            weight_decay=args.weight_decay,
            merge_threshold=args.merge_threshold,
            prefer=[h.strip() for h in args.prefer.split(",") if h.strip()],
            errors=args.errors,
        )
        if args.markdown:
            Path(args.markdown).write_text(markdown(doc))
    except (RouterError, CheckpointError, ConfigError, StoreError, OSError, ValueError) as exc:
        return report("gfm pretrain-router", exc, getattr(args, "debug", False))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m gfm_ase.pretraining.router ...`` == ``gfm pretrain-router ...``."""
    from gfm_ase.cli import main as gfm_main

    return gfm_main(["pretrain-router", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
