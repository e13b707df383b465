"""``finetune(model, train, outdir=..., config=...)``: one fine-tuning run, its optional from-scratch baseline and
the forgetting report, written to OUTDIR (the layout is documented in finetune_zoo/README.md).

OUTDIR/final/        the fine-tuned model with every head (``GFMCalculator(model=OUTDIR, head=...)``)
OUTDIR/logs/         train.csv / val.csv of the fine-tuning run (pretraining trainer format)
OUTDIR/scratch/      with ``baseline="scratch"``: the from-scratch run (same layout)
OUTDIR/metrics.json  validation/test errors of both, the forgetting report, elements, wall times, settings
"""

from __future__ import annotations


import datetime as _dt
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence, overload

import numpy as np
import torch
from ase.data import atomic_numbers, chemical_symbols

from gfm_ase.finetune_zoo.config import FinetuneConfig
from gfm_ase.finetune_zoo.data import Selection, StoreCache, capped, task_datasets
from gfm_ase.finetune_zoo.forgetting import ForgettingReport
from gfm_ase.finetune_zoo.heldout import HeadData, find_head_data
from gfm_ase.finetune_zoo.strategies import FinetuneTrainer, make_plan
from gfm_ase.checkpoint import load_model, read_model_json
from gfm_ase.fileio import atomic_write_bytes
from gfm_ase.config import HeadConfig, ModelConfig, TrunkConfig
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.precision import parameter_dtype
from gfm_ase.pretraining.config import (
    CheckpointSpec,
    DatasetSpec,
    HeadSpec,
    LoggingSpec,
    ModelSpec,
    ParallelSpec,
    PretrainConfig,
    SamplingSpec,
    ValidationSpec,
)
from gfm_ase.pretraining.data import DatasetSplits, fit_head_constants

METRICS_FORMAT = "gfm-ase-finetune-metrics"
STRIP = ("step", "epoch", "split", "kind", "name")


class FinetuneError(ValueError):
    """A fine-tuning request that cannot run as asked (message says why and what to do)."""


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "processor": platform.processor() or platform.machine(),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@overload
def _as_selection(x: None) -> None: ...


@overload
def _as_selection(x: str | os.PathLike[str] | Selection) -> Selection: ...


def _as_selection(x: str | os.PathLike[str] | Selection | None) -> Selection | None:
    if x is None or isinstance(x, Selection):
        return x
    return Selection(x)


def _fit_new_references(ds: DatasetSplits, known: dict[str, float], new: list[str]) -> tuple[dict[str, float], str]:
    """Least-squares references of the elements ``new`` from the energies left after subtracting the known
    references, on the training split only (continuing a head on data with elements it has not seen)."""
    store, splits = ds.store, ds.split_indices
    assert store is not None and splits is not None  # task_datasets sets both
    idx = splits["train"]
    energies = np.asarray(store.energies, dtype=np.float64)[idx]
    has = np.isfinite(energies)
    if not new:
        return {}, ""
    if not has.any():
        return {e: 0.0 for e in new}, (
            f"no energy labels: reference energies of {new} are unknown (set to 0); "
            "energies of structures containing them are not meaningful"
        )
    zs, counts = store.composition(idx)
    syms = [chemical_symbols[int(z)] for z in zs]
    known_part = counts @ np.array([known.get(s, 0.0) for s in syms])
    cols = [syms.index(e) for e in new]
    a = counts[has][:, cols].astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, energies[has] - known_part[has], rcond=None)
    return {e: float(c) for e, c in zip(new, coef)}, ""


def _target_head(
    cfg: FinetuneConfig, base: GFMModel, ds: DatasetSplits, fresh: bool
) -> tuple[HeadConfig, list[str], str]:
    """The config of the head that trains: a new head with constants fitted on the task's training split
    (``fresh``), or the existing head with references added for the elements it has not seen.
    Returns (config, elements new to the head, note)."""
    if fresh:
        c = fit_head_constants([ds], cfg.head.name, "force_rms", "mean", 20000, cfg.seed)
        hidden = cfg.head.hidden or list(base.config.heads[0].hidden)
        return (
            HeadConfig(
                **cfg.head.identity(),
                elements=c["elements"],
                reference_energies=c["reference_energies"],
                scale=c["scale"],
                shift=c["shift"],
                hidden=hidden,
                datasets=[ds.provenance],
                metrics={"normalisation": c["stats"]},
            ),
            list(c["elements"]),
            "",
        )
    old = base.head_config(cfg.head.name)
    new = [e for e in ds.elements if e not in old.elements] if old.elements else []
    refs, note = _fit_new_references(ds, old.reference_energies, new)
    elements = sorted(set(old.elements) | set(ds.elements), key=lambda e: atomic_numbers[e]) if old.elements else []
    h = old.model_copy(
        update={
            "elements": elements,
            "reference_energies": {**old.reference_energies, **refs},
            "datasets": [*old.datasets, ds.provenance],
        }
    )
    return HeadConfig(**h.model_dump()), new, note


def _run_config(
    cfg: FinetuneConfig,
    model_name: str,
    trunk: TrunkConfig,
    datasets: list[DatasetSplits],
    weights: list[float],
    hidden: list[int],
    lr: float,
) -> PretrainConfig:
    heads: list[HeadSpec] = []
    for d in datasets:
        if d.head not in [h.name for h in heads]:
            # model_validate: mypy does not see the positional Field defaults of gfm_ase.config's head fields
            heads.append(HeadSpec(name=d.head, hidden=hidden))
    return PretrainConfig(
        seed=cfg.seed,
        precision=cfg.precision,
        device=cfg.device,
        model=ModelSpec(name=model_name, trunk=trunk),
        heads=heads,
        datasets=[
            DatasetSpec(
                name=d.name,
                path=d.provenance.get("path", "-"),
                head=d.head,
                sampling_weight=w,
                loss_weight=d.loss_weight,
            )
            for d, w in zip(datasets, weights)
        ],
        sampling=SamplingSpec(alpha=0.0, batch_size=cfg.batch_size, steps_per_epoch=cfg.steps, epochs=1),
        loss=cfg.loss,
        optim=cfg.optim.schedule(lr, cfg.steps),
        ema=cfg.ema,
        checkpoint=CheckpointSpec(every_steps=cfg.steps, keep=1),
        validation=ValidationSpec(every_steps=None, batch_size=cfg.eval_batch_size),
        logging=LoggingSpec(every_steps=max(1, min(10, cfg.steps // 10)), tensorboard="off", progress=False),
        parallel=ParallelSpec(launcher="none"),
    )


def _rows(summary: dict[str, Any], split: str, dataset: str) -> dict[str, Any]:
    for r in summary.get(split, []):
        if r["kind"] == "dataset" and r["name"] == dataset:
            return {k: v for k, v in r.items() if k not in STRIP}
    return {}


def finetune(
    model: str | os.PathLike[str],
    train: str | os.PathLike[str] | Selection,
    *,
    outdir: str | os.PathLike[str],
    config: FinetuneConfig,
    val: str | os.PathLike[str] | Selection | None = None,
    test: str | os.PathLike[str] | Selection | None = None,
    task_name: str | None = None,
    n_train: int | None = None,
    replay_config: str | Path | None = None,
    data_dirs: Sequence[str | Path] = (),
    command: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Fine-tune ``model`` (name, directory or URL) on ``train`` (a store path or :class:`Selection`); see the
    module documentation for what OUTDIR receives. Returns the metrics dict written to OUTDIR/metrics.json."""
    from gfm_ase.runtime import resolve_device
    from gfm_ase.hub import resolve_model

    cfg = config
    head_name = cfg.head.name
    outdir = Path(outdir)
    if (outdir / "metrics.json").exists() or (outdir / "final").exists():
        raise FinetuneError(
            f"{outdir} already holds a fine-tuning run; choose another output directory (nothing was overwritten)"
        )
    model_dir = resolve_model(model)
    doc = read_model_json(model_dir)
    base = load_model(model_dir, device="cpu")
    device = resolve_device(cfg.device)
    exists = head_name in base.head_names
    strategy = cfg.strategy
    if strategy in ("frozen", "full") and exists:
        raise FinetuneError(
            f"the model already has a head {head_name!r}: use --strategy continue (or replay) to keep "
            f"training it, or choose a new head name (heads: {base.head_names})"
        )
    if strategy == "continue" and not exists:
        raise FinetuneError(
            f"--strategy continue needs an existing head; {head_name!r} is not one of {base.head_names}"
        )
    name = task_name or Path(str(_as_selection(train).path)).stem
    stores = StoreCache()
    t_start = time.perf_counter()
    ds = task_datasets(
        name,
        head_name,
        _as_selection(train),
        _as_selection(val),
        _as_selection(test),
        cutoff=base.cutoff,
        max_neighbors=base.max_neighbors,
        n_train=n_train,
        val_fraction=cfg.val_fraction,
        split_seed=cfg.split_seed,
        eval_max_structures=cfg.eval_max_structures,
        stores=stores,
    )

    # elements: which the trunk has seen (through any head), which are new to the head
    seen = sorted({e for h in base.config.heads for e in h.elements}, key=lambda e: atomic_numbers[e])
    unseen = [e for e in ds.elements if seen and e not in seen]
    target_cfg, new_to_head, ref_note = _target_head(cfg, base, ds, fresh=not exists)
    notes = [n for n in [ref_note] if n]
    if unseen:
        notes.append(f"elements {unseen} were never seen by the pretrained trunk (no head was trained on them)")

    # the other heads' pretraining data: replay and the forgetting report
    head_data: dict[str, HeadData] = {}
    if cfg.forgetting_report or strategy == "replay":
        head_data = find_head_data(
            doc,
            list(base.config.heads),
            replay_config=replay_config,
            data_dirs=data_dirs,
            cutoff=base.cutoff,
            max_neighbors=base.max_neighbors,
        )
    for h, hd in head_data.items():
        if not hd.ok:
            notes.append(f"head {h!r}: held-out data unavailable ({hd.reason})")
            log(
                f"[finetune] head {h!r}: pretraining data unavailable, left out of the "
                f"{'forgetting report' if cfg.forgetting_report else 'replay'}: {hd.reason}"
            )
    forgetting = None
    if cfg.forgetting_report:
        forgetting = ForgettingReport(
            head_data,
            cfg.forgetting_max_structures,
            seed=cfg.split_seed,
            batch_size=cfg.eval_batch_size,
            precision=cfg.precision,
        )
    log(
        f"[finetune] {name}: strategy {strategy}, head {head_name!r} ({'existing' if exists else 'new'}), "
        f"{len(ds.train)} train / {len(ds.val)} val / {len(ds.test)} test structures, elements {ds.elements}"
        + (f", unseen by the trunk {unseen}" if unseen else "")
    )
    t0 = time.perf_counter()
    if forgetting is not None:
        forgetting.evaluate_before(base.to(device=device, dtype=parameter_dtype(cfg.precision)), device=device)
        base = base.cpu()
    t_forget_before = time.perf_counter() - t0

    datasets, weights = [ds], [1.0]
    replay_heads: list[str] = []
    if strategy == "replay":
        replay = [(h, d) for h, hd in head_data.items() if hd.ok for d in hd.datasets if len(d.train)]
        if not replay:
            raise FinetuneError(
                "--strategy replay needs the pretraining data of the model's heads, none was found: "
                + "; ".join(f"{h}: {hd.reason}" for h, hd in head_data.items())
                + " (pass --replay-config PRETRAIN.yaml and/or --data-dir DIR)"
            )
        probs = np.array([float(d.provenance.get("sampling_probability") or np.sqrt(len(d.train))) for _, d in replay])
        probs = probs / probs.sum()
        for (h, d), p in zip(replay, probs):
            k = len(datasets)
            rd = DatasetSplits(
                name=d.name if d.name != name else f"replay-{d.name}",
                head=h,
                train=capped(d.train, cfg.replay_max_structures, cfg.split_seed + k),
                val=capped(d.val, cfg.forgetting_max_structures, cfg.split_seed + k),
                test=capped(d.test, cfg.forgetting_max_structures, cfg.split_seed + k),
                loss_weight=d.loss_weight,
                elements=d.elements,
                provenance=d.provenance,
            )
            datasets.append(rd)
            weights.append(float(cfg.replay_fraction * p))
            if h not in replay_heads:
                replay_heads.append(h)
        weights[0] = 1.0 - cfg.replay_fraction
    plan = make_plan(
        strategy,
        head_name,
        not exists,
        replay_heads,
        cfg.optim.trunk_lr_factor,
        [atomic_numbers[e] for e in unseen],
        cfg.train_new_element_embeddings,
        pretrained_heads=base.head_names,
    )
    if exists:  # the continued head keeps its place
        heads = [target_cfg if h.name == head_name else h for h in base.config.heads]
    else:
        heads = [*base.config.heads, target_cfg]
    model_cfg = base.config.model_copy(update={"heads": heads})  # everything else (trunk, pair term) as the base
    run_cfg = _run_config(cfg, base.config.name, base.config.trunk, datasets, weights, target_cfg.hidden, cfg.optim.lr)

    base_extra = doc.get("extra") or {}
    history = list(base_extra.get("finetune", []))
    this_run = {
        "head": head_name,
        "strategy": strategy,
        "new_head": not exists,
        "task": name,
        "base_model": {"path": str(model_dir), "name": base.config.name, "weights_sha256": doc.get("weights_sha256")},
        "config": cfg.model_dump(mode="json"),
        "n_train": len(ds.train),
        "elements_unseen_by_trunk": unseen,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    extra = {k: v for k, v in base_extra.items() if k != "finetune"}
    extra["finetune"] = history + [this_run]
    target_metrics = {
        "strategy": strategy,
        "base_model": base.config.name,
        "n_train": len(ds.train),
        "elements_unseen_by_trunk": unseen,
        "elements_new_to_head": new_to_head,
    }

    t0 = time.perf_counter()
    trainer = FinetuneTrainer(
        run_cfg,
        outdir,
        base_model=base,
        model_config=model_cfg,
        plan=plan,
        datasets=datasets,
        forgetting=forgetting,
        extra=extra,
        target_metrics=target_metrics,
        zero_init_head=cfg.zero_init_head,
    )
    n_trainable = 0
    for n, p in trainer.model.named_parameters():
        if p.requires_grad:
            mask = trainer.gradient_masks.get(n)
            n_trainable += p.numel() if mask is None else int((mask.expand_as(p) != 0).sum())
    summary = trainer.fit()
    t_ft = time.perf_counter() - t0
    losses = [r["loss"] for r in trainer.history]
    finetuned = {
        "val": _rows(summary, "val", ds.name),
        "test": _rows(summary, "test", ds.name),
        "wall_s": t_ft,
        "trainable_parameters": int(n_trainable),
        "model_dir": str(outdir / "final"),
        "loss_first": float(np.mean(losses[:5])) if losses else None,
        "loss_last": float(np.mean(losses[-5:])) if losses else None,
    }

    scratch = None
    if cfg.baseline == "scratch":
        fresh_cfg = target_cfg if not exists else _target_head(cfg, base, ds, fresh=True)[0]
        fresh_cfg = fresh_cfg.model_copy(update={"hidden": target_cfg.hidden})
        s_cfg = ModelConfig(
            name=f"{head_name}-from-scratch",
            trunk=base.config.trunk,
            repulsion=base.config.repulsion,
            fidelities=base.config.fidelities,
            heads=[fresh_cfg],
        )  # the same architecture as the fine-tuned model, pair term included
        s_run = _run_config(
            cfg, s_cfg.name, base.config.trunk, [ds], [1.0], fresh_cfg.hidden, cfg.optim.scratch_lr or cfg.optim.lr
        )
        s_plan = make_plan("scratch", head_name, True, [], 1.0, [], False)
        t0 = time.perf_counter()
        s_trainer = FinetuneTrainer(
            s_run,
            outdir / "scratch",
            base_model=None,
            model_config=s_cfg,
            plan=s_plan,
            datasets=[ds],
            extra={"baseline_of": str(outdir / "final")},
            target_metrics={"strategy": "scratch", "n_train": len(ds.train)},
            zero_init_head=cfg.zero_init_head,
        )
        s_summary = s_trainer.fit()
        s_losses = [r["loss"] for r in s_trainer.history]
        scratch = {
            "val": _rows(s_summary, "val", ds.name),
            "test": _rows(s_summary, "test", ds.name),
            "wall_s": time.perf_counter() - t0,
            "model_dir": str(outdir / "scratch" / "final"),
            "trainable_parameters": int(sum(p.numel() for p in s_trainer.model.parameters())),
            "loss_first": float(np.mean(s_losses[:5])) if s_losses else None,
            "loss_last": float(np.mean(s_losses[-5:])) if s_losses else None,
        }

    metrics = {
        "format": METRICS_FORMAT,
        "format_version": 1,
        "model": {
            "from": str(model),
            "path": str(model_dir),
            "name": base.config.name,
            "weights_sha256": doc.get("weights_sha256"),
            "heads": base.head_names,
        },
        "task": {
            "name": name,
            **{k: ds.provenance[k] for k in ("path", "n_train", "n_train_available", "n_val", "n_test")},
            "val_path": ds.provenance["val"]["path"],
            "test_path": ds.provenance["test"]["path"] if ds.provenance["test"] else None,
            "elements": ds.elements,
            "label_counts": ds.provenance["label_counts"],
        },
        "strategy": strategy,
        "head": head_name,
        "new_head": not exists,
        "elements_unseen_by_trunk": unseen,
        "elements_new_to_head": new_to_head,
        "reference_energies": {e: target_cfg.reference_energies.get(e) for e in ds.elements},
        "replay": (
            {
                "fraction": cfg.replay_fraction,
                "datasets": [d.name for d in datasets[1:]],
                "heads": replay_heads,
                "sampled_shares": dict(zip([d.name for d in datasets], map(float, trainer.probs))),
            }
            if strategy == "replay"
            else None
        ),
        "finetuned": finetuned,
        "scratch": scratch,
        "forgetting": forgetting.report() if forgetting is not None else None,
        "forgetting_wall_s": t_forget_before,
        "notes": notes,
        "config": cfg.model_dump(mode="json"),
        "wall_s": time.perf_counter() - t_start,
        "command": command,
        "machine": machine_info(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_bytes(outdir / "metrics.json", json.dumps(metrics, indent=1).encode())
    log(summary_line(metrics))
    return metrics


def _fmt(v: float | None, nd: int = 1) -> str:
    return "-" if v is None else f"{v:.{nd}f}"


def headline_split(m: dict[str, Any]) -> str:
    """'test' when the task has test data, else 'val'."""
    t = m["finetuned"]["test"] or {}
    return "test" if any(t.get(k) is not None for k in ("energy_mae_meV_atom", "forces_mae_meV_A")) else "val"


def summary_line(m: dict[str, Any]) -> str:
    which = headline_split(m)
    ft = m["finetuned"][which]
    s = (
        f"[finetune] {m['task']['name']} ({m['strategy']}, n_train={m['task']['n_train']}): {which} E "
        f"{_fmt(ft.get('energy_mae_meV_atom'))} meV/atom, F {_fmt(ft.get('forces_mae_meV_A'))} meV/A"
    )
    if m.get("scratch"):
        sc = m["scratch"][which]
        s += f" | scratch E {_fmt(sc.get('energy_mae_meV_atom'))}, F {_fmt(sc.get('forces_mae_meV_A'))}"
    for h, r in (m["forgetting"] or {}).items():
        if r["status"] == "ok" and r.get("delta"):
            s += f" | {h} dF {_fmt(r['delta']['forces_mae_meV_A'])} dE {_fmt(r['delta']['energy_mae_meV_atom'])}"
    return s
