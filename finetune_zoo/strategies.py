"""What trains in each strategy, and the trainer that fine-tunes (a thin subclass of the pretraining trainer:
same sampler, loss, schedule, EMA, metrics, checkpoints; it only chooses the initial model and what trains)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, cast

import torch
from torch import nn

from gfm_ase.config import ModelConfig
from gfm_ase.model.gfm import GFMModel
from gfm_ase.pretraining.trainer import Trainer

if TYPE_CHECKING:
    from gfm_ase.finetune_zoo.forgetting import ForgettingReport
    from gfm_ase.model.heads import EnergyHead
    from gfm_ase.pretraining.config import PretrainConfig
    from gfm_ase.pretraining.data import DatasetSplits

EMBEDDING = "trunk.embedding.weight"  # the trunk's element embedding table [Z, F]


@dataclass
class Plan:
    """The parameters that train and their learning-rate scales.

    ``train_heads``: heads whose weights train. With ``train_trunk``, pretrained weights (the trunk and the heads
    the base model already had: a continued head, replayed heads) train at ``trunk_lr_scale`` times the scheduled
    LR and new weights (a new head; the embedding rows of ``new_rows``, elements no head has seen) at the full LR.
    ``embedding_rows``: with a frozen trunk, atomic numbers whose embedding rows train anyway.
    """

    target: str
    train_heads: list[str]
    train_trunk: bool
    trunk_lr_scale: float = 1.0
    embedding_rows: list[int] = field(default_factory=list)
    new_head: bool = True
    new_rows: list[int] = field(default_factory=list)  # atomic numbers no head has seen: their rows are new weights
    pretrained_heads: list[str] = field(default_factory=list)  # heads of the base model

    def trainable(self, name: str) -> bool:
        if name.startswith("heads."):
            return name.split(".")[1] in self.train_heads
        if self.train_trunk:
            return True
        return bool(self.embedding_rows) and name == EMBEDDING


def make_plan(
    strategy: str,
    target: str,
    new_head: bool,
    replay_heads: list[str],
    trunk_lr_factor: float,
    unseen_numbers: list[int],
    train_new_element_embeddings: bool,
    pretrained_heads: Sequence[str] = (),
) -> Plan:
    plan = _make_plan(
        strategy, target, new_head, replay_heads, trunk_lr_factor, unseen_numbers, train_new_element_embeddings
    )
    plan.pretrained_heads = list(pretrained_heads) if strategy != "scratch" else []
    return plan


def _make_plan(
    strategy: str,
    target: str,
    new_head: bool,
    replay_heads: list[str],
    trunk_lr_factor: float,
    unseen_numbers: list[int],
    train_new_element_embeddings: bool,
) -> Plan:
    if strategy == "frozen":
        rows = sorted(unseen_numbers) if train_new_element_embeddings else []
        return Plan(target, [target], train_trunk=False, embedding_rows=rows, new_head=new_head)
    rows = sorted(unseen_numbers)
    if strategy in ("full", "continue"):
        return Plan(
            target, [target], train_trunk=True, trunk_lr_scale=trunk_lr_factor, new_head=new_head, new_rows=rows
        )
    if strategy == "replay":
        heads = [target] + [h for h in replay_heads if h != target]
        return Plan(target, heads, train_trunk=True, trunk_lr_scale=trunk_lr_factor, new_head=new_head, new_rows=rows)
    if strategy == "scratch":
        return Plan(target, [target], train_trunk=True, trunk_lr_scale=1.0, new_head=True)
    raise ValueError(f"unknown strategy {strategy!r}")


@torch.no_grad()
def _zero_last_layer(head: EnergyHead) -> None:
    """A new head starts at its fitted baseline (reference energies + shift): output layer weights and bias 0."""
    last = cast(nn.Linear, head.mlp[-1])  # EnergyHead's MLP ends in its output Linear
    last.weight.zero_()
    last.bias.zero_()


class FinetuneTrainer(Trainer):
    """The pretraining :class:`~gfm_ase.pretraining.trainer.Trainer` started from ``base_model`` (None: random weights,
    the from-scratch baseline) with the heads of ``model_config`` (the base model's heads plus the target head),
    training only what ``plan`` says.

    ``forgetting`` (a :class:`~gfm_ase.finetune_zoo.forgetting.ForgettingReport`, ``before`` filled) is evaluated on
    the final model, and written into the metadata of the heads whose predictions fine-tuning may have changed.
    ``extra`` becomes the ``extra`` block of the final model.json.
    """

    def __init__(
        self,
        cfg: PretrainConfig,
        outdir: str | Path,
        *,
        base_model: GFMModel | None,
        model_config: ModelConfig,
        plan: Plan,
        datasets: list[DatasetSplits],
        forgetting: ForgettingReport | None = None,
        extra: dict[str, Any] | None = None,
        target_metrics: dict[str, Any] | None = None,
        zero_init_head: bool = False,
        resume: bool = False,
    ) -> None:
        self.zero_init_head = zero_init_head
        self._base_model = base_model
        self._model_config = model_config
        self.plan = plan
        self.forgetting = forgetting
        self._extra = extra or {}
        self._target_metrics = target_metrics or {}
        self.banner = f"[finetune] {'training' if base_model is not None else 'from-scratch baseline'}"
        super().__init__(cfg, outdir, datasets=datasets, resume=resume)

    def validate(self, split: str = "val") -> list[dict]:
        """As the trainer's, but evaluated once per step and split (the last step's validation is reused by
        ``finish``)."""
        cache = self.__dict__.setdefault("_val_cache", {})
        key = (self.step, split)
        if key not in cache:
            cache[key] = super().validate(split)
        return cache[key]

    # --- hooks of the pretraining trainer -------------------------------------------------------------------
    def build_model_config(self) -> ModelConfig:
        return self._model_config

    def build_model(self) -> GFMModel:
        if self._base_model is None:
            model = GFMModel(self._model_config)
            if self.zero_init_head:
                _zero_last_layer(model.head_module(self.plan.target))
            return model
        model = copy.deepcopy(self._base_model)  # the trainer moves it to the training device and dtype
        target = self._model_config.head(self.plan.target)
        if self.plan.new_head:
            model.add_head(target)  # random MLP from the seeded torch RNG
            if self.zero_init_head:
                _zero_last_layer(model.head_module(self.plan.target))
        else:
            model.update_head_config(target)  # continued head: references for new elements
        if model.config != self._model_config:
            raise RuntimeError("internal error: the fine-tuning model's config differs from the planned one")
        return model

    def configure_trainable(self, model: GFMModel) -> None:
        for n, p in model.named_parameters():
            p.requires_grad_(self.plan.trainable(n))
        if not self.plan.train_trunk and self.plan.embedding_rows:
            emb = model.get_parameter(EMBEDDING)
            mask = torch.zeros(emb.shape[0], 1, dtype=emb.dtype)
            mask[self.plan.embedding_rows] = 1.0
            self.gradient_masks[EMBEDDING] = mask

    def _mixed_embedding(self) -> bool:
        """Trunk at a reduced LR with new elements: the embedding trains at the head LR, its old rows rescaled."""
        return self.plan.train_trunk and bool(self.plan.new_rows) and self.plan.trunk_lr_scale != 1.0

    def param_groups(self) -> list[dict]:
        groups: dict[tuple[float, float], list[torch.nn.Parameter]] = {}
        wd = self.cfg.optim.weight_decay
        for n, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            pretrained = n.startswith(("trunk.", "fidelity.")) or (
                n.startswith("heads.") and n.split(".")[1] in self.plan.pretrained_heads
            )
            scale = self.plan.trunk_lr_scale if (pretrained and self.plan.train_trunk) else 1.0
            if n == EMBEDDING and self._mixed_embedding():
                scale = 1.0  # see after_update: rows of known elements get trunk_lr_scale
            decay = wd if (p.ndim >= 2 and "embedding" not in n) else 0.0
            groups.setdefault((scale, decay), []).append(p)
        return [{"params": ps, "weight_decay": d, "lr_scale": s} for (s, d), ps in groups.items()]

    def before_update(self) -> None:
        if self._mixed_embedding():
            self._emb_before = self.model.get_parameter(EMBEDDING).detach().clone()

    @torch.no_grad()
    def after_update(self) -> None:
        """Adam's update is proportional to the LR, so scaling the update of the known elements' rows by
        ``trunk_lr_scale`` is training them at the trunk's LR while the new elements' rows use the head's."""
        if self._mixed_embedding():
            w = self.model.get_parameter(EMBEDDING)
            old = self._emb_before
            keep = torch.ones(w.shape[0], dtype=torch.bool, device=w.device)
            keep[self.plan.new_rows] = False
            w[keep] = old[keep] + self.plan.trunk_lr_scale * (w[keep] - old[keep])

    def annotate_final_model(
        self, model: GFMModel, val: list[dict], test: list[dict], heads: list[str] | None = None
    ) -> None:
        """The trainer's val/test metrics go to the target head only (unless ``heads`` says otherwise); the other
        heads get the forgetting report's note."""
        super().annotate_final_model(model, val, test, heads=[self.plan.target] if heads is None else heads)
        self._retire_stale_committees(model)
        h = model.head_config(self.plan.target)
        model.update_head_config(h.model_copy(update={"metrics": {**h.metrics, **self._target_metrics}}))
        if self.forgetting is None:
            return
        self.forgetting.evaluate_after(model, device=self.device)
        report = self.forgetting.report()
        changed_trunk = self.plan.train_trunk or bool(self.plan.embedding_rows)
        for name, entry in report.items():
            if name == self.plan.target or name not in model.head_names:
                continue
            old = model.head_config(name)
            metrics = dict(old.metrics)
            note = {
                "finetuned_head": self.plan.target,
                "strategy": self._target_metrics.get("strategy"),
                "status": entry["status"],
            }
            if entry["status"] == "ok":
                note.update(before=entry["before"], after=entry["after"], n_structures=entry["n_structures"])
            else:
                note["reason"] = entry.get("reason")
            if self.plan.train_trunk or name in self.plan.train_heads:
                note["warning"] = (
                    "the trunk (or this head) changed after the pretraining-time metrics ('val', "
                    "'test') were measured; 'after' holds this head's held-out errors now"
                    if entry["status"] == "ok"
                    else "the trunk changed and this head's held-out data was unavailable: its "
                    "'val'/'test' metrics are from before fine-tuning"
                )
            elif changed_trunk:
                note["note"] = (
                    "only embedding rows of elements this head never saw changed: its predictions "
                    "on its own elements are unchanged"
                )
            metrics["finetuning"] = [*metrics.get("finetuning", []), note]
            model.update_head_config(old.model_copy(update={"metrics": metrics}))

    def _retire_stale_committees(self, model: GFMModel) -> None:
        """A last-layer committee (pretraining/committee.py) was fitted on the features of the trunk it came with:
        after the trunk or its head trained, its spread no longer describes the model. The record goes (so
        ``uncertainty=True`` refuses in one line instead of reporting a stale spread) and a note says why; the
        member heads stay (they are still excluded from family spreads by their own record)."""
        from gfm_ase.runtime.uncertainty import COMMITTEE_KEY

        for name in model.head_names:
            old = model.head_config(name)
            if COMMITTEE_KEY not in old.metrics or not (self.plan.train_trunk or name in self.plan.train_heads):
                continue
            metrics = {k: v for k, v in old.metrics.items() if k != COMMITTEE_KEY}
            metrics["committee_retired"] = {
                "members": list(old.metrics[COMMITTEE_KEY].get("members", [])),
                "finetuned_head": self.plan.target,
                "reason": "fitted on the pretrained trunk/head, which fine-tuning changed; refit with "
                "python -m gfm_ase.pretraining.committee",
            }
            model.update_head_config(old.model_copy(update={"metrics": metrics}))

    def final_model_extra(self) -> dict[str, Any]:
        extra = dict(self._extra)
        extra["finetune_training"] = super().final_model_extra()["training"]
        return extra
