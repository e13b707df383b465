"""The pretraining loop: multi-dataset sampling, multi-head loss, AdamW + warmup/cosine, clipping, EMA,
data-parallel or multi-task-parallel gradient synchronisation, validation, checkpoints and the final model.

Gradient semantics (any layout, any number of ranks): the loss of a step is that of its GLOBAL batch, each term
normalised by global label counts; each rank back-propagates its share and gradients are summed (trunk over all
ranks, heads over the ranks holding them). One process evaluating the whole global batch gets the same gradients.
Gradients are synchronised explicitly after the backward pass (not by DDP hooks), which handles heads that are
absent from a batch (zero gradients) and head groups without ``find_unused_parameters``.

The trainer composes the pieces of its neighbours: pre-run checks (``run_checks``), the rank layout (``layout``),
the model's head constants and masks (``model_setup``), the data loader (``loader``), AdamW/schedule/clipping/EMA
(``optimization``), checkpoint contents (``checkpointing``, files in ``state``) and its messages (``messages``).
What stays here is the order of things: set-up, the step, validation and the final model.
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from gfm_ase.checkpoint import read_model_json, save_model
from gfm_ase.config import ModelConfig
from gfm_ase.fileio import atomic_write_bytes
from gfm_ase.graph.batch import GraphBatch
from gfm_ase.model.gfm import GFMModel
from gfm_ase.model.outputs import predict
from gfm_ase.model.precision import parameter_dtype
from gfm_ase.model.registry import trunk_options
from gfm_ase.pretraining import checkpointing as ckpt
from gfm_ase.pretraining import metrics as M
from gfm_ase.pretraining import optimization as opt
from gfm_ase.pretraining.config import LossSpec, PretrainConfig
from gfm_ase.pretraining.data import DatasetSplits, open_datasets
from gfm_ase.pretraining.distributed import DistEnv, setup_distributed, sync_gradients
from gfm_ase.pretraining.errors import TrainingError
from gfm_ase.pretraining.layout import plan_layout
from gfm_ase.pretraining.loader import step_loader
from gfm_ase.pretraining.logger import RunLogger
from gfm_ase.pretraining.loss import LossCounts, compute_loss, label_counts
from gfm_ase.pretraining.messages import banner, summary_line
from gfm_ase.pretraining.model_setup import fitted_model_config, head_scales, install_gradient_masks, restrict_heads
from gfm_ase.pretraining.run_checks import (
    check_datasets,
    check_resume_config,
    checkpoint_to_resume,
    exclusive_run,
)
from gfm_ase.pretraining.sampler import MultiDatasetSampler, sampling_probabilities
from gfm_ase.pretraining.state import read_checkpoint, write_checkpoint
from gfm_ase.pretraining.warm_start import load_init_model

__all__ = ["Trainer", "TrainingError", "restrict_heads"]


class Trainer:
    """``Trainer(cfg, outdir).fit()``. ``datasets`` may be given directly (lists of graphs) instead of stores."""

    banner = "gfm pretrain"  # what the start line calls this run (fine-tuning names its own)
    _init_model: GFMModel | None  # model.init_from, loaded on demand by init_model()

    def __init__(
        self,
        cfg: PretrainConfig,
        outdir: str | os.PathLike,
        *,
        resume: bool = False,
        datasets: list[DatasetSplits] | None = None,
        env: DistEnv | None = None,
    ) -> None:
        self.cfg = cfg
        self.outdir = Path(outdir)
        ckpt_path = checkpoint_to_resume(self.outdir, resume)  # before any process group exists
        self.env = env or setup_distributed(
            cfg.parallel.launcher, cfg.parallel.backend, cfg.device, cfg.parallel.timeout_s
        )
        self.device = self.env.device
        self.dtype = parameter_dtype(cfg.precision)  # the one precision table (bf16: float32 master weights)

        # data and sampling probabilities
        opts = trunk_options(cfg.model.trunk.name, cfg.model.trunk.options)
        # every trunk's options have cutoff and max_neighbors (as GFMModel.cutoff/max_neighbors assume)
        cutoff: float = getattr(opts, "cutoff")
        max_neighbors: int | None = getattr(opts, "max_neighbors")
        self.datasets = datasets if datasets is not None else open_datasets(cfg, cutoff, max_neighbors)
        check_datasets(self.datasets, cfg)
        self.head_names = [h.name for h in cfg.heads]
        sizes = [len(d.train) for d in self.datasets]
        weights = [spec.sampling_weight for spec in cfg.datasets]  # aligned by check_datasets
        self.probs = sampling_probabilities(sizes, cfg.sampling.alpha, weights)

        # heads' constants: from the checkpoint on resume, else fitted on rank 0 and broadcast
        self._warnings: list[str] = []
        if ckpt_path is not None:
            self.full_config = ModelConfig(**read_model_json(ckpt_path)["config"])
            check_resume_config(cfg, ckpt_path)
        else:
            self.full_config = self.build_model_config()

        # layout: data parallel, or head groups
        run_layout = plan_layout(cfg, self.env, self.datasets, self.probs, [h.name for h in self.full_config.heads])
        self.head_groups, self.layout = run_layout.head_groups, run_layout.layout
        self.sampler = MultiDatasetSampler(
            sizes, cfg.sampling.alpha, cfg.sampling.batch_size, self.layout, seed=cfg.seed, weights=weights
        )

        # model: identical initialisation on every rank, then keep this rank's heads
        torch.manual_seed(cfg.seed)
        model = self.build_model()
        self.param_meta = {n: (tuple(p.shape), self.dtype) for n, p in model.named_parameters()}
        self.model = restrict_heads(model, run_layout.local_heads).to(device=self.device, dtype=self.dtype)
        self.model.train()
        self.local_heads = self.model.head_names
        # which parameters train (all, unless a subclass freezes some) and gradient masks of partly frozen ones
        self.gradient_masks: dict[str, torch.Tensor] = {}
        self.configure_trainable(self.model)
        self.trainable = {n for n, p in self.model.named_parameters() if p.requires_grad}
        self.frozen = {n for n, p in self.model.named_parameters() if not p.requires_grad}
        if not self.trainable:
            raise TrainingError("no parameter is trainable")
        self.gradient_masks = install_gradient_masks(self.model, self.gradient_masks, self.device, self.dtype)
        self.dataset_local_head = [
            self.local_heads.index(d.head) if d.head in self.local_heads else -1 for d in self.datasets
        ]
        fids = self.full_config.fidelities
        self.dataset_fidelity = [fids.index(d.fidelity) if d.fidelity is not None else -1 for d in self.datasets]
        self.head_scale = head_scales(self.model, self.local_heads, self.device)

        self.optimizer = opt.make_optimizer(self.param_groups(), cfg.optim)
        self.ema = opt.make_ema(self.model, cfg.ema, self.gradient_masks)
        self.step = 0
        self.total_steps = cfg.total_steps
        self._consumed_sampler_state = self.sampler.state_dict()
        if ckpt_path is not None:
            self._restore(ckpt_path)
        self.history: list[dict] = []

    # ------------------------------------------------------------------------------------------------ hooks
    # Subclasses (finetune_zoo.FinetuneTrainer) override these to start from a pretrained model, freeze parts of it
    # and give the trunk its own learning rate; the defaults are pretraining from scratch.
    def build_model_config(self) -> ModelConfig:
        """The model's config with every head's constants fitted on its training data (rank 0, broadcast)."""
        init = self.init_model() if self.cfg.model.init_from is not None else None
        config, self._warnings = fitted_model_config(self.cfg, self.env, self.datasets, self.probs, init)
        return config

    def init_model(self) -> GFMModel:
        """The trained model ``model.init_from`` names (loaded once, verified like any model)."""
        model: GFMModel | None = getattr(self, "_init_model", None)
        if model is None:
            model = self._init_model = load_init_model(self.cfg)
        return model

    def build_model(self) -> GFMModel:
        """The initial model for ``self.full_config`` (called after seeding torch with ``cfg.seed``): random
        weights, or those of ``model.init_from``."""
        model = GFMModel(self.full_config)
        if self.cfg.model.init_from is not None:
            missing, unexpected = model.load_state_dict(self.init_model().state_dict(), strict=False)
            # shapes checked by load_init_model; a fidelity embedding the trained model lacks starts at zero,
            # i.e. the model starts exactly where the trained one was (gfm_ase.model.fidelity)
            missing = [k for k in missing if not k.startswith("fidelity.")]
            if missing or unexpected:
                raise TrainingError(f"model.init_from: parameters missing {missing}, unexpected {unexpected}")
            self._init_model = None  # not needed any more
        return model

    def configure_trainable(self, model: GFMModel) -> None:
        """Freeze parameters (``requires_grad_(False)``) and/or put {name: 0/1 tensor} into ``self.gradient_masks``
        for parameters of which only some entries train (the others never change: zero gradient, EMA kept)."""

    def param_groups(self) -> list[dict]:
        """AdamW parameter groups of the trainable parameters; a group's ``lr_scale`` multiplies the scheduled LR."""
        return opt.default_param_groups(self.model, self.cfg.optim.weight_decay)

    def annotate_final_model(
        self, model: GFMModel, val: list[dict], test: list[dict], heads: list[str] | None = None
    ) -> None:
        """Write val/test metrics into the metadata of ``heads`` (default: every head with data in this run)."""
        strip = ("step", "epoch", "split", "kind", "name")
        heads = self.head_names if heads is None else heads
        for h in self.full_config.heads:
            if h.name not in heads:
                continue
            hv = next(r for r in val if r["kind"] == "head" and r["name"] == h.name)
            ht = next(r for r in test if r["kind"] == "head" and r["name"] == h.name)
            per_ds = {
                r["name"]: {k: v for k, v in r.items() if k not in strip}
                for r in test
                if r["kind"] == "dataset" and self._head_of(r["name"]) == h.name
            }
            metrics = dict(model.head_config(h.name).metrics)
            metrics.update(
                {
                    "val": {k: v for k, v in hv.items() if k not in strip},
                    "test": {k: v for k, v in ht.items() if k not in strip},
                    "test_by_dataset": per_ds,
                    "training_steps": self.step,
                    "weights": "ema" if self.ema is not None else "final",
                }
            )
            model.update_head_config(model.head_config(h.name).model_copy(update={"metrics": metrics}))

    def final_model_extra(self) -> dict:
        """The ``extra`` block of the final model's model.json."""
        return {
            "training": {
                "config": self.cfg.model_dump(mode="json"),
                "steps": self.step,
                "world_size": self.env.world_size,
                "mode": self.cfg.parallel.mode,
                "precision": self.cfg.precision,
            }
        }

    def before_update(self) -> None:
        """Hook called just before ``optimizer.step()`` (gradients final, LR set)."""

    def after_update(self) -> None:
        """Hook called just after ``optimizer.step()``, before the EMA update."""

    # ------------------------------------------------------------------------------------------------ state
    def _owner(self, name: str) -> int:
        """Rank that holds parameter ``name`` for gathering (trunk: 0; heads: their group's first rank)."""
        if self.head_groups is not None and name.startswith("heads."):
            return self.head_groups.leader_of_head(name.split(".")[1])
        return 0

    def _gather_state(self) -> dict[str, torch.Tensor] | None:
        local = ckpt.local_state(self.model, self.optimizer, self.ema)
        return ckpt.gather_state(local, self.param_meta, self.frozen, self.ema is not None, self._owner, self.env)

    def full_model(self, state: dict[str, torch.Tensor], use_ema: bool) -> GFMModel:
        """A CPU model with every head from gathered state (rank 0)."""
        prefix = "ema." if use_ema and self.ema is not None else "model."
        return ckpt.model_from_state(self.full_config, state, prefix, self.dtype)

    def save_checkpoint(self) -> Path | None:
        state = self._gather_state()
        rng = ckpt.rng_tensors(self.env, self.device)
        path = None
        if self.env.is_main:
            assert state is not None  # gathered on rank 0
            tensors = {k: v for k, v in state.items() if not k.startswith("model.")}
            tensors.update(rng)
            meta = {
                "optimizer": {"adam_step": ckpt.adam_step(self.optimizer), "lr": self._lr(max(self.step - 1, 0))},
                "scheduler": {"kind": "warmup_cosine", "step": self.step},
                "ema": {"num_updates": self.ema.num_updates if self.ema is not None else 0},
                "sampler": self._consumed_sampler_state,
                "world_size": self.env.world_size,
                "layout": {
                    "mode": self.cfg.parallel.mode,
                    "groups": self.head_groups.groups if self.head_groups else None,
                    "group_ranks": self.head_groups.ranks if self.head_groups else None,
                },
                "config": self.cfg.model_dump(mode="json"),
            }
            path = write_checkpoint(
                self.outdir,
                self.step,
                self.full_model(state, use_ema=False),
                tensors,
                meta,
                keep=self.cfg.checkpoint.keep,
            )
        self.env.barrier()
        return path

    def _restore(self, path: Path) -> None:
        weights, tensors, doc = read_checkpoint(path)
        ckpt.restore_weights(self.model, weights, self.device, self.dtype, path)
        ckpt.restore_optimizer(
            self.optimizer, self.model, self.trainable, tensors, int(doc["optimizer"]["adam_step"]), self.device, path
        )
        ckpt.restore_ema(self.ema, tensors, doc["ema"]["num_updates"], self.device, self.dtype)
        self.sampler.load_state_dict(doc["sampler"])
        self._consumed_sampler_state = self.sampler.state_dict()
        self.step = int(doc["step"])
        ckpt.restore_rng(tensors, self.env.rank, self.device)

    # ------------------------------------------------------------------------------------------------ training
    def _lr(self, step: int) -> float:
        return opt.scheduled_lr(self.cfg.optim, step, self.total_steps)

    def _loader(self, n_steps: int, states: collections.deque) -> torch.utils.data.DataLoader:
        return step_loader(
            self.datasets,
            self.dataset_local_head,
            self.dataset_fidelity,
            self.sampler,
            self.env.rank,
            n_steps,
            states,
            self.dtype,
            self.device,
            self.cfg.data.num_workers,
        )

    def loss_spec(self) -> LossSpec:
        """The loss weights of the current step (``loss.stages`` switch them at fractions of the run)."""
        return self.cfg.loss.at(self.step, self.total_steps)

    def compute_gradients(
        self, batch: GraphBatch, counts: LossCounts, spec: LossSpec
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Forward + backward of this rank's share of a step with the step's loss ``spec`` (gradients accumulate
        into ``.grad``)."""
        batch = batch.to(self.device, self.dtype)
        use_stress = (
            spec.stress_weight > 0
            and counts.stress > 0
            and batch.stress is not None
            and bool(torch.isfinite(batch.stress).any())
        )
        need_forces = spec.forces_weight > 0 and counts.forces > 0
        pred = predict(
            self.model,
            batch,
            None,
            forces=need_forces,
            stress=use_stress,
            create_graph=need_forces or use_stress,
            precision=self.cfg.precision,
        )
        loss, terms = compute_loss(pred, batch, self.head_scale[batch.head], counts, spec)
        if loss.requires_grad:
            loss.backward()
        return loss.detach(), terms

    def _grad_norm_sq(self) -> tuple[float, float]:
        """(trunk norm^2, this rank's contribution to the heads' norm^2): each head counted once, by its group's
        first rank, so that the all-reduced sum is the norm of the global gradient."""
        leader = 0 if self.head_groups is None else self.head_groups.ranks[self.head_groups.my_group][0]
        heads = opt.grad_sq_norm(self.model.heads.parameters()) if self.env.rank == leader else 0.0
        return opt.grad_sq_norm(self.model.trunk.parameters()), heads

    def backward_step(self, batch: GraphBatch | None) -> dict:
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
        red = torch.tensor(
            [float(loss), terms.get("energy", 0.0), terms.get("forces", 0.0), terms.get("stress", 0.0), head_sq],
            dtype=torch.float64,
        )
        red = self._allreduce(red)
        return {
            "loss": float(red[0]),
            "loss_energy": float(red[1]),
            "loss_forces": float(red[2]),
            "loss_stress": float(red[3]),
            "grad_norm": math.sqrt(trunk_sq + float(red[4])),
            "structures": int(stats[3]),
            "atoms": int(stats[4]),
        }

    def optimizer_step(self, row: dict) -> dict:
        """Clip (global norm), set the scheduled LR, AdamW step, EMA update; advances ``self.step``.

        A step whose loss or global gradient norm is not finite (one pathological structure is enough: NaN
        gradients would poison every weight through AdamW and clipping cannot repair them) changes nothing: the
        gradients are dropped, the weights, optimizer state and EMA stay as they are, the step counter advances
        (so the sampler and schedule stay deterministic) and ``self.skipped_steps`` counts it. The decision is the
        same on every rank because the loss and norm are all-reduced."""
        lr = self._lr(self.step)
        if not opt.step_is_finite(row["loss"], row["grad_norm"]):
            self.optimizer.zero_grad(set_to_none=True)
            self.skipped_steps = getattr(self, "skipped_steps", 0) + 1
            if self.env.is_main:
                print(
                    f"gfm pretrain: step {self.step}: non-finite loss or gradient (loss {row['loss']}, gradient "
                    f"norm {row['grad_norm']}); step skipped ({self.skipped_steps} so far)",
                    file=sys.stderr,
                    flush=True,
                )
            self.step += 1
            return {**row, "lr": lr}
        opt.clip_gradients(self.model.parameters(), row["grad_norm"], self.cfg.optim.grad_clip)
        opt.set_learning_rates(self.optimizer, lr)
        self.before_update()
        self.optimizer.step()
        self.after_update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.ema is not None:
            self.ema.update(self.model.named_parameters())
        self.step += 1
        return {**row, "lr": lr}

    def train_step(self, batch: GraphBatch | None) -> dict:
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
        """Train to the configured number of steps, validating and checkpointing; write OUTDIR/final. The run
        holds OUTDIR's lock meanwhile (:func:`~gfm_ase.pretraining.run_checks.exclusive_run`)."""
        self.outdir.mkdir(parents=True, exist_ok=True)
        with exclusive_run(self.env, self.outdir):
            return self._train()

    def _train(self) -> dict:
        cfg = self.cfg
        resumed = self.step > 0
        if self.env.is_main and not resumed:
            atomic_write_bytes(
                self.outdir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False).encode()
            )
        log = RunLogger(
            self.outdir,
            self.env.is_main,
            cfg.logging.tensorboard,
            cfg.logging.progress,
            self.total_steps,
            self.step,
            resume=resumed,
        )
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
                        row.update(
                            step=self.step,
                            epoch=(self.step - 1) // spe,
                            wall_s=now - t0,
                            structures_per_s=window["structures"] / dt,
                            atoms_per_s=window["atoms"] / dt,
                            structures=window["structures"],
                            atoms=window["atoms"],
                        )
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
                ranks = (
                    list(range(self.env.world_size))
                    if self.head_groups is None
                    else self.head_groups.ranks[self.head_groups.group_of_head(ds.head)]
                )
                graphs = ds.split(split)
                n = len(graphs)
                if cfg.validation.max_structures is not None:
                    n = min(n, cfg.validation.max_structures)
                mine = np.arange(ranks.index(self.env.rank), n, len(ranks))
                if len(mine):
                    acc[d] = M.evaluate_graphs(
                        self.model,
                        graphs,
                        mine,
                        self.dataset_local_head[d],
                        batch_size=cfg.validation.batch_size,
                        dtype=self.dtype,
                        device=self.device,
                        precision=cfg.precision,
                        stress=True,
                        fidelity=self.dataset_fidelity[d],
                    )
        finally:
            for p, r in zip(self.model.parameters(), req):
                p.requires_grad_(r)
            if self.ema is not None:
                self.ema.swap(self.model.named_parameters())
        acc = self._allreduce(acc)
        rows = []
        epoch = max(self.step - 1, 0) // cfg.sampling.steps_per_epoch
        for d, ds in enumerate(self.datasets):
            rows.append(
                {
                    "step": self.step,
                    "epoch": epoch,
                    "split": split,
                    "kind": "dataset",
                    "name": ds.name,
                    **M.summarize(acc[d]),
                }
            )
        for h in self.head_names:
            idx = [d for d, ds in enumerate(self.datasets) if ds.head == h]
            rows.append(
                {
                    "step": self.step,
                    "epoch": epoch,
                    "split": split,
                    "kind": "head",
                    "name": h,
                    **M.summarize(acc[idx].sum(0)),
                }
            )
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
            assert state is not None  # gathered on rank 0
            model = self.full_model(state, use_ema=True)
            self.annotate_final_model(model, val, test)
            save_model(model, self.outdir / "final", extra=self.final_model_extra())
            summary = {
                "steps": self.step,
                "final_model": str(self.outdir / "final"),
                "val": val,
                "test": test,
                "world_size": self.env.world_size,
            }
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
        return banner(
            self.banner,
            self.cfg,
            self.env,
            self.step,
            self.total_steps,
            resumed,
            self.datasets,
            self.sampler.global_shares(),
            self.head_groups,
            self._warnings,
        )

    def _summary_line(self, row: dict, rows: list[dict]) -> str:
        return summary_line(self.step, self.total_steps, row, rows)
