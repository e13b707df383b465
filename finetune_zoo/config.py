"""The fine-tuning configuration: one typed pydantic model (``gfm finetune --show-options`` lists every option).

A fine-tuning run starts from a pretrained model and trains one head on a new dataset with one of four strategies:

* ``frozen``: a new head on the frozen trunk. Only the new head trains (plus, by default, the embedding rows of
  elements no head of the model has seen; those rows are used by no pretrained head's data). Every other head's
  predictions are unchanged bit-for-bit.
* ``full``: a new head and the whole trunk train, the trunk at ``trunk_lr_factor`` times the head's LR. The other
  heads' weights do not change, but their predictions do (through the trunk): see the forgetting report.
* ``continue``: keep training an existing head (same level of theory, new data) with the trunk, as in ``full``.
* ``replay``: ``full`` (or ``continue`` when the head exists) while a fraction ``replay_fraction`` of every batch is
  drawn from the pretraining data of the other heads, which keep training too (multi-task fine-tuning).

Learning rates: pretrained weights (the trunk, a continued head, replayed heads) train at ``optim.lr *
optim.trunk_lr_factor``, new weights (a new head, embedding rows of elements no head has seen) at ``optim.lr``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from gfm_ase.config import HeadSpec, StrictModel
from gfm_ase.pretraining.config import AdamWSpec, EMASpec, LossSpec, OptimSpec

STRATEGIES = ("frozen", "full", "continue", "replay")


class FinetuneHeadSpec(HeadSpec):
    """The head that trains: pretraining's head spec (name and level-of-theory metadata, MLP sizes). The metadata
    and ``hidden`` apply to a new head; an existing head (continue, replay) keeps its own. ``head: NAME`` is short for
    ``head: {name: NAME}``."""

    # widens HeadSpec's list[int] by None (a new head sized as the model's first head): finetuning._target_head
    # resolves None before a head is built, and no code reads this spec's hidden as a HeadSpec's
    hidden: list[int] | None = Field(  # type: ignore[assignment]  # None is allowed here, not in HeadSpec
        default=None, description="hidden sizes of a new head's MLP (None: as the model's first head)"
    )

    @field_validator("hidden")
    @classmethod
    def _hidden(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or min(v) < 1):
            raise ValueError(f"hidden must be a non-empty list of positive sizes, got {v}")
        return v


class FinetuneOptimSpec(AdamWSpec):
    """Pretraining's AdamW settings with fine-tuning's defaults, the end of the cosine decay relative to the peak
    LR, and the learning rates of pretrained weights and of the from-scratch baseline."""

    lr: float = Field(
        default=2e-3, gt=0, description="peak LR of new weights (and of every parameter of the scratch model)"
    )
    warmup_steps: int = Field(default=10, ge=0, description="linear warmup steps (at most steps - 1)")
    min_lr_factor: float = Field(default=0.05, ge=0, le=1, description="cosine decay ends at lr * this")
    trunk_lr_factor: float = Field(
        default=0.1,
        ge=0,
        description="full/continue/replay: LR of pretrained weights (trunk, continued or replayed heads) = lr * this",
    )
    scratch_lr: float | None = Field(default=None, gt=0, description="peak LR of the from-scratch baseline (None: lr)")

    def schedule(self, lr: float, steps: int) -> OptimSpec:
        """The pretraining trainer's optimizer settings for a run of ``steps`` steps at peak LR ``lr``."""
        shared = self.model_dump(include=set(AdamWSpec.model_fields))
        return OptimSpec(
            **{**shared, "lr": lr, "min_lr": lr * self.min_lr_factor, "warmup_steps": min(self.warmup_steps, steps - 1)}
        )


class FinetuneEMASpec(EMASpec):
    """Pretraining's EMA of the weights with fine-tuning's default decay (runs are short)."""

    decay: float = Field(default=0.99, ge=0.0, lt=1.0, description="EMA decay per optimizer step")


class FinetuneConfig(StrictModel):
    """Everything that defines a fine-tuning run except the model and the data paths. The head, optimizer, EMA and
    loss are pretraining's pieces (with fine-tuning's defaults); the run itself is a pretraining run
    (gfm_ase.finetune_zoo.finetuning builds its PretrainConfig from them)."""

    strategy: Literal["frozen", "full", "continue", "replay"] = Field(
        default="full", description="frozen | full | continue | replay (see the module documentation)"
    )
    head: FinetuneHeadSpec = Field(
        description="head to train: a new name (frozen/full/replay) or an existing head (continue; replay continues "
        "it when it exists), with a new head's metadata"
    )
    steps: int = Field(
        default=300, ge=1, description="optimizer steps (the budget; the scratch baseline gets the same)"
    )
    batch_size: int = Field(default=8, ge=1, description="structures per step")
    optim: FinetuneOptimSpec = Field(default_factory=FinetuneOptimSpec, description="AdamW and its schedule")
    ema: FinetuneEMASpec = Field(
        default_factory=FinetuneEMASpec, description="EMA of the weights for evaluation and the final model"
    )
    loss: LossSpec = Field(default_factory=LossSpec, description="loss terms (as in pretraining)")
    zero_init_head: bool = Field(
        default=False,
        description="start a new head (and the scratch model's head) with a zero output layer, i.e. at its "
        "fitted reference energies + shift, instead of random energies on the pretrained features",
    )
    train_new_element_embeddings: bool = Field(
        default=True, description="frozen: train the trunk's embedding rows of elements no head of the model has seen"
    )
    replay_fraction: float = Field(
        default=0.25,
        gt=0,
        lt=1,
        description="replay: share of each batch drawn from the pretraining data of the other heads",
    )
    replay_max_structures: int | None = Field(
        default=None, ge=1, description="replay: use at most this many training structures per pretraining dataset"
    )
    val_fraction: float = Field(
        default=0.1, gt=0, lt=1, description="share of TRAIN split off for validation when no validation data is given"
    )
    split_seed: int = Field(default=0, description="seed of that split and of training-subset draws")
    eval_max_structures: int | None = Field(
        default=None, ge=1, description="evaluate the task's val/test on at most this many structures (seeded subset)"
    )
    forgetting_report: bool = Field(
        default=True,
        description="evaluate every other head on its held-out data before and after (the forgetting report)",
    )
    forgetting_max_structures: int | None = Field(
        default=200,
        ge=1,
        description="forgetting report: held-out structures per pretraining dataset (seeded subset; "
        "None: the whole held-out split)",
    )
    eval_batch_size: int = Field(default=16, ge=1, description="structures per evaluation batch")
    seed: int = Field(default=0, description="seed of the new head's initialisation and of batch sampling")
    precision: Literal["float32", "float64", "bfloat16"] = Field(default="float32", description="training precision")
    device: str = Field(default="auto", description="'auto' (cuda if available), 'cpu' or 'cuda'")
    baseline: Literal["none", "scratch"] = Field(
        default="none", description="scratch: also train the same architecture from random weights with the same budget"
    )

    @field_validator("head", mode="before")
    @classmethod
    def _head_by_name(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v


def describe_options() -> list[str]:
    from gfm_ase.pretraining.config import describe_options as _describe

    return _describe(FinetuneConfig)
