"""The pretraining loop: multi-dataset sampling, multi-head loss, AdamW + warmup/cosine, clipping, EMA,
data-parallel or multi-task-parallel gradient synchronisation, validation, checkpoints and the final model.

Gradient semantics (any layout, any number of ranks): the loss of a step is that of its GLOBAL batch, each term
normalised by global label counts; each rank back-propagates its share and gradients are summed (trunk over all
ranks, heads over the ranks holding them). One process evaluating the whole global batch gets the same gradients.
Gradients are synchronised explicitly after the backward pass (not by DDP hooks), which handles heads that are
absent from a batch (zero gradients) and head groups without ``find_unused_parameters``.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from gfm_ase.checkpoint import CheckpointError, read_model_json, save_model
from gfm_ase.fileio import atomic_write_bytes
from gfm_ase.config import ModelConfig
from gfm_ase.graph.batch import collate
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.outputs import predict
from gfm_ase.model.precision import parameter_dtype
from gfm_ase.model.registry import trunk_options
from pretraining import metrics as M
from pretraining.config import RESUMABLE_CHANGES, PretrainConfig
from pretraining.data import DatasetSplits, fit_head_constants, head_configs, open_datasets
from pretraining.distributed import (DistEnv, HeadGroups, gather_to_rank0, setup_distributed, sync_gradients)
from pretraining.ema import EMA
from pretraining.logger import RunLogger
from pretraining.loss import LossCounts, compute_loss, label_counts
from pretraining.sampler import Layout, MultiDatasetSampler, allocate_group_sizes, sampling_probabilities
from pretraining.schedule import learning_rate
from pretraining.state import latest_checkpoint, read_checkpoint, write_checkpoint
from pretraining.warm_start import load_init_model, warm_start_heads


class TrainingError(RuntimeError):
    pass


def restrict_heads(model: GFMModel, keep: list[str]) -> GFMModel:
    """Drop every head not in ``keep`` (in place); the config follows."""
    for name in list(model.heads.keys()):
        if name not in keep:
            del model.heads[name]
    model.config = model.config.model_copy(update={"heads": [h for h in model.config.heads if h.name in keep]})
    return model


class _StepData(torch.utils.data.Dataset):
    """(dataset, index) -> graph with the dataset's local head index and loss weight."""

    def __init__(self, datasets: list[DatasetSplits], local_head: list[int]):
        self.datasets = datasets
        self.local_head = local_head

    def __len__(self):
        return sum(len(d.train) for d in self.datasets)

    def __getitem__(self, key):
        d, i = key
        g = self.datasets[d].train[i]
        return dataclasses.replace(g, head=self.local_head[d], weight=g.weight * self.datasets[d].loss_weight)


class _Collate:
    def __init__(self, dtype):
        self.dtype = dtype

    def __call__(self, graphs):
        return collate(graphs, dtype=self.dtype) if graphs else None  # a rank may get no structure in a step


class _PlanSampler:
    """batch_sampler for the DataLoader: the rank's part of each step's plan; records the sampler state after each
    step so that the state saved with a checkpoint is that of the consumed (not prefetched) steps."""

    def __init__(self, sampler: MultiDatasetSampler, rank: int, n_steps: int, states: collections.deque):
        self.sampler, self.rank, self.n_steps, self.states = sampler, rank, n_steps, states

    def __len__(self):
        return self.n_steps

    def __iter__(self):
        for _ in range(self.n_steps):
            plan = self.sampler.next_step()
            self.states.append(self.sampler.state_dict())
            yield plan[self.rank]


class Trainer:
    """``Trainer(cfg, outdir).fit()``. ``datasets`` may be given directly (lists of graphs) instead of stores."""

    banner = "gfm pretrain"  # what the start line calls this run (fine-tuning names its own)

    def __init__(self, cfg: PretrainConfig, outdir, *, resume: bool = False,
                 datasets: list[DatasetSplits] | None = None, env: DistEnv | None = None):
        self.cfg = cfg
        self.outdir = Path(outdir)
        self.env = env or setup_distributed(cfg.parallel.launcher, cfg.parallel.backend, cfg.device,
                                            cfg.parallel.timeout_s)
        self.device = self.env.device
        self.dtype = parameter_dtype(cfg.precision)  # the one precision table (bf16: float32 master weights)
        ckpt_path = self._check_outdir(resume)
        opts = trunk_options(cfg.model.trunk.name, cfg.model.trunk.options)
        self.datasets = datasets if datasets is not None else open_datasets(cfg, opts.cutoff, opts.max_neighbors)
        self._check_datasets()
        self.head_names = [h.name for h in cfg.heads]
        sizes = [len(d.train) for d in self.datasets]
        self.probs = sampling_probabilities(sizes, cfg.sampling.alpha, [d.sampling_weight for d in self.datasets])

        # heads' constants: from the checkpoint on resume, else fitted on rank 0 and broadcast
        ckpt_doc = None
        self._warnings: list[str] = []
        if ckpt_path is not None:
            ckpt_doc = read_model_json(ckpt_path)
            self.full_config = ModelConfig(**ckpt_doc["config"])
            self._check_resume_config(ckpt_path)
        else:
            self.full_config = self.build_model_config()

        # layout: data parallel, or head groups
        self.head_groups = None
        if cfg.parallel.mode == "multitask":
            groups = cfg.parallel.head_groups or [[h] for h in self.head_names]
            g_datasets = [[i for i, d in enumerate(self.datasets) if d.head in g] for g in groups]
            if cfg.parallel.group_sizes is not None:
                g_sizes = list(cfg.parallel.group_sizes)
            else:
                try:
                    g_sizes = allocate_group_sizes([self.probs[ds].sum() for ds in g_datasets], self.env.world_size)
                except ValueError as exc:
                    raise TrainingError(f"parallel.mode multitask: {exc}") from None
            self.head_groups = HeadGroups(self.env, groups, g_sizes)
            layout = Layout.multitask(g_datasets, g_sizes)
            local_heads = self.head_groups.my_heads
        else:
            layout = Layout.data_parallel(self.env.world_size)
            local_heads = [h.name for h in self.full_config.heads]  # heads without data (fine-tuning) stay too
        self.layout = layout
        self.sampler = MultiDatasetSampler(sizes, cfg.sampling.alpha, cfg.sampling.batch_size, layout,
                                           seed=cfg.seed, weights=[d.sampling_weight for d in self.datasets])

        # model: identical initialisation on every rank, then keep this rank's heads
        torch.manual_seed(cfg.seed)
        model = self.build_model()
        self.param_meta = {n: (tuple(p.shape), self.dtype) for n, p in model.named_parameters()}
        self.model = restrict_heads(model, local_heads).to(device=self.device, dtype=self.dtype)
        self.model.train()
        self.local_heads = self.model.head_names
        # which parameters train (all, unless a subclass freezes some) and gradient masks of partly frozen ones
        self.gradient_masks: dict[str, torch.Tensor] = {}
        self.configure_trainable(self.model)
        self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        self.frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        if not self.trainable:
            raise TrainingError("no parameter is trainable")
        named = dict(self.model.named_parameters())
        for n, mask in self.gradient_masks.items():
            m = mask.to(device=self.device, dtype=self.dtype)
            self.gradient_masks[n] = m
            named[n].register_hook(lambda g, m=m: g * m)
        self.dataset_local_head = [self.local_heads.index(d.head) if d.head in self.local_heads else -1
                                   for d in self.datasets]
        self.head_scale = torch.tensor([float(self.model.head_config(h).scale) for h in self.local_heads],
                                       dtype=torch.float64, device=self.device)

        o = cfg.optim
        self.optimizer = torch.optim.AdamW(self.param_groups(), lr=o.lr, betas=tuple(o.betas), eps=o.eps)
        self.ema = (EMA(self.model.named_parameters(), cfg.ema.decay, cfg.ema.warmup, masks=self.gradient_masks)
                    if cfg.ema.enabled else None)
        self.step = 0
        self.total_steps = cfg.total_steps
        self._consumed_sampler_state = self.sampler.state_dict()
        if ckpt_path is not None:
            self._restore(ckpt_path)
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------------ set-up
    def _check_outdir(self, resume: bool) -> Path | None:
        ckpt = latest_checkpoint(self.outdir) if self.outdir.exists() else None
        if resume:
            if ckpt is None:
                raise TrainingError(f"--resume: {self.outdir} holds no checkpoint (checkpoints/latest) to resume from")
            return ckpt
        if ckpt is not None or (self.outdir / "final" / "model.json").exists():
            raise TrainingError(f"{self.outdir} already holds a training run; pass --resume to continue it or "
                                "choose another output directory (nothing was overwritten)")
        return None

    def _check_datasets(self) -> None:
        names = [d.name for d in self.datasets]
        want = [d.name for d in self.cfg.datasets]
        if names != want:
            raise TrainingError(f"datasets {names} do not match the config's {want}")
        for d, spec in zip(self.datasets, self.cfg.datasets):
            if d.head != spec.head:
                raise TrainingError(f"dataset {d.name!r} has head {d.head!r}, the config says {spec.head!r}")

    def _check_resume_config(self, ckpt_path: Path) -> None:
        doc = json.loads((ckpt_path / "train_state.json").read_text())
        old = doc.get("config", {})
        new = self.cfg.model_dump(mode="json")
        diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
        if diff:
            raise TrainingError(f"the config differs from the checkpoint's in {diff}; a resumed run must use the same "
                                f"settings (only {list(RESUMABLE_CHANGES)} may change)")

    # ------------------------------------------------------------------------------------------------ hooks
    # Subclasses (finetune_zoo.FinetuneTrainer) override these to start from a pretrained model, freeze parts of it
    # and give the trunk its own learning rate; the defaults are pretraining from scratch.
    def build_model_config(self) -> ModelConfig:
        """The model's config with every head's constants fitted on its training data (rank 0, broadcast)."""
        cfg = self.cfg
        consts = None
        if self.env.is_main:
            consts = {h: fit_head_constants(self.datasets, h, cfg.head_init.scale, cfg.head_init.shift,
                                            cfg.head_init.max_structures, cfg.seed) for h in self.head_names}
        consts = self.env.broadcast_json(consts)
        self._warnings = [w for c in consts.values() for w in c.get("warnings", [])]
        probs = {d.name: float(p) for d, p in zip(self.datasets, self.probs)}
        heads = head_configs(cfg, self.datasets, consts, probs)
        if cfg.model.init_from is not None:
            heads = warm_start_heads(self.init_model(), heads)
        return ModelConfig(name=cfg.model.name, trunk=cfg.model.trunk, repulsion=cfg.model.repulsion, heads=heads)

    def init_model(self) -> GFMModel:
        """The trained model ``model.init_from`` names (loaded once, verified like any model)."""
        if getattr(self, "_init_model", None) is None:
            self._init_model = load_init_model(self.cfg)
        return self._init_model

    def build_model(self) -> GFMModel:
        """The initial model for ``self.full_config`` (called after seeding torch with ``cfg.seed``): random
        weights, or those of ``model.init_from``."""
        model = GFMModel(self.full_config)
        if self.cfg.model.init_from is not None:
            model.load_state_dict(self.init_model().state_dict())  # shapes checked by load_init_model
            self._init_model = None  # not needed any more
        return model

    def configure_trainable(self, model: GFMModel) -> None:
        """Freeze parameters (``requires_grad_(False)``) and/or put {name: 0/1 tensor} into ``self.gradient_masks``
        for parameters of which only some entries train (the others never change: zero gradient, EMA kept)."""

    def param_groups(self) -> list[dict]:
        """AdamW parameter groups of the trainable parameters; a group's ``lr_scale`` multiplies the scheduled LR."""
        decay, no_decay = [], []
        for n, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "embedding" not in n else no_decay).append(p)
        return [{"params": decay, "weight_decay": self.cfg.optim.weight_decay, "lr_scale": 1.0},
                {"params": no_decay, "weight_decay": 0.0, "lr_scale": 1.0}]

    def annotate_final_model(self, model: GFMModel, val: list[dict], test: list[dict],
                             heads: list[str] | None = None) -> None:
        """Write val/test metrics into the metadata of ``heads`` (default: every head with data in this run)."""
        strip = ("step", "epoch", "split", "kind", "name")
        heads = self.head_names if heads is None else heads
        for h in self.full_config.heads:
            if h.name not in heads:
                continue
            hv = next(r for r in val if r["kind"] == "head" and r["name"] == h.name)
            ht = next(r for r in test if r["kind"] == "head" and r["name"] == h.name)
            per_ds = {r["name"]: {k: v for k, v in r.items() if k not in strip}
                      for r in test if r["kind"] == "dataset" and self._head_of(r["name"]) == h.name}
            metrics = dict(model.head_config(h.name).metrics)
            metrics.update({"val": {k: v for k, v in hv.items() if k not in strip},
                            "test": {k: v for k, v in ht.items() if k not in strip},
                            "test_by_dataset": per_ds, "training_steps": self.step,
                            "weights": "ema" if self.ema is not None else "final"})
            model.update_head_config(model.head_config(h.name).model_copy(update={"metrics": metrics}))

    def final_model_extra(self) -> dict:
        """The ``extra`` block of the final model's model.json."""
        return {"training": {"config": self.cfg.model_dump(mode="json"), "steps": self.step,
                             "world_size": self.env.world_size, "mode": self.cfg.parallel.mode,
                             "precision": self.cfg.precision}}

    # ------------------------------------------------------------------------------------------------ state
    def _owner(self, name: str) -> int:
        """Rank that holds parameter ``name`` for gathering (trunk: 0; heads: their group's first rank)."""
        if self.head_groups is not None and name.startswith("heads."):
            return self.head_groups.leader_of_head(name.split(".")[1])
        return 0

    def _local_state(self) -> dict[str, torch.Tensor]:
        out = {}
        for n, p in self.model.named_parameters():
            out[f"model.{n}"] = p.detach()
            st = self.optimizer.state.get(p)
            if st:
                out[f"optim.exp_avg.{n}"] = st["exp_avg"]
                out[f"optim.exp_avg_sq.{n}"] = st["exp_avg_sq"]
            if self.ema is not None:
                out[f"ema.{n}"] = self.ema.shadow[n]
        return out

    def _gather_state(self) -> dict[str, torch.Tensor] | None:
        local = self._local_state()
        kinds = ["model"] + (["ema"] if self.ema is not None else [])
        if any(k.startswith("optim.") for k in local):
            kinds += ["optim.exp_avg", "optim.exp_avg_sq"]
        owner, template = {}, {}
        for n, meta in self.param_meta.items():
            for k in kinds:
                if k.startswith("optim.") and n in self.frozen:
                    continue  # frozen parameters have no optimizer moments
                owner[f"{k}.{n}"] = self._owner(n)
                template[f"{k}.{n}"] = meta
        return gather_to_rank0(local, owner, template, self.env)

    def _rng_tensors(self) -> dict[str, torch.Tensor]:
        out = {}
        dev = self.device if self.env.backend == "nccl" else torch.device("cpu")
        for r, t in enumerate(self.env.all_gather(torch.get_rng_state().to(dev))):
            out[f"rng.torch.{r}"] = t.cpu()
        if self.device.type == "cuda":
            for r, t in enumerate(self.env.all_gather(torch.cuda.get_rng_state(self.device).to(dev))):
                out[f"rng.cuda.{r}"] = t.cpu()
        return out

    def full_model(self, state: dict[str, torch.Tensor], use_ema: bool) -> GFMModel:
        """A CPU model with every head from gathered state (rank 0)."""
        model = GFMModel(self.full_config).to(self.dtype)
        prefix = "ema." if use_ema and self.ema is not None else "model."
        sd = {n[len(prefix):]: t for n, t in state.items() if n.startswith(prefix)}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise TrainingError(f"gathered state does not match the model: missing {missing}, unexpected {unexpected}")
        return model

    def save_checkpoint(self) -> Path | None:
        state = self._gather_state()
        rng = self._rng_tensors()
        path = None
        if self.env.is_main:
            tensors = {k: v for k, v in state.items() if not k.startswith("model.")}
            tensors.update(rng)
            adam_step = 0
            for st in self.optimizer.state.values():
                adam_step = int(float(st["step"]))
                break
            meta = {
                "optimizer": {"adam_step": adam_step, "lr": self._lr(max(self.step - 1, 0))},
                "scheduler": {"kind": "warmup_cosine", "step": self.step},
                "ema": {"num_updates": self.ema.num_updates if self.ema is not None else 0},
                "sampler": self._consumed_sampler_state,
                "world_size": self.env.world_size,
                "layout": {"mode": self.cfg.parallel.mode,
                           "groups": self.head_groups.groups if self.head_groups else None,
                           "group_ranks": self.head_groups.ranks if self.head_groups else None},
                "config": self.cfg.model_dump(mode="json"),
            }
            path = write_checkpoint(self.outdir, self.step, self.full_model(state, use_ema=False), tensors, meta,
                                    keep=self.cfg.checkpoint.keep)
        self.env.barrier()
        return path

    def _restore(self, path: Path) -> None:
        full_sd, tensors, doc = read_checkpoint(path)
        with torch.no_grad():
            for n, p in self.model.named_parameters():
                if n not in full_sd or tuple(full_sd[n].shape) != tuple(p.shape):
                    raise CheckpointError(f"{path}: weights lack {n} or have another shape")
                p.copy_(full_sd[n].to(device=self.device, dtype=self.dtype))
        adam_step = int(doc["optimizer"]["adam_step"])
        if adam_step > 0:
            for n, p in self.model.named_parameters():
                if n not in self.trainable:
                    continue
                try:
                    m, v = tensors[f"optim.exp_avg.{n}"], tensors[f"optim.exp_avg_sq.{n}"]
                except KeyError as exc:
                    raise CheckpointError(f"{path}: optimizer state lacks {exc}") from None
                self.optimizer.state[p] = {
                    "step": torch.tensor(float(adam_step), dtype=torch.get_default_dtype()),
                    "exp_avg": m.to(device=self.device, dtype=p.dtype).clone(),
                    "exp_avg_sq": v.to(device=self.device, dtype=p.dtype).clone()}
        if self.ema is not None:
            ema = {n[4:]: t.to(device=self.device, dtype=self.dtype) for n, t in tensors.items()
                   if n.startswith("ema.")}
            self.ema.load(ema, doc["ema"]["num_updates"])
        self.sampler.load_state_dict(doc["sampler"])
        self._consumed_sampler_state = self.sampler.state_dict()
        self.step = int(doc["step"])
        key = f"rng.torch.{self.env.rank}"
        if key in tensors:
            torch.set_rng_state(tensors[key])
        if self.device.type == "cuda" and f"rng.cuda.{self.env.rank}" in tensors:
            torch.cuda.set_rng_state(tensors[f"rng.cuda.{self.env.rank}"], self.device)

    # ------------------------------------------------------------------------------------------------ training
    def _lr(self, step: int) -> float:
        o = self.cfg.optim
        return learning_rate(step, self.total_steps, o.lr, o.min_lr, o.warmup_steps)

    def _loader(self, n_steps: int, states: collections.deque):
        nw = self.cfg.data.num_workers
        return torch.utils.data.DataLoader(
            _StepData(self.datasets, self.dataset_local_head),
            batch_sampler=_PlanSampler(self.sampler, self.env.rank, n_steps, states),
            collate_fn=_Collate(self.dtype), num_workers=nw, pin_memory=self.device.type == "cuda",
            persistent_workers=False, prefetch_factor=2 if nw > 0 else None)

    def loss_spec(self):
        """The loss weights of the current step (``loss.stages`` switch them at fractions of the run)."""
        return self.cfg.loss.at(self.step, self.total_steps)

    def compute_gradients(self, batch, counts: LossCounts, spec) -> tuple[torch.Tensor, dict]:
        """Forward + backward of this rank's share of a step with the step's loss ``spec`` (gradients accumulate
        into ``.grad``)."""
        batch = batch.to(self.device, self.dtype)
        use_stress = spec.stress_weight > 0 and counts.stress > 0 and batch.stress is not None and bool(
            torch.isfinite(batch.stress).any())
        need_forces = spec.forces_weight > 0 and counts.forces > 0
        pred = predict(self.model, batch, None, forces=need_forces, stress=use_stress,
                       create_graph=need_forces or use_stress, precision=self.cfg.precision)
        loss, terms = compute_loss(pred, batch, self.head_scale[batch.head], counts, spec)
        if loss.requires_grad:
            loss.backward()
        return loss.detach(), terms

    def _grad_norm_sq(self) -> tuple[float, float]:
        """(trunk norm^2, this rank's contribution to the heads' norm^2): each head counted once, by its group's
        first rank, so that the all-reduced sum is the norm of the global gradient."""
        def sq(params):
            g = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
            return float(torch.stack(g).sum()) if g else 0.0

        leader = 0 if self.head_groups is None else self.head_groups.ranks[self.head_groups.my_group][0]
        heads = sq(self.model.heads.parameters()) if self.env.rank == leader else 0.0
        return sq(self.model.trunk.parameters()), heads

    def backward_step(self, batch) -> dict:
        """Forward/backward of this rank's share ``batch`` of a step and the gradient synchronisation; returns the
        global loss terms, label counts and gradient norm (identical on all ranks)."""
        spec = self.loss_spec()
        local = label_counts(batch, spec.stress_weight > 0) if batch is not None else LossCounts()
        n_graphs, n_atoms = (batch.num_graphs, batch.num_atoms) if batch is not None else (0, 0)
        stats = torch.tensor([local.energy, local.forces, local.stress, n_graphs, n_atoms], dtype=torch.float64)
        stats = self._allreduce(stats)
        counts = LossCounts(*stats[:3].tolist())
        if batch is not None:
            loss, terms = self.compute_gradients(batch, counts, spec)
        else:
            loss, terms = torch.zeros(()), {}
        sync_gradients(self.model, self.env, self.head_groups)
        trunk_sq, head_sq = self._grad_norm_sq()
        red = torch.tensor([float(loss), terms.get("energy", 0.0), terms.get("forces", 0.0),
                            terms.get("stress", 0.0), head_sq], dtype=torch.float64)
        red = self._allreduce(red)
        return {"loss": float(red[0]), "loss_energy": float(red[1]), "loss_forces": float(red[2]),
                "loss_stress": float(red[3]), "grad_norm": math.sqrt(trunk_sq + float(red[4])),
                "structures": int(stats[3]), "atoms": int(stats[4])}

    def optimizer_step(self, row: dict) -> dict:
        """Clip (global norm), set the scheduled LR, AdamW step, EMA update; advances ``self.step``.

        A step whose loss or global gradient norm is not finite (one pathological structure is enough: NaN
        gradients would poison every weight through AdamW and clipping cannot repair them) changes nothing: the
        gradients are dropped, the weights, optimizer state and EMA stay as they are, the step counter advances
        (so the sampler and schedule stay deterministic) and ``self.skipped_steps`` counts it. The decision is the
        same on every rank because the loss and norm are all-reduced."""
        lr = self._lr(self.step)
        if not (math.isfinite(row["grad_norm"]) and math.isfinite(row["loss"])):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps = getattr(self, "skipped_steps", 0) + 1
            if self.env.is_main:
                print(f"gfm pretrain: step {self.step}: non-finite loss or gradient (loss {row['loss']}, gradient "
                      f"norm {row['grad_norm']}); step skipped ({self.skipped_steps} so far)", file=sys.stderr,
                      flush=True)
            self.step += 1
            return {**row, "lr": lr}
        clip = self.cfg.optim.grad_clip
        if clip is not None and row["grad_norm"] > clip:
            coef = clip / (row["grad_norm"] + 1e-6)
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad.mul_(coef)
        for g in self.optimizer.param_groups:
            g["lr"] = lr * g.get("lr_scale", 1.0)
        self.before_update()
        self.optimizer.step()
        self.after_update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model.named_parameters())
        self.step += 1
        return {**row, "lr": lr}

    def before_update(self) -> None:
        """Hook called just before ``optimizer.step()`` (gradients final, LR set)."""

    def after_update(self) -> None:
        """Hook called just after ``optimizer.step()``, before the EMA update."""

    def train_step(self, batch) -> dict:
        """One optimizer step on this rank's share ``batch`` of the global batch."""
        return self.optimizer_step(self.backward_step(batch))

    def _allreduce(self, t: torch.Tensor) -> torch.Tensor:
        """SUM of a small CPU tensor over all ranks (through the device for NCCL)."""
        if not self.env.active:
            return t
        dev = self.device if self.env.backend == "nccl" else torch.device("cpu")
        d = t.to(dev)
        self.env.all_reduce_sum(d)
        return d.cpu()

    def fit(self) -> dict:
        """Train to the configured number of steps, validating and checkpointing; write OUTDIR/final."""
        cfg = self.cfg
        self.outdir.mkdir(parents=True, exist_ok=True)
        resumed = self.step > 0
        if self.env.is_main and not resumed:
            atomic_write_bytes(self.outdir / "config.yaml",
                               yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).encode())
        log = RunLogger(self.outdir, self.env.is_main, cfg.logging.tensorboard, cfg.logging.progress,
                        self.total_steps, self.step, resume=resumed)
        if self.env.is_main:
            log.message(self._banner(resumed))
        states: collections.deque = collections.deque()
        remaining = self.total_steps - self.step
        t0 = time.perf_counter()
        window = {"t": t0, "structures": 0, "atoms": 0}
        spe = cfg.sampling.steps_per_epoch
        val_every = cfg.validation.every_steps or spe
        try:
            if remaining > 0:
                for batch in self._loader(remaining, states):
                    row = self.train_step(batch)
                    self._consumed_sampler_state = states.popleft()
                    window["structures"] += row["structures"]
                    window["atoms"] += row["atoms"]
                    self.history.append({"step": self.step, "loss": row["loss"], "lr": row["lr"]})
                    log.progress(1, loss=f"{row['loss']:.4g}")
                    last = self.step == self.total_steps
                    if self.step % cfg.logging.every_steps == 0 or last:
                        now = time.perf_counter()
                        dt = max(now - window["t"], 1e-9)
                        row.update(step=self.step, epoch=(self.step - 1) // spe, wall_s=now - t0,
                                   structures_per_s=window["structures"] / dt, atoms_per_s=window["atoms"] / dt,
                                   structures=window["structures"], atoms=window["atoms"])
                        log.log_train(row)
                        window = {"t": now, "structures": 0, "atoms": 0}
                    if self.step % val_every == 0 and not last:  # the last step is validated by finish()
                        rows = self.validate("val")
                        log.log_val(rows)
                        if self.env.is_main:
                            log.message(self._summary_line(row, rows))
                    if self.step % cfg.checkpoint.every_steps == 0 or last:
                        self.save_checkpoint()
            result = self.finish(log)
        finally:
            log.close()
        return result

    # ------------------------------------------------------------------------------------------------ evaluation
    def validate(self, split: str = "val") -> list[dict]:
        """Per-dataset and per-head metrics on ``split`` (EMA weights when enabled), identical on all ranks."""
        cfg = self.cfg
        acc = torch.zeros(len(self.datasets), M.WIDTH, dtype=torch.float64)
        if self.ema is not None:
            self.ema.swap(self.model.named_parameters())
        req = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)
        try:
            for d, ds in enumerate(self.datasets):
                if self.dataset_local_head[d] < 0:
                    continue
                ranks = (list(range(self.env.world_size)) if self.head_groups is None else
                         self.head_groups.ranks[self.head_groups.group_of_head(ds.head)])
                graphs = ds.split(split)
                n = len(graphs)
                if cfg.validation.max_structures is not None:
                    n = min(n, cfg.validation.max_structures)
                mine = np.arange(ranks.index(self.env.rank), n, len(ranks))
                if len(mine):
                    acc[d] = M.evaluate_graphs(self.model, graphs, mine, self.dataset_local_head[d],
                                               batch_size=cfg.validation.batch_size, dtype=self.dtype,
                                               device=self.device, precision=cfg.precision, stress=True)
        finally:
            for p, r in zip(self.model.parameters(), req):
                p.requires_grad_(r)
            if self.ema is not None:
                self.ema.swap(self.model.named_parameters())
        acc = self._allreduce(acc)
        rows = []
        epoch = max(self.step - 1, 0) // cfg.sampling.steps_per_epoch
        for d, ds in enumerate(self.datasets):
            rows.append({"step": self.step, "epoch": epoch, "split": split, "kind": "dataset", "name": ds.name,
                         **M.summarize(acc[d])})
        for h in self.head_names:
            idx = [d for d, ds in enumerate(self.datasets) if ds.head == h]
            rows.append({"step": self.step, "epoch": epoch, "split": split, "kind": "head", "name": h,
                         **M.summarize(acc[idx].sum(0))})
        return rows

    def finish(self, log: RunLogger | None = None) -> dict:
        """Final val/test metrics, then OUTDIR/final (every head, EMA weights, metadata) and run.json."""
        val = self.validate("val")
        test = self.validate("test")
        if log is not None:
            log.log_val(val + test)
        state = self._gather_state()
        summary = None
        if self.env.is_main:
            model = self.full_model(state, use_ema=True)
            self.annotate_final_model(model, val, test)
            save_model(model, self.outdir / "final", extra=self.final_model_extra())
            summary = {"steps": self.step, "final_model": str(self.outdir / "final"),
                       "val": val, "test": test, "world_size": self.env.world_size}
            atomic_write_bytes(self.outdir / "run.json", json.dumps(summary, indent=1).encode())
            if log is not None:
                log.message(self._summary_line(self.history[-1] if self.history else {}, val))
                log.message(f"final model written to {self.outdir / 'final'}")
        self.env.barrier()
        return summary or {}

    def _head_of(self, dataset_name: str) -> str:
        return next(d.head for d in self.datasets if d.name == dataset_name)

    # ------------------------------------------------------------------------------------------------ messages
    def _banner(self, resumed: bool) -> str:
        lines = [f"{self.banner}: {'resuming at step ' + str(self.step) if resumed else 'starting'}; "
                 f"{self.total_steps} steps, global batch {self.cfg.sampling.batch_size}, {self.env.world_size} "
                 f"rank(s) [{self.env.launcher}, {self.env.backend or 'single process'}], device {self.device}, "
                 f"precision {self.cfg.precision}, mode {self.cfg.parallel.mode}"]
        shares = self.sampler.global_shares()
        for d, ds in enumerate(self.datasets):
            lines.append(f"  dataset {ds.name:20s} head {ds.head:12s} train {len(ds.train):7d}  share {shares[d]:.3f}")
        if self.head_groups is not None:
            for g, (hs, rs) in enumerate(zip(self.head_groups.groups, self.head_groups.ranks)):
                lines.append(f"  head group {g}: heads {hs} on ranks {rs}")
        if self.cfg.sampling.batch_size < self.env.world_size:
            self._warnings.append(f"global batch {self.cfg.sampling.batch_size} < {self.env.world_size} ranks: "
                                  "some ranks idle in every step")
        lines += [f"  warning: {w}" for w in self._warnings]
        return "\n".join(lines)

    def _summary_line(self, row: dict, rows: list[dict]) -> str:
        parts = [f"step {self.step}/{self.total_steps}"]
        if "loss" in row:
            parts[0] += f" loss {row['loss']:.4g}"
        if "lr" in row:
            parts[0] += f" lr {row['lr']:.3g}"
        for r in rows:
            if r["kind"] == "head":
                e, f = r["energy_mae_meV_atom"], r["forces_mae_meV_A"]
                parts.append(f"{r['name']}: E {e:.1f} meV/atom" if e is not None else f"{r['name']}: E -")
                if f is not None:
                    parts[-1] += f", F {f:.1f} meV/A"
        return " | ".join(parts)

